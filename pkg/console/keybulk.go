// The keys list's bulk actions (deactivate, delete): the selected ids,
// the confirmation page and the change.

package console

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/store"
)

// bulkActions are the keys list's bulk actions: the operation each needs
// and its verb.
var bulkActions = map[string]struct{ op, verb string }{
	"deactivate": {"updateKey", "Deactivate"},
	"delete":     {"deleteKey", "Delete"},
}

// keyBulkView is the confirmation of a bulk action.
type keyBulkView struct {
	Action, Verb string
	Keys         []store.Key
	Missing      int
}

// bulkIDs are the selected key ids of a form or query, at most one
// list page's worth of the service's bulk bound.
func bulkIDs(vals []string) ([]string, string) {
	var ids []string
	seen := map[string]bool{} // a set: a post may carry 10,000 values
	for _, id := range vals {
		if id = strings.TrimSpace(id); id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	switch {
	case len(ids) == 0:
		return nil, "Select at least one key (tick its box in the list)."
	case len(ids) > account.MaxBulkIDs:
		return nil, fmt.Sprintf("At most %d keys at once.", account.MaxBulkIDs)
	}
	return ids, ""
}

// keyBulkConfirm is the page between the list's bulk buttons and the
// change: the selected keys by name, their number, and the button that
// posts the change.
func (h *Handler) keyBulkConfirm(w http.ResponseWriter, r *http.Request, p *page) {
	q := r.URL.Query()
	a, ok := bulkActions[q.Get("action")]
	if !ok {
		h.fail(w, r, http.StatusUnprocessableEntity, "action: give deactivate or delete")
		return
	}
	if !p.Can(a.op) {
		h.fail(w, r, http.StatusForbidden, "scope_denied: the key's scope does not allow "+a.op)
		return
	}
	ids, msg := bulkIDs(q["id"])
	if msg != "" {
		h.fail(w, r, http.StatusUnprocessableEntity, msg)
		return
	}
	keys, _, err := h.svc.ListKeys(r.Context(), p.session.caller, account.KeyFilter{IDs: ids, Order: store.KeyOrder{By: store.SortName}},
		account.PageInput{Size: account.MaxBulkIDs})
	if err != nil {
		h.serviceError(w, r, p, err)
		return
	}
	p.Title, p.Nav = a.verb+" keys", "keys"
	p.Data = &keyBulkView{Action: q.Get("action"), Verb: a.verb, Keys: keys, Missing: len(ids) - len(keys)}
	h.render(w, r, http.StatusOK, "key_bulk", p)
}

// keyBulk makes the confirmed change: deactivation in one transaction
// that refuses unless exactly the confirmed keys are there (UpdateKeys'
// expected count), deletion key by key, stopping at the first refusal.
func (h *Handler) keyBulk(w http.ResponseWriter, r *http.Request, p *page) {
	action := r.PostFormValue("action")
	a, ok := bulkActions[action]
	if !ok {
		h.fail(w, r, http.StatusUnprocessableEntity, "action: give deactivate or delete")
		return
	}
	op, _ := account.OperationNamed(a.op)
	if err := h.svc.Authorize(p.session.caller, op); err != nil {
		h.serviceError(w, r, p, err)
		return
	}
	ids, msg := bulkIDs(r.PostForm["id"])
	if msg != "" {
		h.fail(w, r, http.StatusUnprocessableEntity, msg)
		return
	}
	count, err := strconv.Atoi(r.PostFormValue("count"))
	if err != nil || count != len(ids) {
		h.fail(w, r, http.StatusUnprocessableEntity, "count: the confirmed number of keys is missing or wrong: go back to the list and select again")
		return
	}
	ctx := r.Context()
	switch action {
	case "deactivate":
		inactive := false
		res, err := h.svc.UpdateKeys(ctx, p.session.caller, account.BulkKeyUpdate{Filter: account.KeyFilter{IDs: ids},
			Update: account.KeyUpdate{Active: &inactive}, ExpectedCount: &count})
		if err != nil {
			h.serviceError(w, r, p, err)
			return
		}
		count = res.Count
	case "delete":
		keys, _, err := h.svc.ListKeys(ctx, p.session.caller, account.KeyFilter{IDs: ids}, account.PageInput{Size: account.MaxBulkIDs})
		if err != nil {
			h.serviceError(w, r, p, err)
			return
		}
		if len(keys) != count {
			h.fail(w, r, http.StatusConflict, fmt.Sprintf("%d of the %d confirmed keys are there now; nothing was deleted: go back to the list and select again", len(keys), count))
			return
		}
		for i, k := range keys {
			// Each deletion is a change the fleet applies, so each counts
			// against the key's mutation rate as a DeleteKey call would
			// (the route counted the first): a bulk post is not a way past
			// SPEC §10's limit.
			if i > 0 {
				if err := h.svc.AuthorizeCall(p.session.caller, op); err != nil {
					status, msg := statusOf(err)
					h.fail(w, r, status, fmt.Sprintf("Deleted %d of %d keys; the rest were not: %s", i, count, msg))
					return
				}
			}
			if _, err := h.svc.DeleteKey(ctx, p.session.caller, k.Spec.ID); err != nil {
				status, msg := statusOf(err)
				h.fail(w, r, status, fmt.Sprintf("Deleted %d of %d keys; key %s was refused: %s", i, count, k.Spec.Name, msg))
				return
			}
		}
	}
	http.Redirect(w, r, fmt.Sprintf("/keys?done=%sd&n=%d", action, count), http.StatusSeeOther)
}

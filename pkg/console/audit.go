package console

import (
	"bytes"
	"encoding/json"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/pkg/account"
)

// fieldDiff is one field of an audit event's object, before and after
// (JSON values; "" where the object had no such field: created, deleted
// or a field added).
type fieldDiff struct {
	Field, Before, After string
}

// secretField reports whether an audit record's field is named like a
// secret. The records hold none (store.KeyAudit lists its fields one by
// one, without the hashes); the console leaves such a field out anyway,
// so that a record that ever gained one would not show it.
func secretField(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"hash", "secret", "password", "token"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// diffOf is an event's diff: for a change, the top-level fields whose
// values differ; for a creation every field after, for a deletion every
// field before; in name order, without noise.
func diffOf(before, after json.RawMessage) []fieldDiff {
	var b, a map[string]json.RawMessage
	_ = json.Unmarshal(before, &b)
	_ = json.Unmarshal(after, &a)
	if b == nil && a == nil {
		return nil
	}
	both := maps.Clone(b)
	if both == nil {
		both = map[string]json.RawMessage{}
	}
	maps.Copy(both, a)
	var out []fieldDiff
	for _, f := range slices.Sorted(maps.Keys(both)) {
		if secretField(f) || noise(f, b == nil) || (b != nil && a != nil && bytes.Equal(b[f], a[f])) {
			continue
		}
		out = append(out, fieldDiff{Field: f, Before: jsonText(b[f]), After: jsonText(a[f])})
	}
	return out
}

// noise reports whether a field says nothing the event's row does not:
// the account and the object's id (the row names them), the time of the
// last change (the event's), and a created object's creation time.
func noise(field string, created bool) bool {
	switch field {
	case "account_id", "id", "updated_at":
		return true
	case "created_at":
		return created
	}
	return false
}

// jsonText is a value as the diff shows it: compact JSON, "" for none.
func jsonText(v json.RawMessage) string {
	if len(v) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if json.Compact(&buf, v) != nil {
		return string(v)
	}
	return buf.String()
}

// auditPageSize is the audit log's page.
const auditPageSize = 50

// auditActions are offered in the action filter (any action, or type.*,
// may be typed).
var auditActions = []string{
	"key.*", "key.create", "key.update", "key.regenerate", "key.delete",
	"app.*", "tenant.*", "role.*", "denial.*", "account.*",
}

// auditView is the audit log page with its filters.
type auditView struct {
	Key, Actor, Action, Outcome, Since, Until string
	Actions                                   []string
	Events                                    []auditRow
	Filtered, NotFirst                        bool
	NextQuery, FirstQuery                     template.URL
}

// auditFilterParams are the audit log's filter parameters, kept across
// its pages.
var auditFilterParams = []string{"key", "actor", "action", "outcome", "since", "until"}

// parseWhen reads a filter's date or date and time (UTC): YYYY-MM-DD is
// its midnight.
func parseWhen(s string) (time.Time, bool) {
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02", time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// audit is the account's audit log: newest first, filtered by key,
// acting key, action, outcome and time, in cursor pages; each event with
// its diff.
func (h *Handler) audit(w http.ResponseWriter, r *http.Request, p *page) {
	q := r.URL.Query()
	v := &auditView{Key: strings.TrimSpace(q.Get("key")), Actor: strings.TrimSpace(q.Get("actor")),
		Action: strings.TrimSpace(q.Get("action")), Outcome: q.Get("outcome"),
		Since: q.Get("since"), Until: q.Get("until"), Actions: auditActions}
	f := account.AuditFilter{KeyID: v.Key, ActorKeyID: v.Actor, Action: v.Action, Outcome: v.Outcome}
	p.Title, p.Nav, p.Data = "Audit log", "audit", v
	p.Errors = map[string]string{}
	for _, d := range []struct {
		field, text string
		dst         *time.Time
	}{{"since", v.Since, &f.Since}, {"until", v.Until, &f.Until}} {
		if d.text == "" {
			continue
		}
		t, ok := parseWhen(d.text)
		if !ok {
			p.Errors[d.field] = d.field + ": " + d.text + " is not a date (YYYY-MM-DD) or date and time (YYYY-MM-DDTHH:MM, UTC)"
		}
		*d.dst = t
	}
	v.Filtered = f != account.AuditFilter{}
	if len(p.Errors) > 0 {
		h.render(w, r, http.StatusUnprocessableEntity, "audit", p)
		return
	}
	events, next, err := h.svc.ListAuditEvents(r.Context(), p.session.caller, f, account.PageInput{Size: auditPageSize, Token: q.Get("after")})
	if err != nil {
		if p.formError(err) {
			h.render(w, r, http.StatusUnprocessableEntity, "audit", p)
			return
		}
		h.serviceError(w, r, p, err)
		return
	}
	for _, e := range events {
		v.Events = append(v.Events, newAuditRow(e))
	}
	v.FirstQuery, v.NextQuery = pageQueries(q, auditFilterParams, next)
	v.NotFirst = q.Get("after") != ""
	h.render(w, r, http.StatusOK, "audit", p)
}

// pageQueries are a filtered list's first and next page queries: the
// filter parameters set in q, and the next page's cursor ("" when there
// is none). Encoded by url.Values: safe in an href as they are.
func pageQueries(q url.Values, params []string, next string) (first, nextQ template.URL) {
	nq := url.Values{}
	for _, name := range params {
		if x := q.Get(name); x != "" {
			nq.Set(name, x)
		}
	}
	first = template.URL(nq.Encode())
	if next != "" {
		nq.Set("after", next)
		nextQ = template.URL(nq.Encode())
	}
	return first, nextQ
}

// auditObjectPath is where an event's object has its page ("" for an
// object without one; a deleted object's page answers 404, which says
// so).
func auditObjectPath(typ, id string) string {
	switch typ {
	case "key":
		return "/keys/" + url.PathEscape(id)
	case "app":
		return "/apps/" + url.PathEscape(id)
	case "tenant":
		return "/tenants/" + url.PathEscape(id)
	case "role":
		return "/roles/" + url.PathEscape(id)
	case "denial":
		return "/denials/" + url.PathEscape(id)
	}
	return ""
}

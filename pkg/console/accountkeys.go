package console

import (
	"html/template"
	"net/http"
	"net/url"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
)

// accountKeysView is the account's account access keys: the keys that
// call the Account API and sign in here.
type accountKeysView struct {
	Keys      []keyRow
	NextQuery template.URL
	NotFirst  bool
	CanCreate bool
}

func (h *Handler) accountKeys(w http.ResponseWriter, r *http.Request, p *page) {
	after := r.URL.Query().Get("after")
	keys, next, err := h.svc.ListKeys(r.Context(), p.session.caller, account.KeyFilter{Type: authz.KeyTypeAccount},
		account.PageInput{Size: keysPageSize, Token: after})
	if err != nil {
		h.serviceError(w, r, p, err)
		return
	}
	v := &accountKeysView{CanCreate: p.Can(generateOp(authz.KeyTypeAccount)), NotFirst: after != ""}
	now := h.svc.Now()
	for _, k := range keys {
		v.Keys = append(v.Keys, newKeyRow(k, now))
	}
	if next != "" {
		v.NextQuery = template.URL(url.Values{"after": {next}}.Encode())
	}
	p.Title, p.Nav, p.Data = "Account keys", "account-keys", v
	h.render(w, r, http.StatusOK, "account_keys", p)
}

package console

import (
	"context"
	"net/url"
	"strings"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
)

// picker is the scope editor's permission picker: the route catalogue as
// service → kind → operation checkboxes, each one a scope pattern
// ("svc", "svc:kind", "svc:kind:op"), ticked when the scope has that
// pattern, and beside each a deny toggle for its deny pattern
// ("!svc:kind:op"), ticked when the scope has that. The boxes post as
// perm=pattern and deny=pattern (scopeField reads them); console.js
// keeps them and the scope text field in step.
type picker struct {
	Services []pickService
}

type pickService struct {
	Name, Value, KeyTypes string
	Checked, Denied       bool
	// Open: the service's boxes are shown unfolded (every served
	// service; the Account API's long list only when it is picked from).
	Open  bool
	Kinds []pickKind
}

type pickKind struct {
	Name, Value     string
	Checked, Denied bool
	Ops             []pickOp
}

type pickOp struct {
	Name, Value     string
	Checked, Denied bool
}

// services is the route catalogue (the services operation): nil when
// the session may not read it, and then the scope field alone is shown.
func (h *Handler) services(ctx context.Context, p *page) ([]account.ServiceInfo, error) {
	if !p.Can("services") {
		return nil, nil
	}
	return h.svc.Services(ctx, p.session.caller)
}

// picker builds the picker for scope text; nil when the catalogue cannot
// be read (the text field alone still works).
func (h *Handler) picker(ctx context.Context, p *page, scopeText string) *picker {
	cat, err := h.services(ctx, p)
	if err != nil || cat == nil {
		if err != nil {
			h.log.Warn("console: reading the route catalogue", "err", err)
		}
		return nil
	}
	return newPicker(cat, scopeText)
}

// newPicker is the picker of catalogue cat for scope text: a box is
// ticked when the text has its pattern, a deny toggle when it has the
// pattern with "!".
func newPicker(cat []account.ServiceInfo, scopeText string) *picker {
	has := map[string]bool{}
	for _, f := range strings.Fields(scopeText) {
		has[f] = true
	}
	pk := &picker{}
	for _, s := range cat {
		ps := pickService{Name: s.Name, Value: s.Name, KeyTypes: strings.Join(s.KeyTypes, ", "), Checked: has[s.Name], Denied: has["!"+s.Name]}
		for _, k := range s.Kinds {
			v := s.Name + ":" + k.Name
			pkd := pickKind{Name: k.Name, Value: v, Checked: has[v], Denied: has["!"+v]}
			for _, op := range k.Operations {
				ov := v + ":" + op
				pkd.Ops = append(pkd.Ops, pickOp{Name: op, Value: ov, Checked: has[ov], Denied: has["!"+ov]})
			}
			ps.Kinds = append(ps.Kinds, pkd)
		}
		ps.Open = ps.Name != authz.AccountAPIService
		for _, k := range ps.Kinds {
			for _, op := range k.Ops {
				ps.Open = ps.Open || k.Checked || k.Denied || op.Checked || op.Denied
			}
		}
		ps.Open = ps.Open || ps.Checked || ps.Denied
		pk.Services = append(pk.Services, ps)
	}
	return pk
}

// scopeField is a form's scope: the text field's patterns, then the
// permission picker's ticked boxes' (perm=pattern) and ticked deny
// toggles' ("!" and deny=pattern), each pattern once. Without the script
// this is how the picker sets the scope; with it the boxes post nothing
// and the field says it all.
//
// The patterns seen are a set: a post may bring up to 10,000 values
// (Go's form parser reads no more), which a search of the list for each
// compared pair by pair: 102 ms of CPU for one post, 1.4 ms as a set
// (BenchmarkScopeFieldLargeForm).
func scopeField(pf url.Values) string {
	patterns := strings.Fields(pf.Get("scope"))
	seen := make(map[string]bool, len(patterns))
	for _, p := range patterns {
		seen[p] = true
	}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			patterns = append(patterns, p)
		}
	}
	for _, perm := range pf["perm"] {
		for _, p := range strings.Fields(perm) {
			add(p)
		}
	}
	for _, deny := range pf["deny"] {
		for _, p := range strings.Fields(deny) {
			// A toggle's value is the pattern denied; one posted as
			// "!pattern" is read the same, never as "!!pattern".
			if p = strings.TrimLeft(p, "!"); p != "" {
				add("!" + p)
			}
		}
	}
	return strings.Join(patterns, " ")
}

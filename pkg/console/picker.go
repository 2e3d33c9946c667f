package console

import (
	"context"
	"strings"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
)

// picker is the scope editor's permission picker: the route catalogue as
// service → kind → operation checkboxes, each one a scope pattern
// ("svc", "svc:kind", "svc:kind:op"), ticked when the scope has that
// pattern. console.js keeps the boxes and the scope text field in step.
type picker struct {
	Services []pickService
}

type pickService struct {
	Name, Value, KeyTypes string
	Checked               bool
	// Open: the service's boxes are shown unfolded (every served
	// service; the Account API's long list only when it is picked from).
	Open  bool
	Kinds []pickKind
}

type pickKind struct {
	Name, Value string
	Checked     bool
	Ops         []pickOp
}

type pickOp struct {
	Name, Value string
	Checked     bool
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
	has := map[string]bool{}
	for _, f := range strings.Fields(scopeText) {
		has[f] = true
	}
	pk := &picker{}
	for _, s := range cat {
		ps := pickService{Name: s.Name, Value: s.Name, KeyTypes: strings.Join(s.KeyTypes, ", "), Checked: has[s.Name]}
		for _, k := range s.Kinds {
			v := s.Name + ":" + k.Name
			pkd := pickKind{Name: k.Name, Value: v, Checked: has[v]}
			for _, op := range k.Operations {
				ov := v + ":" + op
				pkd.Ops = append(pkd.Ops, pickOp{Name: op, Value: ov, Checked: has[ov]})
			}
			ps.Kinds = append(ps.Kinds, pkd)
		}
		ps.Open = ps.Name != authz.AccountAPIService
		for _, k := range ps.Kinds {
			for _, op := range k.Ops {
				ps.Open = ps.Open || k.Checked || op.Checked
			}
		}
		ps.Open = ps.Open || ps.Checked
		pk.Services = append(pk.Services, ps)
	}
	return pk
}

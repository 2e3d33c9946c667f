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
	Kinds                 []pickKind
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

// catalogue is one service of the route catalogue, as the picker needs it.
type catalogue struct {
	Name     string
	KeyTypes []string
	Kinds    []catalogueKind
}

type catalogueKind struct {
	Name string
	Ops  []string
}

// services is the route catalogue the session may see.
func (h *Handler) services(ctx context.Context, p *page) ([]catalogue, error) {
	api := catalogue{Name: authz.AccountAPIService, KeyTypes: []string{authz.KeyTypeAccount.String()}}
	for _, kind := range []string{"query", "mutation"} {
		k := catalogueKind{Name: kind}
		for _, op := range account.Operations {
			if op.Kind == kind {
				k.Ops = append(k.Ops, op.Name)
			}
		}
		api.Kinds = append(api.Kinds, k)
	}
	return []catalogue{api}, nil
}

// picker builds the picker for scope text; nil when the catalogue cannot
// be read (the text field alone still works).
func (h *Handler) picker(ctx context.Context, p *page, scopeText string) *picker {
	cat, err := h.services(ctx, p)
	if err != nil {
		h.log.Warn("console: reading the route catalogue", "err", err)
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
			for _, op := range k.Ops {
				ov := v + ":" + op
				pkd.Ops = append(pkd.Ops, pickOp{Name: op, Value: ov, Checked: has[ov]})
			}
			ps.Kinds = append(ps.Kinds, pkd)
		}
		pk.Services = append(pk.Services, ps)
	}
	return pk
}

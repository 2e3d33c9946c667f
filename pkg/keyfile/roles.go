package keyfile

import (
	"errors"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/scope"
	"github.com/keygate/keygate/pkg/yamlfile"
)

// Roles and service access denials in a keys file (SPEC §11):
//
//	roles:
//	  - id: r-readers
//	    name: readers                 # unique in the file
//	    scope: "email-api:query:*"    # required, non-empty; ! patterns allowed
//	    description: "…"
//	denials:
//	  - id: d-1
//	    tenant: acme                  # required, listed in tenants
//	    app: billing                  # required, listed in apps
//	    scope: "email-api"            # required, allow-form patterns only
//	    reason: "Payment overdue: contact billing@example.com"   # ≤ 500 bytes, shown to the caller
//	keys:
//	  - id: k-1
//	    roles: [r-readers]            # ids of roles above
//
// A key's effective scope is its own scope and its roles' (authz.Compile);
// a denial blocks, after the scope check, every key of its tenant and app
// (never an app key) whose request it covers.

var (
	roleFields   = []string{"id", "name", "scope", "description", "rate_limit"}
	denialFields = []string{"id", "tenant", "app", "scope", "reason"}
)

// roles reads the roles list; it returns the valid roles by id (what keys
// are compiled against) and in file order.
func (p *parser) roles(n *yaml.Node, account string, hasService func(string) bool) (authz.RoleMap, []*authz.Role) {
	items, _ := p.List(n, "", "roles")
	byID := authz.RoleMap{}
	var order []*authz.Role
	ids, names := map[string]seen{}, map[string]seen{}
	for i, item := range items {
		label := entryLabel("roles", i, yamlfile.Peek(item, "id"))
		f := p.Mapping(item, label, roleFields, "want a mapping with id, name, scope and description")
		if f == nil {
			continue
		}
		errsBefore := p.NumErrors()
		reported := map[string]bool{}
		str := func(field string) string {
			s, ok := p.String(f[field].Value, label, field)
			if !ok {
				reported[field] = true
			}
			return s
		}
		r := &authz.Role{ID: str("id"), AccountID: account, Name: str("name"),
			Scope: p.canonicalScope(f["scope"].Value, label, str("scope")), Description: str("description")}
		r.RateLimit, reported["rate_limit"] = p.rateLimit(f["rate_limit"].Value, label)
		for _, e := range flatten(authz.CheckRole(r)) {
			var fe *authz.FieldError
			if !errors.As(e, &fe) {
				p.Fail(item.Line, label, "", e)
				continue
			}
			if reported[fe.Field] {
				continue
			}
			reported[fe.Field] = true
			p.Fail(lineOf(f[fe.Field].Value, item), label, fe.Field, fe.Err)
		}
		if r.ID != "" {
			if first, dup := ids[r.ID]; dup {
				p.Errorf(f["id"].Value, label, "id", "%q is also the id of %s (line %d)", r.ID, first.label, first.line)
			} else {
				ids[r.ID] = seen{label, f["id"].Value.Line}
			}
		}
		if r.Name != "" {
			if first, dup := names[r.Name]; dup {
				p.Errorf(f["name"].Value, label, "name", "%q is also the name of %s (line %d)", r.Name, first.label, first.line)
			} else {
				names[r.Name] = seen{label, f["name"].Value.Line}
			}
		}
		if p.NumErrors() > errsBefore {
			continue
		}
		p.warnServices(hasService, f["scope"].Value, label, r.Scope)
		byID[r.ID] = r
		order = append(order, r)
	}
	return byID, order
}

// denials reads the denials list and compiles each.
func (p *parser) denials(n *yaml.Node, account string, apps, tenants map[string]owner, hasService func(string) bool) []*authz.CompiledDenial {
	items, _ := p.List(n, "", "denials")
	var out []*authz.CompiledDenial
	ids := map[string]seen{}
	for i, item := range items {
		label := entryLabel("denials", i, yamlfile.Peek(item, "id"))
		f := p.Mapping(item, label, denialFields, "want a mapping with id, tenant, app, scope and reason")
		if f == nil {
			continue
		}
		errsBefore := p.NumErrors()
		reported := map[string]bool{}
		str := func(field string) string {
			s, ok := p.String(f[field].Value, label, field)
			if !ok {
				reported[field] = true
			}
			return s
		}
		d := authz.Denial{ID: str("id"), AccountID: account, TenantID: str("tenant"), AppID: str("app"),
			Scope: str("scope"), Reason: str("reason")}
		compiled, err := authz.CompileDenial(d)
		for _, e := range flatten(err) {
			var fe *authz.FieldError
			if !errors.As(e, &fe) {
				p.Fail(item.Line, label, "", e)
				continue
			}
			if reported[fe.Field] {
				continue
			}
			reported[fe.Field] = true
			p.Fail(lineOf(f[fe.Field].Value, item), label, fe.Field, fe.Err)
		}
		if d.AppID != "" && !reported["app"] {
			if _, ok := apps[d.AppID]; !ok {
				p.Errorf(f["app"].Value, label, "app", "%q is not listed in apps", d.AppID)
			}
		}
		if d.TenantID != "" && !reported["tenant"] {
			if _, ok := tenants[d.TenantID]; !ok {
				p.Errorf(f["tenant"].Value, label, "tenant", "%q is not listed in tenants", d.TenantID)
			}
		}
		if d.ID != "" {
			if first, dup := ids[d.ID]; dup {
				p.Errorf(f["id"].Value, label, "id", "%q is also the id of %s (line %d)", d.ID, first.label, first.line)
			} else {
				ids[d.ID] = seen{label, f["id"].Value.Line}
			}
		}
		if compiled == nil || p.NumErrors() > errsBefore {
			continue
		}
		p.warnServices(hasService, f["scope"].Value, label, d.Scope)
		out = append(out, compiled)
	}
	return out
}

// keyRoles reads a key's roles list of ids.
func (kp *keyParser) keyRoles(n *yaml.Node, label string) ([]string, bool) {
	n0 := kp.NumErrors()
	items, _ := kp.List(n, label, "roles")
	var out []string
	for j, v := range items {
		if s, ok := kp.String(v, label, fmt.Sprintf("roles[%d]", j)); ok {
			out = append(out, s)
		}
	}
	return out, kp.NumErrors() > n0
}

// canonicalScope reads a key's or a role's scope with the Account API's
// earlier operation names rewritten to the current ones (SPEC §14:
// accepted on input, as the Account API and migration 0011 do), so that
// serve --keys-file and import-file give such a key the access it was
// written for; a warning says what it was read as. A denial's scope is
// taken as written, as the Account API takes it.
func (p *parser) canonicalScope(n *yaml.Node, label, text string) string {
	canon := authz.CanonicalScope(text)
	if canon != text {
		p.Warnf(n, label, "scope", "earlier Account API operation names are read as today's: %q; write that to silence this warning", canon)
	}
	return canon
}

// warnServices warns about a scope naming a service the routes do not
// declare (SPEC §9: a warning, not an error).
func (p *parser) warnServices(hasService func(string) bool, n *yaml.Node, label, text string) {
	if hasService == nil {
		return
	}
	sc, err := scope.Parse(text)
	if err != nil {
		return
	}
	for _, svc := range sc.Services() {
		if !hasService(svc) {
			p.Warnf(n, label, "scope", "service %q is not declared", svc)
		}
	}
}

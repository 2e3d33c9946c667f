package store_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

func hashOf(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

func svcKey(id, name string, h byte) store.Key {
	return store.Key{Spec: authz.KeySpec{ID: id, Name: name, Type: authz.KeyTypeService,
		AppID: "billing", TenantID: "acme", Hash: hashOf(h), Scope: "email-api", Active: true}}
}

func with(k store.Key, f func(*authz.KeySpec)) store.Key {
	k.Spec.IPFilters = append([]string(nil), k.Spec.IPFilters...)
	f(&k.Spec)
	return k
}

// steps is a section's steps as "action id [changed…] {notes…}" lines.
func steps[T any](s store.ImportSection[T]) []string {
	var out []string
	for _, st := range s.Steps {
		line := fmt.Sprintf("%s %s", st.Action, st.ID)
		if len(st.Changed) > 0 {
			line += " " + fmt.Sprint(st.Changed)
		}
		for _, n := range st.Notes {
			line += " {" + n + "}"
		}
		out = append(out, line)
	}
	return out
}

func TestPlanImport(t *testing.T) {
	billing := store.App{ID: "billing", Name: "Billing", Active: true}
	acme := store.Tenant{ID: "acme", Name: "ACME", Active: true}
	k1, k2 := svcKey("k-1", "one", 'a'), svcKey("k-2", "two", 'b')
	t0 := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	base := store.ImportSet{Apps: []store.App{billing}, Tenants: []store.Tenant{acme}, Keys: []store.Key{k1, k2}}

	for _, tc := range []struct {
		name       string
		want, have store.ImportSet
		apps, keys []string
		tenants    []string
		err        []string // substrings of the error, none: no error
	}{
		{
			name: "empty account: everything created",
			want: base,
			apps: []string{"create billing"}, tenants: []string{"create acme"},
			keys: []string{"create k-1", "create k-2"},
		},
		{
			name: "same again: nothing changes",
			want: base, have: base,
			apps: []string{"unchanged billing"}, tenants: []string{"unchanged acme"},
			keys: []string{"unchanged k-1", "unchanged k-2"},
		},
		{
			name: "stored only: kept, reported",
			want: store.ImportSet{Apps: []store.App{billing}, Tenants: []store.Tenant{acme}, Keys: []store.Key{k1}},
			have: base,
			apps: []string{"unchanged billing"}, tenants: []string{"unchanged acme"},
			keys: []string{"unchanged k-1", "kept k-2 {in the database, not in the file: left as it is}"},
		},
		{
			name: "every field the file carries is compared",
			want: store.ImportSet{Apps: []store.App{{ID: "billing", Name: "Billing 2"}}, Tenants: []store.Tenant{acme},
				Keys: []store.Key{with(k1, func(s *authz.KeySpec) {
					s.Name, s.Hash, s.Scope, s.Active = "uno", hashOf('c'), "email-api:query", false
					s.NotBefore, s.ExpiresAt, s.IPFilters = t0, t0.Add(time.Hour), []string{"10.0.0.0/8"}
					s.Group, s.Description = "g", "d"
					s.ResponseHeaders = []authz.HeaderSpec{{Name: "x-tier", Value: "gold"}}
				}), k2}},
			have: base,
			apps: []string{"update billing [name]"}, tenants: []string{"unchanged acme"},
			keys: []string{"update k-1 [name hash scope active not_before expires_at ip_filters group description response_headers] {the stored secret stops working; the file's secret works}",
				"unchanged k-2"},
		},
		{
			name: "what the file does not carry stays as stored",
			want: base,
			have: store.ImportSet{Apps: []store.App{{ID: "billing", Name: "Billing", Description: "x", Active: true}},
				Tenants: []store.Tenant{acme},
				Keys: []store.Key{with(k1, func(s *authz.KeySpec) {
					s.PreviousHash, s.PreviousValidUntil = hashOf('p'), t0
				}), {Spec: k2.Spec, Origin: store.OriginGenerated, LastUsedAt: t0}}},
			apps: []string{"unchanged billing"}, tenants: []string{"unchanged acme"},
			keys: []string{"unchanged k-1", "unchanged k-2"},
		},
		{
			name: "never re-activates",
			want: base,
			have: store.ImportSet{Apps: []store.App{{ID: "billing", Name: "Billing"}}, Tenants: []store.Tenant{acme},
				Keys: []store.Key{with(k1, func(s *authz.KeySpec) { s.Active = false }), k2}},
			apps:    []string{"unchanged billing {inactive in the database: stays inactive (an import never re-activates)}"},
			tenants: []string{"unchanged acme"},
			keys:    []string{"unchanged k-1 {inactive in the database: stays inactive (an import never re-activates)}", "unchanged k-2"},
		},
		{
			name: "nil and empty lists are alike; times compare as instants",
			want: store.ImportSet{Keys: []store.Key{with(k1, func(s *authz.KeySpec) { s.ExpiresAt = t0 })}},
			have: store.ImportSet{Keys: []store.Key{with(k1, func(s *authz.KeySpec) {
				s.IPFilters = []string{}
				s.ExpiresAt = t0.In(time.FixedZone("x", 3600))
			})}},
			keys: []string{"unchanged k-1"},
		},
		{
			name: "type, app and tenant cannot change",
			want: store.ImportSet{Keys: []store.Key{with(k1, func(s *authz.KeySpec) { s.Type, s.TenantID = authz.KeyTypeApp, "" })}},
			have: store.ImportSet{Keys: []store.Key{k1}},
			err:  []string{`key "k-1": type (service in the database, app in the file) and tenant ("acme" in the database, "" in the file) cannot change`},
		},
		{
			name: "the file's hash is the stored previous one: refused as stale",
			want: store.ImportSet{Keys: []store.Key{k1}},
			have: store.ImportSet{Keys: []store.Key{with(k1, func(s *authz.KeySpec) {
				s.Hash, s.PreviousHash, s.PreviousValidUntil = hashOf('n'), hashOf('a'), t0
			})}},
			err: []string{`key "k-1": the file's hash is the key's previous one`},
		},
		{
			name: "a new key with the name of a kept key",
			want: store.ImportSet{Keys: []store.Key{svcKey("k-3", "two", 'c')}},
			have: base,
			err:  []string{`key "k-3": same name as key "k-2" (in the database, not in the file)`},
		},
		{
			name: "a new key with the hash of a kept key, current or previous",
			want: store.ImportSet{Keys: []store.Key{svcKey("k-3", "three", 'b'), svcKey("k-4", "four", 'p')}},
			have: store.ImportSet{Keys: []store.Key{k1, with(k2, func(s *authz.KeySpec) {
				s.PreviousHash, s.PreviousValidUntil = hashOf('p'), t0
			})}},
			err: []string{`key "k-3": same hash as key "k-2" (in the database, not in the file)`,
				`key "k-4": same hash as key "k-2" (in the database, not in the file)`},
		},
		{
			name: "a hash freed by the file's other key is free",
			want: store.ImportSet{Keys: []store.Key{with(k1, func(s *authz.KeySpec) { s.Hash = hashOf('z') }), svcKey("k-3", "three", 'a')}},
			have: store.ImportSet{Keys: []store.Key{k1}},
			keys: []string{"update k-1 [hash] {the stored secret stops working; the file's secret works}", "create k-3"},
		},
		{
			name: "a new app with the name of a stored one",
			want: store.ImportSet{Apps: []store.App{{ID: "billing-2", Name: "Billing"}}},
			have: store.ImportSet{Apps: []store.App{billing}},
			err:  []string{`app "billing-2": same name as app "billing" (in the database, not in the file)`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := store.PlanImport("acct", tc.want, tc.have)
			if len(tc.err) > 0 {
				if !errors.Is(err, store.ErrImportConflict) {
					t.Fatalf("err = %v, want an import conflict", err)
				}
				for _, w := range tc.err {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("err = %v\nwant it to say %s", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []struct {
				kind      string
				got, want []string
			}{{"apps", steps(p.Apps), tc.apps}, {"tenants", steps(p.Tenants), tc.tenants}, {"keys", steps(p.Keys), tc.keys}} {
				if d := cmp.Diff(s.want, s.got); d != "" {
					t.Errorf("%s (-want +got):\n%s", s.kind, d)
				}
			}
		})
	}
}

// TestPlanImportRecords: what an update writes is the stored record with
// the file's fields, the stored bookkeeping kept; a hash change drops the
// previous hash; a create is the file's record in the account imported to.
func TestPlanImportRecords(t *testing.T) {
	t0 := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	stored := with(svcKey("k-1", "one", 'a'), func(s *authz.KeySpec) {
		s.AccountID, s.PreviousHash, s.PreviousValidUntil, s.Description = "acct", hashOf('p'), t0, "stored"
	})
	stored.Origin, stored.CreatedAt = store.OriginGenerated, t0
	file := with(svcKey("k-1", "uno", 'c'), func(s *authz.KeySpec) { s.AccountID = "file-account" })
	p, err := store.PlanImport("acct", store.ImportSet{Keys: []store.Key{file, svcKey("k-2", "two", 'd')}},
		store.ImportSet{Keys: []store.Key{stored}})
	if err != nil {
		t.Fatal(err)
	}
	want := stored
	want.Spec.Name, want.Spec.Hash, want.Spec.Description = "uno", hashOf('c'), ""
	want.Spec.PreviousHash, want.Spec.PreviousValidUntil = "", time.Time{}
	if d := cmp.Diff(want, p.Keys.Steps[0].Want); d != "" {
		t.Errorf("update writes (-want +got):\n%s", d)
	}
	if got := p.Keys.Steps[1].Want.Spec.AccountID; got != "acct" {
		t.Errorf("create into account %q, want acct", got)
	}
	if p.Changes() != 2 {
		t.Errorf("Changes() = %d, want 2", p.Changes())
	}
}

// TestPlanImportRolesAndDenials: roles and denials are sections like apps'
// and keys' (create, update naming the fields, unchanged, kept), a key's
// role ids are one more compared field (in any order), and the references
// (a key's roles, a denial's tenant and app) must be in the file or the
// account.
func TestPlanImportRolesAndDenials(t *testing.T) {
	billing := store.App{ID: "billing", Name: "Billing", Active: true}
	acme := store.Tenant{ID: "acme", Name: "ACME", Active: true}
	read := store.Role{ID: "r-read", Name: "readers", Scope: "email-api:query:*", Description: "read mail"}
	nodel := store.Role{ID: "r-nodel", Name: "no-delete", Scope: "!email-api:mutation:deleteEmail"}
	unpaid := store.Denial{ID: "d-1", TenantID: "acme", AppID: "billing", Scope: "email-api:mutation:sendEmail", Reason: "invoice overdue"}
	holder := svcKey("k-1", "one", 'a')
	holder.RoleIDs = []string{"r-read", "r-nodel"}
	stored := holder
	stored.RoleIDs = []string{"r-nodel", "r-read"} // stores keep them sorted
	base := store.ImportSet{Apps: []store.App{billing}, Tenants: []store.Tenant{acme},
		Roles: []store.Role{read, nodel}, Denials: []store.Denial{unpaid}, Keys: []store.Key{holder}}
	storedBase := base
	storedBase.Keys = []store.Key{stored}
	withRoles := func(k store.Key, ids ...string) store.Key { k.RoleIDs = ids; return k }

	for _, tc := range []struct {
		name                 string
		want, have           store.ImportSet
		roles, denials, keys []string
		err                  []string // substrings of the error, none: no error
	}{
		{
			name:  "empty account: roles, denials and the key holding roles created",
			want:  base,
			roles: []string{"create r-read", "create r-nodel"}, denials: []string{"create d-1"},
			keys: []string{"create k-1"},
		},
		{
			name: "same again: nothing changes (the file's role order is no change)",
			want: base, have: storedBase,
			roles: []string{"unchanged r-read", "unchanged r-nodel"}, denials: []string{"unchanged d-1"},
			keys: []string{"unchanged k-1"},
		},
		{
			name: "stored only: kept (a denial in force stays in force)",
			want: store.ImportSet{Apps: base.Apps, Tenants: base.Tenants, Roles: []store.Role{read},
				Keys: []store.Key{withRoles(holder, "r-read")}},
			have:    storedBase,
			roles:   []string{"unchanged r-read", "kept r-nodel {in the database, not in the file: left as it is}"},
			denials: []string{"kept d-1 {in the database, not in the file: left as it is}"},
			keys:    []string{"update k-1 [roles]"},
		},
		{
			name: "every field the file carries is compared",
			want: store.ImportSet{Apps: base.Apps, Tenants: base.Tenants,
				Roles:   []store.Role{{ID: "r-read", Name: "readers 2", Scope: "email-api:query:inbox", Description: ""}, nodel},
				Denials: []store.Denial{{ID: "d-1", TenantID: "acme", AppID: "billing", Scope: "email-api", Reason: "fraud"}},
				Keys:    []store.Key{withRoles(holder)}},
			have:    storedBase,
			roles:   []string{"update r-read [name scope description]", "unchanged r-nodel"},
			denials: []string{"update d-1 [scope reason]"},
			keys:    []string{"update k-1 [roles]"},
		},
		{
			name:  "a key holding a kept role: allowed",
			want:  store.ImportSet{Apps: base.Apps, Tenants: base.Tenants, Keys: []store.Key{withRoles(svcKey("k-2", "two", 'b'), "r-read")}},
			have:  store.ImportSet{Apps: base.Apps, Tenants: base.Tenants, Roles: []store.Role{read}},
			roles: []string{"kept r-read {in the database, not in the file: left as it is}"},
			keys:  []string{"create k-2"},
		},
		{
			name: "a denial's tenant and app cannot change",
			want: store.ImportSet{Apps: []store.App{billing, {ID: "crm", Name: "CRM"}}, Tenants: base.Tenants,
				Denials: []store.Denial{{ID: "d-1", TenantID: "acme", AppID: "crm", Scope: unpaid.Scope, Reason: unpaid.Reason}}},
			have: storedBase,
			err:  []string{`denial "d-1": app ("billing" in the database, "crm" in the file) cannot change: delete the stored denial first`},
		},
		{
			name: "a new role with the name of a kept one",
			want: store.ImportSet{Roles: []store.Role{{ID: "r-2", Name: "readers", Scope: "x"}}},
			have: store.ImportSet{Roles: []store.Role{read}},
			err:  []string{`role "r-2": same name as role "r-read" (in the database, not in the file)`},
		},
		{
			name: "references to nothing: a key's role, a denial's tenant and app",
			want: store.ImportSet{Keys: []store.Key{withRoles(svcKey("k-2", "two", 'b'), "r-gone")},
				Denials: []store.Denial{{ID: "d-2", TenantID: "globex", AppID: "crm", Scope: "x", Reason: "r"}}},
			err: []string{`key "k-2": role "r-gone" is neither in the file nor in the account; add it to the file's roles`,
				`denial "d-2": tenant "globex" is neither in the file nor in the account`,
				`denial "d-2": app "crm" is neither in the file nor in the account`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := store.PlanImport("acct", tc.want, tc.have)
			if len(tc.err) > 0 {
				if !errors.Is(err, store.ErrImportConflict) {
					t.Fatalf("err = %v, want an import conflict", err)
				}
				for _, w := range tc.err {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("err = %v\nwant it to say %s", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []struct {
				kind      string
				got, want []string
			}{{"roles", steps(p.Roles), tc.roles}, {"denials", steps(p.Denials), tc.denials}, {"keys", steps(p.Keys), tc.keys}} {
				if d := cmp.Diff(s.want, s.got); d != "" {
					t.Errorf("%s (-want +got):\n%s", s.kind, d)
				}
			}
		})
	}
}

// TestPlanImportRoleRecords: an update writes the stored role or denial
// with the file's fields (its creation time kept); a create is the file's
// record in the account imported to; a key's role ids are written sorted.
func TestPlanImportRoleRecords(t *testing.T) {
	t0 := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	storedRole := store.Role{AccountID: "acct", ID: "r-1", Name: "one", Scope: "a", Description: "d", CreatedAt: t0, UpdatedAt: t0}
	storedDenial := store.Denial{AccountID: "acct", ID: "d-1", TenantID: "t", AppID: "a", Scope: "x", Reason: "r", CreatedAt: t0}
	k := svcKey("k-1", "one", 'a')
	k.RoleIDs = []string{"r-2", "r-1", "r-2"}
	p, err := store.PlanImport("acct", store.ImportSet{
		Apps: []store.App{{ID: "a", Name: "A"}}, Tenants: []store.Tenant{{ID: "t", Name: "T"}},
		Roles:   []store.Role{{ID: "r-1", Name: "uno", Scope: "b"}, {AccountID: "file", ID: "r-2", Name: "two", Scope: "c"}},
		Denials: []store.Denial{{ID: "d-1", TenantID: "t", AppID: "a", Scope: "x", Reason: "new"}, {ID: "d-2", TenantID: "t", AppID: "a", Scope: "y", Reason: "r"}},
		Keys:    []store.Key{k},
	}, store.ImportSet{Roles: []store.Role{storedRole}, Denials: []store.Denial{storedDenial}})
	if err != nil {
		t.Fatal(err)
	}
	wantRole := storedRole
	wantRole.Name, wantRole.Scope, wantRole.Description = "uno", "b", ""
	if d := cmp.Diff(wantRole, p.Roles.Steps[0].Want); d != "" {
		t.Errorf("role update writes (-want +got):\n%s", d)
	}
	wantDenial := storedDenial
	wantDenial.Reason = "new"
	if d := cmp.Diff(wantDenial, p.Denials.Steps[0].Want); d != "" {
		t.Errorf("denial update writes (-want +got):\n%s", d)
	}
	if a, b := p.Roles.Steps[1].Want.AccountID, p.Denials.Steps[1].Want.AccountID; a != "acct" || b != "acct" {
		t.Errorf("creates into accounts %q, %q, want acct", a, b)
	}
	if got := p.Keys.Steps[0].Want.RoleIDs; !cmp.Equal(got, []string{"r-1", "r-2"}) {
		t.Errorf("key role ids %v, want sorted without duplicates", got)
	}
	if p.Changes() != 7 {
		t.Errorf("Changes() = %d, want 7 (app, tenant, 2 roles, 2 denials, key)", p.Changes())
	}
}

package storetest

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

func (f *fixture) createRole(r store.Role) store.Role {
	f.t.Helper()
	if r.AccountID == "" {
		r.AccountID = "acct"
	}
	got, err := f.s.CreateRole(f.ctx, Actor, r)
	if err != nil {
		f.t.Fatalf("CreateRole(%s): %v", r.ID, err)
	}
	return got
}

func (f *fixture) createDenial(d store.Denial) store.Denial {
	f.t.Helper()
	if d.AccountID == "" {
		d.AccountID = "acct"
	}
	got, err := f.s.CreateDenial(f.ctx, Actor, d)
	if err != nil {
		f.t.Fatalf("CreateDenial(%s): %v", d.ID, err)
	}
	return got
}

func reader(s string) *string { return &s }

// testRoles is the contract of roles: creation and reads, names unique
// per account, required scope, updates, a key's role ids (create, replace,
// filter), deletes refused while held unless forced, audit records and
// quotas.
func testRoles(t *testing.T, open func(t *testing.T) store.Accounts) {
	t.Run("create get list update", func(t *testing.T) {
		f := setup(t, open)
		r := f.createRole(store.Role{ID: "reader", Name: "Reader", Description: "reads", Scope: "email-api:query:*"})
		wantTime(t, "created_at", r.CreatedAt)
		if r.UpdatedAt != r.CreatedAt || r.AccountID != "acct" {
			t.Errorf("created %+v", r)
		}
		got, err := f.s.GetRole(f.ctx, "acct", "reader")
		if err != nil || !cmp.Equal(got, r) {
			t.Fatalf("GetRole = %+v, %v; want %+v", got, err, r)
		}
		if _, err := f.s.GetRole(f.ctx, "other", "reader"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetRole of another account: %v, want ErrNotFound", err)
		}
		gen := f.createRole(store.Role{Name: "Generated", Scope: "x"})
		wantUUID(t, "role id", gen.ID)

		// Same name in the account: refused; in another account: fine.
		_, err = f.s.CreateRole(f.ctx, Actor, store.Role{AccountID: "acct", ID: "r2", Name: "Reader", Scope: "x"})
		wantErr(t, err, store.ErrAlreadyExists, `name "Reader"`)
		_, err = f.s.CreateRole(f.ctx, Actor, store.Role{AccountID: "acct", ID: "reader", Name: "Other", Scope: "x"})
		wantErr(t, err, store.ErrAlreadyExists, `role id "reader"`)
		f.createRole(store.Role{AccountID: "other", ID: "reader", Name: "Reader", Scope: "x"})
		_, err = f.s.CreateRole(f.ctx, Actor, store.Role{AccountID: "acct", ID: "empty", Name: "Empty", Scope: "  "})
		wantErr(t, err, store.ErrInvalid, "scope: required")

		all, err := listAll(func(p store.Page) ([]store.Role, string, error) { return f.s.ListRoles(f.ctx, "acct", p) }, 1)
		if err != nil {
			t.Fatal(err)
		}
		if ids := roleIDs(all); !slices.Equal(ids, []string{"reader", gen.ID}) {
			t.Errorf("ListRoles = %v", ids)
		}

		up, err := f.s.UpdateRole(f.ctx, Actor, "acct", "reader", store.RoleUpdate{Scope: reader("email-api")})
		if err != nil {
			t.Fatal(err)
		}
		if up.Scope != "email-api" || up.Name != "Reader" || !up.UpdatedAt.After(r.UpdatedAt) {
			t.Errorf("updated %+v", up)
		}
		_, err = f.s.UpdateRole(f.ctx, Actor, "acct", "reader", store.RoleUpdate{Name: reader("Generated")})
		wantErr(t, err, store.ErrAlreadyExists, `name "Generated"`)
		_, err = f.s.UpdateRole(f.ctx, Actor, "acct", "nope", store.RoleUpdate{Scope: reader("x")})
		wantErr(t, err, store.ErrNotFound, `role "nope"`)
	})

	t.Run("keys hold roles", func(t *testing.T) {
		f := setup(t, open)
		f.createRole(store.Role{ID: "a", Name: "A", Scope: "a"})
		f.createRole(store.Role{ID: "b", Name: "B", Scope: "b"})
		k := serviceKey("k1")
		k.RoleIDs = []string{"b", "a", "b"}
		got := f.createKey(k)
		if !slices.Equal(got.RoleIDs, []string{"a", "b"}) {
			t.Errorf("CreateKey role ids = %v, want [a b]", got.RoleIDs)
		}
		if g := f.getKey("k1"); !slices.Equal(g.RoleIDs, []string{"a", "b"}) {
			t.Errorf("GetKey role ids = %v", g.RoleIDs)
		}
		f.createKey(serviceKey("k2"))
		bad := serviceKey("k3")
		bad.RoleIDs = []string{"missing"}
		_, err := f.s.CreateKey(f.ctx, Actor, bad)
		wantErr(t, err, store.ErrNotFound, `role "missing"`)
		if _, err := f.s.GetKey(f.ctx, "acct", "k3"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a key refused for its roles was stored: %v", err)
		}
		// A role of another account is no role of this one.
		f.createRole(store.Role{AccountID: "other", ID: "c", Name: "C", Scope: "c"})
		bad.RoleIDs = []string{"c"}
		_, err = f.s.CreateKey(f.ctx, Actor, bad)
		wantErr(t, err, store.ErrNotFound, `role "c"`)

		listRole := func(role string) []string {
			t.Helper()
			ks, _, err := f.s.ListKeys(f.ctx, "acct", store.KeyFilter{RoleID: role}, store.Page{})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, k := range ks {
				ids = append(ids, k.Spec.ID)
			}
			return ids
		}
		if ids := listRole("a"); !slices.Equal(ids, []string{"k1"}) {
			t.Errorf("ListKeys(role a) = %v", ids)
		}

		// Replace: [b] on k1, [a] on k2; an empty list clears.
		up, err := f.s.UpdateKey(f.ctx, Actor, "acct", "k1", store.KeyUpdate{RoleIDs: &[]string{"b"}})
		if err != nil || !slices.Equal(up.RoleIDs, []string{"b"}) {
			t.Fatalf("UpdateKey(roles b) = %v, %v", up.RoleIDs, err)
		}
		if _, err := f.s.UpdateKey(f.ctx, Actor, "acct", "k2", store.KeyUpdate{RoleIDs: &[]string{"a"}}); err != nil {
			t.Fatal(err)
		}
		_, err = f.s.UpdateKey(f.ctx, Actor, "acct", "k2", store.KeyUpdate{RoleIDs: &[]string{"a", "zzz"}})
		wantErr(t, err, store.ErrNotFound, `role "zzz"`)
		if ids := listRole("a"); !slices.Equal(ids, []string{"k2"}) {
			t.Errorf("ListKeys(role a) after replace = %v", ids)
		}
		// Other fields leave the roles alone.
		up, err = f.s.UpdateKey(f.ctx, Actor, "acct", "k2", store.KeyUpdate{Description: reader("d")})
		if err != nil || !slices.Equal(up.RoleIDs, []string{"a"}) {
			t.Errorf("UpdateKey(description) roles = %v, %v", up.RoleIDs, err)
		}
		up, err = f.s.UpdateKey(f.ctx, Actor, "acct", "k2", store.KeyUpdate{RoleIDs: &[]string{}})
		if err != nil || up.RoleIDs != nil {
			t.Errorf("UpdateKey(no roles) = %v, %v; want none", up.RoleIDs, err)
		}

		// Delete while held: refused with the count; force takes it away.
		if _, err := f.s.UpdateKey(f.ctx, Actor, "acct", "k2", store.KeyUpdate{RoleIDs: &[]string{"a", "b"}}); err != nil {
			t.Fatal(err)
		}
		err = f.s.DeleteRole(f.ctx, Actor, "acct", "b", false)
		var held *store.RoleHeldError
		if !errors.As(err, &held) || !errors.Is(err, store.ErrRoleHeld) || held.Keys != 2 || held.ID != "b" {
			t.Fatalf("DeleteRole(held) = %v, want RoleHeldError of 2 keys", err)
		}
		if _, err := f.s.GetRole(f.ctx, "acct", "b"); err != nil {
			t.Errorf("refused delete deleted: %v", err)
		}
		if err := f.s.DeleteRole(f.ctx, Actor, "acct", "b", true); err != nil {
			t.Fatalf("DeleteRole(force): %v", err)
		}
		if _, err := f.s.GetRole(f.ctx, "acct", "b"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetRole after delete: %v", err)
		}
		if g := f.getKey("k1"); g.RoleIDs != nil {
			t.Errorf("k1 roles after forced delete = %v", g.RoleIDs)
		}
		if g := f.getKey("k2"); !slices.Equal(g.RoleIDs, []string{"a"}) {
			t.Errorf("k2 roles after forced delete = %v", g.RoleIDs)
		}
		evs := f.events("acct")
		// Newest first: the two keys' updates, then the role's delete.
		if len(evs) < 3 || evs[2].Action != "role.delete" || evs[0].Action != "key.update" || evs[1].Action != "key.update" {
			t.Fatalf("events after forced delete: %v", actions(evs[:min(3, len(evs))]))
		}
		var del store.RoleAudit
		if err := json.Unmarshal(evs[2].Before, &del); err != nil || del.HeldBy != 2 || del.ID != "b" || evs[2].After != nil {
			t.Errorf("role.delete audit %s (%v), want held_by_keys 2", evs[2].Before, err)
		}
		var after store.KeyAudit
		if err := json.Unmarshal(evs[0].After, &after); err != nil || slices.Contains(after.RoleIDs, "b") {
			t.Errorf("key.update audit after %s (%v) still holds b", evs[0].After, err)
		}
		// A role no key holds is deleted without force; deleting a key
		// frees its roles.
		if err := f.s.DeleteKey(f.ctx, Actor, "acct", "k2"); err != nil {
			t.Fatal(err)
		}
		if err := f.s.DeleteRole(f.ctx, Actor, "acct", "a", false); err != nil {
			t.Errorf("DeleteRole(no longer held): %v", err)
		}
		err = f.s.DeleteRole(f.ctx, Actor, "acct", "a", false)
		wantErr(t, err, store.ErrNotFound, `role "a"`)
	})

	t.Run("audit", func(t *testing.T) {
		f := setup(t, open)
		r := f.createRole(store.Role{ID: "r", Name: "R", Scope: "x"})
		up, err := f.s.UpdateRole(f.ctx, Actor, "acct", "r", store.RoleUpdate{Description: reader("new")})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.s.DeleteRole(f.ctx, Actor, "acct", "r", false); err != nil {
			t.Fatal(err)
		}
		evs := f.events("acct")[:3]
		if got := actions(evs); !slices.Equal(got, []string{"role.delete", "role.update", "role.create"}) {
			t.Fatalf("actions %v", got)
		}
		wantAudit(t, "create after", evs[2].After, store.RoleAuditOf(r))
		wantAudit(t, "update before", evs[1].Before, store.RoleAuditOf(r))
		wantAudit(t, "update after", evs[1].After, store.RoleAuditOf(up))
		wantAudit(t, "delete before", evs[0].Before, store.RoleAuditOf(up))
		for _, e := range evs {
			if e.ObjectType != "role" || e.ObjectID != "r" || e.Actor != Actor {
				t.Errorf("event %+v", e)
			}
		}
	})

	t.Run("quota", func(t *testing.T) {
		f := setup(t, open)
		f.setLimits("acct", store.LimitsUpdate{store.QuotaRoles: limit(1)})
		f.createRole(store.Role{ID: "r1", Name: "R1", Scope: "x"})
		_, err := f.s.CreateRole(f.ctx, Actor, store.Role{AccountID: "acct", ID: "r2", Name: "R2", Scope: "x"})
		wantQuotaError(t, err, store.QuotaRoles, 1, 1)
		if _, err := f.s.GetRole(f.ctx, "acct", "r2"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a role past the quota was stored: %v", err)
		}
		if got := f.usage("acct").Roles; got != 1 {
			t.Errorf("roles counted %d, want 1", got)
		}
		if err := f.s.DeleteRole(f.ctx, Actor, "acct", "r1", false); err != nil {
			t.Fatal(err)
		}
		if got := f.usage("acct").Roles; got != 0 {
			t.Errorf("roles counted %d after delete, want 0", got)
		}
		f.createRole(store.Role{ID: "r2", Name: "R2", Scope: "x"})
	})
}

// testDenials is the contract of service access denials.
func testDenials(t *testing.T, open func(t *testing.T) store.Accounts) {
	t.Run("create get list update delete", func(t *testing.T) {
		f := setup(t, open)
		if _, err := f.s.CreateApp(f.ctx, Actor, store.App{AccountID: "acct", ID: "app2", Name: "App Two", Active: true}); err != nil {
			t.Fatal(err)
		}
		d := f.createDenial(store.Denial{ID: "d1", TenantID: "ten1", AppID: "app1", Scope: "email-api:mutation:send", Reason: "unpaid"})
		wantTime(t, "created_at", d.CreatedAt)
		got, err := f.s.GetDenial(f.ctx, "acct", "d1")
		if err != nil || !cmp.Equal(got, d) {
			t.Fatalf("GetDenial = %+v, %v; want %+v", got, err, d)
		}
		d2 := f.createDenial(store.Denial{TenantID: "ten1", AppID: "app2", Scope: "x"})
		wantUUID(t, "denial id", d2.ID)
		for _, c := range []struct {
			name string
			d    store.Denial
			err  error
			msg  string
		}{
			{"unknown tenant", store.Denial{ID: "x", TenantID: "nope", AppID: "app1", Scope: "x"}, store.ErrNotFound, `tenant "nope"`},
			{"unknown app", store.Denial{ID: "x", TenantID: "ten1", AppID: "nope", Scope: "x"}, store.ErrNotFound, `app "nope"`},
			{"empty scope", store.Denial{ID: "x", TenantID: "ten1", AppID: "app1", Scope: ""}, store.ErrInvalid, "scope: required"},
			{"long reason", store.Denial{ID: "x", TenantID: "ten1", AppID: "app1", Scope: "x", Reason: strings.Repeat("é", 251)}, store.ErrInvalid, "reason: at most 500 bytes"},
			{"duplicate id", store.Denial{ID: "d1", TenantID: "ten1", AppID: "app1", Scope: "x"}, store.ErrAlreadyExists, `denial id "d1"`},
		} {
			c.d.AccountID = "acct"
			_, err := f.s.CreateDenial(f.ctx, Actor, c.d)
			t.Run(c.name, func(t *testing.T) { wantErr(t, err, c.err, c.msg) })
		}
		list := func(fl store.DenialFilter) []string {
			t.Helper()
			ds, err := listAll(func(p store.Page) ([]store.Denial, string, error) {
				return f.s.ListDenials(f.ctx, "acct", fl, p)
			}, 1)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, d := range ds {
				ids = append(ids, d.ID)
			}
			return ids
		}
		if got := list(store.DenialFilter{}); !slices.Equal(got, []string{"d1", d2.ID}) {
			t.Errorf("ListDenials() = %v", got)
		}
		if got := list(store.DenialFilter{AppID: "app2"}); !slices.Equal(got, []string{d2.ID}) {
			t.Errorf("ListDenials(app2) = %v", got)
		}
		if got := list(store.DenialFilter{TenantID: "ten1", AppID: "app1"}); !slices.Equal(got, []string{"d1"}) {
			t.Errorf("ListDenials(ten1, app1) = %v", got)
		}
		if got := list(store.DenialFilter{TenantID: "nope"}); got != nil {
			t.Errorf("ListDenials(nope) = %v", got)
		}
		up, err := f.s.UpdateDenial(f.ctx, Actor, "acct", "d1", store.DenialUpdate{Reason: reader("fraud")})
		if err != nil || up.Reason != "fraud" || up.Scope != d.Scope || !up.UpdatedAt.After(d.UpdatedAt) {
			t.Errorf("UpdateDenial = %+v, %v", up, err)
		}
		_, err = f.s.UpdateDenial(f.ctx, Actor, "acct", "d1", store.DenialUpdate{Scope: reader("")})
		wantErr(t, err, store.ErrInvalid, "scope: required")
		if err := f.s.DeleteDenial(f.ctx, Actor, "acct", "d1"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, f.s.DeleteDenial(f.ctx, Actor, "acct", "d1"), store.ErrNotFound, `denial "d1"`)
		evs := f.events("acct")[:3]
		if got := actions(evs); !slices.Equal(got, []string{"denial.delete", "denial.update", "denial.create"}) {
			t.Errorf("actions %v", got)
		}
		wantAudit(t, "delete before", evs[0].Before, store.DenialAuditOf(up))

		// Deleting the app deletes its denials, audited.
		if err := f.s.DeleteApp(f.ctx, Actor, "acct", "app2", false); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.GetDenial(f.ctx, "acct", d2.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("denial of a deleted app: %v", err)
		}
		if got := actions(f.events("acct")[:2]); !slices.Equal(got, []string{"denial.delete", "app.delete"}) {
			t.Errorf("actions after app delete %v", got)
		}
		if got := f.usage("acct").Denials; got != 0 {
			t.Errorf("denials counted %d, want 0", got)
		}
	})

	t.Run("quota", func(t *testing.T) {
		f := setup(t, open)
		f.setLimits("acct", store.LimitsUpdate{store.QuotaDenials: limit(1)})
		f.createDenial(store.Denial{ID: "d1", TenantID: "ten1", AppID: "app1", Scope: "x"})
		_, err := f.s.CreateDenial(f.ctx, Actor, store.Denial{AccountID: "acct", ID: "d2", TenantID: "ten1", AppID: "app1", Scope: "x"})
		wantQuotaError(t, err, store.QuotaDenials, 1, 1)
		if got := f.usage("acct").Denials; got != 1 {
			t.Errorf("denials counted %d, want 1", got)
		}
		if err := f.s.DeleteDenial(f.ctx, Actor, "acct", "d1"); err != nil {
			t.Fatal(err)
		}
		f.createDenial(store.Denial{ID: "d2", TenantID: "ten1", AppID: "app1", Scope: "x"})
	})
}

func roleIDs(rs []store.Role) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func actions(evs []store.AuditEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Action)
	}
	return out
}

// wantAudit fails unless raw is record's JSON.
func wantAudit(t *testing.T, what string, raw json.RawMessage, record any) {
	t.Helper()
	want, err := json.Marshal(record)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("%s: %s: %v", what, raw, err)
	}
	_ = json.Unmarshal(want, &w)
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("%s audit record (-want +got):\n%s", what, diff)
	}
}

// testAccessSource is the contract of store.AccessSource, for stores that
// implement it: what the data plane's cache reads of roles and denials.
func testAccessSource(t *testing.T, open func(t *testing.T) store.Accounts) {
	f := setup(t, open)
	src, ok := f.s.(store.AccessSource)
	if !ok {
		t.Skipf("%T does not implement store.AccessSource", f.s)
	}
	r := f.createRole(store.Role{ID: "r", Name: "R", Scope: "email-api:query:*"})
	f.createRole(store.Role{AccountID: "other", ID: "r", Name: "R", Scope: "x"})
	d := f.createDenial(store.Denial{ID: "d", TenantID: "ten1", AppID: "app1", Scope: "email-api", Reason: "unpaid"})
	for _, name := range []string{"k2", "k1"} {
		k := serviceKey(name)
		k.RoleIDs = []string{"r"}
		f.createKey(k)
	}
	f.createKey(serviceKey("k3"))
	if got, err := src.LookupRole(f.ctx, "acct", "r"); err != nil || !cmp.Equal(got, r) {
		t.Errorf("LookupRole = %+v, %v; want %+v", got, err, r)
	}
	if _, err := src.LookupRole(f.ctx, "acct", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LookupRole(nope): %v, want ErrNotFound", err)
	}
	if got, err := src.LookupDenial(f.ctx, "acct", "d"); err != nil || !cmp.Equal(got, d) {
		t.Errorf("LookupDenial = %+v, %v; want %+v", got, err, d)
	}
	refs, err := src.KeysHoldingRole(f.ctx, "acct", "r")
	want := []store.KeyRef{{AccountID: "acct", ID: "k1"}, {AccountID: "acct", ID: "k2"}}
	if err != nil || !slices.Equal(refs, want) {
		t.Errorf("KeysHoldingRole = %v, %v; want %v", refs, err, want)
	}
	var roles []string
	if err := src.LoadRoles(f.ctx, func(r store.Role) error { roles = append(roles, r.AccountID+"/"+r.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(roles)
	if !slices.Equal(roles, []string{"acct/r", "other/r"}) {
		t.Errorf("LoadRoles: %v", roles)
	}
	var denials []string
	if err := src.LoadDenials(f.ctx, func(d store.Denial) error { denials = append(denials, d.AccountID+"/"+d.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(denials, []string{"acct/d"}) {
		t.Errorf("LoadDenials: %v", denials)
	}

	// The data plane's view of a key is compiled with its roles: its
	// effective scope (SPEC §11), its own and its roles'.
	ks, ok := f.s.(authz.KeyStore)
	if !ok {
		return
	}
	own := serviceKey("own")
	own.Spec.Scope = "billing:query:list"
	own.RoleIDs = []string{"r"}
	f.createKey(own)
	k, err := ks.LookupKey(f.ctx, sha256.Sum256([]byte("secret-own")))
	if err != nil {
		t.Fatal(err)
	}
	if sc := k.Scope(); !sc.Allows("billing", "query", "list") || !sc.Allows("email-api", "query", "list") || sc.Allows("email-api", "mutation", "send") {
		t.Errorf("LookupKey of a key holding role r: effective scope %q, want its own with email-api:query:*", sc)
	}
	if rs := k.Roles(); len(rs) != 1 || rs[0].ID != "r" || rs[0].Scope != "email-api:query:*" {
		t.Errorf("LookupKey: roles %+v, want r", rs)
	}
}

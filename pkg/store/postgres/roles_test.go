package postgres_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres"
)

// TestRoleAndDenialFeed: a role edit is one feed row whatever the number
// of keys holding it (SPEC §10), revoking when its scope changed; the
// role's keys are read in one LookupKeysOfParent; a new or changed denial
// is a revocation, a deleted one is not; a forced role delete is a change
// of each key that held it. The data plane's records carry each key's
// roles with their scopes.
func TestRoleAndDenialFeed(t *testing.T) {
	e := newEnv(t)
	one := func(what string, seq int64, kind store.ChangeKind, id string, revokes bool) {
		t.Helper()
		cs := e.changes(seq)
		if len(cs) != 1 || cs[0].Kind != kind || cs[0].ID != id || cs[0].AccountID != "acct" || cs[0].Revokes != revokes {
			t.Fatalf("%s: feed %+v, want one %s %s row, revokes %v", what, cs, kind, id, revokes)
		}
	}
	seq := e.lastSeq()
	if _, err := e.store.CreateRole(e.ctx, e.actor, store.Role{AccountID: "acct", ID: "r", Name: "R", Scope: "email-api:query:*"}); err != nil {
		t.Fatal(err)
	}
	one("create role", seq, store.ChangeRole, "r", false)

	e.insertAppKeys("app1", 1000)
	if err := e.exec(`INSERT INTO key_roles (account_id, key_id, role_id) SELECT 'acct', id, 'r' FROM keys WHERE app_id = 'app1'`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		u       store.RoleUpdate
		rows    int
		revokes bool
	}{
		{"scope", store.RoleUpdate{Scope: new("email-api:query:list")}, 1, true},
		{"rename", store.RoleUpdate{Name: new("R2")}, 1, false},
		{"description only", store.RoleUpdate{Description: new("no feed")}, 0, false},
	} {
		seq := e.lastSeq()
		if _, err := e.store.UpdateRole(e.ctx, e.actor, "acct", "r", tc.u); err != nil {
			t.Fatal(err)
		}
		if tc.rows == 0 {
			if cs := e.changes(seq); len(cs) != 0 {
				t.Errorf("%s: feed %+v, want none", tc.name, cs)
			}
			continue
		}
		one(tc.name, seq, store.ChangeRole, "r", tc.revokes)
	}
	keys, err := e.store.LookupKeysOfParent(e.ctx, "acct", store.ChangeRole, "r")
	if err != nil || len(keys) != 1000 {
		t.Fatalf("LookupKeysOfParent(role r): %d keys, %v", len(keys), err)
	}
	refs, err := e.store.KeysHoldingRole(e.ctx, "acct", "r")
	if err != nil || len(refs) != 1000 {
		t.Fatalf("KeysHoldingRole: %d, %v", len(refs), err)
	}
	roles, err := postgres.DataKeyRoles(e.ctx, e.store, "acct", refs[0].ID)
	if err != nil || !slices.Equal(roles, []store.KeyRole{{ID: "r", Name: "R2", Scope: "email-api:query:list"}}) {
		t.Fatalf("data-plane roles of %s: %+v, %v", refs[0].ID, roles, err)
	}
	if r, err := e.store.LookupRole(e.ctx, "acct", "r"); err != nil || r.Scope != "email-api:query:list" {
		t.Errorf("LookupRole: %+v, %v", r, err)
	}
	var loaded []string
	if err := e.store.LoadRoles(e.ctx, func(r store.Role) error { loaded = append(loaded, r.ID); return nil }); err != nil || !slices.Equal(loaded, []string{"r"}) {
		t.Errorf("LoadRoles: %v, %v", loaded, err)
	}

	// Denials.
	seq = e.lastSeq()
	if _, err := e.store.CreateDenial(e.ctx, e.actor, store.Denial{AccountID: "acct", ID: "d", TenantID: "ten1", AppID: "app1", Scope: "email-api", Reason: "unpaid"}); err != nil {
		t.Fatal(err)
	}
	one("create denial", seq, store.ChangeDenial, "d", true)
	if ks, err := e.store.LookupKeysOfParent(e.ctx, "acct", store.ChangeDenial, "d"); err != nil || len(ks) != 0 {
		t.Errorf("LookupKeysOfParent(denial): %d keys, %v; want none (a denial changes no key record)", len(ks), err)
	}
	seq = e.lastSeq()
	if _, err := e.store.UpdateDenial(e.ctx, e.actor, "acct", "d", store.DenialUpdate{Reason: new("fraud")}); err != nil {
		t.Fatal(err)
	}
	one("update denial", seq, store.ChangeDenial, "d", true)
	if d, err := e.store.LookupDenial(e.ctx, "acct", "d"); err != nil || d.Reason != "fraud" {
		t.Errorf("LookupDenial: %+v, %v", d, err)
	}
	loaded = nil
	if err := e.store.LoadDenials(e.ctx, func(d store.Denial) error { loaded = append(loaded, d.ID); return nil }); err != nil || !slices.Equal(loaded, []string{"d"}) {
		t.Errorf("LoadDenials: %v, %v", loaded, err)
	}
	seq = e.lastSeq()
	if err := e.store.DeleteDenial(e.ctx, e.actor, "acct", "d"); err != nil {
		t.Fatal(err)
	}
	one("delete denial", seq, store.ChangeDenial, "d", false)
	if _, err := e.store.LookupDenial(e.ctx, "acct", "d"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LookupDenial after delete: %v", err)
	}

	// A forced delete: the role's row (revoking) and a change of each key.
	seq = e.lastSeq()
	if err := e.store.DeleteRole(e.ctx, e.actor, "acct", "r", true); err != nil {
		t.Fatal(err)
	}
	var roleRows int
	keyRows := map[string]bool{}
	all, err := e.store.ChangesSince(e.ctx, seq, 5000)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		switch c.Kind {
		case store.ChangeRole:
			roleRows++
			if !c.Revokes || c.ID != "r" {
				t.Errorf("role delete row %+v", c)
			}
		case store.ChangeKey:
			keyRows[c.ID] = true
			if !c.Revokes {
				t.Errorf("key row of a forced role delete %+v, want revoking", c)
			}
		}
	}
	if roleRows != 1 || len(keyRows) != 1000 {
		t.Errorf("forced delete: %d role rows, %d keys changed; want 1 and 1000", roleRows, len(keyRows))
	}
	if n := e.count(`SELECT count(*) FROM key_roles`); n != 0 {
		t.Errorf("%d key_roles rows left", n)
	}
	if err := e.exec(`TRUNCATE roles`); err == nil {
		t.Error("TRUNCATE roles bypassed the feed")
	}
}

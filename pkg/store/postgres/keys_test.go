package postgres_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

func TestCreateAndGetKey(t *testing.T) {
	e := newEnv(t)
	exp := e.clock.Now().Add(24 * time.Hour)
	nb := e.clock.Now().Add(-time.Hour)
	in := store.Key{Spec: authz.KeySpec{
		AccountID: "acct", Name: "svc", Type: authz.KeyTypeService, AppID: "app1", TenantID: "ten1",
		Hash: hashOf("s1"), Scope: "email-api !email-api:mutation:sendEmail", Active: true,
		NotBefore: nb, ExpiresAt: exp, IPFilters: []string{"10.0.0.0/8", "192.168.1.1/255.255.255.0"},
		Group: "batch", Description: "a key",
		ResponseHeaders: []authz.HeaderSpec{{Name: "x-tenant", Value: "${tenant.name}"}, {Name: "x-off", Value: "1", Disabled: true}},
	}, Origin: store.OriginCustom}
	got := e.mustCreateKey(in)
	if len(got.Spec.ID) != 36 {
		t.Fatalf("generated id %q, want a UUID", got.Spec.ID)
	}
	want := in
	want.Spec.ID = got.Spec.ID
	want.Spec.AppName, want.Spec.TenantName = "App One", "Tenant One"
	want.CreatedAt, want.UpdatedAt = got.CreatedAt, got.CreatedAt
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("created key (-want +got):\n%s", diff)
	}
	again, err := e.store.GetKey(e.ctx, "acct", got.Spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, again); diff != "" {
		t.Fatalf("GetKey differs from CreateKey's answer (-create +get):\n%s", diff)
	}

	// Every type, with a caller-chosen id.
	app := store.Key{Spec: authz.KeySpec{AccountID: "acct", ID: "app-key", Name: "app", Type: authz.KeyTypeApp, AppID: "app1", Hash: hashOf("s2"), Active: true}}
	acc := store.Key{Spec: authz.KeySpec{AccountID: "acct", ID: "acc-key", Name: "acc", Type: authz.KeyTypeAccount, Hash: "hmac-sha256:" + strings.Repeat("0", 64), Scope: "account-api:query:*", Active: true}}
	for _, k := range []store.Key{app, acc} {
		got := e.mustCreateKey(k)
		if got.Spec.ID != k.Spec.ID || got.Origin != store.OriginGenerated {
			t.Errorf("created %+v", got)
		}
	}
}

func TestCreateKeyErrors(t *testing.T) {
	e := newEnv(t)
	e.mustCreateKey(serviceKey("taken"))
	mod := func(f func(k *store.Key)) store.Key {
		k := serviceKey("fresh")
		f(&k)
		return k
	}
	cases := []struct {
		name   string
		key    store.Key
		target error
		parts  []string
	}{
		{"duplicate name", mod(func(k *store.Key) { k.Spec.Name = "taken"; k.Spec.Hash = hashOf("other") }), store.ErrAlreadyExists, []string{`name "taken" already exists in this account`}},
		{"duplicate hash", mod(func(k *store.Key) { k.Spec.Hash = hashOf("secret-taken") }), store.ErrAlreadyExists, []string{"hash"}},
		{"unknown app", mod(func(k *store.Key) { k.Spec.AppID = "ghost" }), store.ErrNotFound, []string{`app "ghost" not found`}},
		{"unknown tenant", mod(func(k *store.Key) { k.Spec.TenantID = "ghost" }), store.ErrNotFound, []string{`tenant "ghost" not found`}},
		{"unknown account", mod(func(k *store.Key) { k.Spec.AccountID = "ghost" }), store.ErrNotFound, []string{`"ghost" not found`}},
		{"service key without tenant", mod(func(k *store.Key) { k.Spec.TenantID = "" }), store.ErrInvalid, []string{"tenant"}},
		{"account key with app", mod(func(k *store.Key) { k.Spec.Type = authz.KeyTypeAccount; k.Spec.TenantID = "" }), store.ErrInvalid, []string{"app"}},
		{"bad scope", mod(func(k *store.Key) { k.Spec.Scope = "email-api:query:*:extra" }), store.ErrInvalid, []string{"scope"}},
		{"bad ip filter", mod(func(k *store.Key) { k.Spec.IPFilters = []string{"10.0.0.0/33"} }), store.ErrInvalid, []string{"ip_filters"}},
		{"reserved header", mod(func(k *store.Key) { k.Spec.ResponseHeaders = []authz.HeaderSpec{{Name: "x-api-key", Value: "x"}} }), store.ErrInvalid, []string{"response_headers"}},
		{"bad hash", mod(func(k *store.Key) { k.Spec.Hash = "kg_sak_looksLikeASecret" }), store.ErrInvalid, []string{"hash"}},
		{"not_before after expires_at", mod(func(k *store.Key) {
			k.Spec.NotBefore = time.Now().Add(time.Hour)
			k.Spec.ExpiresAt = time.Now()
		}), store.ErrInvalid, []string{"not_before"}},
		{"no name", mod(func(k *store.Key) { k.Spec.Name = "" }), store.ErrInvalid, []string{"name"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.store.CreateKey(e.ctx, e.actor, c.key)
			wantErr(t, err, c.target, c.parts...)
			if strings.Contains(err.Error(), c.key.Spec.Hash) && c.key.Spec.Hash != "" {
				t.Errorf("error %q quotes the hash", err)
			}
		})
	}
	t.Run("field errors are reachable", func(t *testing.T) {
		_, err := e.store.CreateKey(e.ctx, e.actor, mod(func(k *store.Key) { k.Spec.Scope = "a:b:c:d" }))
		var fe *authz.FieldError
		if !errors.As(err, &fe) || fe.Field != "scope" {
			t.Fatalf("errors.As FieldError: %v", err)
		}
	})
	if n := e.count(`SELECT count(*) FROM keys`); n != 1 {
		t.Fatalf("%d keys stored, want only the first", n)
	}
}

func TestUpdateKey(t *testing.T) {
	e := newEnv(t)
	k := serviceKey("k")
	k.Spec.ExpiresAt = e.clock.Now().Add(time.Hour)
	k.Spec.IPFilters = []string{"10.0.0.0/8"}
	k.Spec.Group = "g1"
	orig := e.mustCreateKey(k)

	got, err := e.store.UpdateKey(e.ctx, e.actor, "acct", orig.Spec.ID, store.KeyUpdate{Scope: new("email-api:query:*")})
	if err != nil {
		t.Fatal(err)
	}
	want := orig
	want.Spec.Scope = "email-api:query:*"
	want.UpdatedAt = got.UpdatedAt
	if diff := cmp.Diff(want, got); diff != "" || !got.UpdatedAt.After(orig.UpdatedAt) {
		t.Fatalf("scope-only update changed more (-want +got):\n%s", diff)
	}

	nb := e.clock.Now()
	got, err = e.store.UpdateKey(e.ctx, e.actor, "acct", orig.Spec.ID, store.KeyUpdate{
		Name: new("renamed"), Description: new("d"), Group: new(""), Active: new(false),
		NotBefore: &nb, ExpiresAt: new(time.Time{}), IPFilters: new([]string(nil)),
		ResponseHeaders: &[]authz.HeaderSpec{{Name: "x-app", Value: "${app.id}"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := got.Spec
	if s.Name != "renamed" || s.Description != "d" || s.Group != "" || s.Active || !s.NotBefore.Equal(nb) ||
		!s.ExpiresAt.IsZero() || s.IPFilters != nil || len(s.ResponseHeaders) != 1 || s.Scope != "email-api:query:*" || s.Hash != orig.Spec.Hash {
		t.Fatalf("after the full update: %+v", s)
	}

	same, err := e.store.UpdateKey(e.ctx, e.actor, "acct", orig.Spec.ID, store.KeyUpdate{})
	if err != nil || !same.UpdatedAt.Equal(got.UpdatedAt) {
		t.Fatalf("empty update: %v, updated_at %v -> %v", err, got.UpdatedAt, same.UpdatedAt)
	}

	e.mustCreateKey(serviceKey("other"))
	_, err = e.store.UpdateKey(e.ctx, e.actor, "acct", orig.Spec.ID, store.KeyUpdate{Name: new("other")})
	wantErr(t, err, store.ErrAlreadyExists, `name "other" already exists in this account`)
	_, err = e.store.UpdateKey(e.ctx, e.actor, "acct", orig.Spec.ID, store.KeyUpdate{Scope: new("!")})
	wantErr(t, err, store.ErrInvalid, "scope")
	_, err = e.store.UpdateKey(e.ctx, e.actor, "acct", orig.Spec.ID, store.KeyUpdate{IPFilters: &[]string{"nonsense"}})
	wantErr(t, err, store.ErrInvalid, "ip_filters")
	past := nb.Add(-time.Hour)
	_, err = e.store.UpdateKey(e.ctx, e.actor, "acct", orig.Spec.ID, store.KeyUpdate{ExpiresAt: &past})
	wantErr(t, err, store.ErrInvalid, "not_before")
	_, err = e.store.UpdateKey(e.ctx, e.actor, "acct", "ghost", store.KeyUpdate{Active: new(true)})
	wantErr(t, err, store.ErrNotFound, `key "ghost" not found`)
	_, err = e.store.UpdateKey(e.ctx, e.actor, "other-account", orig.Spec.ID, store.KeyUpdate{Active: new(true)})
	wantErr(t, err, store.ErrNotFound)
}

func TestRotateAndDeleteKey(t *testing.T) {
	e := newEnv(t)
	orig := e.mustCreateKey(serviceKey("k"))
	id := orig.Spec.ID

	grace := e.clock.Now().Add(time.Hour)
	got, err := e.store.RotateKey(e.ctx, e.actor, "acct", id, hashOf("new"), grace)
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Hash != hashOf("new") || got.Spec.PreviousHash != orig.Spec.Hash || !got.Spec.PreviousValidUntil.Equal(grace) {
		t.Fatalf("after rotation with grace: %+v", got.Spec)
	}
	// Rotating again without grace drops every older hash.
	got, err = e.store.RotateKey(e.ctx, e.actor, "acct", id, hashOf("newer"), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Hash != hashOf("newer") || got.Spec.PreviousHash != "" || !got.Spec.PreviousValidUntil.IsZero() {
		t.Fatalf("after rotation without grace: %+v", got.Spec)
	}
	// A grace period already over counts as none.
	got, err = e.store.RotateKey(e.ctx, e.actor, "acct", id, hashOf("newest"), e.clock.Now().Add(-time.Second))
	if err != nil || got.Spec.PreviousHash != "" {
		t.Fatalf("rotation with a past deadline: %+v, %v", got.Spec, err)
	}

	_, err = e.store.RotateKey(e.ctx, e.actor, "acct", id, hashOf("newest"), grace)
	wantErr(t, err, store.ErrInvalid, "hash")
	_, err = e.store.RotateKey(e.ctx, e.actor, "acct", id, "not a hash", grace)
	wantErr(t, err, store.ErrInvalid, "hash")
	_, err = e.store.RotateKey(e.ctx, e.actor, "acct", id, "hmac-sha256:"+strings.Repeat("1", 64), grace)
	wantErr(t, err, store.ErrInvalid, "previous_hash")
	other := e.mustCreateKey(serviceKey("other"))
	_, err = e.store.RotateKey(e.ctx, e.actor, "acct", id, other.Spec.Hash, grace)
	wantErr(t, err, store.ErrAlreadyExists, "hash")
	_, err = e.store.RotateKey(e.ctx, e.actor, "acct", "ghost", hashOf("x"), grace)
	wantErr(t, err, store.ErrNotFound)

	if err := e.store.DeleteKey(e.ctx, e.actor, "acct", id); err != nil {
		t.Fatal(err)
	}
	_, err = e.store.GetKey(e.ctx, "acct", id)
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, e.store.DeleteKey(e.ctx, e.actor, "acct", id), store.ErrNotFound, id)
}

func TestListKeysFilters(t *testing.T) {
	e := newEnv(t)
	if _, err := e.store.CreateApp(e.ctx, e.actor, store.App{AccountID: "acct", ID: "app2", Name: "App Two", Active: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.CreateTenant(e.ctx, e.actor, store.Tenant{AccountID: "acct", ID: "ten2", Name: "Tenant Two", Active: true}); err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	mk := func(name string, f func(s *authz.KeySpec)) {
		k := serviceKey(name)
		f(&k.Spec)
		e.mustCreateKey(k)
	}
	mk("a", func(s *authz.KeySpec) { s.Group = "g1"; s.ExpiresAt = now.Add(time.Hour) })
	mk("b", func(s *authz.KeySpec) { s.AppID = "app2"; s.Group = "g1"; s.Active = false })
	mk("c", func(s *authz.KeySpec) { s.TenantID = "ten2"; s.ExpiresAt = now.Add(48 * time.Hour) })
	mk("d", func(s *authz.KeySpec) { s.Type = authz.KeyTypeApp; s.TenantID = "" })
	mk("e", func(s *authz.KeySpec) {
		s.Type = authz.KeyTypeAccount
		s.AppID, s.TenantID = "", ""
		s.Scope = "account-api"
	})
	ids := map[string]string{}
	all, _, err := e.store.ListKeys(e.ctx, "acct", store.KeyFilter{}, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range all {
		ids[k.Spec.Name] = k.Spec.ID
	}
	if err := e.store.TouchKeys(e.ctx, acctRefs(map[string]time.Time{ids["a"]: now.Add(-time.Minute), ids["b"]: now.Add(-72 * time.Hour)})); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		f    store.KeyFilter
		want string
	}{
		{"none", store.KeyFilter{}, "a b c d e"},
		{"app", store.KeyFilter{AppID: "app2"}, "b"},
		{"app1", store.KeyFilter{AppID: "app1"}, "a c d"},
		{"tenant", store.KeyFilter{TenantID: "ten2"}, "c"},
		{"group", store.KeyFilter{Group: "g1"}, "a b"},
		{"type service", store.KeyFilter{Type: authz.KeyTypeService}, "a b c"},
		{"type app", store.KeyFilter{Type: authz.KeyTypeApp}, "d"},
		{"type account", store.KeyFilter{Type: authz.KeyTypeAccount}, "e"},
		{"active", store.KeyFilter{Active: new(true)}, "a c d e"},
		{"inactive", store.KeyFilter{Active: new(false)}, "b"},
		{"expiring before", store.KeyFilter{ExpiringBefore: now.Add(2 * time.Hour)}, "a"},
		{"unused since", store.KeyFilter{UnusedSince: now.Add(-time.Hour)}, "b c d e"},
		{"combined", store.KeyFilter{AppID: "app1", Group: "g1", Active: new(true)}, "a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			keys, next, err := e.store.ListKeys(e.ctx, "acct", c.f, store.Page{})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, k := range keys {
				names = append(names, k.Spec.Name)
			}
			if got := strings.Join(names, " "); got != c.want || next != "" {
				t.Fatalf("got %q (next %q), want %q", got, next, c.want)
			}
		})
	}
	a := all[slices.IndexFunc(all, func(k store.Key) bool { return k.Spec.Name == "a" })]
	got, err := e.store.GetKey(e.ctx, "acct", a.Spec.ID)
	if err != nil || !got.LastUsedAt.Equal(now.Add(-time.Minute)) {
		t.Fatalf("LastUsedAt = %v, %v", got.LastUsedAt, err)
	}
	_, _, err = e.store.ListKeys(e.ctx, "acct", store.KeyFilter{Type: authz.KeyType(9)}, store.Page{})
	wantErr(t, err, store.ErrInvalid, "type")
}

func TestListKeysPages(t *testing.T) {
	e := newEnv(t)
	var want []string
	for i := range 25 {
		k := e.mustCreateKey(serviceKey(fmt.Sprintf("k%02d", i)))
		want = append(want, k.Spec.ID)
	}
	// Same creation time for two keys: the id breaks the tie.
	if err := e.exec(`UPDATE keys SET created_at = (SELECT created_at FROM keys WHERE name = 'k10') WHERE name = 'k11'`); err != nil {
		t.Fatal(err)
	}
	if want[10] > want[11] {
		want[10], want[11] = want[11], want[10]
	}
	var got []string
	tok, pages := "", 0
	for {
		keys, next, err := e.store.ListKeys(e.ctx, "acct", store.KeyFilter{Type: authz.KeyTypeService}, store.Page{Size: 10, Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, k := range keys {
			got = append(got, k.Spec.ID)
		}
		if next == "" {
			break
		}
		tok = next
	}
	if diff := cmp.Diff(want, got); diff != "" || pages != 3 {
		t.Fatalf("%d pages; ids (-want +got):\n%s", pages, diff)
	}
	keys, next, err := e.store.ListKeys(e.ctx, "acct", store.KeyFilter{}, store.Page{Size: 5000})
	if err != nil || len(keys) != 25 || next != "" {
		t.Fatalf("big page: %d keys, next %q, %v", len(keys), next, err)
	}
	_, _, err = e.store.ListKeys(e.ctx, "acct", store.KeyFilter{}, store.Page{Token: "e30"}) // "{}"
	wantErr(t, err, store.ErrInvalid, "page_token")
}

func TestAuditEvents(t *testing.T) {
	e := newEnv(t)
	k := serviceKey("audited")
	k.Spec.ExpiresAt = e.clock.Now().Add(time.Hour)
	created := e.mustCreateKey(k)
	id := created.Spec.ID
	if _, err := e.store.UpdateKey(e.ctx, e.actor, "acct", id, store.KeyUpdate{Scope: new("email-api:query:*")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.RotateKey(e.ctx, e.actor, "acct", id, hashOf("rotated"), e.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteKey(e.ctx, e.actor, "acct", id); err != nil {
		t.Fatal(err)
	}
	// Deleting an app deletes its keys, each audited.
	cascaded := e.mustCreateKey(serviceKey("cascaded"))
	if err := e.store.DeleteApp(e.ctx, e.actor, "acct", "app1", true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.GetKey(e.ctx, "acct", cascaded.Spec.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("key of a deleted app: %v", err)
	}

	evs := e.auditEvents()
	var got []string
	for _, ev := range evs {
		got = append(got, ev.Action+" "+ev.ObjectType)
	}
	want := []string{
		"account.create account", "app.create app", "tenant.create tenant",
		"key.create key", "key.update key", "key.regenerate key", "key.delete key",
		"key.create key", "app.delete app", "key.delete key",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("audit events (-want +got):\n%s", diff)
	}
	secrets := []string{"hash", "sha256:", hashOf("secret-audited")[7:], hashOf("rotated")[7:], hashOf("secret-cascaded")[7:]}
	for _, ev := range evs {
		if ev.AccountID != "acct" || ev.At.IsZero() || ev.Actor != e.actor || ev.ID == 0 {
			t.Errorf("%s: %+v", ev.Action, ev)
		}
		for _, raw := range []string{string(ev.Before), string(ev.After)} {
			for _, s := range secrets {
				if strings.Contains(raw, s) {
					t.Errorf("%s: audit JSON %s contains %q", ev.Action, raw, s)
				}
			}
		}
		switch {
		case strings.HasSuffix(ev.Action, ".create"):
			if ev.Before != nil || ev.After == nil {
				t.Errorf("%s: before %s after %s", ev.Action, ev.Before, ev.After)
			}
		case strings.HasSuffix(ev.Action, ".delete"):
			if ev.Before == nil || ev.After != nil {
				t.Errorf("%s: before %s after %s", ev.Action, ev.Before, ev.After)
			}
		default:
			if ev.Before == nil || ev.After == nil {
				t.Errorf("%s: before %s after %s", ev.Action, ev.Before, ev.After)
			}
		}
	}
	upd := evs[4]
	if jsonField(t, upd.Before, "scope") != "email-api" || jsonField(t, upd.After, "scope") != "email-api:query:*" || upd.ObjectID != id {
		t.Errorf("key.update before %s after %s", upd.Before, upd.After)
	}
	if rot := evs[5]; jsonField(t, rot.After, "previous_valid_until") == nil {
		t.Errorf("key.regenerate after %s: want the grace deadline", rot.After)
	}

	// Pages, newest first.
	page, next, err := e.store.ListAuditEvents(e.ctx, "acct", store.AuditFilter{}, store.Page{Size: 4})
	if err != nil || len(page) != 4 || next == "" || page[0].ID <= page[1].ID {
		t.Fatalf("first page: %d events, next %q, %v", len(page), next, err)
	}
	rest, next2, err := e.store.ListAuditEvents(e.ctx, "acct", store.AuditFilter{}, store.Page{Size: 4, Token: next})
	if err != nil || len(rest) != 4 || rest[0].ID >= page[3].ID || next2 == "" {
		t.Fatalf("second page: %d events, next %q, %v", len(rest), next2, err)
	}
	if evs, _, _ := e.store.ListAuditEvents(e.ctx, "other", store.AuditFilter{}, store.Page{}); len(evs) != 0 {
		t.Fatalf("another account sees %d events", len(evs))
	}
}

func TestBootstrap(t *testing.T) {
	e := newEnv(t)
	id, err := e.store.Bootstrap(e.ctx, "boot", "Boot Account", "root", hashOf("root-secret"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := e.store.LookupKey(e.ctx, digestOf("root-secret"))
	if err != nil {
		t.Fatal(err)
	}
	if k.Spec.ID != id || k.Spec.Type != authz.KeyTypeAccount || k.Spec.Scope != authz.AccountAPIService || !k.Spec.Active || k.Spec.AccountID != "boot" {
		t.Fatalf("bootstrap key %+v", k.Spec)
	}
	if !k.Scope().Allows(authz.AccountAPIService, "mutation", "generateServiceAccessKey") {
		t.Fatal("the bootstrap key may not call the whole Account API")
	}
	// The account exists now: a second key is fine, the same name is not.
	if _, err := e.store.Bootstrap(e.ctx, "boot", "ignored", "root2", hashOf("root-secret-2")); err != nil {
		t.Fatal(err)
	}
	_, err = e.store.Bootstrap(e.ctx, "boot", "Boot Account", "root", hashOf("root-secret-3"))
	wantErr(t, err, store.ErrAlreadyExists, `name "root"`)
	if n := e.count(`SELECT count(*) FROM accounts WHERE id = 'boot'`); n != 1 {
		t.Fatalf("%d boot accounts", n)
	}
	evs, _, err := e.store.ListAuditEvents(e.ctx, "boot", store.AuditFilter{}, store.Page{})
	if err != nil || len(evs) != 3 {
		t.Fatalf("%d audit events, %v", len(evs), err)
	}
	for _, ev := range evs {
		if ev.Actor.KeyName != "bootstrap" || ev.Actor.KeyID != "" {
			t.Errorf("actor %+v", ev.Actor)
		}
	}
	// A generated account id.
	if _, err := e.store.Bootstrap(e.ctx, "", "New", "root", hashOf("root-secret-4")); err != nil {
		t.Fatal(err)
	}
}

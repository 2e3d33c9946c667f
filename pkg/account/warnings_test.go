package account_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/route"
	"github.com/keygate/keygate/pkg/store"
)

// routes declares email-api (kinds query, mutation) and open-api (a route
// with no kind: any kind may come).
type routes map[string][]string

func (r routes) Kinds(svc string) ([]string, bool, bool) {
	k, ok := r[svc]
	if svc == "open-api" {
		return nil, true, true
	}
	return k, false, ok
}

// Services lists email-api and a service limited to another account.
func (r routes) Services() []route.ServiceInfo {
	return []route.ServiceInfo{
		{Name: "email-api", Accepts: authz.KeyTypes(0).With(authz.KeyTypeService).With(authz.KeyTypeApp),
			Kinds: []route.KindInfo{{Name: "query", Operations: []string{"listEmails"}}, {Name: "mutation", AnyOperation: true}}},
		{Name: "theirs-api", Accepts: authz.KeyTypes(0).With(authz.KeyTypeService), Accounts: []string{"acct-2"}},
		{Name: "open-api", Accepts: authz.KeyTypes(0).With(authz.KeyTypeApp), Accounts: []string{"acct-2", "acct-1"}, AnyKind: true},
	}
}

var testRoutes = routes{"email-api": {"query", "mutation"}, "open-api": nil, "bare-api": nil}

// withRoutes is the test server's service with testRoutes, and a caller
// authenticated with the root key.
func withRoutes(t *testing.T) (*accounttest.Server, *account.Service, account.Caller) {
	t.Helper()
	s := accounttest.Start(t)
	svc := account.NewService(s.Store, s.Engine, s.Hasher, account.Options{Compile: accounttest.CompileOptions,
		Now: s.Clock.Now, RateLimits: accounttest.Unlimited, Routes: testRoutes})
	op, _ := account.OperationNamed("updateKeys")
	c, err := svc.Authenticate(context.Background(), account.Credentials{Keys: []string{s.RootKey}}, op)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := svc.CreateApp(ctx, c, account.OwnerInput{ID: "app", Name: "App"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"t1", "t2"} {
		if _, err := svc.CreateTenant(ctx, c, account.OwnerInput{ID: id, Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	return s, svc, c
}

func TestScopeWarnings(t *testing.T) {
	_, svc, c := withRoutes(t)
	ctx := context.Background()
	for i, tc := range []struct {
		scope string
		want  []string // one entry per warning, each a part of it
	}{
		{"", nil},
		{"email-api", nil},
		{"email-api:query:getX email-api:mutation", nil},
		{"email-api:*:x email-api:que*", nil},
		{"*", nil},
		{"emial-api", []string{`service "emial-api" is not declared`}},
		{"emial-api !emial-api:mutation", []string{`service "emial-api" is not declared`}},
		{"email-api:querry", []string{`no route of service "email-api" has kind "querry" (its kinds: query, mutation)`}},
		{"!email-api:grpc:x", []string{`kind "grpc"`}},
		{"open-api:anything", nil},
		{"bare-api:anything", nil},
		{"account-api:query:*", nil},
		{"a-api b-api", []string{`"a-api"`, `"b-api"`}},
	} {
		t.Run(tc.scope, func(t *testing.T) {
			_, k, w, err := svc.GenerateKey(ctx, c, account.KeyInput{Type: authz.KeyTypeService, AppID: "app", TenantID: "t1",
				Name: "gen" + string(rune('a'+i)), Scope: tc.scope})
			if err != nil {
				t.Fatal(err)
			}
			wantWarnings(t, "generate", w, tc.want)
			_, w, err = svc.UpdateKey(ctx, c, k.Spec.ID, account.KeyUpdate{Scope: &tc.scope})
			if err != nil {
				t.Fatal(err)
			}
			wantWarnings(t, "update", w, tc.want)
			_, w, err = svc.ImportKey(ctx, c, account.KeyInput{Type: authz.KeyTypeService, AppID: "app", TenantID: "t1",
				Name: "imp" + string(rune('a'+i)), Scope: tc.scope}, "Imported-Secret-0123456789-"+string(rune('a'+i)))
			if err != nil {
				t.Fatal(err)
			}
			wantWarnings(t, "import", w, tc.want)
		})
	}
	// Without routes, no warnings.
	s := accounttest.Start(t)
	op, _ := account.OperationNamed("generateServiceAccessKey")
	rc, _ := s.Service.Authenticate(ctx, account.Credentials{Keys: []string{s.RootKey}}, op)
	if _, err := s.Service.CreateApp(ctx, rc, account.OwnerInput{ID: "app", Name: "App"}); err != nil {
		t.Fatal(err)
	}
	if _, _, w, err := s.Service.GenerateKey(ctx, rc, account.KeyInput{Type: authz.KeyTypeApp, AppID: "app", Scope: "emial-api"}); err != nil || len(w) != 0 {
		t.Errorf("without routes: %v, %v", w, err)
	}
}

func wantWarnings(t *testing.T, what string, got account.Warnings, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: warnings %q, want %d", what, got, len(want))
	}
	for i, part := range want {
		if !strings.Contains(got[i], part) {
			t.Errorf("%s: warning %q does not say %q", what, got[i], part)
		}
	}
}

func TestPastExpiry(t *testing.T) {
	s, svc, c := withRoutes(t)
	ctx := context.Background()
	now := s.Clock.Now()
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	for _, at := range []time.Time{past, now} {
		_, _, _, err := svc.GenerateKey(ctx, c, account.KeyInput{Type: authz.KeyTypeApp, AppID: "app", ExpiresAt: &at})
		wantField(t, "generate", err, account.InvalidArgument, "expires_at", "not in the future")
		_, _, err = svc.ImportKey(ctx, c, account.KeyInput{Type: authz.KeyTypeApp, AppID: "app", ExpiresAt: &at}, "Imported-Secret-0123456789-x")
		wantField(t, "import", err, account.InvalidArgument, "expires_at", "not in the future")
	}
	_, k, w, err := svc.GenerateKey(ctx, c, account.KeyInput{Type: authz.KeyTypeApp, AppID: "app", ExpiresAt: &future})
	if err != nil || len(w) != 0 {
		t.Fatalf("future expiry: %v, %v", w, err)
	}
	// An update may expire a key at once: accepted, with a warning.
	got, w, err := svc.UpdateKey(ctx, c, k.Spec.ID, account.KeyUpdate{ExpiresAt: &past})
	if err != nil || !got.Spec.ExpiresAt.Equal(past) {
		t.Fatalf("update to a past expiry: %+v, %v", got.Spec.ExpiresAt, err)
	}
	wantWarnings(t, "update", w, []string{"every request with this key is now denied expired_key"})
	if _, w, err := svc.UpdateKey(ctx, c, k.Spec.ID, account.KeyUpdate{ExpiresAt: &future}); err != nil || len(w) != 0 {
		t.Errorf("update to a future expiry: %v, %v", w, err)
	}
}

func wantField(t *testing.T, what string, err error, code account.Code, field, part string) {
	t.Helper()
	var e *account.Error
	if !errors.As(err, &e) || e.Code != code || e.Field != field || !strings.Contains(e.Message, part) {
		t.Errorf("%s: error %v (%#v), want %s on %s saying %q", what, err, e, code, field, part)
	}
}

func TestUpdateKeys(t *testing.T) {
	s, svc, c := withRoutes(t)
	ctx := context.Background()
	for _, k := range []struct{ name, tenant string }{{"a", "t1"}, {"b", "t1"}, {"c", "t2"}} {
		if _, _, _, err := svc.GenerateKey(ctx, c, account.KeyInput{Type: authz.KeyTypeService, AppID: "app", TenantID: k.tenant, ID: k.name, Name: k.name}); err != nil {
			t.Fatal(err)
		}
	}
	off, on := false, true
	n := func(i int) *int { return &i }
	t1 := account.KeyFilter{TenantID: "t1"}

	for _, tc := range []struct {
		name        string
		in          account.BulkKeyUpdate
		code        account.Code
		field, part string
	}{
		{"empty filter", account.BulkKeyUpdate{Update: account.KeyUpdate{Active: &off}}, account.InvalidArgument, "filter", "set all"},
		{"all and a filter", account.BulkKeyUpdate{Filter: t1, All: true, Update: account.KeyUpdate{Active: &off}}, account.InvalidArgument, "all", ""},
		{"nothing to change", account.BulkKeyUpdate{Filter: t1}, account.InvalidArgument, "update", "nothing to change"},
		{"a name for many keys", account.BulkKeyUpdate{Filter: t1, Update: account.KeyUpdate{Name: new("x")}}, account.InvalidArgument, "update", "only description"},
		{"bad scope", account.BulkKeyUpdate{Filter: t1, Update: account.KeyUpdate{Scope: new("a:b:c:d")}}, account.InvalidArgument, "scope", ""},
		{"count changed", account.BulkKeyUpdate{Filter: t1, Update: account.KeyUpdate{Active: &off}, ExpectedCount: n(3)}, account.FailedPrecondition, "expected_count", "2 keys match the filter now, not the 3 expected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.UpdateKeys(ctx, c, tc.in)
			wantField(t, tc.name, err, tc.code, tc.field, tc.part)
		})
	}
	// A dry run counts and changes nothing.
	res, err := svc.UpdateKeys(ctx, c, account.BulkKeyUpdate{Filter: t1, Update: account.KeyUpdate{Active: &off}, DryRun: true})
	if err != nil || res.Count != 2 || strings.Join(res.IDs, " ") != "a b" || !res.DryRun {
		t.Fatalf("dry run: %+v, %v", res, err)
	}
	for _, id := range []string{"a", "b", "c"} {
		if k, _ := s.Store.Key("acct-1", id); !k.Spec.Active {
			t.Errorf("dry run deactivated %s", id)
		}
	}
	res, err = svc.UpdateKeys(ctx, c, account.BulkKeyUpdate{Filter: t1, Update: account.KeyUpdate{Active: &off, Scope: new("emial-api")}, ExpectedCount: n(2)})
	if err != nil || res.Count != 2 || res.DryRun {
		t.Fatalf("update: %+v, %v", res, err)
	}
	wantWarnings(t, "bulk", res.Warnings, []string{`service "emial-api" is not declared`})
	for id, want := range map[string]bool{"a": false, "b": false, "c": true} {
		if k, _ := s.Store.Key("acct-1", id); k.Spec.Active != want {
			t.Errorf("%s active %v, want %v", id, k.Spec.Active, want)
		}
	}
	// Reactivate every key: all is needed.
	if res, err = svc.UpdateKeys(ctx, c, account.BulkKeyUpdate{All: true, Update: account.KeyUpdate{Active: &on}}); err != nil || res.Count != 4 {
		t.Fatalf("all: %+v, %v", res, err) // a, b, c and root
	}

	// Escalation: a key limited to updateKeys and reads cannot re-scope
	// account keys beyond itself, nor touch the stronger root key.
	limited := s.AddKey(t, authz.KeySpec{ID: "limited", Name: "limited", Type: authz.KeyTypeAccount, AccountID: "acct-1",
		Active: true, Scope: "account-api:query:* account-api:mutation:updateKeys"})
	op, _ := account.OperationNamed("updateKeys")
	lc, err := svc.Authenticate(ctx, account.Credentials{Keys: []string{limited}}, op)
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.UpdateKeys(ctx, lc, account.BulkKeyUpdate{Filter: account.KeyFilter{Type: authz.KeyTypeAccount}, Update: account.KeyUpdate{Active: &off}})
	wantField(t, "stronger key", err, account.PermissionDenied, "", `key "root": scope_exceeds_caller`)
	_, err = svc.UpdateKeys(ctx, lc, account.BulkKeyUpdate{Filter: account.KeyFilter{Name: "limited"}, Update: account.KeyUpdate{Scope: new("")}})
	wantField(t, "widened scope", err, account.PermissionDenied, "", `key "limited": scope_exceeds_caller`)
	if k, _ := s.Store.Key("acct-1", "root"); !k.Spec.Active {
		t.Error("the limited key deactivated root")
	}
	// Service keys are not the escalation rule's.
	if res, err := svc.UpdateKeys(ctx, lc, account.BulkKeyUpdate{Filter: account.KeyFilter{Type: authz.KeyTypeService}, Update: account.KeyUpdate{Scope: new("")}}); err != nil || res.Count != 3 {
		t.Errorf("limited key re-scoping service keys: %+v, %v", res, err)
	}
	evs, _, err := s.Store.ListAuditEvents(ctx, "acct-1", store.AuditFilter{}, store.Page{Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	updates := 0
	for _, ev := range evs {
		if ev.Action == "key.update" {
			updates++
		}
	}
	if updates != 2+4+3 {
		t.Errorf("%d key.update events, want 9", updates)
	}
}

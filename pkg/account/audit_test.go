package account_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// TestDeniedEventsBounded: refusals by the escalation rule are recorded
// at most 1 per second per calling key (burst 10); the refusals past that
// are still refused but only counted, and the next recorded one says how
// many were left out. Another key has its own bound.
func TestDeniedEventsBounded(t *testing.T) {
	s := accounttest.Start(t)
	svc := account.NewService(s.Store, s.Engine, s.Hasher, account.Options{
		Compile: accounttest.CompileOptions, Now: s.Clock.Now, Logger: slog.New(slog.DiscardHandler),
		RateLimits: accounttest.Unlimited,
	})
	ctx := context.Background()
	gen, _ := account.OperationNamed("generateAccountAccessKey")
	caller := func(id string) account.Caller {
		key := s.AddKey(t, authz.KeySpec{ID: id, Name: id, Type: authz.KeyTypeAccount, AccountID: s.AccountID, Active: true,
			Scope: "account-api:mutation:generateAccountAccessKey"})
		c, err := svc.Authenticate(ctx, account.Credentials{Keys: []string{key}}, gen)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	narrow, other := caller("narrow"), caller("other")
	attempt := func(c account.Caller) {
		t.Helper()
		_, _, _, err := svc.GenerateKey(ctx, c, account.KeyInput{Type: authz.KeyTypeAccount, Scope: "account-api"})
		var e *account.Error
		if !errors.As(err, &e) || e.Code != account.PermissionDenied || !strings.HasPrefix(e.Message, "scope_exceeds_caller: ") {
			t.Fatalf("a wider account key: %v", err)
		}
	}
	denied := func(actor string) []store.AuditEvent {
		t.Helper()
		evs, _, err := s.Store.ListAuditEvents(ctx, s.AccountID, store.AuditFilter{Outcome: store.OutcomeDenied, ActorKeyID: actor}, store.Page{Size: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	for range 13 {
		attempt(narrow)
	}
	if n := len(denied("narrow")); n != 10 {
		t.Fatalf("13 refusals at once: %d recorded, want 10 (the burst)", n)
	}
	attempt(other)
	if n := len(denied("other")); n != 1 {
		t.Fatalf("another key's refusal: %d recorded, want 1", n)
	}
	s.Clock.Add(time.Second)
	attempt(narrow)
	evs := denied("narrow")
	if len(evs) != 11 || !strings.HasSuffix(evs[0].Reason, "(3 earlier refusals of this key were not recorded: more than 1 per second)") {
		t.Fatalf("after a second: %d recorded, newest reason %q", len(evs), evs[0].Reason)
	}
	e := evs[0]
	if e.Action != "key.create" || e.ObjectType != "key" || e.Actor.KeyID != "narrow" || e.Before != nil || e.After == nil ||
		!strings.Contains(string(e.After), `"scope":"account-api"`) || strings.Contains(string(e.After), "hash") {
		t.Fatalf("denied event: %+v (after %s)", e, e.After)
	}
}

// TestAuditFilterRefused: filter values that are not what they name are
// InvalidArgument naming the field and what to give.
func TestAuditFilterRefused(t *testing.T) {
	s := accounttest.Start(t)
	ctx := context.Background()
	op, _ := account.OperationNamed("auditEvents")
	c, err := s.Service.Authenticate(ctx, account.Credentials{Keys: []string{s.RootKey}}, op)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		f    account.AuditFilter
		want string
	}{
		{account.AuditFilter{Action: "key.up*"}, `action: "key.up*" is not an action: give one such as key.update, or every action on one type of object such as key.*`},
		{account.AuditFilter{Action: "*"}, `action: "*" is not an action`},
		{account.AuditFilter{Action: "KEY.UPDATE"}, `action: "KEY.UPDATE" is not an action`},
		{account.AuditFilter{Outcome: "refused"}, `outcome: "refused" is not an outcome: give allowed or denied`},
		{account.AuditFilter{Since: t0, Until: t0}, "since: must be before until (2027-01-01T00:00:00Z is not before 2027-01-01T00:00:00Z)"},
		{account.AuditFilter{KeyID: strings.Repeat("k", 129)}, "key_id: longer than 128 bytes"},
	} {
		_, _, err := s.Service.ListAuditEvents(ctx, c, tc.f, account.PageInput{})
		var e *account.Error
		if !errors.As(err, &e) || e.Code != account.InvalidArgument || !strings.Contains(e.Message, tc.want) {
			t.Errorf("%+v: %v, want InvalidArgument %q", tc.f, err, tc.want)
		}
	}
	for _, ok := range []account.AuditFilter{{Action: "key.update"}, {Action: "key.*"}, {Action: "account.limits"}, {Outcome: "denied"}, {Since: t0}} {
		if _, _, err := s.Service.ListAuditEvents(ctx, c, ok, account.PageInput{}); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}

// TestDeniedRoleEscalationRecorded: giving a key a role whose scope the
// caller could not give is refused by the escalation rule (the key is
// compared with its roles) like a wider own scope, and recorded as a
// denied event of the attempted action.
func TestDeniedRoleEscalationRecorded(t *testing.T) {
	s := accounttest.Start(t)
	ctx := context.Background()
	if _, err := s.Store.CreateRole(ctx, store.Actor{}, store.Role{AccountID: s.AccountID, ID: "wide", Name: "wide",
		Scope: "account-api", CreatedAt: s.Clock.Now(), UpdatedAt: s.Clock.Now()}); err != nil {
		t.Fatal(err)
	}
	gen, _ := account.OperationNamed("generateAccountAccessKey")
	key := s.AddKey(t, authz.KeySpec{ID: "narrow", Name: "narrow", Type: authz.KeyTypeAccount, AccountID: s.AccountID, Active: true,
		Scope: "account-api:mutation:generateAccountAccessKey"})
	c, err := s.Service.Authenticate(ctx, account.Credentials{Keys: []string{key}}, gen)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = s.Service.GenerateKey(ctx, c, account.KeyInput{Type: authz.KeyTypeAccount, ID: "minted",
		Scope: "account-api:mutation:generateAccountAccessKey", RoleIDs: []string{"wide"}})
	var e *account.Error
	if !errors.As(err, &e) || e.Code != account.PermissionDenied || !strings.HasPrefix(e.Message, "scope_exceeds_caller: ") {
		t.Fatalf("a role wider than the caller: %v", err)
	}
	evs, _, err := s.Store.ListAuditEvents(ctx, s.AccountID, store.AuditFilter{Outcome: store.OutcomeDenied, ActorKeyID: "narrow"}, store.Page{Size: 10})
	if err != nil || len(evs) != 1 || evs[0].Action != "key.create" || evs[0].ObjectID != "minted" {
		t.Fatalf("denied events %+v, %v", evs, err)
	}
}

package account_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/authz"
)

// TestNoTransportInTheCore: the account service and the decision know
// nothing of gRPC, HTTP or pgx (DESIGN: arrows point one way, adapters →
// account → store interfaces and authz).
func TestNoTransportInTheCore(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}",
		"github.com/keygate/keygate/pkg/account", "github.com/keygate/keygate/pkg/authz").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"google.golang.org/grpc", "net/http", "github.com/jackc/pgx", "github.com/99designs/gqlgen", "html/template"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("pkg/account or pkg/authz depends on %s", dep)
			}
		}
	}
}

// TestServiceWithoutTransport drives the service as any adapter would:
// authenticate an operation, call it with plain inputs, read plain
// records and *account.Error codes.
func TestServiceWithoutTransport(t *testing.T) {
	s := accounttest.Start(t)
	ctx := context.Background()
	create, _ := account.OperationNamed("createApp")
	c, err := s.Service.Authenticate(ctx, account.Credentials{Keys: []string{s.RootKey}}, create)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Service.CreateApp(ctx, c, account.OwnerInput{ID: "billing", Name: "Billing"})
	if err != nil || a.ID != "billing" || !a.Active || a.AccountID != s.AccountID {
		t.Fatalf("CreateApp = %+v, %v", a, err)
	}
	for _, tc := range []struct {
		name  string
		err   error
		code  account.Code
		field string
	}{
		{"duplicate", second(s.Service.CreateApp(ctx, c, account.OwnerInput{ID: "billing", Name: "Other"})), account.AlreadyExists, ""},
		{"not found", second(s.Service.GetApp(ctx, c, "nope")), account.NotFound, ""},
		{"invalid", second(s.Service.CreateApp(ctx, c, account.OwnerInput{ID: "-x", Name: ""})), account.InvalidArgument, ""},
		{"one invalid field", second(s.Service.CreateApp(ctx, c, account.OwnerInput{Name: " padded"})), account.InvalidArgument, "name"},
		{"no caller", second(s.Service.GetApp(ctx, account.Caller{}, "billing")), account.Unauthenticated, ""},
		{"unknown key", authErr(s.Service.Authenticate(ctx, account.Credentials{Keys: []string{"kg_aak_nope"}}, create)), account.Unauthenticated, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e *account.Error
			if !errors.As(tc.err, &e) || e.Code != tc.code || e.Field != tc.field {
				t.Fatalf("error %v (%#v), want code %s field %q", tc.err, e, tc.code, tc.field)
			}
		})
	}
	// A read-only key: Authorize refuses a mutation by the catalogue's kind.
	reader := s.AddKey(t, authz.KeySpec{ID: "reader", Name: "reader", Type: authz.KeyTypeAccount, AccountID: s.AccountID,
		Active: true, Scope: "account-api:query:*"})
	list, _ := account.OperationNamed("apps")
	rc, err := s.Service.Authenticate(ctx, account.Credentials{Keys: []string{reader}}, list)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Service.Authorize(rc, create); err == nil || !strings.Contains(err.Error(), "scope_denied") {
		t.Fatalf("Authorize(reader, createApp) = %v", err)
	}
	if err := s.Service.Authorize(rc, list); err != nil {
		t.Fatalf("Authorize(reader, listApps) = %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

func third[T, U any](_ T, _ U, err error) error { return err }

func authErr(_ account.Caller, err error) error { return err }

// TestCatalogue: every operation has a kind, and names are unique.
func TestCatalogue(t *testing.T) {
	seen := map[string]bool{}
	for _, op := range account.Operations {
		if op.Kind != "query" && op.Kind != "mutation" || seen[op.Name] {
			t.Errorf("operation %+v", op)
		}
		seen[op.Name] = true
		if got, ok := account.OperationNamed(op.Name); !ok || got != op {
			t.Errorf("OperationNamed(%q) = %+v, %v", op.Name, got, ok)
		}
	}
}

// TestSecretRedactsItself: a generated secret printed, formatted or
// logged by mistake shows nothing.
func TestSecretRedactsItself(t *testing.T) {
	s := accounttest.Start(t)
	ctx := context.Background()
	op, _ := account.OperationNamed("generateAccountAccessKey")
	c, err := s.Service.Authenticate(ctx, account.Credentials{Keys: []string{s.RootKey}}, op)
	if err != nil {
		t.Fatal(err)
	}
	secret, k, _, err := s.Service.GenerateKey(ctx, c, account.KeyInput{Type: authz.KeyTypeAccount, Name: "minted", Scope: "account-api:query:*"})
	if err != nil || k.Spec.Name != "minted" || !strings.HasPrefix(secret.Reveal(), "kg_aak_") {
		t.Fatalf("GenerateKey = %v, %+v, %v", secret.Reveal() != "", k.Spec, err)
	}
	var logs strings.Builder
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("oops", "secret", secret)
	for _, shown := range []string{fmt.Sprint(secret), fmt.Sprintf("%v %s %#v %+v", secret, secret, secret, secret), logs.String()} {
		if strings.Contains(shown, secret.Reveal()) {
			t.Fatalf("the secret shows: %s", shown)
		}
	}
}

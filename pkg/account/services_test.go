package account_test

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
)

// TestServices: the route catalogue as the caller's account sees it — the
// Account API first, then the routes' services, without those limited to
// other accounts.
func TestServices(t *testing.T) {
	_, svc, c := withRoutes(t)
	got, err := svc.Services(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range got {
		names = append(names, s.Name)
	}
	if want := []string{"account-api", "email-api", "open-api"}; !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	api := got[0]
	if !slices.Equal(api.KeyTypes, []string{"account"}) || len(api.Kinds) != 2 || api.Kinds[0].Name != "query" || api.Kinds[1].Name != "mutation" {
		t.Errorf("account-api = %+v", api)
	}
	if n := len(api.Kinds[0].Operations) + len(api.Kinds[1].Operations); n != len(account.Operations) {
		t.Errorf("account-api lists %d operations, the catalogue has %d", n, len(account.Operations))
	}
	if !slices.Contains(api.Kinds[0].Operations, "services") || !slices.Contains(api.Kinds[1].Operations, "generateServiceAccessKey") {
		t.Errorf("account-api kinds %+v", api.Kinds)
	}
	want := account.ServiceInfo{Name: "email-api", KeyTypes: []string{"service", "app"}, Kinds: []account.KindInfo{
		{Name: "query", Operations: []string{"listEmails"}}, {Name: "mutation", AnyOperation: true}}}
	if !reflect.DeepEqual(got[1], want) {
		t.Errorf("email-api = %+v, want %+v", got[1], want)
	}
	if !got[2].AnyKind || !slices.Equal(got[2].KeyTypes, []string{"app"}) {
		t.Errorf("open-api = %+v", got[2])
	}
	if _, err := svc.Services(context.Background(), account.Caller{}); err == nil {
		t.Error("Services served a caller no key authenticated")
	}
}

// TestAccountInfo: the account operation names the account, the calling
// key and the Account API operations its scope allows.
func TestAccountInfo(t *testing.T) {
	s, svc, c := withRoutes(t)
	ctx := context.Background()
	info, err := svc.Account(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != s.AccountID || info.Name != s.AccountID || info.KeyID != s.RootKeyID || info.Scope != "" || len(info.Operations) != len(account.Operations) {
		t.Errorf("root: %+v", info)
	}
	secret := s.AddKey(t, authz.KeySpec{ID: "reader", Name: "reader", Type: authz.KeyTypeAccount, AccountID: s.AccountID, Active: true,
		Scope: "account-api:query:apps account-api:query:account"})
	op, _ := account.OperationNamed("account")
	rc, err := svc.Authenticate(ctx, account.Credentials{Keys: []string{secret}}, op)
	if err != nil {
		t.Fatal(err)
	}
	info, err = svc.Account(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	want := []account.Operation{{Name: "account", Kind: "query"}, {Name: "apps", Kind: "query"}}
	got := slices.Clone(info.Operations)
	slices.SortFunc(got, func(a, b account.Operation) int { return strings.Compare(a.Name, b.Name) })
	if info.KeyID != "reader" || info.Scope != "account-api:query:apps account-api:query:account" || !reflect.DeepEqual(got, want) {
		t.Errorf("reader: %+v", info)
	}
}

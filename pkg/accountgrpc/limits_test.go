package accountgrpc_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/accountgrpc"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// largestKey is a service key of the largest shape the Account API
// accepts (SPEC §10): 4 KiB of scope, 1 KiB of description, 20 response
// headers of 1 KiB, 100 IP filters.
func largestKey(s *accounttest.Server, i int) authz.KeySpec {
	sp := authz.KeySpec{
		ID: fmt.Sprintf("big-%04d", i), Name: fmt.Sprintf("big %04d", i), Type: authz.KeyTypeService,
		AccountID: s.AccountID, AppID: "billing", TenantID: "acme", Active: true,
		Scope:       strings.TrimSpace(strings.Repeat("email-api:query:get"+strings.Repeat("x", 44)+" ", 64)),
		Description: strings.Repeat("d", account.MaxDescriptionLen),
	}
	for j := range account.MaxIPFilters {
		sp.IPFilters = append(sp.IPFilters, fmt.Sprintf("10.%d.%d.0/24", i%200, j))
	}
	for j := range account.MaxResponseHeaders {
		sp.ResponseHeaders = append(sp.ResponseHeaders, authz.HeaderSpec{
			Name: fmt.Sprintf("x-h%02d-", j) + strings.Repeat("n", 57), Value: strings.Repeat("v", account.MaxHeaderValueLen)})
	}
	return sp
}

// TestListsBoundedByBytes: a ListKeys of 1000 keys of the largest shape
// answers fewer, within account.MaxListBytes on the wire, with a next
// token, and paging on returns every key once.
func TestListsBoundedByBytes(t *testing.T) {
	s, ctx := setup(t)
	const n = 200 // about 28 KiB each: more than 4 MiB together
	for i := range n {
		s.AddKey(t, largestKey(s, i))
	}
	seen := map[string]bool{}
	tok, pages := "", 0
	for {
		resp, err := s.Client.ListKeys(ctx, &accountv1.ListKeysRequest{PageSize: 1000, PageToken: tok, AppId: "billing"})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		t.Logf("page %d: %d keys, %d bytes", pages, len(resp.GetKeys()), proto.Size(resp))
		if size := proto.Size(resp); size > account.MaxListBytes {
			t.Errorf("page %d: %d bytes on the wire, more than %d", pages, size, account.MaxListBytes)
		}
		for _, k := range resp.GetKeys() {
			if seen[k.GetId()] {
				t.Fatalf("key %s listed twice", k.GetId())
			}
			seen[k.GetId()] = true
		}
		if tok = resp.GetNextPageToken(); tok == "" {
			break
		}
	}
	if len(seen) != n || pages < 2 {
		t.Fatalf("%d keys in %d pages, want %d in at least 2", len(seen), pages, n)
	}
}

// TestRequestSizeBound: a request past accountgrpc.MaxRecvMsgSize is
// refused by gRPC before the service sees it.
func TestRequestSizeBound(t *testing.T) {
	s, ctx := setup(t)
	_, err := s.Client.CreateApp(ctx, &accountv1.CreateAppRequest{Name: "x", Description: strings.Repeat("d", accountgrpc.MaxRecvMsgSize)})
	wantCode(t, err, codes.ResourceExhausted)
}

// TestQuotas: each quota refuses the create past it with
// ResourceExhausted naming the limit and the number, and writes nothing.
func TestQuotas(t *testing.T) {
	s, ctx := setup(t) // one app, one tenant, one (root) key
	if _, err := s.Store.SetAccountLimits(context.Background(), store.Actor{KeyName: "operator"}, s.AccountID,
		store.LimitsUpdate{store.QuotaKeys: ptr(int64(2)), store.QuotaApps: ptr(int64(1)), store.QuotaTenants: ptr(int64(1))}); err != nil {
		t.Fatal(err)
	}
	must(s.Client.GenerateAppAccessKey(ctx, &accountv1.GenerateAppAccessKeyRequest{AppId: "billing", Name: "second"}))
	before := len(s.Store.Keys())
	for _, tc := range []struct {
		name  string
		call  func() error
		limit string
		want  string
	}{
		{"keys", func() error {
			_, err := s.Client.GenerateServiceAccessKey(ctx, &accountv1.GenerateServiceAccessKeyRequest{AppId: "billing", TenantId: "acme"})
			return err
		}, "max_keys", `account "acct-1" already has 2 keys, the most it may have (max_keys = 2)`},
		{"imported keys", func() error {
			_, err := s.Client.ImportKey(ctx, &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_APP, AppId: "billing", PrivateKey: "Imported-Secret-0123456789-abcdef"})
			return err
		}, "max_keys", "max_keys = 2"},
		{"apps", func() error {
			_, err := s.Client.CreateApp(ctx, &accountv1.CreateAppRequest{Name: "Second"})
			return err
		}, "max_apps", `account "acct-1" already has 1 apps, the most it may have (max_apps = 1)`},
		{"tenants", func() error {
			_, err := s.Client.CreateTenant(ctx, &accountv1.CreateTenantRequest{Name: "Second"})
			return err
		}, "max_tenants", "max_tenants = 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			wantCode(t, err, codes.ResourceExhausted, tc.want, "ask the operator to raise it with keygate accounts limits")
			var qf *errdetails.QuotaFailure
			for _, d := range status.Convert(err).Details() {
				if q, ok := d.(*errdetails.QuotaFailure); ok {
					qf = q
				}
			}
			if qf == nil || len(qf.GetViolations()) != 1 || qf.GetViolations()[0].GetSubject() != tc.limit {
				t.Errorf("QuotaFailure detail %v, want one naming %s", qf, tc.limit)
			}
		})
	}
	if got := len(s.Store.Keys()); got != before {
		t.Errorf("%d keys after the refusals, want %d", got, before)
	}
}

func ptr[T any](v T) *T { return &v }

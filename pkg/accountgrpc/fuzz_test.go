package accountgrpc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/accountgrpc"
	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// direct is an Account API without a network: calls go through the
// interceptor and the handler, as gRPC would run them.
type direct struct {
	store   *accounttest.Store
	srv     *accountgrpc.Server
	rootKey string
	hasher  *apikey.Hasher
}

func newDirect(t *testing.T) *direct {
	t.Helper()
	clock := accounttest.NewClock(accounttest.T0)
	st := accounttest.NewStore(t, accounttest.CompileOptions, clock.Now)
	h := apikey.NewHasher(nil)
	ctx := context.Background()
	if _, err := st.CreateAccount(ctx, store.Actor{}, store.Account{ID: "acct-1", Name: "acct-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateApp(ctx, store.Actor{}, store.App{AccountID: "acct-1", ID: "billing", Name: "Billing", Active: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateTenant(ctx, store.Actor{}, store.Tenant{AccountID: "acct-1", ID: "acme", Name: "ACME", Active: true}); err != nil {
		t.Fatal(err)
	}
	root, _ := apikey.Generate(apikey.KindAccount)
	if _, err := st.CreateKey(ctx, store.Actor{}, store.Key{Spec: authz.KeySpec{
		ID: "root", Name: "root", Type: authz.KeyTypeAccount, AccountID: "acct-1", Hash: h.HashString(root), Active: true,
	}}); err != nil {
		t.Fatal(err)
	}
	engine := &authz.Engine{Keys: st, Routes: account.AccountRouter(), Hasher: h, Now: clock.Now}
	srv := accountgrpc.NewServer(account.NewService(st, engine, h, account.Options{Compile: accounttest.CompileOptions, Now: clock.Now, RateLimits: accounttest.Unlimited}), nil)
	return &direct{store: st, srv: srv, rootKey: root, hasher: h}
}

func (d *direct) generateSAK(r *accountv1.GenerateServiceAccessKeyRequest) (*accountv1.GenerateServiceAccessKeyResponse, error) {
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(accountgrpc.KeyHeader, d.rootKey))
	info := &grpc.UnaryServerInfo{FullMethod: accountv1.AccountService_GenerateServiceAccessKey_FullMethodName}
	resp, err := d.srv.UnaryInterceptor()(ctx, r, info, func(ctx context.Context, req any) (any, error) {
		return d.srv.GenerateServiceAccessKey(ctx, req.(*accountv1.GenerateServiceAccessKeyRequest))
	})
	if err != nil {
		return nil, err
	}
	return resp.(*accountv1.GenerateServiceAccessKeyResponse), nil
}

// FuzzValidateGenerateServiceAccessKey feeds random field values to the
// request validation. It must never panic, must answer every refusal with
// a status naming a field, and must never hand the store a key that does
// not compile (the fake store re-compiles what it gets and fails the test).
func FuzzValidateGenerateServiceAccessKey(f *testing.F) {
	f.Add("", "acme-billing", "desc", "prod", "email-api !email-api:mutation:sendEmail", "10.0.0.0/8", "", "x-tenant", "${tenant.name}", false, int64(0), int64(0), "billing", "acme")
	f.Add("k-1", "n", "", "", "a::b", "10.0.0.0/33", "192.168.1.1/255.255.0.255", "x-keygate-key-id", "${nope}", true, int64(1780000000), int64(1770000000), "billing", "acme")
	f.Add("bad id", " n", "d\x00", "g\n", strings.Repeat("x", 4097), "::1/129", "fe80::1%eth0", "X-Upper", "$", false, int64(-62135596800), int64(253402300800), "", "nope")
	f.Add("k-2", "n2", "", "", "*:*:get*", "2001:db8::1/64", "1.2.3.4", "x-exp", "${key.expires_at} $$", false, int64(1770000000), int64(1780000000), "billing", "acme")
	f.Add("k-3", "n3", "", "", "", "", "", "", "", false, int64(0), int64(0), "nope", "acme")
	f.Add("k-4", "invoice\u202etxt", "", "part\u200bners", "", "", "", "set-cookie", "s=1", false, int64(0), int64(0), "billing", "acme")
	f.Add("k-5", "n5", "", "", "", "", "", "x-envoy-auth-headers-to-remove", "${operation}", false, int64(0), int64(0), "billing", "acme")

	f.Fuzz(func(t *testing.T, id, name, desc, group, scope, ip1, ip2, hName, hValue string, hDisabled bool, notBefore, expiresAt int64, appID, tenantID string) {
		req := &accountv1.GenerateServiceAccessKeyRequest{
			Id: id, Name: name, Description: desc, Group: group, Scope: scope, AppId: appID, TenantId: tenantID,
		}
		for _, ip := range []string{ip1, ip2} {
			if ip != "" {
				req.IpFilters = append(req.IpFilters, ip)
			}
		}
		if hName != "" || hValue != "" {
			req.ResponseHeaders = []*accountv1.ResponseHeader{{Name: hName, Value: hValue, Disabled: hDisabled}}
		}
		if notBefore != 0 {
			req.NotBefore = &timestamppb.Timestamp{Seconds: notBefore}
		}
		if expiresAt != 0 {
			req.ExpiresAt = &timestamppb.Timestamp{Seconds: expiresAt, Nanos: int32(expiresAt % 1000)}
		}
		// What gRPC cannot carry (invalid UTF-8 in a string) never
		// reaches the server.
		if _, err := proto.Marshal(req); err != nil {
			return
		}
		d := newDirect(t)
		resp, err := d.generateSAK(req)
		if err != nil {
			st, ok := status.FromError(err)
			if !ok {
				t.Fatalf("not a status: %v", err)
			}
			switch st.Code() {
			case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists:
			default:
				t.Fatalf("unexpected code %s: %s", st.Code(), st.Message())
			}
			if field, _, ok := strings.Cut(st.Message(), ": "); !ok || field == "" {
				t.Fatalf("message does not name a field: %q", st.Message())
			}
			if n := len(d.store.Keys()); n != 1 {
				t.Fatalf("a refused request stored a key (%d keys)", n)
			}
			return
		}
		k, ok := d.store.Key("acct-1", resp.GetKey().GetId())
		if !ok {
			t.Fatal("generated key not stored")
		}
		ck, err := authz.Compile(k.Spec, accounttest.CompileOptions)
		if err != nil {
			t.Fatalf("stored key does not compile: %v", err)
		}
		if !ck.Matches(d.hasher.Sum(resp.GetPrivateKey()), accounttest.T0.Add(time.Hour)) {
			t.Fatal("private_key does not match the stored hash")
		}
		if k.Spec.Type != authz.KeyTypeService || k.Spec.AppID != "billing" || k.Spec.TenantID != "acme" {
			t.Fatalf("stored %+v", k.Spec)
		}
		// What was accepted passes the name rules.
		for _, text := range []string{k.Spec.Name, k.Spec.Group} {
			if err := authz.CheckLabelText(text); err != nil {
				t.Fatalf("accepted a name or group that %v", err)
			}
		}
	})
}

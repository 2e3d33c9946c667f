package accountgrpc_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// TestKeyHasNoSecretField pins that the Key message can never carry a
// secret or a hash.
func TestKeyHasNoSecretField(t *testing.T) {
	fields := (&accountv1.Key{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		name := string(fields.Get(i).Name())
		for _, bad := range []string{"secret", "hash", "private", "key_value"} {
			if strings.Contains(name, bad) && name != "previous_secret_expire_time" {
				t.Errorf("Key has field %s", name)
			}
		}
	}
}

func TestGenerateKeys(t *testing.T) {
	s, ctx := setup(t)
	c := s.Client
	exp := accounttest.T0.Add(90 * 24 * time.Hour)
	nb := accounttest.T0.Add(time.Hour)

	sak := must(c.GenerateServiceAccessKey(ctx, &accountv1.GenerateServiceAccessKeyRequest{
		AppId: "billing", TenantId: "acme", Description: "prod", Scope: "email-api !email-api:mutation:sendEmail",
		Name: "acme-billing", Group: "prod", ExpiresAt: timestamppb.New(exp), NotBefore: timestamppb.New(nb),
		IpFilters: []string{"10.0.0.0/8", "192.168.178.1/255.255.255.0"},
		ResponseHeaders: []*accountv1.ResponseHeader{
			{Name: "x-tenant", Value: "${tenant.name}"},
			{Name: "x-off", Value: "v", Disabled: true},
		},
	}))
	k := sak.GetKey()
	want := &accountv1.Key{
		Id: k.GetId(), Name: "acme-billing", Type: accountv1.KeyType_KEY_TYPE_SERVICE, AppId: "billing", TenantId: "acme",
		AppName: "Billing", TenantName: "ACME Corp",
		Scope: "email-api !email-api:mutation:sendEmail", Active: true, Description: "prod", Group: "prod",
		NotBefore: timestamppb.New(nb), ExpiresAt: timestamppb.New(exp),
		IpFilters: []string{"10.0.0.0/8", "192.168.178.1/255.255.255.0"},
		ResponseHeaders: []*accountv1.ResponseHeader{
			{Name: "x-tenant", Value: "${tenant.name}"},
			{Name: "x-off", Value: "v", Disabled: true},
		},
		Origin:     accountv1.KeyOrigin_KEY_ORIGIN_GENERATED,
		CreateTime: timestamppb.New(accounttest.T0), UpdateTime: timestamppb.New(accounttest.T0),
	}
	if diff := cmp.Diff(want, k, protocmp.Transform()); diff != "" {
		t.Fatalf("service key (-want +got):\n%s", diff)
	}
	if kind, ok := apikey.KindOf(sak.GetPrivateKey()); !ok || kind != apikey.KindService {
		t.Fatalf("private_key is not a service secret (kind %q)", kind)
	}
	stored, ok := s.Store.Key("acct-1", k.GetId())
	if !ok || stored.Spec.Hash != s.Hasher.HashString(sak.GetPrivateKey()) || stored.Origin != store.OriginGenerated {
		t.Fatalf("stored %+v", stored)
	}
	got := must(c.GetKey(ctx, &accountv1.GetKeyRequest{Id: k.GetId()})).GetKey()
	if diff := cmp.Diff(k, got, protocmp.Transform()); diff != "" {
		t.Fatalf("get (-generated +got):\n%s", diff)
	}

	alsak := must(c.GenerateAppAccessKey(ctx, &accountv1.GenerateAppAccessKeyRequest{AppId: "billing", Name: "billing-app", Active: proto.Bool(false)}))
	if kind, _ := apikey.KindOf(alsak.GetPrivateKey()); kind != apikey.KindApp || alsak.GetKey().GetType() != accountv1.KeyType_KEY_TYPE_APP ||
		alsak.GetKey().GetActive() || alsak.GetKey().GetTenantId() != "" {
		t.Fatalf("app key %v (kind %q)", alsak.GetKey(), kind)
	}
	aak := must(c.GenerateAccountAccessKey(ctx, &accountv1.GenerateAccountAccessKeyRequest{Scope: "account-api:query:*", Id: "reader"}))
	if kind, _ := apikey.KindOf(aak.GetPrivateKey()); kind != apikey.KindAccount || aak.GetKey().GetId() != "reader" || aak.GetKey().GetName() != "reader" {
		t.Fatalf("account key %v (kind %q): an unnamed key is named by its id", aak.GetKey(), kind)
	}
	// The new account key works on the API at once, within its scope.
	reader := accounttest.Ctx(t.Context(), aak.GetPrivateKey())
	if n := len(must(c.ListKeys(reader, &accountv1.ListKeysRequest{})).GetKeys()); n != 4 {
		t.Fatalf("reader lists %d keys, want 4", n)
	}
	_, err := c.CreateApp(reader, &accountv1.CreateAppRequest{Name: "x"})
	wantCode(t, err, codes.PermissionDenied, "scope_denied", "account-api:mutation:createApp")

	// A generated key without a name is named by its generated id.
	anon := must(c.GenerateAppAccessKey(ctx, &accountv1.GenerateAppAccessKeyRequest{AppId: "billing"})).GetKey()
	if anon.GetId() == "" || anon.GetName() != anon.GetId() {
		t.Fatalf("unnamed key: %v", anon)
	}

	// Names are unique within the account.
	_, err = c.GenerateAppAccessKey(ctx, &accountv1.GenerateAppAccessKeyRequest{AppId: "billing", Name: "acme-billing"})
	wantCode(t, err, codes.AlreadyExists, "acme-billing")
	_, err = c.GenerateAccountAccessKey(ctx, &accountv1.GenerateAccountAccessKeyRequest{Id: "reader"})
	wantCode(t, err, codes.AlreadyExists, `key id "reader" already exists`)
}

func TestGenerateValidation(t *testing.T) {
	s, ctx := setup(t)
	c := s.Client
	t0 := accounttest.T0
	sak := func(mod func(r *accountv1.GenerateServiceAccessKeyRequest)) *accountv1.GenerateServiceAccessKeyRequest {
		r := &accountv1.GenerateServiceAccessKeyRequest{AppId: "billing", TenantId: "acme", Name: "k"}
		mod(r)
		return r
	}
	for _, tc := range []struct {
		name string
		req  *accountv1.GenerateServiceAccessKeyRequest
		code codes.Code
		want []string
	}{
		{"bad scope", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Scope = "email-api a::b" }),
			codes.InvalidArgument, []string{`scope: pattern 2 "a::b"`}},
		{"bad CIDR", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.IpFilters = []string{"10.0.0.0/33"} }),
			codes.InvalidArgument, []string{`ip_filters: [0] "10.0.0.0/33"`}},
		{"not an address", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.IpFilters = []string{"1.2.3.4", "nope"} }),
			codes.InvalidArgument, []string{`ip_filters: [1] "nope": not an IPv4 or IPv6 address`}},
		{"unknown template variable", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) {
			r.ResponseHeaders = []*accountv1.ResponseHeader{{Name: "x-who", Value: "${user.id}"}}
		}), codes.InvalidArgument, []string{"response_headers:", "unknown variable ${user.id}"}},
		{"reserved header", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) {
			r.ResponseHeaders = []*accountv1.ResponseHeader{{Name: "x-keygate-key-id", Value: "x"}}
		}), codes.InvalidArgument, []string{"response_headers:", "reserved"}},
		{"not_before after expires_at", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) {
			r.NotBefore, r.ExpiresAt = timestamppb.New(t0.Add(2*time.Hour)), timestamppb.New(t0.Add(time.Hour))
		}), codes.InvalidArgument, []string{"not_before: 2026-06-01T14:00:00Z is after expires_at 2026-06-01T13:00:00Z"}},
		{"invalid timestamp", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) {
			r.ExpiresAt = &timestamppb.Timestamp{Seconds: 1, Nanos: -1}
		}), codes.InvalidArgument, []string{"expires_at: not a valid timestamp"}},
		{"missing app_id", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.AppId = "" }),
			codes.InvalidArgument, []string{"app_id: required for service keys"}},
		{"missing tenant_id", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.TenantId = "" }),
			codes.InvalidArgument, []string{"tenant_id: required for service keys"}},
		{"missing both, all reported", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.AppId, r.TenantId, r.Scope = "", "", "::" }),
			codes.InvalidArgument, []string{"app_id: required", "tenant_id: required", "scope:"}},
		{"long name", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Name = strings.Repeat("n", 201) }),
			codes.ResourceExhausted, []string{"name: longer than 200"}},
		{"long description", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Description = strings.Repeat("n", 1025) }),
			codes.ResourceExhausted, []string{"description: longer than 1024"}},
		{"description of 1 KiB", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) {
			r.Description, r.AppId = strings.Repeat("n", 1024), "nope"
		}),
			codes.NotFound, []string{`app_id: app "nope" not found`}},
		{"long scope", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Scope = strings.Repeat("a", 4097) }),
			codes.ResourceExhausted, []string{"scope: longer than 4096 bytes"}},
		{"201 scope patterns", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Scope = strings.Repeat("a ", 201) }),
			codes.ResourceExhausted, []string{"scope: 201 patterns, more than 200"}},
		{"long group", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Group = strings.Repeat("g", 201) }),
			codes.ResourceExhausted, []string{"group: longer than 200"}},
		{"size and other problems: the size first", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Name, r.Id = strings.Repeat("n", 201), "a b" }),
			codes.ResourceExhausted, []string{"name: longer than 200"}},
		{"group with control", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Group = "a\x01" }),
			codes.InvalidArgument, []string{"group: contains a control character"}},
		{"too many filters", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.IpFilters = make([]string, 101) }),
			codes.ResourceExhausted, []string{"ip_filters: more than 100"}},
		{"bad id", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Id = "k 1" }),
			codes.InvalidArgument, []string{"id: may contain only"}},
		{"unknown app", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.AppId = "nope" }),
			codes.NotFound, []string{`app_id: app "nope" not found`}},
		{"unknown tenant", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.TenantId = "nope" }),
			codes.NotFound, []string{`tenant_id: tenant "nope" not found`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.GenerateServiceAccessKey(ctx, tc.req)
			wantCode(t, err, tc.code, tc.want...)
		})
	}
	_, err := c.GenerateAppAccessKey(ctx, &accountv1.GenerateAppAccessKeyRequest{Name: "x"})
	wantCode(t, err, codes.InvalidArgument, "app_id: required for app keys")
	_, err = c.GenerateAppAccessKey(ctx, &accountv1.GenerateAppAccessKeyRequest{AppId: "billing", ResponseHeaders: []*accountv1.ResponseHeader{{Name: "x-t", Value: "${tenant.id}"}}})
	wantCode(t, err, codes.InvalidArgument, "response_headers:", "tenant variable")
	_, err = c.GenerateAppAccessKey(ctx, &accountv1.GenerateAppAccessKeyRequest{AppId: "nope"})
	wantCode(t, err, codes.NotFound, "app_id")

	// Wrong type combinations, through ImportKey which takes any type.
	secret := "legacy-secret-0123456789"
	for _, tc := range []struct {
		name string
		req  *accountv1.ImportKeyRequest
		want string
	}{
		{"no type", &accountv1.ImportKeyRequest{PrivateKey: secret}, "type: required"},
		{"app key with tenant", &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_APP, AppId: "billing", TenantId: "acme", PrivateKey: secret}, "tenant_id: not allowed for app keys"},
		{"account key (never imported)", &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_ACCOUNT, PrivateKey: secret}, "type: account keys are always generated, never imported"},
		{"app key with tenant", &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_APP, AppId: "billing", TenantId: "acme", PrivateKey: secret}, "tenant_id: not allowed for app keys"},
		{"service key without tenant", &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_SERVICE, AppId: "billing", PrivateKey: secret}, "tenant_id: required for service keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.ImportKey(ctx, tc.req)
			wantCode(t, err, codes.InvalidArgument, tc.want)
		})
	}
	if n := len(s.Store.Keys()); n != 2 {
		t.Fatalf("%d keys stored after refusals, want the 2 bootstrap keys", n)
	}
}

func TestImportKey(t *testing.T) {
	s, ctx := setup(t)
	c := s.Client
	secret := "migrated-Secret-0123456789"
	k := must(c.ImportKey(ctx, &accountv1.ImportKeyRequest{
		Type: accountv1.KeyType_KEY_TYPE_SERVICE, AppId: "billing", TenantId: "acme", PrivateKey: secret, Name: "legacy",
	})).GetKey()
	if k.GetOrigin() != accountv1.KeyOrigin_KEY_ORIGIN_CUSTOM || k.GetType() != accountv1.KeyType_KEY_TYPE_SERVICE {
		t.Fatalf("imported %v", k)
	}
	stored, _ := s.Store.Key("acct-1", k.GetId())
	if stored.Spec.Hash != s.Hasher.HashString(secret) || stored.Origin != store.OriginCustom {
		t.Fatalf("stored %+v", stored)
	}
	// The same secret twice: the store refuses it, with the same words
	// whether the secret is this account's or another's, naming neither
	// (issue 15: no oracle of which secrets work elsewhere).
	_, err := c.ImportKey(ctx, &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_APP, AppId: "billing", PrivateKey: secret, Name: "again"})
	wantCode(t, err, codes.AlreadyExists, "private_key: this secret cannot be used")
	ownAnswer := status.Convert(err).Message()
	if _, err := s.Store.CreateApp(context.Background(), store.Actor{}, store.App{AccountID: "acct-2", ID: "billing", Name: "Billing", Active: true}); err != nil {
		t.Fatal(err)
	}
	other := accounttest.Ctx(t.Context(), s.OtherKey)
	_, err = c.ImportKey(other, &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_APP, AppId: "billing", PrivateKey: secret, Name: "probe"})
	wantCode(t, err, codes.AlreadyExists)
	if got := status.Convert(err).Message(); got != ownAnswer || strings.Contains(got, k.GetId()) || strings.Contains(got, "acct-1") {
		t.Fatalf("another account's collision answered %q, its own %q", got, ownAnswer)
	}

	for _, tc := range []struct{ name, secret, want string }{
		{"short", "short-secret", "private_key: malformed key: shorter than 16 bytes"},
		{"empty", "", "private_key: malformed key: empty"},
		{"generated prefix", "kg_sak_0123456789abcdefghij", "private_key: malformed key: custom secrets may not start with"},
		{"comma", "abcdefgh,ijklmnopq", "private_key: malformed key: custom secrets may not contain a comma"},
		{"space", "abcdefgh ijklmnopq", "private_key: malformed key: contains a space at byte 8; a key holds printable ASCII only"},
		// SPEC §9: imported from now on, at least 24 bytes of at least 10
		// distinct characters.
		{"16 times a", strings.Repeat("a", 16), "private_key: 16 bytes: an imported secret needs at least 24"},
		{"23 bytes", "abcdefghijklmnopqrstuvw", "private_key: 23 bytes: an imported secret needs at least 24"},
		{"9 distinct characters", strings.Repeat("abcdefghi", 3), "private_key: 9 distinct characters: an imported secret needs at least 10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.ImportKey(ctx, &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_APP, AppId: "billing", PrivateKey: tc.secret})
			wantCode(t, err, codes.InvalidArgument, tc.want)
			if tc.secret != "" && strings.Contains(status.Convert(err).Message(), tc.secret) {
				t.Fatal("the error echoes the secret")
			}
		})
	}
}

func TestListKeysFilters(t *testing.T) {
	s, ctx := setup(t)
	c := s.Client
	must(c.CreateApp(ctx, &accountv1.CreateAppRequest{Id: "email", Name: "Email"}))
	must(c.CreateTenant(ctx, &accountv1.CreateTenantRequest{Id: "globex", Name: "Globex"}))
	exp := timestamppb.New(accounttest.T0.Add(24 * time.Hour))
	gen := func(id, app, tenant, group string, active bool, expires *timestamppb.Timestamp) {
		t.Helper()
		must(c.GenerateServiceAccessKey(ctx, &accountv1.GenerateServiceAccessKeyRequest{
			Id: id, AppId: app, TenantId: tenant, Group: group, Active: proto.Bool(active), ExpiresAt: expires,
		}))
	}
	gen("k1", "billing", "acme", "prod", true, exp)
	gen("k2", "billing", "globex", "prod", false, nil)
	gen("k3", "email", "acme", "dev", true, nil)
	must(c.GenerateAppAccessKey(ctx, &accountv1.GenerateAppAccessKeyRequest{Id: "k4", AppId: "email"}))
	s.Store.Touch("acct-1", "k3", accounttest.T0.Add(-time.Hour))
	s.Store.Touch("acct-1", "k1", accounttest.T0.Add(-48*time.Hour))

	ids := func(r *accountv1.ListKeysRequest) []string {
		t.Helper()
		var out []string
		for _, k := range must(c.ListKeys(ctx, r)).GetKeys() {
			out = append(out, k.GetId())
		}
		return out
	}
	for _, tc := range []struct {
		name string
		req  *accountv1.ListKeysRequest
		want []string
	}{
		{"all", &accountv1.ListKeysRequest{}, []string{"k1", "k2", "k3", "k4", "root"}},
		{"app", &accountv1.ListKeysRequest{AppId: "billing"}, []string{"k1", "k2"}},
		{"tenant", &accountv1.ListKeysRequest{TenantId: "acme"}, []string{"k1", "k3"}},
		{"group", &accountv1.ListKeysRequest{Group: "prod"}, []string{"k1", "k2"}},
		{"type app", &accountv1.ListKeysRequest{Type: accountv1.KeyType_KEY_TYPE_APP}, []string{"k4"}},
		{"type account", &accountv1.ListKeysRequest{Type: accountv1.KeyType_KEY_TYPE_ACCOUNT}, []string{"root"}},
		{"inactive", &accountv1.ListKeysRequest{Active: proto.Bool(false)}, []string{"k2"}},
		{"expiring", &accountv1.ListKeysRequest{ExpiringBefore: timestamppb.New(accounttest.T0.Add(48 * time.Hour))}, []string{"k1"}},
		{"unused since", &accountv1.ListKeysRequest{UnusedSince: timestamppb.New(accounttest.T0.Add(-24 * time.Hour))}, []string{"k1", "k2", "k4", "root"}},
		{"combined", &accountv1.ListKeysRequest{AppId: "billing", Active: proto.Bool(true)}, []string{"k1"}},
		{"name contains", &accountv1.ListKeysRequest{NameContains: "K"}, []string{"k1", "k2", "k3", "k4"}},
		{"sorted by name, descending", &accountv1.ListKeysRequest{OrderBy: "-name"}, []string{"root", "k4", "k3", "k2", "k1"}},
		{"sorted by expiry", &accountv1.ListKeysRequest{OrderBy: "expires", AppId: "billing"}, []string{"k1", "k2"}},
		{"sorted by last use, most recent first", &accountv1.ListKeysRequest{OrderBy: "-last_used"}, []string{"k3", "k1", "root", "k4", "k2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, ids(tc.req)); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
	// Paging.
	first := must(c.ListKeys(ctx, &accountv1.ListKeysRequest{PageSize: 3}))
	second := must(c.ListKeys(ctx, &accountv1.ListKeysRequest{PageSize: 3, PageToken: first.GetNextPageToken()}))
	if len(first.GetKeys()) != 3 || len(second.GetKeys()) != 2 || second.GetNextPageToken() != "" {
		t.Fatalf("pages of %d and %d, next %q", len(first.GetKeys()), len(second.GetKeys()), second.GetNextPageToken())
	}
	byName := must(c.ListKeys(ctx, &accountv1.ListKeysRequest{PageSize: 2, OrderBy: "name"}))
	rest := must(c.ListKeys(ctx, &accountv1.ListKeysRequest{PageSize: 10, OrderBy: "name", PageToken: byName.GetNextPageToken()}))
	if len(rest.GetKeys()) != 3 || rest.GetKeys()[0].GetId() != "k3" {
		t.Fatalf("second page by name: %v", rest.GetKeys())
	}
	_, err := c.ListKeys(ctx, &accountv1.ListKeysRequest{OrderBy: "-name", PageToken: byName.GetNextPageToken()})
	wantCode(t, err, codes.InvalidArgument, "page_token: the token is of the list sorted by name, not by -name")
	_, err = c.ListKeys(ctx, &accountv1.ListKeysRequest{OrderBy: "colour"})
	wantCode(t, err, codes.InvalidArgument, "order_by")
	_, err = c.ListKeys(ctx, &accountv1.ListKeysRequest{PageToken: "garbage"})
	wantCode(t, err, codes.InvalidArgument, "page_token")
	_, err = c.ListKeys(ctx, &accountv1.ListKeysRequest{Type: accountv1.KeyType(42)})
	wantCode(t, err, codes.InvalidArgument, "type: unknown key type 42")
	_, err = c.ListKeys(ctx, &accountv1.ListKeysRequest{PageSize: 1001})
	wantCode(t, err, codes.InvalidArgument, "page_size: at most 1000")
	// last_used_time is reported.
	k3 := must(c.GetKey(ctx, &accountv1.GetKeyRequest{Id: "k3"})).GetKey()
	if !k3.GetLastUsedTime().AsTime().Equal(accounttest.T0.Add(-time.Hour)) {
		t.Fatalf("last_used_time %v", k3.GetLastUsedTime())
	}
}

func TestUpdateKey(t *testing.T) {
	s, ctx := setup(t)
	c := s.Client
	exp := timestamppb.New(accounttest.T0.Add(30 * 24 * time.Hour))
	orig := must(c.GenerateServiceAccessKey(ctx, &accountv1.GenerateServiceAccessKeyRequest{
		Id: "k1", AppId: "billing", TenantId: "acme", Name: "one", Description: "d", Group: "g", Scope: "email-api",
		ExpiresAt: exp, IpFilters: []string{"10.0.0.0/8"},
		ResponseHeaders: []*accountv1.ResponseHeader{{Name: "x-a", Value: "1"}},
	})).GetKey()
	must(c.GenerateAppAccessKey(ctx, &accountv1.GenerateAppAccessKeyRequest{Id: "k2", AppId: "billing", Name: "two"}))
	s.Clock.Add(time.Minute)

	update := func(r *accountv1.UpdateKeyRequest) *accountv1.Key {
		t.Helper()
		r.Id = "k1"
		return must(c.UpdateKey(ctx, r)).GetKey()
	}
	// Each case changes one field; everything else must stay as it was.
	cur := orig
	for _, tc := range []struct {
		name  string
		req   *accountv1.UpdateKeyRequest
		apply func(k *accountv1.Key)
	}{
		{"description", &accountv1.UpdateKeyRequest{Description: proto.String("new")}, func(k *accountv1.Key) { k.Description = "new" }},
		{"name", &accountv1.UpdateKeyRequest{Name: proto.String("uno")}, func(k *accountv1.Key) { k.Name = "uno" }},
		{"group cleared", &accountv1.UpdateKeyRequest{Group: proto.String("")}, func(k *accountv1.Key) { k.Group = "" }},
		{"scope", &accountv1.UpdateKeyRequest{Scope: proto.String("email-api:query")}, func(k *accountv1.Key) { k.Scope = "email-api:query" }},
		{"inactive", &accountv1.UpdateKeyRequest{Active: proto.Bool(false)}, func(k *accountv1.Key) { k.Active = false }},
		{"not_before", &accountv1.UpdateKeyRequest{NotBefore: timestamppb.New(accounttest.T0)}, func(k *accountv1.Key) { k.NotBefore = timestamppb.New(accounttest.T0) }},
		{"clear expiry", &accountv1.UpdateKeyRequest{ClearExpiresAt: true}, func(k *accountv1.Key) { k.ExpiresAt = nil }},
		{"ip filters replaced", &accountv1.UpdateKeyRequest{IpFilters: &accountv1.IPFilters{Filters: []string{"2001:db8::/32"}}}, func(k *accountv1.Key) { k.IpFilters = []string{"2001:db8::/32"} }},
		{"ip filters cleared", &accountv1.UpdateKeyRequest{IpFilters: &accountv1.IPFilters{}}, func(k *accountv1.Key) { k.IpFilters = nil }},
		{"headers replaced", &accountv1.UpdateKeyRequest{ResponseHeaders: &accountv1.ResponseHeaders{Headers: []*accountv1.ResponseHeader{{Name: "x-b", Value: "${key.name}", Disabled: true}}}},
			func(k *accountv1.Key) {
				k.ResponseHeaders = []*accountv1.ResponseHeader{{Name: "x-b", Value: "${key.name}", Disabled: true}}
			}},
		{"headers cleared", &accountv1.UpdateKeyRequest{ResponseHeaders: &accountv1.ResponseHeaders{}}, func(k *accountv1.Key) { k.ResponseHeaders = nil }},
		{"clear not_before", &accountv1.UpdateKeyRequest{ClearNotBefore: true}, func(k *accountv1.Key) { k.NotBefore = nil }},
		{"nothing", &accountv1.UpdateKeyRequest{}, func(*accountv1.Key) {}},
	} {
		want := proto.Clone(cur).(*accountv1.Key)
		tc.apply(want)
		got := update(tc.req)
		if diff := cmp.Diff(want, got, protocmp.Transform(), protocmp.IgnoreFields(&accountv1.Key{}, "update_time")); diff != "" {
			t.Fatalf("%s: (-want +got):\n%s", tc.name, diff)
		}
		cur = got
	}
	if !cur.GetUpdateTime().AsTime().Equal(accounttest.T0.Add(time.Minute)) {
		t.Fatalf("update_time %v", cur.GetUpdateTime().AsTime())
	}

	// The result is validated as a whole: an expiry before the key's
	// not_before is refused although the request alone is fine.
	update(&accountv1.UpdateKeyRequest{NotBefore: timestamppb.New(accounttest.T0.Add(time.Hour))})
	for _, tc := range []struct {
		name string
		req  *accountv1.UpdateKeyRequest
		code codes.Code
		want []string
	}{
		{"expiry before not_before", &accountv1.UpdateKeyRequest{Id: "k1", ExpiresAt: timestamppb.New(accounttest.T0)}, codes.InvalidArgument, []string{"not_before:", "is after expires_at"}},
		{"bad scope", &accountv1.UpdateKeyRequest{Id: "k1", Scope: proto.String("a:b:c:d")}, codes.InvalidArgument, []string{"scope: pattern 1"}},
		{"bad filter", &accountv1.UpdateKeyRequest{Id: "k1", IpFilters: &accountv1.IPFilters{Filters: []string{"300.1.1.1"}}}, codes.InvalidArgument, []string{"ip_filters:"}},
		{"tenant variable on an app key", &accountv1.UpdateKeyRequest{Id: "k2", ResponseHeaders: &accountv1.ResponseHeaders{Headers: []*accountv1.ResponseHeader{{Name: "x-t", Value: "${tenant.name}"}}}}, codes.InvalidArgument, []string{"response_headers:", "tenant variable"}},
		{"set and clear", &accountv1.UpdateKeyRequest{Id: "k1", ExpiresAt: timestamppb.New(accounttest.T0), ClearExpiresAt: true}, codes.InvalidArgument, []string{"expires_at: set together with clear_expires_at"}},
		{"empty name", &accountv1.UpdateKeyRequest{Id: "k1", Name: proto.String("")}, codes.InvalidArgument, []string{"name: required"}},
		{"no id", &accountv1.UpdateKeyRequest{Name: proto.String("x")}, codes.InvalidArgument, []string{"id: required"}},
		{"unknown key", &accountv1.UpdateKeyRequest{Id: "nope", Name: proto.String("x")}, codes.NotFound, []string{`key "nope" not found`}},
		{"name taken", &accountv1.UpdateKeyRequest{Id: "k1", Name: proto.String("two")}, codes.AlreadyExists, []string{"two"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.UpdateKey(ctx, tc.req)
			wantCode(t, err, tc.code, tc.want...)
		})
	}
	after := must(c.GetKey(ctx, &accountv1.GetKeyRequest{Id: "k1"})).GetKey()
	if after.GetName() != "uno" || after.GetScope() != "email-api:query" || after.GetExpiresAt() != nil {
		t.Fatalf("a refused update changed the key: %v", after)
	}
}

func TestRegenerateKey(t *testing.T) {
	s, ctx := setup(t)
	c := s.Client
	gen := must(c.GenerateServiceAccessKey(ctx, &accountv1.GenerateServiceAccessKeyRequest{Id: "k1", AppId: "billing", TenantId: "acme"}))
	oldSecret := gen.GetPrivateKey()
	lookup := func(secret string) bool {
		t.Helper()
		k, err := s.Store.LookupKey(t.Context(), s.Hasher.Sum(secret))
		if errors.Is(err, authz.ErrKeyNotFound) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		return k.Matches(s.Hasher.Sum(secret), s.Clock.Now())
	}

	r := must(c.RegenerateKey(ctx, &accountv1.RegenerateKeyRequest{Id: "k1", GracePeriod: durationpb.New(10 * time.Minute)}))
	if kind, _ := apikey.KindOf(r.GetPrivateKey()); kind != apikey.KindService || r.GetPrivateKey() == oldSecret {
		t.Fatalf("new secret of kind %q", kind)
	}
	if got := r.GetKey().GetPreviousSecretExpireTime().AsTime(); !got.Equal(accounttest.T0.Add(10 * time.Minute)) {
		t.Fatalf("previous_secret_expire_time %v", got)
	}
	if !lookup(r.GetPrivateKey()) || !lookup(oldSecret) {
		t.Fatal("during the grace period both secrets must work")
	}
	s.Clock.Add(10 * time.Minute)
	if !lookup(r.GetPrivateKey()) || lookup(oldSecret) {
		t.Fatal("after the grace period only the new secret may work")
	}

	// No grace: the old secret stops at once.
	prev := r.GetPrivateKey()
	r = must(c.RegenerateKey(ctx, &accountv1.RegenerateKeyRequest{Id: "k1"}))
	if lookup(prev) || !lookup(r.GetPrivateKey()) || r.GetKey().GetPreviousSecretExpireTime() != nil {
		t.Fatal("without grace the old secret must stop at once")
	}

	// A custom key regenerates to a generated secret of its type.
	must(c.ImportKey(ctx, &accountv1.ImportKeyRequest{Id: "imp", Type: accountv1.KeyType_KEY_TYPE_APP, AppId: "billing", PrivateKey: "custom-secret-0123456789"}))
	r = must(c.RegenerateKey(ctx, &accountv1.RegenerateKeyRequest{Id: "imp"}))
	if kind, _ := apikey.KindOf(r.GetPrivateKey()); kind != apikey.KindApp {
		t.Fatalf("custom key regenerated to kind %q", kind)
	}

	_, err := c.RegenerateKey(ctx, &accountv1.RegenerateKeyRequest{Id: "k1", GracePeriod: durationpb.New(-time.Second)})
	wantCode(t, err, codes.InvalidArgument, "grace_period: must not be negative")
	_, err = c.RegenerateKey(ctx, &accountv1.RegenerateKeyRequest{Id: "k1", GracePeriod: durationpb.New(31 * 24 * time.Hour)})
	wantCode(t, err, codes.InvalidArgument, "grace_period: at most 720h0m0s")
	_, err = c.RegenerateKey(ctx, &accountv1.RegenerateKeyRequest{Id: "nope"})
	wantCode(t, err, codes.NotFound, `key "nope" not found`)
}

func TestRegenerateAcrossHashAlgorithms(t *testing.T) {
	s, ctx := setup(t)
	// A key stored with HMAC (a server that had a pepper) cannot keep its
	// old secret beside a new SHA-256 one.
	secret := "pre-pepper-change-0123456789"
	hm := apikey.NewHasher([]byte("0123456789abcdef-pepper"))
	if _, err := s.Store.CreateKey(t.Context(), store.Actor{}, store.Key{Spec: authz.KeySpec{
		ID: "old", Name: "old", Type: authz.KeyTypeApp, AccountID: "acct-1", AppID: "billing",
		Hash: hm.HashString(secret), Active: true,
	}, Origin: store.OriginCustom}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Client.RegenerateKey(ctx, &accountv1.RegenerateKeyRequest{Id: "old", GracePeriod: durationpb.New(time.Minute)})
	wantCode(t, err, codes.FailedPrecondition, "grace_period:", "hmac-sha256")
	must(s.Client.RegenerateKey(ctx, &accountv1.RegenerateKeyRequest{Id: "old"}))
}

func TestDeleteKey(t *testing.T) {
	s, ctx := setup(t)
	c := s.Client
	aak := must(c.GenerateAccountAccessKey(ctx, &accountv1.GenerateAccountAccessKeyRequest{Id: "temp"}))
	as := accounttest.Ctx(t.Context(), aak.GetPrivateKey())
	must(c.ListApps(as, &accountv1.ListAppsRequest{}))
	must(c.DeleteKey(ctx, &accountv1.DeleteKeyRequest{Id: "temp"}))
	_, err := c.GetKey(ctx, &accountv1.GetKeyRequest{Id: "temp"})
	wantCode(t, err, codes.NotFound)
	_, err = c.ListApps(as, &accountv1.ListAppsRequest{})
	wantCode(t, err, codes.Unauthenticated, "unknown_key")
	_, err = c.DeleteKey(ctx, &accountv1.DeleteKeyRequest{Id: "temp"})
	wantCode(t, err, codes.NotFound)
}

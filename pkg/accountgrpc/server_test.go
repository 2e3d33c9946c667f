package accountgrpc_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/accountgrpc"
	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// wantCode fails unless err is a status with code c whose message
// contains every part.
func wantCode(t *testing.T, err error, c codes.Code, parts ...string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("error %v is not a gRPC status (want %s)", err, c)
	}
	if st.Code() != c {
		t.Fatalf("code %s (%q), want %s", st.Code(), st.Message(), c)
	}
	for _, p := range parts {
		if !strings.Contains(st.Message(), p) {
			t.Fatalf("message %q does not contain %q", st.Message(), p)
		}
	}
}

// must returns v, or panics on an unexpected error: the test then fails
// with the error and the line that made the call.
func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("unexpected error: %v", err))
	}
	return v
}

// setup starts a server with app "billing" and tenant "acme".
func setup(t *testing.T) (*accounttest.Server, context.Context) {
	t.Helper()
	s := accounttest.Start(t)
	ctx := s.Root(t.Context())
	must(s.Client.CreateApp(ctx, &accountv1.CreateAppRequest{Id: "billing", Name: "Billing"}))
	must(s.Client.CreateTenant(ctx, &accountv1.CreateTenantRequest{Id: "acme", Name: "ACME Corp"}))
	return s, ctx
}

func TestOperationNames(t *testing.T) {
	methods := accountv1.File_keygate_account_v1_account_proto.Services().ByName("AccountService").Methods()
	if methods.Len() != 20 {
		t.Fatalf("%d methods, want 20", methods.Len())
	}
	want := map[string][2]string{
		"GenerateServiceAccessKey": {"mutation", "generateServiceAccessKey"},
		"GetApp":                   {"query", "getApp"},
		"ListKeys":                 {"query", "listKeys"},
		"ListAuditEvents":          {"query", "listAuditEvents"},
		"UpdateKey":                {"mutation", "updateKey"},
		"RegenerateKey":            {"mutation", "regenerateKey"},
		"ImportKey":                {"mutation", "importKey"},
	}
	if len(account.Operations) != methods.Len() {
		t.Errorf("the catalogue has %d operations, the gRPC service %d methods", len(account.Operations), methods.Len())
	}
	for i := range methods.Len() {
		name := string(methods.Get(i).Name())
		o, ok := accountgrpc.OperationOf(name)
		if !ok {
			t.Errorf("%s: no catalogue operation", name)
			continue
		}
		kind, op := o.Kind, o.Name
		if w, ok := want[name]; ok && (kind != w[0] || op != w[1]) {
			t.Errorf("%s: %s %s, want %s %s", name, kind, op, w[0], w[1])
		}
		isRead := strings.HasPrefix(name, "Get") || strings.HasPrefix(name, "List")
		if (kind == "query") != isRead {
			t.Errorf("%s: kind %s", name, kind)
		}
	}
}

func TestAccountRouter(t *testing.T) {
	r := account.AccountRouter()
	tg, reason := r.Resolve(&authz.RouteInput{Extensions: authz.Extensions{Service: "account-api", Kind: "query", Operation: "getApp"}})
	if reason != authz.OK || tg.Service != authz.AccountAPIService || tg.Kind != "query" || tg.Operation != "getApp" {
		t.Fatalf("got %+v %s", tg, reason)
	}
	for _, ty := range []authz.KeyType{authz.KeyTypeService, authz.KeyTypeApp} {
		if tg.Accepts.Has(ty) {
			t.Errorf("accepts %s keys", ty)
		}
	}
	if !tg.Accepts.Has(authz.KeyTypeAccount) {
		t.Error("does not accept account keys")
	}
	for _, in := range []authz.RouteInput{{}, {Extensions: authz.Extensions{Service: "email-api"}}} {
		if _, reason := r.Resolve(&in); reason != authz.UnknownRoute {
			t.Errorf("%v: %s, want unknown_route", in.Extensions, reason)
		}
	}
}

func TestApps(t *testing.T) {
	s, ctx := setup(t)
	c := s.Client

	created := must(c.CreateApp(ctx, &accountv1.CreateAppRequest{Id: "email", Name: "Email", Description: "sends mail"})).GetApp()
	if created.GetId() != "email" || !created.GetActive() || created.GetCreateTime() == nil || created.GetDescription() != "sends mail" {
		t.Fatalf("created %v", created)
	}
	gen := must(c.CreateApp(ctx, &accountv1.CreateAppRequest{Name: "No id"})).GetApp()
	if gen.GetId() == "" {
		t.Fatal("no id generated")
	}
	_, err := c.CreateApp(ctx, &accountv1.CreateAppRequest{Id: "email", Name: "Again"})
	wantCode(t, err, codes.AlreadyExists, `app id "email" already exists`)
	_, err = c.CreateApp(ctx, &accountv1.CreateAppRequest{Id: "email2", Name: "Email"})
	wantCode(t, err, codes.AlreadyExists, `name "Email" already exists`)

	got := must(c.GetApp(ctx, &accountv1.GetAppRequest{Id: "email"})).GetApp()
	if diff := cmp.Diff(created, got, protocmp.Transform()); diff != "" {
		t.Fatalf("get differs (-created +got):\n%s", diff)
	}

	// Pages of 2 over billing, email and the generated one.
	var ids []string
	token := ""
	for range 5 {
		resp := must(c.ListApps(ctx, &accountv1.ListAppsRequest{PageSize: 2, PageToken: token}))
		for _, a := range resp.GetApps() {
			ids = append(ids, a.GetId())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(ids) != 3 {
		t.Fatalf("listed %v, want 3 apps", ids)
	}

	// Only the fields present change.
	up := must(c.UpdateApp(ctx, &accountv1.UpdateAppRequest{Id: "email", Name: proto.String("E-mail")})).GetApp()
	if up.GetName() != "E-mail" || up.GetDescription() != "sends mail" || !up.GetActive() {
		t.Fatalf("after name update: %v", up)
	}
	up = must(c.UpdateApp(ctx, &accountv1.UpdateAppRequest{Id: "email", Active: proto.Bool(false), Description: proto.String("")})).GetApp()
	if up.GetName() != "E-mail" || up.GetDescription() != "" || up.GetActive() {
		t.Fatalf("after active/description update: %v", up)
	}
	noop := must(c.UpdateApp(ctx, &accountv1.UpdateAppRequest{Id: "email"})).GetApp()
	if !proto.Equal(noop, up) {
		t.Fatalf("empty update changed the app: %v", noop)
	}
	_, err = c.UpdateApp(ctx, &accountv1.UpdateAppRequest{Id: "nope", Name: proto.String("x")})
	wantCode(t, err, codes.NotFound, `app "nope" not found`)
	_, err = c.UpdateApp(ctx, &accountv1.UpdateAppRequest{Id: "email", Name: proto.String("")})
	wantCode(t, err, codes.InvalidArgument, "name: required")

	must(c.DeleteApp(ctx, &accountv1.DeleteAppRequest{Id: "email"}))
	_, err = c.GetApp(ctx, &accountv1.GetAppRequest{Id: "email"})
	wantCode(t, err, codes.NotFound, `app "email" not found`)
	_, err = c.DeleteApp(ctx, &accountv1.DeleteAppRequest{Id: "email"})
	wantCode(t, err, codes.NotFound)

	for _, tc := range []struct {
		name string
		req  *accountv1.CreateAppRequest
		want string
	}{
		{"no name", &accountv1.CreateAppRequest{Id: "x"}, "name: required"},
		{"bad id", &accountv1.CreateAppRequest{Id: "a b", Name: "x"}, "id: may contain only"},
		{"id starting with a dot", &accountv1.CreateAppRequest{Id: ".x", Name: "x"}, "id: may contain only"},
		{"long id", &accountv1.CreateAppRequest{Id: strings.Repeat("a", 129), Name: "x"}, "id: longer than 128"},
		{"long name", &accountv1.CreateAppRequest{Name: strings.Repeat("n", 201)}, "name: longer than 200"},
		{"name with newline", &accountv1.CreateAppRequest{Name: "a\nb"}, "name: contains a control character"},
		{"name with spaces around", &accountv1.CreateAppRequest{Name: " a"}, "name: starts or ends with white space"},
		{"long description", &accountv1.CreateAppRequest{Name: "x", Description: strings.Repeat("d", 2001)}, "description: longer than 2000"},
		{"two problems", &accountv1.CreateAppRequest{Id: "a/b"}, "id: may contain only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateApp(ctx, tc.req)
			wantCode(t, err, codes.InvalidArgument, tc.want)
		})
	}
	_, err = c.CreateApp(ctx, &accountv1.CreateAppRequest{Id: "a/b"})
	wantCode(t, err, codes.InvalidArgument, "id: may contain only", "; name: required")
	// The message is also a BadRequest detail, one violation per field.
	var br *errdetails.BadRequest
	for _, d := range status.Convert(err).Details() {
		if b, ok := d.(*errdetails.BadRequest); ok {
			br = b
		}
	}
	if br == nil || len(br.GetFieldViolations()) != 2 || br.GetFieldViolations()[1].GetField() != "name" {
		t.Fatalf("details %v", br)
	}
	_, err = c.ListApps(ctx, &accountv1.ListAppsRequest{PageSize: -1})
	wantCode(t, err, codes.InvalidArgument, "page_size")
	_, err = c.GetApp(ctx, &accountv1.GetAppRequest{})
	wantCode(t, err, codes.InvalidArgument, "id: required")
}

func TestTenants(t *testing.T) {
	s, ctx := setup(t)
	c := s.Client
	tn := must(c.CreateTenant(ctx, &accountv1.CreateTenantRequest{Id: "globex", Name: "Globex", Description: "d"})).GetTenant()
	if tn.GetId() != "globex" || !tn.GetActive() {
		t.Fatalf("created %v", tn)
	}
	_, err := c.CreateTenant(ctx, &accountv1.CreateTenantRequest{Id: "globex", Name: "Globex"})
	wantCode(t, err, codes.AlreadyExists)
	if got := must(c.GetTenant(ctx, &accountv1.GetTenantRequest{Id: "globex"})).GetTenant(); !proto.Equal(got, tn) {
		t.Fatalf("get %v", got)
	}
	list := must(c.ListTenants(ctx, &accountv1.ListTenantsRequest{}))
	if len(list.GetTenants()) != 2 || list.GetNextPageToken() != "" {
		t.Fatalf("list %v", list)
	}
	up := must(c.UpdateTenant(ctx, &accountv1.UpdateTenantRequest{Id: "globex", Description: proto.String("new")})).GetTenant()
	if up.GetName() != "Globex" || up.GetDescription() != "new" {
		t.Fatalf("update %v", up)
	}
	_, err = c.CreateTenant(ctx, &accountv1.CreateTenantRequest{Id: "x"})
	wantCode(t, err, codes.InvalidArgument, "name: required")
	must(c.DeleteTenant(ctx, &accountv1.DeleteTenantRequest{Id: "globex"}))
	_, err = c.GetTenant(ctx, &accountv1.GetTenantRequest{Id: "globex"})
	wantCode(t, err, codes.NotFound, `tenant "globex" not found`)
	// Deleting a tenant deletes its keys (the store's rule).
	must(c.GenerateServiceAccessKey(ctx, &accountv1.GenerateServiceAccessKeyRequest{AppId: "billing", TenantId: "acme", Id: "k"}))
	must(c.DeleteTenant(ctx, &accountv1.DeleteTenantRequest{Id: "acme"}))
	_, err = c.GetKey(ctx, &accountv1.GetKeyRequest{Id: "k"})
	wantCode(t, err, codes.NotFound)
}

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
			codes.InvalidArgument, []string{"name: longer than 200"}},
		{"long description", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Description = strings.Repeat("n", 2001) }),
			codes.InvalidArgument, []string{"description: longer than 2000"}},
		{"group with control", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Group = "a\x01" }),
			codes.InvalidArgument, []string{"group: contains a control character"}},
		{"too many filters", sak(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.IpFilters = make([]string, 101) }),
			codes.InvalidArgument, []string{"ip_filters: more than 100"}},
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
		{"account key with app", &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_ACCOUNT, AppId: "billing", PrivateKey: secret}, "app_id: not allowed for account keys"},
		{"account key with tenant", &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_ACCOUNT, TenantId: "acme", PrivateKey: secret}, "tenant_id: not allowed for account keys"},
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
	// The same secret twice: the store refuses it.
	_, err := c.ImportKey(ctx, &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_APP, AppId: "billing", PrivateKey: secret, Name: "again"})
	wantCode(t, err, codes.AlreadyExists)

	for _, tc := range []struct{ name, secret, want string }{
		{"short", "short-secret", "private_key: malformed key: shorter than 16 bytes"},
		{"empty", "", "private_key: malformed key: empty"},
		{"generated prefix", "kg_sak_0123456789abcdefghij", "private_key: malformed key: custom secrets may not start with"},
		{"comma", "abcdefgh,ijklmnopq", "private_key: malformed key: custom secrets may not contain a comma"},
		{"space", "abcdefgh ijklmnopq", "private_key: malformed key: contains a control or non-ASCII character at byte 8"},
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
	_, err := c.ListKeys(ctx, &accountv1.ListKeysRequest{PageToken: "garbage"})
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

func TestAuditEvents(t *testing.T) {
	s, ctx := setup(t)
	c := s.Client
	gen := must(c.GenerateAppAccessKey(ctx, &accountv1.GenerateAppAccessKeyRequest{Id: "k1", AppId: "billing", Scope: "email-api"}))
	must(c.UpdateKey(ctx, &accountv1.UpdateKeyRequest{Id: "k1", Scope: proto.String("email-api:query")}))
	evs := must(c.ListAuditEvents(ctx, &accountv1.ListAuditEventsRequest{})).GetEvents()
	var actions []string
	for _, e := range evs {
		actions = append(actions, e.GetAction())
	}
	// Newest first, as PostgreSQL lists them.
	want := []string{"key.update", "key.create", "tenant.create", "app.create", "key.create", "account.create"}
	if diff := cmp.Diff(want, actions); diff != "" {
		t.Fatalf("actions (-want +got):\n%s", diff)
	}
	last := evs[0]
	if last.GetActorKeyId() != "root" || last.GetActorKeyName() != "root" || last.GetObjectId() != "k1" ||
		last.GetBefore().GetFields()["scope"].GetStringValue() != "email-api" ||
		last.GetAfter().GetFields()["scope"].GetStringValue() != "email-api:query" {
		t.Fatalf("last event %v", last)
	}
	if strings.Contains(evs[1].String(), gen.GetPrivateKey()) {
		t.Fatal("audit event carries the secret")
	}
	// Another account sees none of it.
	other := must(c.ListAuditEvents(accounttest.Ctx(t.Context(), s.OtherKey), &accountv1.ListAuditEventsRequest{})).GetEvents()
	for _, e := range other {
		if e.GetObjectId() == "k1" || e.GetObjectId() == "billing" {
			t.Fatalf("acct-2 sees %v", e)
		}
	}
}

func TestAuthentication(t *testing.T) {
	s, ctx := setup(t)
	c := s.Client
	add := func(spec authz.KeySpec) context.Context {
		spec.AccountID = "acct-1"
		if spec.Name == "" {
			spec.Name = spec.ID
		}
		return accounttest.Ctx(t.Context(), s.AddKey(t, spec))
	}
	unknown, _ := apikey.Generate(apikey.KindAccount)
	inactive := add(authz.KeySpec{ID: "inactive", Type: authz.KeyTypeAccount})
	expired := add(authz.KeySpec{ID: "expired", Type: authz.KeyTypeAccount, Active: true, ExpiresAt: accounttest.T0})
	future := add(authz.KeySpec{ID: "future", Type: authz.KeyTypeAccount, Active: true, NotBefore: accounttest.T0.Add(time.Hour)})
	service := add(authz.KeySpec{ID: "svc", Type: authz.KeyTypeService, AppID: "billing", TenantID: "acme", Active: true})
	app := add(authz.KeySpec{ID: "app", Type: authz.KeyTypeApp, AppID: "billing", Active: true})
	readOnly := add(authz.KeySpec{ID: "ro", Type: authz.KeyTypeAccount, Active: true, Scope: "account-api:query:*"})
	genOnly := add(authz.KeySpec{ID: "gen", Type: authz.KeyTypeAccount, Active: true, Scope: "account-api:mutation:generateServiceAccessKey"})
	noDelete := add(authz.KeySpec{ID: "nodel", Type: authz.KeyTypeAccount, Active: true, Scope: "account-api !account-api:mutation:delete*"})
	offNet := add(authz.KeySpec{ID: "offnet", Type: authz.KeyTypeAccount, Active: true, IPFilters: []string{"10.0.0.0/8"}})
	onNet := add(authz.KeySpec{ID: "onnet", Type: authz.KeyTypeAccount, Active: true, IPFilters: []string{"127.0.0.0/8"}})

	listApps := func(ctx context.Context) error {
		_, err := c.ListApps(ctx, &accountv1.ListAppsRequest{})
		return err
	}
	createApp := func(ctx context.Context) error {
		_, err := c.CreateApp(ctx, &accountv1.CreateAppRequest{Name: "x"})
		return err
	}
	for _, tc := range []struct {
		name string
		call func(context.Context) error
		ctx  context.Context
		code codes.Code
		want []string
	}{
		{"missing key", listApps, t.Context(), codes.Unauthenticated, []string{"missing_key", "x-api-key"}},
		{"malformed key", listApps, accounttest.Ctx(t.Context(), "kg_aak_nope"), codes.Unauthenticated, []string{"malformed_key"}},
		{"two keys", listApps, accounttest.Ctx(accounttest.Ctx(t.Context(), s.RootKey), s.RootKey), codes.Unauthenticated, []string{"malformed_key"}},
		{"unknown key", listApps, accounttest.Ctx(t.Context(), unknown), codes.Unauthenticated, []string{"unknown_key"}},
		{"inactive key", listApps, inactive, codes.Unauthenticated, []string{"inactive_key"}},
		{"expired key", listApps, expired, codes.Unauthenticated, []string{"expired_key"}},
		{"not yet valid", listApps, future, codes.Unauthenticated, []string{"not_yet_valid"}},
		{"service key", listApps, service, codes.PermissionDenied, []string{"wrong_key_type"}},
		{"app key", listApps, app, codes.PermissionDenied, []string{"wrong_key_type"}},
		{"query-only key reads", listApps, readOnly, codes.OK, nil},
		{"query-only key writes", createApp, readOnly, codes.PermissionDenied, []string{"scope_denied", "account-api:mutation:createApp"}},
		{"generate-only key lists", listApps, genOnly, codes.PermissionDenied, []string{"scope_denied", "account-api:query:listApps"}},
		{"generate-only key generates", func(ctx context.Context) error {
			_, err := c.GenerateServiceAccessKey(ctx, &accountv1.GenerateServiceAccessKeyRequest{AppId: "billing", TenantId: "acme"})
			return err
		}, genOnly, codes.OK, nil},
		{"deny pattern", func(ctx context.Context) error {
			_, err := c.DeleteApp(ctx, &accountv1.DeleteAppRequest{Id: "billing"})
			return err
		}, noDelete, codes.PermissionDenied, []string{"scope_denied", "deleteApp"}},
		{"deny pattern leaves the rest", createApp, noDelete, codes.OK, nil},
		{"ip not allowed", listApps, offNet, codes.PermissionDenied, []string{"ip_not_allowed"}},
		{"ip allowed", listApps, onNet, codes.OK, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(tc.ctx)
			if tc.code == codes.OK {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, err, tc.code, tc.want...)
		})
	}

	// The key store being down is Unavailable, never an allow.
	s.Store.SetLookupFail(errors.New("connection refused"))
	wantCode(t, listApps(ctx), codes.Unavailable, "store_unavailable")
	s.Store.SetLookupFail(nil)
	if err := listApps(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAccountIsolation(t *testing.T) {
	s, ctx := setup(t)
	c := s.Client
	must(c.GenerateAppAccessKey(ctx, &accountv1.GenerateAppAccessKeyRequest{Id: "k1", AppId: "billing"}))
	other := accounttest.Ctx(t.Context(), s.OtherKey)
	_, err := c.GetApp(other, &accountv1.GetAppRequest{Id: "billing"})
	wantCode(t, err, codes.NotFound)
	_, err = c.GetKey(other, &accountv1.GetKeyRequest{Id: "k1"})
	wantCode(t, err, codes.NotFound)
	_, err = c.DeleteKey(other, &accountv1.DeleteKeyRequest{Id: "k1"})
	wantCode(t, err, codes.NotFound)
	_, err = c.GenerateAppAccessKey(other, &accountv1.GenerateAppAccessKeyRequest{AppId: "billing"})
	wantCode(t, err, codes.NotFound, "app_id")
	keys := must(c.ListKeys(other, &accountv1.ListKeysRequest{})).GetKeys()
	if len(keys) != 1 || keys[0].GetId() != "other-root" {
		t.Fatalf("acct-2 lists %v", keys)
	}
	// acct-2 may use the same app ids and names; key ids are unique across
	// accounts (the change feed and last-used times name a key by id).
	must(c.CreateApp(other, &accountv1.CreateAppRequest{Id: "billing", Name: "Billing"}))
	_, err = c.GenerateAppAccessKey(other, &accountv1.GenerateAppAccessKeyRequest{Id: "k1", AppId: "billing"})
	wantCode(t, err, codes.AlreadyExists, `key id "k1" already exists`)
	must(c.GenerateAppAccessKey(other, &accountv1.GenerateAppAccessKeyRequest{Id: "k1-other", AppId: "billing"}))
}

func TestStoreErrors(t *testing.T) {
	s, ctx := setup(t)
	s.Store.SetFail(errors.New(`pq: relation "keys" does not exist at 10.1.2.3`))
	// Authentication reads the key store first: Unavailable.
	_, err := s.Client.ListApps(ctx, &accountv1.ListAppsRequest{})
	wantCode(t, err, codes.Unavailable)
	// With the key store up and the account store down: Internal, generic.
	s.Store.SetFail(nil)
	st := &failingStore{Store: s.Store, err: errors.New(`pq: relation "keys" does not exist at 10.1.2.3`)}
	client := startWith(t, st, s)
	_, err = client.ListApps(ctx, &accountv1.ListAppsRequest{})
	wantCode(t, err, codes.Internal, "internal error")
	if strings.Contains(status.Convert(err).Message(), "pq:") {
		t.Fatal("internal detail leaked to the caller")
	}
	st.err = store.ErrInvalid
	_, err = client.ListApps(ctx, &accountv1.ListAppsRequest{})
	wantCode(t, err, codes.InvalidArgument)
}

// failingStore answers ListApps with err and everything else from Store.
type failingStore struct {
	*accounttest.Store
	err error
}

func (f *failingStore) ListApps(context.Context, string, store.Page) ([]store.App, string, error) {
	return nil, "", f.err
}

// startWith serves an Account API over st, authenticating against base's
// key store, on a fresh listener.
func startWith(t *testing.T, st store.Accounts, base *accounttest.Server) accountv1.AccountServiceClient {
	t.Helper()
	srv := accountgrpc.NewServer(account.NewService(st, base.Engine, base.Hasher, account.Options{Compile: accounttest.CompileOptions, Now: base.Clock.Now}), nil)
	return serve(t, grpc.NewServer(grpc.ChainUnaryInterceptor(srv.UnaryInterceptor())), srv)
}

func TestWithoutInterceptor(t *testing.T) {
	s, ctx := setup(t)
	srv := accountgrpc.NewServer(account.NewService(s.Store, s.Engine, s.Hasher, account.Options{}), nil)
	client := serve(t, grpc.NewServer(), srv)
	_, err := client.ListApps(ctx, &accountv1.ListAppsRequest{})
	wantCode(t, err, codes.Unauthenticated, "not configured to authenticate")
}

func TestReflection(t *testing.T) {
	s := accounttest.Start(t)
	stream, err := reflectionpb.NewServerReflectionClient(s.Conn).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, svc := range resp.GetListServicesResponse().GetService() {
		names = append(names, svc.GetName())
	}
	if !strings.Contains(strings.Join(names, " "), "keygate.account.v1.AccountService") {
		t.Fatalf("reflection lists %v", names)
	}
	// And it can describe the service's file.
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "keygate.account.v1.AccountService"},
	}); err != nil {
		t.Fatal(err)
	}
	if resp, err = stream.Recv(); err != nil || len(resp.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Fatalf("file for the service: %v %v", resp, err)
	}
	_ = stream.CloseSend()
}

// TestNoSecretInLogs runs operations that handle secrets and checks that
// none of them reaches the logs.
func TestNoSecretInLogs(t *testing.T) {
	s, ctx := setup(t)
	c := s.Client
	var secrets []string
	g := must(c.GenerateServiceAccessKey(ctx, &accountv1.GenerateServiceAccessKeyRequest{Id: "k1", AppId: "billing", TenantId: "acme"}))
	secrets = append(secrets, g.GetPrivateKey())
	r := must(c.RegenerateKey(ctx, &accountv1.RegenerateKeyRequest{Id: "k1", GracePeriod: durationpb.New(time.Minute)}))
	secrets = append(secrets, r.GetPrivateKey())
	custom := "my-custom-secret-value-42"
	must(c.ImportKey(ctx, &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_APP, AppId: "billing", PrivateKey: custom}))
	secrets = append(secrets, custom, s.RootKey)
	_, _ = c.ImportKey(ctx, &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_APP, AppId: "billing", PrivateKey: custom})
	s.Store.SetLookupFail(errors.New("boom"))
	_, _ = c.ListApps(ctx, &accountv1.ListAppsRequest{})
	s.Store.SetLookupFail(nil)

	logs := s.Logs.String()
	if !strings.Contains(logs, "key created") || !strings.Contains(logs, "store unavailable") {
		t.Fatalf("expected log lines missing:\n%s", logs)
	}
	for _, sec := range secrets {
		if strings.Contains(logs, sec) {
			t.Fatalf("a secret is in the logs:\n%s", logs)
		}
	}
	for _, k := range s.Store.Keys() {
		if strings.Contains(k.Spec.Hash, "kg_") {
			t.Fatal("a secret was stored in place of a hash")
		}
	}
}

// TestEveryMethodIsProtected calls each method of the service without a
// key: all must be refused before any handler runs.
func TestEveryMethodIsProtected(t *testing.T) {
	s := accounttest.Start(t)
	methods := accountv1.File_keygate_account_v1_account_proto.Services().ByName("AccountService").Methods()
	for i := range methods.Len() {
		m := methods.Get(i)
		in := newMessage(m.Input())
		out := newMessage(m.Output())
		err := s.Conn.Invoke(t.Context(), "/keygate.account.v1.AccountService/"+string(m.Name()), in, out)
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s without a key: %v", m.Name(), err)
		}
	}
}

func newMessage(d protoreflect.MessageDescriptor) proto.Message {
	return dynamicpb.NewMessage(d)
}

// serve runs g with srv registered on a loopback listener and returns a
// client of it.
func serve(t *testing.T, g *grpc.Server, srv *accountgrpc.Server) accountv1.AccountServiceClient {
	t.Helper()
	accountgrpc.Register(g, srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return accountv1.NewAccountServiceClient(conn)
}

// TestNoEscalation: an account key that may manage keys can neither mint
// an account key with rights it lacks nor change, rotate or delete one that
// has more; service and app keys are not limited by it (their scopes grant
// nothing in the Account API). Refused calls change nothing.
func TestNoEscalation(t *testing.T) {
	s, root := setup(t)
	c := s.Client
	limited := accounttest.Ctx(t.Context(), s.AddKey(t, authz.KeySpec{ID: "limited", Name: "limited", AccountID: "acct-1",
		Type: authz.KeyTypeAccount, Active: true,
		Scope: "account-api:query:* account-api:mutation:generate* account-api:mutation:importKey account-api:mutation:updateKey account-api:mutation:regenerateKey account-api:mutation:deleteKey"}))
	weak := must(c.GenerateAccountAccessKey(root, &accountv1.GenerateAccountAccessKeyRequest{Name: "weak", Scope: "account-api:query:listApps"})).GetKey()
	strong := must(c.GenerateAccountAccessKey(root, &accountv1.GenerateAccountAccessKeyRequest{Name: "strong", Scope: "account-api"})).GetKey()
	customSecret := "a-custom-account-secret-0123456789"
	before := must(c.ListKeys(root, &accountv1.ListKeysRequest{}))

	refused := []struct {
		name string
		call func() error
		want string
	}{
		{"generate an unlimited account key (empty scope)", func() error {
			_, err := c.GenerateAccountAccessKey(limited, &accountv1.GenerateAccountAccessKeyRequest{Name: "x"})
			return err
		}, "createApp"},
		{"generate an account key with all of account-api", func() error {
			_, err := c.GenerateAccountAccessKey(limited, &accountv1.GenerateAccountAccessKeyRequest{Name: "x", Scope: "account-api"})
			return err
		}, "account-api:mutation:"},
		{"import an unlimited account key", func() error {
			_, err := c.ImportKey(limited, &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_ACCOUNT, PrivateKey: customSecret})
			return err
		}, "scope_exceeds_caller"},
		{"regenerate the root key (and learn its secret)", func() error {
			_, err := c.RegenerateKey(limited, &accountv1.RegenerateKeyRequest{Id: s.RootKeyID})
			return err
		}, "scope_exceeds_caller"},
		{"delete a stronger key", func() error {
			_, err := c.DeleteKey(limited, &accountv1.DeleteKeyRequest{Id: strong.GetId()})
			return err
		}, "scope_exceeds_caller"},
		{"change a stronger key", func() error {
			_, err := c.UpdateKey(limited, &accountv1.UpdateKeyRequest{Id: strong.GetId(), Description: proto.String("mine now")})
			return err
		}, "scope_exceeds_caller"},
		{"widen a weaker key", func() error {
			_, err := c.UpdateKey(limited, &accountv1.UpdateKeyRequest{Id: weak.GetId(), Scope: proto.String("account-api")})
			return err
		}, "scope_exceeds_caller"},
		{"widen itself", func() error {
			_, err := c.UpdateKey(limited, &accountv1.UpdateKeyRequest{Id: "limited", Scope: proto.String("")})
			return err
		}, "scope_exceeds_caller"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, tc.call(), codes.PermissionDenied, "scope_exceeds_caller", tc.want)
		})
	}
	after := must(c.ListKeys(root, &accountv1.ListKeysRequest{}))
	if diff := cmp.Diff(before, after, protocmp.Transform()); diff != "" {
		t.Fatalf("refused calls changed the keys (-before +after):\n%s", diff)
	}

	// Within its own rights it works.
	must(c.GenerateAccountAccessKey(limited, &accountv1.GenerateAccountAccessKeyRequest{Name: "reader", Scope: "account-api:query:*"}))
	must(c.UpdateKey(limited, &accountv1.UpdateKeyRequest{Id: weak.GetId(), Scope: proto.String("account-api:query:getApp")}))
	must(c.RegenerateKey(limited, &accountv1.RegenerateKeyRequest{Id: weak.GetId()}))
	must(c.GenerateServiceAccessKey(limited, &accountv1.GenerateServiceAccessKeyRequest{AppId: "billing", TenantId: "acme", Scope: "email-api"}))
	must(c.DeleteKey(limited, &accountv1.DeleteKeyRequest{Id: weak.GetId()}))
	// The root key's empty scope allows everything, so it may do all of it.
	must(c.DeleteKey(root, &accountv1.DeleteKeyRequest{Id: strong.GetId()}))
}

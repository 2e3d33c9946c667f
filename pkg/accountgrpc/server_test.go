package accountgrpc_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/accountgrpc"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/grpctest"
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
	if methods.Len() != 36 {
		t.Fatalf("%d methods, want 36", methods.Len())
	}
	want := map[string][2]string{
		"GenerateServiceAccessKey":  {"mutation", "generateServiceAccessKey"},
		"GetApp":                    {"query", "app"},
		"ListKeys":                  {"query", "keys"},
		"ListAuditEvents":           {"query", "auditEvents"},
		"UpdateKey":                 {"mutation", "updateKey"},
		"RegenerateKey":             {"mutation", "regenerateKey"},
		"ImportKey":                 {"mutation", "importKey"},
		"CreateServiceAccessRole":   {"mutation", "createServiceAccessRole"},
		"GetServiceAccessRole":      {"query", "serviceAccessRole"},
		"ListServiceAccessRoles":    {"query", "serviceAccessRoles"},
		"DeleteServiceAccessRole":   {"mutation", "deleteServiceAccessRole"},
		"GetServiceAccessDenial":    {"query", "serviceAccessDenial"},
		"ListServiceAccessDenials":  {"query", "serviceAccessDenials"},
		"UpdateServiceAccessDenial": {"mutation", "updateServiceAccessDenial"},
		"UpdateKeys":                {"mutation", "updateKeys"},
		"GetSyncStatus":             {"query", "syncStatus"},
		"ListReplicas":              {"query", "replicas"},
		"GetUsage":                  {"query", "usage"},
		"ListServices":              {"query", "services"},
		"GetAccount":                {"query", "account"},
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
	tg, reason := r.Resolve(&authz.RouteInput{Extensions: authz.Extensions{Service: "account-api", Kind: "query", Operation: "app"}})
	if reason != authz.OK || tg.Service != authz.AccountAPIService || tg.Kind != "query" || tg.Operation != "app" {
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
		code codes.Code // InvalidArgument when unset
	}{
		{"no name", &accountv1.CreateAppRequest{Id: "x"}, "name: required", codes.InvalidArgument},
		{"bad id", &accountv1.CreateAppRequest{Id: "a b", Name: "x"}, "id: may contain only", codes.InvalidArgument},
		{"id starting with a dot", &accountv1.CreateAppRequest{Id: ".x", Name: "x"}, "id: may contain only", codes.InvalidArgument},
		{"long id", &accountv1.CreateAppRequest{Id: strings.Repeat("a", 129), Name: "x"}, "id: longer than 128", codes.InvalidArgument},
		{"long name", &accountv1.CreateAppRequest{Name: strings.Repeat("n", 201)}, "name: longer than 200", codes.ResourceExhausted},
		{"name with newline", &accountv1.CreateAppRequest{Name: "a\nb"}, "name: contains a control character", codes.InvalidArgument},
		{"name with spaces around", &accountv1.CreateAppRequest{Name: " a"}, "name: starts or ends with white space", codes.InvalidArgument},
		{"long description", &accountv1.CreateAppRequest{Name: "x", Description: strings.Repeat("d", 1025)}, "description: longer than 1024", codes.ResourceExhausted},
		{"two problems", &accountv1.CreateAppRequest{Id: "a/b"}, "id: may contain only", codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code := tc.code
			if code == codes.OK {
				code = codes.InvalidArgument
			}
			_, err := c.CreateApp(ctx, tc.req)
			wantCode(t, err, code, tc.want)
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
	// A tenant with keys is deleted, with them, only with cascade.
	must(c.GenerateServiceAccessKey(ctx, &accountv1.GenerateServiceAccessKeyRequest{AppId: "billing", TenantId: "acme", Id: "k"}))
	_, err = c.DeleteTenant(ctx, &accountv1.DeleteTenantRequest{Id: "acme"})
	wantCode(t, err, codes.FailedPrecondition, `tenant "acme" has 1 key: delete it first, or delete with cascade (keygate tenants delete acme --cascade)`)
	must(c.GetKey(ctx, &accountv1.GetKeyRequest{Id: "k"}))
	must(c.DeleteTenant(ctx, &accountv1.DeleteTenantRequest{Id: "acme", Cascade: true}))
	_, err = c.GetKey(ctx, &accountv1.GetKeyRequest{Id: "k"})
	wantCode(t, err, codes.NotFound)
}

// wantReason fails unless err carries an ErrorInfo with reason and meta.
func wantReason(t *testing.T, err error, reason string, meta map[string]string) {
	t.Helper()
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if info.GetReason() != reason || info.GetDomain() != accountgrpc.ErrorDomain || !cmp.Equal(info.GetMetadata(), meta) {
				t.Fatalf("ErrorInfo %v, want reason %s, metadata %v", info, reason, meta)
			}
			return
		}
	}
	t.Fatalf("%v: no ErrorInfo detail", err)
}

func TestDeleteAppWithKeys(t *testing.T) {
	s, ctx := setup(t)
	c := s.Client
	for _, id := range []string{"k1", "k2"} {
		must(c.GenerateAppAccessKey(ctx, &accountv1.GenerateAppAccessKeyRequest{Id: id, AppId: "billing", Scope: "email-api"}))
	}
	_, err := c.DeleteApp(ctx, &accountv1.DeleteAppRequest{Id: "billing"})
	wantCode(t, err, codes.FailedPrecondition, `app "billing" has 2 keys: delete them first, or delete with cascade (keygate apps delete billing --cascade)`)
	wantReason(t, err, account.ReasonHasKeys, map[string]string{"keys": "2"})
	must(c.GetApp(ctx, &accountv1.GetAppRequest{Id: "billing"}))

	must(c.DeleteApp(ctx, &accountv1.DeleteAppRequest{Id: "billing", Cascade: true}))
	for _, id := range []string{"k1", "k2"} {
		_, err := c.GetKey(ctx, &accountv1.GetKeyRequest{Id: id})
		wantCode(t, err, codes.NotFound)
	}
	// One event for the app, one per key with its record before (no
	// hash), newest first.
	evs := must(c.ListAuditEvents(ctx, &accountv1.ListAuditEventsRequest{})).GetEvents()
	var got []string
	for _, e := range evs[:3] {
		got = append(got, e.GetAction()+" "+e.GetObjectId())
		if e.GetBefore() == nil || strings.Contains(e.GetBefore().String(), "sha256") || e.GetAfter() != nil {
			t.Errorf("%s: before %s, after %q", e.GetAction(), e.GetBefore(), e.GetAfter())
		}
	}
	if diff := cmp.Diff([]string{"key.delete k2", "key.delete k1", "app.delete billing"}, got); diff != "" {
		t.Errorf("audit events (-want +got):\n%s", diff)
	}
}

func TestStoreUnavailable(t *testing.T) {
	s, ctx := setup(t)
	// The account store down, the keys still in the data plane's hands:
	// Unavailable store_unavailable, which clients retry, not Internal.
	s.Store.SetAccountsFail(fmt.Errorf("postgres: dial tcp 10.1.2.3:5432: %w", store.ErrUnavailable))
	_, err := s.Client.ListApps(ctx, &accountv1.ListAppsRequest{})
	wantCode(t, err, codes.Unavailable, "store_unavailable: the key store is unavailable; retry later")
	wantReason(t, err, account.ReasonStoreUnavailable, nil)
	if strings.Contains(status.Convert(err).Message(), "10.1.2.3") {
		t.Fatal("the database address reached the caller")
	}
	_, err = s.Client.DeleteApp(ctx, &accountv1.DeleteAppRequest{Id: "billing"})
	wantCode(t, err, codes.Unavailable, "store_unavailable")
	s.Store.SetAccountsFail(nil)
	must(s.Client.ListApps(ctx, &accountv1.ListAppsRequest{}))
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
	srv := accountgrpc.NewServer(account.NewService(st, base.Engine, base.Hasher, account.Options{Compile: accounttest.CompileOptions, Now: base.Clock.Now, RateLimits: accounttest.Unlimited}), nil)
	return serve(t, grpc.NewServer(grpc.ChainUnaryInterceptor(srv.UnaryInterceptor())), srv)
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

func newMessage(d protoreflect.MessageDescriptor) proto.Message {
	return dynamicpb.NewMessage(d)
}

// serve runs g with srv registered on a loopback listener and returns a
// client of it.
func serve(t *testing.T, g *grpc.Server, srv *accountgrpc.Server) accountv1.AccountServiceClient {
	t.Helper()
	accountgrpc.Register(g, srv)
	return accountv1.NewAccountServiceClient(grpctest.Serve(t, g))
}

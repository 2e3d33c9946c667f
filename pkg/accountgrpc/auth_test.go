package accountgrpc_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/accountgrpc"
	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
)

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
		{"generate-only key lists", listApps, genOnly, codes.PermissionDenied, []string{"scope_denied", "account-api:query:apps"}},
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
	// acct-2 may use the same app and key ids and names (SPEC §9).
	must(c.CreateApp(other, &accountv1.CreateAppRequest{Id: "billing", Name: "Billing"}))
	must(c.GenerateAppAccessKey(other, &accountv1.GenerateAppAccessKeyRequest{Id: "k1", AppId: "billing"}))
	_, err = c.GenerateAppAccessKey(other, &accountv1.GenerateAppAccessKeyRequest{Id: "k1", AppId: "billing"})
	wantCode(t, err, codes.AlreadyExists, `key id "k1" already exists in this account`)
	if got := must(c.GetKey(ctx, &accountv1.GetKeyRequest{Id: "k1"})).GetKey(); got.GetAppId() != "billing" {
		t.Fatalf("acct-1's k1 after acct-2 made its own: %v", got)
	}
}

// TestKeyIDEnumeration: an account probing key ids learns nothing about
// other accounts (issue 15 item 5). Creating an id another account holds
// succeeds, and reading, updating or deleting it answers exactly as for an
// id nobody holds: the same code and message.
func TestKeyIDEnumeration(t *testing.T) {
	s, ctx := setup(t)
	c := s.Client
	must(c.GenerateAppAccessKey(ctx, &accountv1.GenerateAppAccessKeyRequest{Id: "held", AppId: "billing"}))
	must(c.GenerateAppAccessKey(ctx, &accountv1.GenerateAppAccessKeyRequest{Id: "read", AppId: "billing"}))
	other := accounttest.Ctx(t.Context(), s.OtherKey)
	must(c.CreateApp(other, &accountv1.CreateAppRequest{Id: "billing", Name: "Billing"}))
	must(c.GenerateAppAccessKey(other, &accountv1.GenerateAppAccessKeyRequest{Id: "read", AppId: "billing"}))

	probe := func() map[string]string {
		answers := map[string]string{}
		for name, err := range map[string]error{
			"get": func() error { _, err := c.GetKey(other, &accountv1.GetKeyRequest{Id: "held"}); return err }(),
			"update": func() error {
				_, err := c.UpdateKey(other, &accountv1.UpdateKeyRequest{Id: "held", Active: new(false)})
				return err
			}(),
			"delete": func() error { _, err := c.DeleteKey(other, &accountv1.DeleteKeyRequest{Id: "held"}); return err }(),
		} {
			st, _ := status.FromError(err)
			answers[name] = st.Code().String() + ": " + st.Message()
		}
		return answers
	}
	heldElsewhere := probe()
	must(c.DeleteKey(ctx, &accountv1.DeleteKeyRequest{Id: "held"}))
	heldByNobody := probe()
	if diff := cmp.Diff(heldByNobody, heldElsewhere); diff != "" {
		t.Errorf("answers about an id another account holds differ from an id nobody holds (-nobody +elsewhere):\n%s", diff)
	}
	for name, a := range heldElsewhere {
		if !strings.HasPrefix(a, codes.NotFound.String()+": ") {
			t.Errorf("%s of another account's id: %s, want NotFound", name, a)
		}
	}
}

func TestWithoutInterceptor(t *testing.T) {
	s, ctx := setup(t)
	srv := accountgrpc.NewServer(account.NewService(s.Store, s.Engine, s.Hasher, account.Options{}), nil)
	client := serve(t, grpc.NewServer(), srv)
	_, err := client.ListApps(ctx, &accountv1.ListAppsRequest{})
	wantCode(t, err, codes.Unauthenticated, "not configured to authenticate")
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
	weak := must(c.GenerateAccountAccessKey(root, &accountv1.GenerateAccountAccessKeyRequest{Name: "weak", Scope: "account-api:query:apps"})).GetKey()
	strong := must(c.GenerateAccountAccessKey(root, &accountv1.GenerateAccountAccessKeyRequest{Name: "strong", Scope: "account-api"})).GetKey()
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

	// Each refusal is in the audit log as a denied event: the calling
	// key, the action it attempted on which key, why; no hash, no secret.
	denied := must(c.ListAuditEvents(root, &accountv1.ListAuditEventsRequest{Outcome: "denied"})).GetEvents()
	var got []string
	for _, e := range denied {
		got = append(got, e.GetAction()+" "+e.GetObjectId())
		if e.GetOutcome() != "denied" || e.GetActorKeyId() != "limited" || e.GetObjectType() != "key" ||
			!strings.HasPrefix(e.GetReason(), "scope_exceeds_caller: ") {
			t.Errorf("denied event %v", e)
		}
		for _, rec := range []*structpb.Struct{e.GetBefore(), e.GetAfter()} {
			b, _ := protojson.Marshal(rec)
			if strings.Contains(string(b), "hash") || strings.Contains(string(b), "kg_") {
				t.Errorf("%s: %s holds a hash or a secret", e.GetAction(), b)
			}
		}
	}
	wantDenied := []string{"key.update limited", "key.update " + weak.GetId(), "key.update " + strong.GetId(),
		"key.delete " + strong.GetId(), "key.regenerate " + s.RootKeyID}
	if len(got) != 7 || !slices.Equal(got[:5], wantDenied) || !strings.HasPrefix(got[5], "key.create ") || !strings.HasPrefix(got[6], "key.create ") {
		t.Fatalf("denied events %q, want %q and two key.create", got, wantDenied)
	}
	if allowed := must(c.ListAuditEvents(root, &accountv1.ListAuditEventsRequest{Outcome: "denied", ActorKeyId: s.RootKeyID})).GetEvents(); len(allowed) != 0 {
		t.Fatalf("denied events of the root key: %v", allowed)
	}

	// Within its own rights it works.
	must(c.GenerateAccountAccessKey(limited, &accountv1.GenerateAccountAccessKeyRequest{Name: "reader", Scope: "account-api:query:*"}))
	must(c.UpdateKey(limited, &accountv1.UpdateKeyRequest{Id: weak.GetId(), Scope: proto.String("account-api:query:app")}))
	must(c.RegenerateKey(limited, &accountv1.RegenerateKeyRequest{Id: weak.GetId()}))
	must(c.GenerateServiceAccessKey(limited, &accountv1.GenerateServiceAccessKeyRequest{AppId: "billing", TenantId: "acme", Scope: "email-api"}))
	must(c.DeleteKey(limited, &accountv1.DeleteKeyRequest{Id: weak.GetId()}))
	// The root key's empty scope allows everything, so it may do all of it.
	must(c.DeleteKey(root, &accountv1.DeleteKeyRequest{Id: strong.GetId()}))
}

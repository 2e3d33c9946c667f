package accountgrpc_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/store"
)

// TestChangeNumbersAndSyncStatus: every mutation returns the change
// number it committed; GetSyncStatus counts the live replicas that have
// applied it, for a change number or a key, and names the others.
func TestChangeNumbersAndSyncStatus(t *testing.T) {
	s, ctx := setup(t)
	c := s.Client
	g := must(c.GenerateServiceAccessKey(ctx, &accountv1.GenerateServiceAccessKeyRequest{Id: "k1", AppId: "billing", TenantId: "acme"}))
	if g.GetChangeNumber() <= 0 {
		t.Fatalf("GenerateServiceAccessKey change_number = %d; want > 0", g.GetChangeNumber())
	}
	desc := "new"
	u := must(c.UpdateKey(ctx, &accountv1.UpdateKeyRequest{Id: "k1", Description: &desc}))
	if u.GetChangeNumber() <= g.GetChangeNumber() {
		t.Fatalf("UpdateKey change_number = %d; want > %d", u.GetChangeNumber(), g.GetChangeNumber())
	}
	app := must(c.CreateApp(ctx, &accountv1.CreateAppRequest{Id: "other", Name: "Other"}))
	if app.GetChangeNumber() <= u.GetChangeNumber() {
		t.Fatalf("CreateApp change_number = %d; want > %d", app.GetChangeNumber(), u.GetChangeNumber())
	}
	del := must(c.DeleteApp(ctx, &accountv1.DeleteAppRequest{Id: "other"}))
	if del.GetChangeNumber() <= app.GetChangeNumber() {
		t.Fatalf("DeleteApp change_number = %d; want > %d", del.GetChangeNumber(), app.GetChangeNumber())
	}

	beat := func(id string, applied int64, stopped bool) {
		t.Helper()
		if err := s.Store.Heartbeat(ctx, store.Replica{ID: id, Version: "test", StartedAt: s.Clock.Now(), Applied: applied, Stopped: stopped}); err != nil {
			t.Fatal(err)
		}
	}
	beat("replica-a", del.GetChangeNumber(), false)
	beat("replica-b", g.GetChangeNumber(), false)
	beat("replica-c", 0, true) // stopped: not live

	st := must(c.GetSyncStatus(ctx, &accountv1.GetSyncStatusRequest{KeyId: "k1"}))
	if st.GetChangeNumber() != u.GetChangeNumber() || st.GetLive() != 2 || st.GetSynced() != 1 || len(st.GetBehind()) != 1 {
		t.Fatalf("sync status of k1 = %v; want change %d synced 1/2", st, u.GetChangeNumber())
	}
	if b := st.GetBehind()[0]; b.GetId() != "replica-b" || b.GetChangesBehind() != u.GetChangeNumber()-g.GetChangeNumber() {
		t.Fatalf("behind = %v; want replica-b, %d changes", b, u.GetChangeNumber()-g.GetChangeNumber())
	}
	st = must(c.GetSyncStatus(ctx, &accountv1.GetSyncStatusRequest{ChangeNumber: g.GetChangeNumber()}))
	if st.GetLive() != 2 || st.GetSynced() != 2 || len(st.GetBehind()) != 0 {
		t.Fatalf("sync status of change %d = %v; want synced 2/2", g.GetChangeNumber(), st)
	}

	// replica-b falls silent past the timeout: it is no longer live.
	s.Clock.Add(31 * time.Second)
	beat("replica-a", del.GetChangeNumber(), false)
	st = must(c.GetSyncStatus(ctx, &accountv1.GetSyncStatusRequest{KeyId: "k1"}))
	if st.GetLive() != 1 || st.GetSynced() != 1 {
		t.Fatalf("after replica-b's silence: %v; want synced 1/1", st)
	}
	list := must(c.ListReplicas(ctx, &accountv1.ListReplicasRequest{}))
	var got []string
	for _, r := range list.GetReplicas() {
		got = append(got, r.GetId()+":"+map[bool]string{true: "live", false: "down"}[r.GetLive()])
	}
	if strings.Join(got, " ") != "replica-a:live replica-b:down replica-c:down" {
		t.Fatalf("ListReplicas = %v", got)
	}

	for _, c := range []struct {
		name string
		req  *accountv1.GetSyncStatusRequest
		code codes.Code
		msg  string
	}{
		{"nothing", &accountv1.GetSyncStatusRequest{}, codes.InvalidArgument, "change_number: a change number"},
		{"both", &accountv1.GetSyncStatusRequest{ChangeNumber: 1, KeyId: "k1"}, codes.InvalidArgument, "give one of them"},
		{"future", &accountv1.GetSyncStatusRequest{ChangeNumber: 1 << 40}, codes.InvalidArgument, "is not on the change feed"},
		{"unknown key", &accountv1.GetSyncStatusRequest{KeyId: "ghost"}, codes.NotFound, `key "ghost" not found`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Client.GetSyncStatus(ctx, c.req)
			if st, _ := status.FromError(err); st.Code() != c.code || !strings.Contains(st.Message(), c.msg) {
				t.Fatalf("GetSyncStatus(%v) = %v; want %v containing %q", c.req, err, c.code, c.msg)
			}
		})
	}
}

// TestListServicesAndGetAccount: the route catalogue and the caller's
// account over gRPC (without routes the catalogue is the Account API).
func TestListServicesAndGetAccount(t *testing.T) {
	s, ctx := setup(t)
	svcs := must(s.Client.ListServices(ctx, &accountv1.ListServicesRequest{})).GetServices()
	if len(svcs) != 1 || svcs[0].GetName() != "account-api" || len(svcs[0].GetKinds()) != 2 ||
		strings.Join(svcs[0].GetKeyTypes(), ",") != "account" {
		t.Fatalf("ListServices = %v", svcs)
	}
	a := must(s.Client.GetAccount(ctx, &accountv1.GetAccountRequest{}))
	if a.GetAccountId() != s.AccountID || a.GetKeyId() != s.RootKeyID || a.GetScope() != "" || len(a.GetOperations()) != 36 {
		t.Fatalf("GetAccount = %v", a)
	}
}

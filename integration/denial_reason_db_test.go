package integration

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/authz"
)

// TestStoredDenialWithoutReason (issue 18, audit 18 §1): through the real
// server and PostgreSQL, on two replicas. The Account API refuses a denial
// without a reason; a denial row stored with an empty reason anyway
// (written before the rule, or past the API: here directly in SQL) blocks
// what its scope names, with a generic reason text, and nothing else of
// its tenant and app. Before the fix it blocked every operation of the
// tenant and app. Giving it a reason through the API shows that reason.
func TestStoredDenialWithoutReason(t *testing.T) {
	e := newRolesDBEnv(t)
	ok, denied := outcome{status: 200}, outcome{403, "access_denied"}
	e.setRoleScope(t, "email-api")
	e.want(t, "send before the denial", sendReq(e.secret), ok, "")
	e.want(t, "inbox before the denial", inboxReq(e.secret), ok, "")

	_, err := e.api.CreateServiceAccessDenial(e.api.ctx(t), &accountv1.CreateServiceAccessDenialRequest{
		Id: "no-reason", TenantId: "acme", AppId: "billing", Scope: "email-api:mutation:sendEmail"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "reason: required") {
		t.Fatalf("CreateServiceAccessDenial without a reason: %v, want InvalidArgument naming reason", err)
	}

	conn, err := pgx.Connect(context.Background(), e.env.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `INSERT INTO denials (account_id, id, tenant_id, app_id, scope, reason)
		VALUES ('acct-test', 'old-row', 'acme', 'billing', 'email-api:mutation:sendEmail', '')`); err != nil {
		t.Fatal(err)
	}
	e.want(t, "send with the reasonless denial", sendReq(e.secret), denied, authz.StoredDenialReason)
	// The denial has reached both replicas: what its scope does not name
	// is still allowed.
	for name, c := range e.replicas {
		if got, _ := call(t, c, inboxReq(e.secret)); got != ok {
			t.Errorf("inbox on replica %s with the reasonless denial of sending: %v, want 200", name, got)
		}
	}

	const reason = "Sending is suspended: invoice 42 is overdue"
	if _, err := e.api.UpdateServiceAccessDenial(e.api.ctx(t), &accountv1.UpdateServiceAccessDenialRequest{
		Id: "old-row", Reason: proto.String(reason)}); err != nil {
		t.Fatal(err)
	}
	for name, c := range e.replicas {
		eventually(t, "the denial's new reason on replica "+name, func() bool {
			_, resp := call(t, c, sendReq(e.secret))
			return strings.Contains(resp.GetDeniedResponse().GetBody(), `"error":"`+reason+`"`)
		})
	}
}

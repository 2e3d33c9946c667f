package accountgrpc_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/authz"
)

// TestDenialReasonRule (issue 18, audit 18 §1): the Account API holds a
// denial's reason to the data plane's rule (authz.CheckDenialReason). It
// refuses, on create and on update, a reason the data plane would not
// load (before the fix an empty, bidirectional or invisible reason was
// stored, and serve then blocked every operation of the tenant and app),
// and accepts the newlines and tabs the data plane and the keys file
// accept. Every reason it accepts compiles as stored.
func TestDenialReasonRule(t *testing.T) {
	s, root := setup(t)
	c := s.Client
	tests := []struct {
		name, reason string
		code         codes.Code
		want         string
	}{
		{"plain", "Payment overdue", codes.OK, ""},
		{"tab", "tab\there", codes.OK, ""},
		{"two lines", "two\nlines", codes.OK, ""},
		{"empty", "", codes.InvalidArgument, "reason: required: the text the blocked caller reads"},
		{"right-to-left override", "a\u202eb", codes.InvalidArgument, "reason: contains a bidirectional control character (U+202E)"},
		{"zero-width space", "zero\u200bwidth", codes.InvalidArgument, "reason: contains an invisible character (U+200B)"},
		{"carriage return", "a\rb", codes.InvalidArgument, "reason: has control character 0x0d"},
		{"501 bytes", strings.Repeat("r", 501), codes.ResourceExhausted, "reason: longer than 500 bytes"},
	}
	must(c.CreateServiceAccessDenial(root, &accountv1.CreateServiceAccessDenialRequest{
		Id: "to-update", TenantId: "acme", AppId: "billing", Scope: "email-api", Reason: "as created"}))
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			created, err := c.CreateServiceAccessDenial(root, &accountv1.CreateServiceAccessDenialRequest{
				Id: fmt.Sprintf("d-%d", i), TenantId: "acme", AppId: "billing", Scope: "email-api:mutation:send", Reason: tt.reason})
			updated, uerr := c.UpdateServiceAccessDenial(root, &accountv1.UpdateServiceAccessDenialRequest{Id: "to-update", Reason: proto.String(tt.reason)})
			if tt.code != codes.OK {
				wantCode(t, err, tt.code, tt.want)
				wantCode(t, uerr, tt.code, tt.want)
				return
			}
			if err != nil || uerr != nil {
				t.Fatalf("create: %v; update: %v", err, uerr)
			}
			for _, d := range []*accountv1.ServiceAccessDenial{created.GetDenial(), updated.GetDenial()} {
				if d.GetReason() != tt.reason {
					t.Errorf("stored reason %q, want %q", d.GetReason(), tt.reason)
				}
				if _, err := authz.CompileDenial(authz.Denial{ID: d.GetId(), AccountID: "acct", TenantID: d.GetTenantId(),
					AppID: d.GetAppId(), Scope: d.GetScope(), Reason: d.GetReason()}); err != nil {
					t.Errorf("accepted by the Account API, refused by the data plane: %v", err)
				}
			}
		})
	}
}

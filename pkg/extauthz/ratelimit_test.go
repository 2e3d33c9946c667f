package extauthz_test

import (
	"context"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keygate/keygate/pkg/extauthz"
)

// TestRateLimitMetadata: an allow returns the key's effective rate limit
// (SPEC §12) in dynamic_metadata as the struct Envoy's
// rate_limits[].limit.dynamic_metadata override reads —
// {requests_per_unit: <number>, unit: "SECOND"|"MINUTE"|"HOUR"|"DAY"} —
// beside account_id, tenant_id and key_id; a key without a limit has no
// rate_limit field; the hit path allocates nothing.
func TestRateLimitMetadata(t *testing.T) {
	for _, tc := range []struct {
		name, extra, roles string
		want               *structpb.Struct
	}{
		{"no limit", "", "", nil},
		{"from the most restrictive role", "", "r-1, r-2, r-3", &structpb.Struct{Fields: map[string]*structpb.Value{
			"requests_per_unit": structpb.NewNumberValue(6000), "unit": structpb.NewStringValue("HOUR")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra, roles := tc.extra, tc.roles
			if roles != "" {
				extra, _ = rolesAndDenials()
			}
			srv, secret, _ := fullStack(t, extra, roles)
			req := request("/email/inbox", secret, nil)
			resp := check(t, srv, req)
			if resp.GetOkResponse() == nil {
				t.Fatalf("not allowed: %v", resp)
			}
			md := resp.GetDynamicMetadata().GetFields()
			if md["account_id"].GetStringValue() != "default" || md["tenant_id"].GetStringValue() != "acme" || md["key_id"].GetStringValue() != "k-1" {
				t.Errorf("ids in metadata: %v", md)
			}
			got, ok := md[extauthz.RateLimitMetadataKey]
			if tc.want == nil {
				if ok {
					t.Errorf("rate_limit %v for a key without a limit", got)
				}
			} else if !ok || got.GetStructValue() == nil ||
				got.GetStructValue().GetFields()["requests_per_unit"].GetNumberValue() != tc.want.Fields["requests_per_unit"].GetNumberValue() ||
				got.GetStructValue().GetFields()["unit"].GetStringValue() != tc.want.Fields["unit"].GetStringValue() ||
				len(got.GetStructValue().GetFields()) != 2 {
				t.Errorf("rate_limit = %v, want %v", got, tc.want)
			}
			if n := testing.AllocsPerRun(100, func() { _, _ = srv.Check(context.Background(), req) }); n != 0 {
				t.Errorf("an allowed Check allocates %v times", n)
			}
		})
	}
}

package extauthz_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/extauthz"
)

// TestQuotaExceededBothModes: a used-up quota is 429 quota_exceeded with
// retry-after, the seconds until the period resets, in the gRPC and the
// HTTP mode alike (SPEC §5 row 10).
func TestQuotaExceededBothModes(t *testing.T) {
	secret, err := apikey.Generate(apikey.KindService)
	if err != nil {
		t.Fatal(err)
	}
	k, err := authz.Compile(authz.KeySpec{ID: "k-q", Name: "quota", Type: authz.KeyTypeService, AccountID: "default",
		AppID: "billing", TenantID: "acme", Active: true, Hash: hasher.HashString(secret),
		Quota: authz.Quota{Requests: 2, Period: authz.QuotaPeriodDay}}, authz.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// now is 2026-… at some time of day: retry-after is the rest of it.
	_, end := authz.QuotaPeriodDay.Bounds(now)
	want := int(end.Sub(now) / time.Second)
	store := &mapStore{keys: map[apikey.Digest]*authz.Key{k.Digest: k}}
	engine := &authz.Engine{Keys: store, Routes: routes, Hasher: hasher, Now: func() time.Time { return now }, Quotas: authz.NewQuotas()}
	srv := extauthz.NewServer(engine, extauthz.Config{}.WithDefaults(), nil, nil)
	h := extauthz.NewHTTPHandler(engine, extauthz.Config{}, nil, nil)
	// srv.Check, not check: that one asks twice (directly and over the
	// wire), which counts twice.
	if resp, err := srv.Check(context.Background(), request("/email/read", secret, nil)); err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("first request denied: %v", err)
	}
	if a := serve(t, h, fwd("GET", "/email/read", map[string]string{"X-Api-Key": secret})); a.status != 200 {
		t.Fatalf("second request: %d %s", a.status, a.reason)
	}
	resp, err := srv.Check(context.Background(), request("/email/read", secret, nil))
	if err != nil {
		t.Fatal(err)
	}
	d := resp.GetDeniedResponse()
	if d.GetStatus().GetCode() != 429 || d.GetBody() != extauthz.DenyBody(authz.QuotaExceeded, false) {
		t.Fatalf("gRPC over quota: %v", d)
	}
	var ra string
	for _, hv := range d.GetHeaders() {
		if hv.GetHeader().GetKey() == "retry-after" {
			ra = hv.GetHeader().GetValue()
		}
	}
	if ra != itoa(want) {
		t.Errorf("gRPC retry-after %q, want %d", ra, want)
	}
	a := serve(t, h, fwd("GET", "/email/read", map[string]string{"X-Api-Key": secret, "X-Original-URI": "/email/read"}))
	if a.status != 429 || a.reason != "quota_exceeded" || a.header.Get("Retry-After") != itoa(want) {
		t.Errorf("HTTP over quota: %d %q retry-after %q, want 429 quota_exceeded %d", a.status, a.reason, a.header.Get("Retry-After"), want)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestQuotaSlotHandedOnOverGRPC: the attack on numbered quota cells, sent
// as requests over a real gRPC connection. Key a uses its one request of a
// day; the day ends, its cell is dropped and its slot handed to key b,
// which uses b's one request. a's record still names the old slot: a's
// next request must be counted in a cell of a's own (allowed, a new day),
// and b's next one refused by b's quota alone — never a's traffic using
// up b's quota, nor b's count read as a's.
func TestQuotaSlotHandedOnOverGRPC(t *testing.T) {
	day := now
	quotas := authz.NewQuotas()
	store := &mapStore{keys: map[apikey.Digest]*authz.Key{}}
	secrets := map[string]string{}
	for _, id := range []string{"a", "b"} {
		secret, err := apikey.Generate(apikey.KindService)
		if err != nil {
			t.Fatal(err)
		}
		k, err := authz.Compile(authz.KeySpec{ID: id, Name: id, Type: authz.KeyTypeService, AccountID: "default",
			AppID: "billing", TenantID: "acme", Active: true, Hash: hasher.HashString(secret),
			Quota: authz.Quota{Requests: 1, Period: authz.QuotaPeriodDay}}, authz.CompileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		store.keys[k.Digest] = k
		secrets[id] = secret
	}
	engine := &authz.Engine{Keys: store, Routes: routes, Hasher: hasher, Now: func() time.Time { return day }, Quotas: quotas}
	srv := extauthz.NewServer(engine, extauthz.Config{}.WithDefaults(), nil, nil)
	client := authv3.NewAuthorizationClient(serveGRPC(t, srv, grpc.NewServer(extauthz.ServerCodec())))
	check := func(id string, wantStatus int32) {
		t.Helper()
		resp, err := client.Check(context.Background(), request("/email/read", secrets[id], nil))
		if err != nil {
			t.Fatal(err)
		}
		got := int32(200)
		if d := resp.GetDeniedResponse(); d != nil {
			got = int32(d.GetStatus().GetCode())
		}
		if got != wantStatus {
			t.Fatalf("key %s on %s: %d, want %d", id, day.Format(time.DateOnly), got, wantStatus)
		}
	}
	check("a", 200)
	check("a", 429)
	// The next day: a's cell is dropped, and after the next drop its slot
	// is free for the next subject, b.
	day = day.AddDate(0, 0, 1)
	if n := quotas.DropEnded(day); n != 1 {
		t.Fatalf("dropped %d cells, want a's", n)
	}
	quotas.DropEnded(day)
	check("b", 200)
	check("a", 200) // a new day for a, in a cell of its own
	check("b", 429)
	check("a", 429)
}

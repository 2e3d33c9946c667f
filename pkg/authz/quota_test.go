package authz_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
)

func TestParseQuota(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want authz.Quota
		err  string
	}{
		{"1000/day", authz.Quota{Requests: 1000, Period: authz.QuotaPeriodDay}, ""},
		{" 5 / Month ", authz.Quota{Requests: 5, Period: authz.QuotaPeriodMonth}, ""},
		{"7/d", authz.Quota{Requests: 7, Period: authz.QuotaPeriodDay}, ""},
		{"1000000000000000/m", authz.Quota{Requests: authz.MaxQuotaRequests, Period: authz.QuotaPeriodMonth}, ""},
		{"1000000000000001/m", authz.Quota{}, "over the maximum"},
		{"0/day", authz.Quota{}, "not a positive whole number"},
		{"-3/day", authz.Quota{}, "not a positive whole number"},
		{"1000", authz.Quota{}, "want N/day or N/month"},
		{"", authz.Quota{}, "want N/day or N/month"},
		{"10/week", authz.Quota{}, "want day or month"},
		{"x/day", authz.Quota{}, "not a positive whole number"},
	} {
		got, err := authz.ParseQuota(tc.in)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("ParseQuota(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			if again, err := authz.ParseQuota(got.String()); err != nil || again != got {
				t.Errorf("ParseQuota(%q.String()=%q) = %+v, %v", tc.in, got.String(), again, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseQuota(%q) error %v, want one containing %q", tc.in, err, tc.err)
		}
	}
}

func FuzzParseQuota(f *testing.F) {
	for _, s := range []string{"1000/day", "5/month", "0/d", "/", "9999999999999999999/m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := authz.ParseQuota(s)
		if err != nil {
			return
		}
		if q.Check() != nil || q.IsZero() {
			t.Fatalf("ParseQuota(%q) = %+v, which does not check", s, q)
		}
		if again, err := authz.ParseQuota(q.String()); err != nil || again != q {
			t.Fatalf("round trip of %q: %+v, %v", s, again, err)
		}
	})
}

func TestQuotaPeriodBounds(t *testing.T) {
	at := time.Date(2026, 12, 31, 23, 59, 59, 0, time.FixedZone("CET", 3600)) // 22:59:59 UTC
	for _, tc := range []struct {
		p          authz.QuotaPeriod
		start, end time.Time
	}{
		{authz.QuotaPeriodDay, time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{authz.QuotaPeriodMonth, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		s, e := tc.p.Bounds(at)
		if !s.Equal(tc.start) || !e.Equal(tc.end) {
			t.Errorf("%s bounds of %v: %v–%v, want %v–%v", tc.p, at, s, e, tc.start, tc.end)
		}
	}
}

func TestCompileRefusesBadQuota(t *testing.T) {
	for _, spec := range []authz.KeySpec{
		func() authz.KeySpec {
			s := serviceKey("x")
			s.Quota = authz.Quota{Requests: 0, Period: authz.QuotaPeriodDay}
			return s
		}(),
		func() authz.KeySpec { s := serviceKey("x"); s.Quota = authz.Quota{Requests: 5}; return s }(),
		func() authz.KeySpec { s := serviceKey("x"); s.TenantQuota = -1; return s }(),
	} {
		if _, err := authz.Compile(spec, authz.CompileOptions{}); err == nil || !strings.Contains(err.Error(), "quota") {
			t.Errorf("Compile with quota %+v / tenant %d: %v, want an error naming the quota", spec.Quota, spec.TenantQuota, err)
		}
	}
}

// quotaEngine is an engine over one key of spec, with quotas, at *now.
func quotaEngine(t *testing.T, spec authz.KeySpec, now *time.Time) (*authz.Engine, *authz.Quotas) {
	t.Helper()
	k := mustCompile(t, spec)
	q := authz.NewQuotas()
	return &authz.Engine{Keys: &fakeStore{keys: map[apikey.Digest]*authz.Key{k.Digest: k}},
		Routes: &fakeRouter{target: emailRd}, Hasher: hasher, Now: func() time.Time { return *now }, Quotas: q}, q
}

// TestQuotaRow10: the decision admits up to each quota that binds the key
// (its tenant's monthly one, its own daily or monthly one), then denies
// quota_exceeded with the seconds until that period resets; a new period
// admits again; explain (Evaluate) neither checks nor counts.
func TestQuotaRow10(t *testing.T) {
	day := authz.Quota{Requests: 3, Period: authz.QuotaPeriodDay}
	for _, tc := range []struct {
		name        string
		own         authz.Quota
		tenant      int64
		admits      int
		retry       uint32 // at now
		resetsAfter time.Duration
	}{
		{"no quota", authz.Quota{}, 0, 50, 0, 0},
		{"key daily", day, 0, 3, 12 * 3600, 12 * time.Hour},
		{"key monthly", authz.Quota{Requests: 4, Period: authz.QuotaPeriodMonth}, 0, 4, 16*86400 + 12*3600, 16*24*time.Hour + 12*time.Hour},
		{"tenant monthly", authz.Quota{}, 2, 2, 16*86400 + 12*3600, 16*24*time.Hour + 12*time.Hour},
		{"tenant's smaller than the key's", day, 2, 2, 16*86400 + 12*3600, 16*24*time.Hour + 12*time.Hour},
		{"key's smaller than the tenant's", day, 10, 3, 12 * 3600, 12 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Date(2026, 12, 15, 12, 0, 0, 0, time.UTC)
			secret := mustGenerate(t, apikey.KindService)
			spec := serviceKey(secret)
			spec.Quota, spec.TenantQuota = tc.own, tc.tenant
			e, q := quotaEngine(t, spec, &now)
			req := &authz.Request{Key: secret, KeyCount: 1}
			for i := range tc.admits {
				if d := e.Check(context.Background(), req); d.Reason != authz.OK {
					t.Fatalf("request %d: %s, want ok", i+1, d.Reason)
				}
			}
			if tc.retry == 0 {
				return
			}
			d := e.Check(context.Background(), req)
			if d.Reason != authz.QuotaExceeded || d.RetryAfter != tc.retry || d.Reason.Status() != 429 {
				t.Fatalf("over quota: %s retry %d status %d; want quota_exceeded retry %d status 429", d.Reason, d.RetryAfter, d.Reason.Status(), tc.retry)
			}
			if ev := e.Evaluate(context.Background(), d.Key, req, now); ev.Reason != authz.OK {
				t.Errorf("Evaluate checks quotas: %s", ev.Reason)
			}
			for _, st := range q.State(d.Key, now) {
				if st.Used != int64(tc.admits) {
					t.Errorf("state %+v: used %d, want %d (denials are not counted)", st.Subject, st.Used, tc.admits)
				}
			}
			now = now.Add(tc.resetsAfter)
			if d := e.Check(context.Background(), req); d.Reason != authz.OK {
				t.Fatalf("in the next period: %s, want ok", d.Reason)
			}
		})
	}
}

// TestQuotaSharedThroughSync: what the store counted of other replicas
// binds here; this replica's own admissions the store already holds
// (flushed) are not counted twice; a flush expects what it knows; a new
// period's total is unknown until learned; cells of ended periods are
// dropped.
func TestQuotaSharedThroughSync(t *testing.T) {
	now := time.Date(2026, 12, 15, 12, 0, 0, 0, time.UTC)
	secret := mustGenerate(t, apikey.KindService)
	spec := serviceKey(secret)
	spec.TenantQuota = 10
	e, q := quotaEngine(t, spec, &now)
	q.TrackUnknown()
	var k *authz.Key
	for _, v := range e.Keys.(*fakeStore).keys {
		k = v
	}
	req := &authz.Request{Key: secret, KeyCount: 1}
	check := func(n int, want authz.Reason) {
		t.Helper()
		for i := range n {
			if d := e.Check(context.Background(), req); d.Reason != want {
				t.Fatalf("request %d: %s, want %s", i+1, d.Reason, want)
			}
		}
	}
	check(4, authz.OK) // own 4
	cells, n := q.KeyCells(k, now)
	if n != 1 {
		t.Fatalf("%d cells, want the tenant's", n)
	}
	c := cells[0]
	start, _ := authz.QuotaPeriodMonth.Bounds(now)
	if got := q.Unknown(now); len(got) != 1 || got[0] != c {
		t.Fatalf("unknown %v, want the new cell", got)
	}
	if got := c.Expect(start, 4); got != authz.QuotaTotalUnknown {
		t.Errorf("expected %d of a cell never synced, want unknown", got)
	}
	c.Flushed(start, 4, now) // the store holds our 4
	subject := authz.QuotaSubject{AccountID: "default", Tenant: true, ID: "acme", Period: authz.QuotaPeriodMonth}
	q.Sync([]authz.QuotaUse{{Subject: subject, Start: start, Used: 4 + 3}}, now) // another replica admitted 3
	if got := q.Unknown(now); len(got) != 0 {
		t.Errorf("unknown %v after the total was learned", got)
	}
	if got := c.Expect(start, 2); got != 9 {
		t.Errorf("expected %d after writing 2 more, want 9", got)
	}
	if got := c.Expect(start.AddDate(0, -1, 0), 2); got != authz.QuotaTotalUnwanted {
		t.Errorf("expected %d for last month, want unwanted", got)
	}
	check(3, authz.OK)
	check(1, authz.QuotaExceeded)
	// A count of another period (a month ago) is not taken.
	q.Sync([]authz.QuotaUse{{Subject: subject, Start: start.AddDate(0, -1, 0), Used: 1000}}, now)
	check(1, authz.QuotaExceeded)
	// A new period: admitted again, its total unknown until learned.
	now = start.AddDate(0, 1, 0)
	check(1, authz.OK)
	if got := q.Unknown(now); len(got) != 1 || got[0] != c {
		t.Fatalf("unknown %v in the new period, want the cell", got)
	}
	// Dropped once its period ended.
	if n := q.DropEnded(now); n != 0 || q.Len() != 1 {
		t.Errorf("dropped %d of a live cell", n)
	}
	if n := q.DropEnded(now.AddDate(0, 1, 0)); n != 1 || q.Len() != 0 {
		t.Errorf("dropped %d, %d left, want the ended cell dropped", n, q.Len())
	}
	check(1, authz.OK) // a new cell
	if q.Len() != 1 {
		t.Errorf("%d cells, want a new one", q.Len())
	}
}

// TestQuotaAdmitAllocatesNothing: row 10 on a key with quotas allocates
// nothing once its cells exist.
func TestQuotaAdmitAllocatesNothing(t *testing.T) {
	now := time.Date(2026, 12, 15, 12, 0, 0, 0, time.UTC)
	secret := mustGenerate(t, apikey.KindService)
	spec := serviceKey(secret)
	spec.TenantQuota = 1 << 40
	spec.Quota = authz.Quota{Requests: 1 << 40, Period: authz.QuotaPeriodDay}
	e, _ := quotaEngine(t, spec, &now)
	req := &authz.Request{Key: secret, KeyCount: 1}
	e.Check(context.Background(), req)
	if n := testing.AllocsPerRun(100, func() { e.Check(context.Background(), req) }); n != 0 {
		t.Errorf("%v allocations per check with quotas", n)
	}
}

// TestQuotaSubjectsPerAccount: tenant and key ids are unique only within
// an account; two accounts' tenant "acme" and key "k-1" never share a
// count, so one account's traffic cannot use up another's quota.
func TestQuotaSubjectsPerAccount(t *testing.T) {
	now := time.Date(2026, 12, 15, 12, 0, 0, 0, time.UTC)
	q := authz.NewQuotas()
	keyOf := func(account string) *authz.Key {
		spec := serviceKey(mustGenerate(t, apikey.KindService))
		spec.AccountID, spec.TenantQuota = account, 2
		spec.Quota = authz.Quota{Requests: 2, Period: authz.QuotaPeriodDay}
		return mustCompile(t, spec)
	}
	a, b := keyOf("acct-a"), keyOf("acct-b")
	for range 2 {
		if ok, _ := q.Admit(a, now); !ok {
			t.Fatal("account a's key refused within its quota")
		}
	}
	if ok, _ := q.Admit(a, now); ok {
		t.Fatal("account a's key admitted over its quota")
	}
	for i := range 2 {
		if ok, _ := q.Admit(b, now); !ok {
			t.Fatalf("account b's request %d refused: it shares account a's count", i+1)
		}
	}
}

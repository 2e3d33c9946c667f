package storetest

import (
	"crypto/sha256"
	"testing"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// testRateLimits is the contract of rate limits (SPEC §12): stored on keys
// and roles, read back, replaced and cleared by updates, and a key's
// effective limit on the data plane its own, else its role's.
func testRateLimits(t *testing.T, open func(t *testing.T) store.Accounts) {
	f := setup(t, open)
	perMinute := authz.RateLimit{RequestsPerUnit: 60, Unit: authz.RateUnitMinute}
	perSecond := authz.RateLimit{RequestsPerUnit: 5, Unit: authz.RateUnitSecond}
	perDay := authz.RateLimit{RequestsPerUnit: 1000, Unit: authz.RateUnitDay}

	r := f.createRole(store.Role{ID: "slow", Name: "Slow", Scope: "email-api", RateLimit: perMinute})
	if r.RateLimit != perMinute {
		t.Errorf("CreateRole rate limit %v, want %v", r.RateLimit, perMinute)
	}
	if got, err := f.s.GetRole(f.ctx, "acct", "slow"); err != nil || got.RateLimit != perMinute {
		t.Errorf("GetRole rate limit %v, %v", got.RateLimit, err)
	}
	up, err := f.s.UpdateRole(f.ctx, Actor, "acct", "slow", store.RoleUpdate{RateLimit: &perDay})
	if err != nil || up.RateLimit != perDay {
		t.Errorf("UpdateRole rate limit %v, %v; want %v", up.RateLimit, err, perDay)
	}
	up, err = f.s.UpdateRole(f.ctx, Actor, "acct", "slow", store.RoleUpdate{Description: reader("d")})
	if err != nil || up.RateLimit != perDay {
		t.Errorf("UpdateRole of another field changed the rate limit: %v, %v", up.RateLimit, err)
	}

	own := serviceKey("own")
	own.Spec.RateLimit = perSecond
	own.RoleIDs = []string{"slow"}
	if got := f.createKey(own); got.Spec.RateLimit != perSecond {
		t.Errorf("CreateKey rate limit %v, want %v", got.Spec.RateLimit, perSecond)
	}
	if got := f.getKey("own"); got.Spec.RateLimit != perSecond {
		t.Errorf("GetKey rate limit %v, want %v", got.Spec.RateLimit, perSecond)
	}
	held := serviceKey("held")
	held.RoleIDs = []string{"slow"}
	f.createKey(held)
	plain := serviceKey("plain")
	f.createKey(plain)

	if ks, ok := f.s.(authz.KeyStore); ok {
		for _, tc := range []struct {
			name string
			want authz.RateLimit
		}{{"own", perSecond}, {"held", perDay}, {"plain", authz.RateLimit{}}} {
			k, err := ks.LookupKey(f.ctx, sha256.Sum256([]byte("secret-"+tc.name)))
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := k.RateLimit(); got != tc.want {
				t.Errorf("LookupKey(%s): effective rate limit %v, want %v", tc.name, got, tc.want)
			}
		}
	}

	none := authz.RateLimit{}
	got, err := f.s.UpdateKey(f.ctx, Actor, "acct", "own", store.KeyUpdate{RateLimit: &none})
	if err != nil || !got.Spec.RateLimit.IsZero() {
		t.Errorf("UpdateKey clearing the rate limit: %v, %v", got.Spec.RateLimit, err)
	}
	got, err = f.s.UpdateKey(f.ctx, Actor, "acct", "plain", store.KeyUpdate{RateLimit: &perMinute})
	if err != nil || got.Spec.RateLimit != perMinute || f.getKey("plain").Spec.RateLimit != perMinute {
		t.Errorf("UpdateKey setting a rate limit: %v, %v", got.Spec.RateLimit, err)
	}
	up, err = f.s.UpdateRole(f.ctx, Actor, "acct", "slow", store.RoleUpdate{RateLimit: &none})
	if err != nil || !up.RateLimit.IsZero() {
		t.Errorf("UpdateRole clearing the rate limit: %v, %v", up.RateLimit, err)
	}
}

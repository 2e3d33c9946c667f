package store_test

import (
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// TestKeyFilterIsZero: every field that filters makes the filter
// non-zero; the order alone does not.
func TestKeyFilterIsZero(t *testing.T) {
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		f    store.KeyFilter
		zero bool
	}{
		{"none", store.KeyFilter{}, true},
		{"an order", store.KeyFilter{Order: store.KeyOrder{By: store.SortName, Desc: true}}, true},
		{"app", store.KeyFilter{AppID: "a"}, false},
		{"tenant", store.KeyFilter{TenantID: "t"}, false},
		{"group", store.KeyFilter{Group: "g"}, false},
		{"type", store.KeyFilter{Type: authz.KeyTypeApp}, false},
		{"active", store.KeyFilter{Active: new(false)}, false},
		{"expiring before", store.KeyFilter{ExpiringBefore: at}, false},
		{"expires after", store.KeyFilter{ExpiresAfter: at}, false},
		{"unused since", store.KeyFilter{UnusedSince: at}, false},
		{"role", store.KeyFilter{RoleID: "r"}, false},
		{"name", store.KeyFilter{Name: "n"}, false},
		{"name contains", store.KeyFilter{NameContains: "n"}, false},
		{"no ids", store.KeyFilter{IDs: []string{}}, false},
		{"no IP filters", store.KeyFilter{NoIPFilters: true}, false},
		{"a scope of everything", store.KeyFilter{ScopeEverything: true}, false},
	} {
		if got := tc.f.IsZero(); got != tc.zero {
			t.Errorf("%s: IsZero = %v, want %v", tc.name, got, tc.zero)
		}
	}
}

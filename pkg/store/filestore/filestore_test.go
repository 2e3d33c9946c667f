package filestore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/keyfile"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/filestore"
)

var hasher = apikey.NewHasher(nil)

// secret is the account key secret of test key n (a fixed, valid
// kg_aak_ secret: its checksum is computed by apikey.Generate's rules).
func secret(t testing.TB, n int) string {
	t.Helper()
	s, ok := secrets[n]
	if !ok {
		var err error
		if s, err = apikey.Generate(apikey.KindAccount); err != nil {
			t.Fatal(err)
		}
		secrets[n] = s
	}
	return s
}

var secrets = map[int]string{}

// fileWith is a keys file of account acct: two apps, two tenants (one
// with a quota), a role, two denials and the keys given as YAML flow
// mappings.
func fileWith(keys ...string) string {
	var b strings.Builder
	b.WriteString(`account: acct
apps: [{id: shop, name: Shop}, {id: billing, name: Billing}]
tenants: [{id: globex, name: Globex}, {id: acme, name: ACME, quota: {requests: 1000, period: month}}]
roles: [{id: r-read, name: readers, scope: "email-api:query:*", description: Readers}]
denials:
  - {id: d-2, tenant: acme, app: shop, scope: email-api, reason: "unpaid"}
  - {id: d-1, tenant: globex, app: billing, scope: email-api, reason: "blocked"}
keys:
`)
	for _, k := range keys {
		b.WriteString("  - " + k + "\n")
	}
	return b.String()
}

// serviceKey is a service key n of app and tenant with extra fields.
func serviceKey(t testing.TB, n int, app, tenant, extra string) string {
	return fmt.Sprintf("{id: k-%02d, name: key-%02d, type: service, app: %s, tenant: %s, hash: %q%s}",
		n, n, app, tenant, hasher.HashString(secret(t, n)), extra)
}

func accountKey(t testing.TB, n int, extra string) string {
	return fmt.Sprintf("{id: k-%02d, name: key-%02d, type: account, hash: %q%s}", n, n, hasher.HashString(secret(t, n)), extra)
}

type fixture struct {
	t    *testing.T
	path string
	keys *keyfile.Store
	s    *filestore.Store
	ctx  context.Context
}

func open(t *testing.T, content string) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := keyfile.Open(path, keyfile.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, path: path, keys: keys, s: filestore.New(keys, path), ctx: context.Background()}
}

// rewrite replaces the file and reloads it, with a modification time
// later than the last one.
func (f *fixture) rewrite(content string) {
	f.t.Helper()
	if err := os.WriteFile(f.path, []byte(content), 0o600); err != nil {
		f.t.Fatal(err)
	}
	later := f.keys.Set().Modified().Add(time.Minute)
	if err := os.Chtimes(f.path, later, later); err != nil {
		f.t.Fatal(err)
	}
	if err := f.keys.Reload(); err != nil {
		f.t.Fatal(err)
	}
}

func keyIDs(ks []store.Key) []string {
	var out []string
	for _, k := range ks {
		out = append(out, k.Spec.ID)
	}
	return out
}

// TestReads: every read answers what the file holds, as PostgreSQL
// stores it: ids in (created_at, id) order, the file's modification time
// as created and updated, names filled, roles by id, the origin of an
// imported key.
func TestReads(t *testing.T) {
	f := open(t, fileWith(
		serviceKey(t, 3, "shop", "acme", `, scope: "email-api", roles: [r-read], group: partners, ip_filters: ["10.0.0.0/8"], description: Three`),
		serviceKey(t, 1, "billing", "globex", ", active: false"),
		accountKey(t, 2, `, scope: "account-api:query:*"`),
	))
	at := f.keys.Set().Modified().UTC().Truncate(time.Microsecond)
	if at.IsZero() {
		t.Fatal("the Set has no modification time")
	}

	acct, err := f.s.GetAccount(f.ctx, "acct")
	if err != nil || acct != (store.Account{ID: "acct", Name: "acct", CreatedAt: at}) {
		t.Errorf("GetAccount = %+v, %v", acct, err)
	}
	apps, next, err := f.s.ListApps(f.ctx, "acct", store.Page{})
	want := []store.App{
		{AccountID: "acct", ID: "billing", Name: "Billing", Active: true, CreatedAt: at, UpdatedAt: at},
		{AccountID: "acct", ID: "shop", Name: "Shop", Active: true, CreatedAt: at, UpdatedAt: at},
	}
	if err != nil || next != "" || !cmp.Equal(apps, want) {
		t.Errorf("ListApps = %v, %q, %v; want %+v", cmp.Diff(want, apps), next, err, want)
	}
	ten, err := f.s.GetTenant(f.ctx, "acct", "acme")
	if err != nil || ten.Quota != 1000 || ten.Name != "ACME" || !ten.Active {
		t.Errorf("GetTenant = %+v, %v", ten, err)
	}
	tens, _, err := f.s.ListTenants(f.ctx, "acct", store.Page{})
	if err != nil || len(tens) != 2 || tens[0].ID != "acme" || tens[1].ID != "globex" {
		t.Errorf("ListTenants = %+v, %v", tens, err)
	}

	k, err := f.s.GetKey(f.ctx, "acct", "k-03")
	if err != nil {
		t.Fatal(err)
	}
	sp := k.Spec
	if sp.Name != "key-03" || sp.Type != authz.KeyTypeService || sp.AppID != "shop" || sp.AppName != "Shop" ||
		sp.TenantID != "acme" || sp.TenantName != "ACME" || sp.Scope != "email-api" || sp.Group != "partners" ||
		sp.Description != "Three" || !sp.Active || !slices.Equal(sp.IPFilters, []string{"10.0.0.0/8"}) ||
		sp.Hash != hasher.HashString(secret(t, 3)) || sp.Roles != nil || sp.AccountID != "acct" {
		t.Errorf("GetKey spec = %+v", sp)
	}
	if !slices.Equal(k.RoleIDs, []string{"r-read"}) || k.Origin != store.OriginCustom || !k.CreatedAt.Equal(at) ||
		!k.UpdatedAt.Equal(at) || !k.LastUsedAt.IsZero() {
		t.Errorf("GetKey = %+v", k)
	}
	if k, _ := f.s.GetKey(f.ctx, "acct", "k-02"); k.Origin != store.OriginGenerated {
		t.Errorf("account key origin %q, want generated (account keys are never custom)", k.Origin)
	}
	// Records are copies: changing one does not change the next read.
	k.Spec.IPFilters[0] = "0.0.0.0/0"
	if k, _ := f.s.GetKey(f.ctx, "acct", "k-03"); k.Spec.IPFilters[0] != "10.0.0.0/8" {
		t.Error("a read's IP filters are shared with the store")
	}

	roles, _, err := f.s.ListRoles(f.ctx, "acct", store.Page{})
	if err != nil || len(roles) != 1 || roles[0] != (store.Role{AccountID: "acct", ID: "r-read", Name: "readers",
		Description: "Readers", Scope: "email-api:query:*", CreatedAt: at, UpdatedAt: at}) {
		t.Errorf("ListRoles = %+v, %v", roles, err)
	}
	if r, err := f.s.GetRole(f.ctx, "acct", "r-read"); err != nil || r.Name != "readers" {
		t.Errorf("GetRole = %+v, %v", r, err)
	}
	ds, _, err := f.s.ListDenials(f.ctx, "acct", store.DenialFilter{}, store.Page{})
	if err != nil || len(ds) != 2 || ds[0].ID != "d-1" || ds[1].ID != "d-2" || ds[1].Reason != "unpaid" || ds[1].AppID != "shop" {
		t.Errorf("ListDenials = %+v, %v", ds, err)
	}
	ds, _, err = f.s.ListDenials(f.ctx, "acct", store.DenialFilter{TenantID: "acme", AppID: "shop"}, store.Page{})
	if err != nil || len(ds) != 1 || ds[0].ID != "d-2" {
		t.Errorf("ListDenials(acme, shop) = %+v, %v", ds, err)
	}
	if ds, _, _ := f.s.ListDenials(f.ctx, "acct", store.DenialFilter{TenantID: "acme", AppID: "billing"}, store.Page{}); len(ds) != 0 {
		t.Errorf("ListDenials(acme, billing) = %+v", ds)
	}
	if d, err := f.s.GetDenial(f.ctx, "acct", "d-1"); err != nil || d.TenantID != "globex" {
		t.Errorf("GetDenial = %+v, %v", d, err)
	}

	// Every id of another account, or unknown, is not found; its lists
	// are empty.
	for name, err := range map[string]error{
		"account":      errOf(f.s.GetAccount(f.ctx, "other")),
		"app":          errOf(f.s.GetApp(f.ctx, "other", "shop")),
		"tenant":       errOf(f.s.GetTenant(f.ctx, "acct", "nope")),
		"key":          errOf(f.s.GetKey(f.ctx, "other", "k-03")),
		"role":         errOf(f.s.GetRole(f.ctx, "acct", "r-none")),
		"denial":       errOf(f.s.GetDenial(f.ctx, "other", "d-1")),
		"missing key":  errOf(f.s.GetKey(f.ctx, "acct", "k-99")),
		"missing app":  errOf(f.s.GetApp(f.ctx, "acct", "nope")),
		"other tenant": errOf(f.s.GetTenant(f.ctx, "other", "acme")),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	if ks, next, err := f.s.ListKeys(f.ctx, "other", store.KeyFilter{}, store.Page{}); len(ks) != 0 || next != "" || err != nil {
		t.Errorf("ListKeys(other) = %v, %q, %v", keyIDs(ks), next, err)
	}
	if as, _, _ := f.s.ListApps(f.ctx, "other", store.Page{}); len(as) != 0 {
		t.Errorf("ListApps(other) = %+v", as)
	}
	if evs, next, err := f.s.ListAuditEvents(f.ctx, "acct", store.AuditFilter{}, store.Page{}); len(evs) != 0 || next != "" || err != nil {
		t.Errorf("ListAuditEvents = %+v, %q, %v", evs, next, err)
	}
}

func errOf[T any](_ T, err error) error { return err }

// TestListKeysFilters: KeyFilter selects as PostgreSQL's ListKeys does.
func TestListKeysFilters(t *testing.T) {
	soon := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	later := time.Now().Add(400 * 24 * time.Hour).UTC().Format(time.RFC3339)
	f := open(t, fileWith(
		serviceKey(t, 1, "shop", "acme", ", group: partners, expires_at: "+soon),
		serviceKey(t, 2, "billing", "acme", ", active: false, roles: [r-read], expires_at: "+later),
		serviceKey(t, 3, "billing", "globex", ", group: partners, ip_filters: [10.0.0.0/8]"),
		accountKey(t, 4, ""),
		"{id: k-05, name: key-05, type: app, app: shop, scope: email-api, hash: "+fmt.Sprintf("%q", hasher.HashString(secret(t, 5)))+"}",
	))
	inactive, active := false, true
	for _, c := range []struct {
		name string
		f    store.KeyFilter
		want []string
	}{
		{"none", store.KeyFilter{}, []string{"k-01", "k-02", "k-03", "k-04", "k-05"}},
		{"app", store.KeyFilter{AppID: "billing"}, []string{"k-02", "k-03"}},
		{"tenant", store.KeyFilter{TenantID: "acme"}, []string{"k-01", "k-02"}},
		{"app and tenant", store.KeyFilter{AppID: "billing", TenantID: "acme"}, []string{"k-02"}},
		{"group", store.KeyFilter{Group: "partners"}, []string{"k-01", "k-03"}},
		{"type account", store.KeyFilter{Type: authz.KeyTypeAccount}, []string{"k-04"}},
		{"type app", store.KeyFilter{Type: authz.KeyTypeApp}, []string{"k-05"}},
		{"inactive", store.KeyFilter{Active: &inactive}, []string{"k-02"}},
		{"active", store.KeyFilter{Active: &active}, []string{"k-01", "k-03", "k-04", "k-05"}},
		{"expiring within a week", store.KeyFilter{ExpiringBefore: time.Now().Add(7 * 24 * time.Hour)}, []string{"k-01"}},
		{"expiring within two years", store.KeyFilter{ExpiringBefore: time.Now().Add(2 * 365 * 24 * time.Hour)}, []string{"k-01", "k-02"}},
		{"unused (none recorded)", store.KeyFilter{UnusedSince: time.Now()}, []string{"k-01", "k-02", "k-03", "k-04", "k-05"}},
		{"role", store.KeyFilter{RoleID: "r-read"}, []string{"k-02"}},
		{"name", store.KeyFilter{Name: "key-03"}, []string{"k-03"}},
		{"no such name", store.KeyFilter{Name: "key-9"}, nil},
		{"name contains, any case", store.KeyFilter{NameContains: "EY-0"}, []string{"k-01", "k-02", "k-03", "k-04", "k-05"}},
		{"name contains", store.KeyFilter{NameContains: "-03"}, []string{"k-03"}},
		{"ids", store.KeyFilter{IDs: []string{"k-05", "k-02"}}, []string{"k-02", "k-05"}},
		{"no ids", store.KeyFilter{IDs: []string{}}, nil},
		{"not expired", store.KeyFilter{ExpiresAfter: time.Now()}, []string{"k-01", "k-02"}},
		{"expiring after a week", store.KeyFilter{ExpiresAfter: time.Now().Add(7 * 24 * time.Hour)}, []string{"k-02"}},
		{"expiring within a window", store.KeyFilter{ExpiresAfter: time.Now(), ExpiringBefore: time.Now().Add(7 * 24 * time.Hour)}, []string{"k-01"}},
		{"no IP filters", store.KeyFilter{NoIPFilters: true}, []string{"k-01", "k-02", "k-04", "k-05"}},
		{"a scope of everything (no scope, no role)", store.KeyFilter{ScopeEverything: true}, []string{"k-01", "k-03", "k-04"}},
		{"both", store.KeyFilter{ScopeEverything: true, NoIPFilters: true}, []string{"k-01", "k-04"}},
		{"by name, descending", store.KeyFilter{Order: store.KeyOrder{By: store.SortName, Desc: true}}, []string{"k-05", "k-04", "k-03", "k-02", "k-01"}},
		{"by expiry (never last)", store.KeyFilter{Order: store.KeyOrder{By: store.SortExpires}}, []string{"k-01", "k-02", "k-03", "k-04", "k-05"}},
		{"by expiry, descending", store.KeyFilter{Order: store.KeyOrder{By: store.SortExpires, Desc: true}}, []string{"k-05", "k-04", "k-03", "k-02", "k-01"}},
	} {
		ks, next, err := f.s.ListKeys(f.ctx, "acct", c.f, store.Page{})
		if err != nil || next != "" || !slices.Equal(keyIDs(ks), c.want) {
			t.Errorf("%s: %v, %q, %v; want %v", c.name, keyIDs(ks), next, err, c.want)
		}
		if n, err := f.s.CountKeys(f.ctx, "acct", c.f); n != len(c.want) || err != nil {
			t.Errorf("%s: CountKeys = %d, %v; want %d", c.name, n, err, len(c.want))
		}
	}
	if n, err := f.s.CountKeys(f.ctx, "other", store.KeyFilter{}); n != 0 || err != nil {
		t.Errorf("CountKeys(other) = %d, %v", n, err)
	}
	if _, err := f.s.CountKeys(f.ctx, "acct", store.KeyFilter{Type: authz.KeyType(99)}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("CountKeys, unknown type: %v, want ErrInvalid", err)
	}
	for name, c := range map[string]struct {
		count func(context.Context, string) (int, error)
		want  int
	}{"apps": {f.s.CountApps, 2}, "tenants": {f.s.CountTenants, 2}} {
		if n, err := c.count(f.ctx, "acct"); n != c.want || err != nil {
			t.Errorf("count %s = %d, %v; want %d", name, n, err, c.want)
		}
		if n, err := c.count(f.ctx, "other"); n != 0 || err != nil {
			t.Errorf("count %s of another account = %d, %v", name, n, err)
		}
	}
	if _, _, err := f.s.ListKeys(f.ctx, "acct", store.KeyFilter{Type: authz.KeyType(99)}, store.Page{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("unknown type: %v, want ErrInvalid", err)
	}
	// Pages of a sorted list, and a token of one order refused for another.
	byName := store.KeyFilter{Order: store.KeyOrder{By: store.SortName, Desc: true}}
	ks, next, err := f.s.ListKeys(f.ctx, "acct", byName, store.Page{Size: 3})
	if err != nil || !slices.Equal(keyIDs(ks), []string{"k-05", "k-04", "k-03"}) || next == "" {
		t.Fatalf("page 1 by name: %v, %q, %v", keyIDs(ks), next, err)
	}
	if ks, _, err = f.s.ListKeys(f.ctx, "acct", byName, store.Page{Size: 3, Token: next}); err != nil || !slices.Equal(keyIDs(ks), []string{"k-02", "k-01"}) {
		t.Errorf("page 2 by name: %v, %v", keyIDs(ks), err)
	}
	if _, _, err := f.s.ListKeys(f.ctx, "acct", store.KeyFilter{}, store.Page{Token: next}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a by-name token for creation order: %v, want ErrInvalid", err)
	}
}

// TestPaging: pages of the lists in id order, with store.PageToken
// tokens, filters applied before the page is cut; a token no list
// returned is ErrInvalid; a reload between pages goes on after the
// token's id.
func TestPaging(t *testing.T) {
	var keys []string
	for n := 1; n <= 7; n++ {
		keys = append(keys, serviceKey(t, n, "shop", map[bool]string{true: "acme", false: "globex"}[n%2 == 1], ""))
	}
	f := open(t, fileWith(keys...))
	var got []string
	token := ""
	for i := 0; ; i++ {
		ks, next, err := f.s.ListKeys(f.ctx, "acct", store.KeyFilter{TenantID: "acme"}, store.Page{Size: 2, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, keyIDs(ks)...)
		if next == "" {
			break
		}
		size, after, err := store.ReadPage(store.Page{Token: next})
		if err != nil || size != store.DefaultPageSize || after.ID != ks[len(ks)-1].Spec.ID || after.CreatedAtTime() != ks[len(ks)-1].CreatedAt {
			t.Fatalf("token %q reads as %+v, %v", next, after, err)
		}
		if i > 5 {
			t.Fatal("paging does not end")
		}
		token = next
	}
	if want := []string{"k-01", "k-03", "k-05", "k-07"}; !slices.Equal(got, want) {
		t.Errorf("pages of acme's keys = %v, want %v", got, want)
	}
	// A full last page has no next token.
	if ks, next, _ := f.s.ListKeys(f.ctx, "acct", store.KeyFilter{TenantID: "acme"}, store.Page{Size: 4}); len(ks) != 4 || next != "" {
		t.Errorf("a page holding the rest: %v, next %q", keyIDs(ks), next)
	}
	for _, bad := range []string{"x", store.PageToken{}.String()} {
		if _, _, err := f.s.ListKeys(f.ctx, "acct", store.KeyFilter{}, store.Page{Token: bad}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("token %q: %v, want ErrInvalid", bad, err)
		}
		if _, _, err := f.s.ListApps(f.ctx, "acct", store.Page{Token: bad}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("apps, token %q: %v, want ErrInvalid", bad, err)
		}
	}

	// Page one, then a reload removes k-02 and adds k-00 and k-08: the
	// next page goes on after k-02's position, in id order.
	ks, next, err := f.s.ListKeys(f.ctx, "acct", store.KeyFilter{}, store.Page{Size: 2})
	if err != nil || !slices.Equal(keyIDs(ks), []string{"k-01", "k-02"}) {
		t.Fatalf("page 1: %v, %v", keyIDs(ks), err)
	}
	keys = slices.Delete(keys, 1, 2)
	f.rewrite(fileWith(append(keys, serviceKey(t, 0, "shop", "acme", ""), serviceKey(t, 8, "shop", "acme", ""))...))
	ks, _, err = f.s.ListKeys(f.ctx, "acct", store.KeyFilter{}, store.Page{Size: 100, Token: next})
	if want := []string{"k-03", "k-04", "k-05", "k-06", "k-07", "k-08"}; err != nil || !slices.Equal(keyIDs(ks), want) {
		t.Errorf("after a reload: %v, %v; want %v", keyIDs(ks), err, want)
	}
}

// TestReload: a reload replaces every record; a file that fails to load
// leaves the last good contents, as the data plane keeps them.
func TestReload(t *testing.T) {
	f := open(t, fileWith(serviceKey(t, 1, "shop", "acme", ""), accountKey(t, 2, "")))
	before := f.keys.Set().Modified()
	f.rewrite(strings.Replace(fileWith(serviceKey(t, 1, "shop", "acme", ", active: false"), serviceKey(t, 3, "billing", "globex", "")),
		"{id: shop, name: Shop}", "{id: shop, name: Shop Renamed}", 1))
	k, err := f.s.GetKey(f.ctx, "acct", "k-01")
	if err != nil || k.Spec.Active || k.Spec.AppName != "Shop Renamed" || !k.UpdatedAt.After(before) {
		t.Errorf("k-01 after the reload: %+v, %v", k, err)
	}
	if _, err := f.s.GetKey(f.ctx, "acct", "k-02"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("k-02, removed: %v", err)
	}
	ks, _, _ := f.s.ListKeys(f.ctx, "acct", store.KeyFilter{}, store.Page{})
	if !slices.Equal(keyIDs(ks), []string{"k-01", "k-03"}) {
		t.Errorf("keys after the reload: %v", keyIDs(ks))
	}
	if a, _ := f.s.GetApp(f.ctx, "acct", "shop"); a.Name != "Shop Renamed" {
		t.Errorf("app after the reload: %+v", a)
	}

	if err := os.WriteFile(f.path, []byte("keys: [{id: broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.keys.Reload(); err == nil {
		t.Fatal("a broken file reloaded")
	}
	if ks, _, _ := f.s.ListKeys(f.ctx, "acct", store.KeyFilter{}, store.Page{}); !slices.Equal(keyIDs(ks), []string{"k-01", "k-03"}) {
		t.Errorf("keys after a failed reload: %v", keyIDs(ks))
	}
}

// TestWritesRefused: every write returns the read-only error naming the
// file, and changes nothing.
func TestWritesRefused(t *testing.T) {
	f := open(t, fileWith(serviceKey(t, 1, "shop", "acme", "")))
	ctx, a := f.ctx, store.Actor{KeyID: "k-01"}
	name, active := "x", false
	checked := false
	writes := map[string]error{
		"CreateAccount": errOf(f.s.CreateAccount(ctx, a, store.Account{ID: "acct2"})),
		"CreateApp":     errOf(f.s.CreateApp(ctx, a, store.App{AccountID: "acct", ID: "new", Name: "New"})),
		"UpdateApp":     errOf(f.s.UpdateApp(ctx, a, "acct", "shop", store.AppUpdate{Name: &name})),
		"DeleteApp":     f.s.DeleteApp(ctx, a, "acct", "shop", true),
		"CreateTenant":  errOf(f.s.CreateTenant(ctx, a, store.Tenant{AccountID: "acct", ID: "new"})),
		"UpdateTenant":  errOf(f.s.UpdateTenant(ctx, a, "acct", "acme", store.AppUpdate{Active: &active})),
		"DeleteTenant":  f.s.DeleteTenant(ctx, a, "acct", "acme", false),
		"CreateKey":     errOf(f.s.CreateKey(ctx, a, store.Key{Spec: authz.KeySpec{AccountID: "acct", ID: "k-9"}})),
		"UpdateKey":     errOf(f.s.UpdateKey(ctx, a, "acct", "k-01", store.KeyUpdate{Active: &active})),
		"RotateKey":     errOf(f.s.RotateKey(ctx, a, "acct", "k-01", hasher.HashString(secret(t, 9)), time.Time{})),
		"DeleteKey":     f.s.DeleteKey(ctx, a, "acct", "k-01"),
		"UpdateKeys": errOf(f.s.UpdateKeys(ctx, a, "acct", store.KeyFilter{}, store.KeyUpdate{Active: &active},
			func([]store.Key) error { checked = true; return nil })),
		"RecordDenied": f.s.RecordDenied(ctx, a, "acct", store.DeniedEvent{Action: "key.update"}),
		"CreateRole":   errOf(f.s.CreateRole(ctx, a, store.Role{AccountID: "acct", Name: "r", Scope: "x"})),
		"UpdateRole":   errOf(f.s.UpdateRole(ctx, a, "acct", "r-read", store.RoleUpdate{Name: &name})),
		"DeleteRole":   f.s.DeleteRole(ctx, a, "acct", "r-read", true),
		"CreateDenial": errOf(f.s.CreateDenial(ctx, a, store.Denial{AccountID: "acct", TenantID: "acme", AppID: "shop"})),
		"UpdateDenial": errOf(f.s.UpdateDenial(ctx, a, "acct", "d-1", store.DenialUpdate{Reason: &name})),
		"DeleteDenial": f.s.DeleteDenial(ctx, a, "acct", "d-1"),
	}
	want := "read_only: keygate serves a keys file; edit " + f.path + " and it is reloaded"
	for op, err := range writes {
		var ro *store.ReadOnlyError
		if !errors.Is(err, store.ErrReadOnly) || !errors.As(err, &ro) || ro.Path != f.path || err.Error() != want {
			t.Errorf("%s: %v, want %q", op, err, want)
		}
	}
	if checked {
		t.Error("UpdateKeys showed the keys to check")
	}
	if f.s.ReadOnly().Error() != want {
		t.Errorf("ReadOnly() = %v", f.s.ReadOnly())
	}
	k, err := f.s.GetKey(ctx, "acct", "k-01")
	if err != nil || !k.Spec.Active || k.Spec.Hash != hasher.HashString(secret(t, 1)) {
		t.Errorf("k-01 after the refused writes: %+v, %v", k, err)
	}
	if _, err := f.s.GetAccount(ctx, "acct2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("acct2: %v", err)
	}
}

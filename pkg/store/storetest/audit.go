package storetest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/pkg/store"
)

// The audit JSON of each record: every field but hashes and secrets, under
// these names; fields marked omitempty are left out when empty.
type (
	accountJSON struct {
		ID        string    `json:"id"`
		Name      string    `json:"name"`
		CreatedAt time.Time `json:"created_at"`
	}
	parentJSON struct {
		ID          string    `json:"id"`
		AccountID   string    `json:"account_id"`
		Name        string    `json:"name"`
		Description string    `json:"description,omitempty"`
		Active      bool      `json:"active"`
		CreatedAt   time.Time `json:"created_at"`
		UpdatedAt   time.Time `json:"updated_at"`
	}
	headerJSON struct {
		Name     string `json:"name"`
		Value    string `json:"value"`
		Disabled bool   `json:"disabled,omitempty"`
	}
	keyJSON struct {
		ID                 string       `json:"id"`
		AccountID          string       `json:"account_id"`
		Name               string       `json:"name"`
		Type               string       `json:"type"`
		AppID              string       `json:"app_id,omitempty"`
		TenantID           string       `json:"tenant_id,omitempty"`
		Scope              string       `json:"scope"`
		Active             bool         `json:"active"` // the key's own flag
		NotBefore          *time.Time   `json:"not_before,omitempty"`
		ExpiresAt          *time.Time   `json:"expires_at,omitempty"`
		IPFilters          []string     `json:"ip_filters,omitempty"`
		Group              string       `json:"group,omitempty"`
		Description        string       `json:"description,omitempty"`
		ResponseHeaders    []headerJSON `json:"response_headers,omitempty"`
		Origin             string       `json:"origin"`
		PreviousValidUntil *time.Time   `json:"previous_valid_until,omitempty"`
		CreatedAt          time.Time    `json:"created_at"`
		UpdatedAt          time.Time    `json:"updated_at"`
	}
)

func ofAccount(a store.Account) accountJSON {
	return accountJSON{ID: a.ID, Name: a.Name, CreatedAt: a.CreatedAt}
}

func ofParent(a store.App) parentJSON {
	return parentJSON{ID: a.ID, AccountID: a.AccountID, Name: a.Name, Description: a.Description,
		Active: a.Active, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}

func ofKey(k store.Key) keyJSON {
	sp := k.Spec
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	j := keyJSON{ID: sp.ID, AccountID: sp.AccountID, Name: sp.Name, Type: sp.Type.String(),
		AppID: sp.AppID, TenantID: sp.TenantID, Scope: sp.Scope, Active: sp.Active,
		NotBefore: opt(sp.NotBefore), ExpiresAt: opt(sp.ExpiresAt), IPFilters: sp.IPFilters,
		Group: sp.Group, Description: sp.Description, Origin: string(k.Origin),
		PreviousValidUntil: opt(sp.PreviousValidUntil), CreatedAt: k.CreatedAt, UpdatedAt: k.UpdatedAt}
	for _, h := range sp.ResponseHeaders {
		j.ResponseHeaders = append(j.ResponseHeaders, headerJSON{Name: h.Name, Value: h.Value, Disabled: h.Disabled})
	}
	return j
}

// event is what an audit event must say; before and after are records
// (accountJSON, parentJSON, keyJSON) or nil.
type event struct {
	action, objectType, objectID string
	actor                        store.Actor
	before, after                any
}

// wantEvents compares events (newest first) with want (oldest first).
func wantEvents(t *testing.T, got []store.AuditEvent, want []event) {
	t.Helper()
	if len(got) != len(want) {
		var actions []string
		for _, e := range got {
			actions = append(actions, e.Action+" "+e.ObjectID)
		}
		t.Fatalf("%d audit events %v, want %d", len(got), actions, len(want))
	}
	for i, w := range want {
		g := got[len(got)-1-i]
		what := w.action + " " + w.objectID
		if g.Action != w.action || g.ObjectType != w.objectType || g.ObjectID != w.objectID || g.Actor != w.actor || g.AccountID != "acct" {
			t.Errorf("event %d: %s %s %s by %+v in %s, want %s %s %s by %+v in acct",
				i, g.Action, g.ObjectType, g.ObjectID, g.Actor, g.AccountID, w.action, w.objectType, w.objectID, w.actor)
		}
		wantTime(t, what+": at", g.At)
		wantJSON(t, what+": before", g.Before, w.before)
		wantJSON(t, what+": after", g.After, w.after)
	}
	for i := 1; i < len(got); i++ {
		if got[i-1].ID <= got[i].ID || got[i-1].At.Before(got[i].At) {
			t.Errorf("event %d (id %d at %v) listed before event %d (id %d at %v): not newest first",
				i-1, got[i-1].ID, got[i-1].At, i, got[i].ID, got[i].At)
		}
	}
}

// wantJSON compares an audit JSON object with a record's.
func wantJSON(t *testing.T, what string, raw json.RawMessage, record any) {
	t.Helper()
	if record == nil {
		if raw != nil {
			t.Errorf("%s: %s, want none", what, raw)
		}
		return
	}
	b, err := json.Marshal(record)
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Errorf("%s: %q is not JSON: %v", what, raw, err)
		return
	}
	_ = json.Unmarshal(b, &want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

func testAudit(t *testing.T, open func(t *testing.T) store.Accounts) {
	t.Run("one event per write, newest first", func(t *testing.T) {
		f := setup(t, open)
		acct, err := f.s.GetAccount(f.ctx, "acct")
		if err != nil {
			t.Fatal(err)
		}
		app1, err := f.s.GetApp(f.ctx, "acct", "app1")
		if err != nil {
			t.Fatal(err)
		}
		ten1, err := f.s.GetTenant(f.ctx, "acct", "ten1")
		if err != nil {
			t.Fatal(err)
		}
		want := []event{
			{"account.create", "account", "acct", Actor, nil, ofAccount(acct)},
			{"app.create", "app", "app1", Actor, nil, ofParent(app1)},
			{"tenant.create", "tenant", "ten1", Actor, nil, ofParent(store.App(ten1))},
		}
		bob := store.Actor{KeyID: "bob-key", KeyName: "bob"}
		check := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}

		app2, err := f.s.CreateApp(f.ctx, bob, store.App{AccountID: "acct", ID: "app2", Name: "App Two", Description: "words", Active: true})
		check(err)
		want = append(want, event{"app.create", "app", "app2", bob, nil, ofParent(app2)})
		app2b, err := f.s.UpdateApp(f.ctx, Actor, "acct", "app2", store.AppUpdate{Description: new("")})
		check(err)
		want = append(want, event{"app.update", "app", "app2", Actor, ofParent(app2), ofParent(app2b)})
		ten2, err := f.s.CreateTenant(f.ctx, store.Actor{}, store.Tenant{AccountID: "acct", ID: "ten2", Name: "Tenant Two", Active: true})
		check(err)
		want = append(want, event{"tenant.create", "tenant", "ten2", store.Actor{}, nil, ofParent(store.App(ten2))})
		ten2b, err := f.s.UpdateTenant(f.ctx, Actor, "acct", "ten2", store.AppUpdate{Active: new(false)})
		check(err)
		want = append(want, event{"tenant.update", "tenant", "ten2", Actor, ofParent(store.App(ten2)), ofParent(store.App(ten2b))})

		in := fullKey("k1")
		in.Spec.AppID, in.Spec.TenantID = "app2", "ten2"
		k1, err := f.s.CreateKey(f.ctx, Actor, in)
		check(err)
		want = append(want, event{"key.create", "key", "k1", Actor, nil, ofKey(k1)})
		in = appKey("k2")
		in.Origin = store.OriginCustom
		k2, err := f.s.CreateKey(f.ctx, Actor, in)
		check(err)
		want = append(want, event{"key.create", "key", "k2", Actor, nil, ofKey(k2)})
		k1b, err := f.s.UpdateKey(f.ctx, bob, "acct", "k1", store.KeyUpdate{Scope: new("sms-api"), IPFilters: &[]string{}, ExpiresAt: new(time.Time{})})
		check(err)
		want = append(want, event{"key.update", "key", "k1", bob, ofKey(k1), ofKey(k1b)})
		k1c, err := f.s.RotateKey(f.ctx, Actor, "acct", "k1", Hash("rotated"), t2100)
		check(err)
		want = append(want, event{"key.regenerate", "key", "k1", Actor, ofKey(k1b), ofKey(k1c)})
		k1d, err := f.s.RotateKey(f.ctx, Actor, "acct", "k1", Hash("rotated-again"), time.Time{})
		check(err)
		want = append(want, event{"key.regenerate", "key", "k1", Actor, ofKey(k1c), ofKey(k1d)})
		check(f.s.DeleteKey(f.ctx, bob, "acct", "k2"))
		want = append(want, event{"key.delete", "key", "k2", bob, ofKey(k2), nil})

		// Deleting an app audits it, then each of its keys in creation
		// order (not id order).
		kz := f.createKey(func() store.Key { k := appKey("kz"); k.Spec.AppID = "app2"; return k }())
		ka := f.createKey(func() store.Key { k := serviceKey("ka"); k.Spec.AppID = "app2"; return k }())
		want = append(want, event{"key.create", "key", "kz", Actor, nil, ofKey(kz)}, event{"key.create", "key", "ka", Actor, nil, ofKey(ka)})
		k1d = f.getKey("k1")
		// Without cascade, refused and not audited.
		if err := f.s.DeleteApp(f.ctx, bob, "acct", "app2", false); !errors.Is(err, store.ErrHasKeys) {
			t.Fatalf("delete app2 without cascade: %v", err)
		}
		check(f.s.DeleteApp(f.ctx, bob, "acct", "app2", true))
		want = append(want, event{"app.delete", "app", "app2", bob, ofParent(app2b), nil},
			event{"key.delete", "key", "k1", bob, ofKey(k1d), nil},
			event{"key.delete", "key", "kz", bob, ofKey(kz), nil},
			event{"key.delete", "key", "ka", bob, ofKey(ka), nil})
		// A tenant's keys likewise.
		kt := f.createKey(serviceKey("kt"))
		want = append(want, event{"key.create", "key", "kt", Actor, nil, ofKey(kt)})
		check(f.s.DeleteTenant(f.ctx, Actor, "acct", "ten1", true))
		want = append(want, event{"tenant.delete", "tenant", "ten1", Actor, ofParent(store.App(ten1)), nil},
			event{"key.delete", "key", "kt", Actor, ofKey(kt), nil})

		wantEvents(t, f.events("acct"), want)
	})
	t.Run("no secrets or hashes", func(t *testing.T) {
		f := setup(t, open)
		k := f.createKey(fullKey("k"))
		if _, err := f.s.RotateKey(f.ctx, Actor, "acct", "k", Hash("new"), t2100); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.UpdateKey(f.ctx, Actor, "acct", "k", store.KeyUpdate{Name: new("k2")}); err != nil {
			t.Fatal(err)
		}
		if err := f.s.DeleteKey(f.ctx, Actor, "acct", "k"); err != nil {
			t.Fatal(err)
		}
		forbidden := []string{"hash", "secret", "sha256", k.Spec.Hash[len("sha256:"):], Hash("new")[len("sha256:"):]}
		for _, e := range f.events("acct") {
			for _, raw := range []json.RawMessage{e.Before, e.After} {
				for _, s := range forbidden {
					if strings.Contains(string(raw), s) {
						t.Errorf("%s: %s holds %q", e.Action, raw, s)
					}
				}
			}
		}
	})
	t.Run("only writes that change something", func(t *testing.T) {
		f := setup(t, open)
		k := f.createKey(serviceKey("k"))
		before := f.events("acct")
		// Reads, refused writes and updates that set nothing.
		_, _ = f.s.GetKey(f.ctx, "acct", "k")
		_, _, _ = f.s.ListKeys(f.ctx, "acct", store.KeyFilter{}, store.Page{})
		_, _ = f.s.CreateApp(f.ctx, Actor, store.App{AccountID: "acct", ID: "app1", Name: "Again"})
		_, _ = f.s.CreateTenant(f.ctx, Actor, store.Tenant{AccountID: "acct", ID: "x", Name: "Tenant One"})
		_, _ = f.s.CreateKey(f.ctx, Actor, serviceKey("k"))
		_, _ = f.s.UpdateApp(f.ctx, Actor, "acct", "nope", store.AppUpdate{Active: new(true)})
		_, _ = f.s.UpdateKey(f.ctx, Actor, "acct", "k", store.KeyUpdate{NotBefore: new(t2100), ExpiresAt: new(t2030)})
		_, _ = f.s.RotateKey(f.ctx, Actor, "acct", "k", k.Spec.Hash, t2100)
		_ = f.s.DeleteKey(f.ctx, Actor, "acct", "nope")
		_ = f.s.DeleteApp(f.ctx, Actor, "other", "nope", true)
		_ = f.s.DeleteApp(f.ctx, Actor, "acct", "app1", false) // k belongs to app1
		_, _ = f.s.CreateAccount(f.ctx, Actor, store.Account{ID: "acct", Name: "Again"})
		for _, u := range []func() error{
			func() error { _, err := f.s.UpdateApp(f.ctx, Actor, "acct", "app1", store.AppUpdate{}); return err },
			func() error { _, err := f.s.UpdateTenant(f.ctx, Actor, "acct", "ten1", store.AppUpdate{}); return err },
			func() error { _, err := f.s.UpdateKey(f.ctx, Actor, "acct", "k", store.KeyUpdate{}); return err },
		} {
			if err := u(); err != nil {
				t.Fatal(err)
			}
		}
		after := f.events("acct")
		if diff := cmp.Diff(before, after); diff != "" {
			t.Errorf("audit log (-before +after):\n%s", diff)
		}
	})
	t.Run("accounts are isolated", func(t *testing.T) {
		f := setup(t, open)
		f.createKey(serviceKey("k"))
		evs := f.events("other")
		var got []string
		for _, e := range evs {
			got = append(got, e.Action+" "+e.ObjectID)
			if e.AccountID != "other" {
				t.Errorf("other's log holds %+v", e)
			}
		}
		if diff := cmp.Diff([]string{"tenant.create ten1", "app.create app1", "account.create other"}, got); diff != "" {
			t.Errorf("other's log (-want +got):\n%s", diff)
		}
		evs, next, err := f.s.ListAuditEvents(f.ctx, "nope", store.AuditFilter{}, store.Page{})
		if err != nil || len(evs) != 0 || next != "" {
			t.Errorf("an unknown account's log: %d events, next %q, %v", len(evs), next, err)
		}
	})
}

// testAuditFilters: every filter of ListAuditEvents alone and combined,
// each walked in pages of several sizes (the keyset tokens stay right
// with filters), and refused calls recorded with outcome denied.
func testAuditFilters(t *testing.T, open func(t *testing.T) store.Accounts) {
	bob := store.Actor{KeyID: "bob-key", KeyName: "bob"}
	// fill writes the events the filters select from and returns the
	// fixture and the times of the events it names.
	fill := func(t *testing.T) (*fixture, map[string]time.Time) {
		f := setup(t, open)
		check := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		at := map[string]time.Time{}
		mark := func(name string) { at[name] = f.events("acct")[0].At }
		k1 := f.createKey(serviceKey("k1")) // by Actor
		mark("k1 created")
		_, err := f.s.CreateKey(f.ctx, bob, accountKey("k2"))
		check(err)
		_, err = f.s.UpdateKey(f.ctx, bob, "acct", "k1", store.KeyUpdate{Active: new(false)})
		check(err)
		mark("k1 updated")
		_, err = f.s.UpdateApp(f.ctx, bob, "acct", "app1", store.AppUpdate{Description: new("d")})
		check(err)
		attempt := store.KeyAuditOf(k1)
		attempt.Scope = ""
		check(f.s.RecordDenied(f.ctx, bob, "acct", store.DeniedEvent{
			Action: "key.update", ObjectType: "key", ObjectID: "k1", Reason: "scope_exceeds_caller: no",
			Before: store.KeyAuditOf(k1), After: attempt,
		}))
		mark("denied")
		check(f.s.RecordDenied(f.ctx, bob, "other", store.DeniedEvent{
			Action: "key.delete", ObjectType: "key", ObjectID: "k1", Reason: "scope_exceeds_caller: no",
		}))
		check(f.s.DeleteKey(f.ctx, Actor, "acct", "k2"))
		_, err = f.s.RotateKey(f.ctx, bob, "acct", "k1", Hash("new"), time.Time{})
		check(err)
		return f, at
	}
	// The log of acct after fill, newest first.
	all := []string{"key.regenerate k1", "key.delete k2", "key.update k1 denied", "app.update app1",
		"key.update k1", "key.create k2", "key.create k1", "tenant.create ten1", "app.create app1", "account.create acct"}
	t.Run("each filter, paged", func(t *testing.T) {
		f, at := fill(t)
		for _, c := range []struct {
			name string
			f    store.AuditFilter
			want []string
		}{
			{"none", store.AuditFilter{}, all},
			{"key", store.AuditFilter{KeyID: "k1"}, []string{"key.regenerate k1", "key.update k1 denied", "key.update k1", "key.create k1"}},
			{"key (only objects of type key)", store.AuditFilter{KeyID: "app1"}, nil},
			{"actor", store.AuditFilter{ActorKeyID: "bob-key"}, []string{"key.regenerate k1", "key.update k1 denied", "app.update app1", "key.update k1", "key.create k2"}},
			{"action", store.AuditFilter{Action: "key.update"}, []string{"key.update k1 denied", "key.update k1"}},
			{"action (exact)", store.AuditFilter{Action: "key"}, nil},
			{"action group", store.AuditFilter{ActionGroup: "key"}, []string{"key.regenerate k1", "key.delete k2", "key.update k1 denied", "key.update k1", "key.create k2", "key.create k1"}},
			{"action group app", store.AuditFilter{ActionGroup: "app"}, []string{"app.update app1", "app.create app1"}},
			{"outcome denied", store.AuditFilter{Outcome: store.OutcomeDenied}, []string{"key.update k1 denied"}},
			{"outcome allowed", store.AuditFilter{Outcome: store.OutcomeAllowed}, []string{"key.regenerate k1", "key.delete k2", "app.update app1",
				"key.update k1", "key.create k2", "key.create k1", "tenant.create ten1", "app.create app1", "account.create acct"}},
			{"since", store.AuditFilter{Since: at["denied"]}, all[:3]},
			{"until", store.AuditFilter{Until: at["k1 created"]}, all[7:]},
			{"since and until", store.AuditFilter{Since: at["k1 created"], Until: at["denied"]}, all[3:7]},
			{"combined", store.AuditFilter{KeyID: "k1", ActorKeyID: "bob-key", Action: "key.update", Since: at["k1 updated"]},
				[]string{"key.update k1 denied", "key.update k1"}},
			{"combined, nothing", store.AuditFilter{ActionGroup: "app", Outcome: store.OutcomeDenied}, nil},
		} {
			for _, size := range []int{1, 2, 3, 100} {
				evs, err := listAll(func(p store.Page) ([]store.AuditEvent, string, error) {
					return f.s.ListAuditEvents(f.ctx, "acct", c.f, p)
				}, size)
				if err != nil {
					t.Fatalf("%s, pages of %d: %v", c.name, size, err)
				}
				var got []string
				for _, e := range evs {
					s := e.Action + " " + e.ObjectID
					if e.Outcome == store.OutcomeDenied {
						s += " denied"
					}
					got = append(got, s)
				}
				if diff := cmp.Diff(c.want, got); diff != "" {
					t.Errorf("%s, pages of %d (-want +got):\n%s", c.name, size, diff)
				}
			}
		}
	})
	t.Run("denied events", func(t *testing.T) {
		f := setup(t, open)
		k := f.createKey(accountKey("k"))
		attempt := store.KeyAuditOf(k)
		attempt.Scope = ""
		reason := "scope_exceeds_caller: the account key would allow account-api:mutation:createApp"
		if err := f.s.RecordDenied(f.ctx, bob, "acct", store.DeniedEvent{
			Action: "key.update", ObjectType: "key", ObjectID: "k", Reason: reason,
			Before: store.KeyAuditOf(k), After: attempt,
		}); err != nil {
			t.Fatal(err)
		}
		if err := f.s.RecordDenied(f.ctx, bob, "acct", store.DeniedEvent{
			Action: "key.delete", ObjectType: "key", ObjectID: "k", Reason: reason, Before: store.KeyAuditOf(k),
		}); err != nil {
			t.Fatal(err)
		}
		evs := f.events("acct")
		del, upd, created := evs[0], evs[1], evs[2]
		if upd.Outcome != store.OutcomeDenied || upd.Reason != reason || upd.Actor != bob || upd.Action != "key.update" ||
			upd.ObjectType != "key" || upd.ObjectID != "k" || upd.AccountID != "acct" {
			t.Errorf("denied update: %+v", upd)
		}
		wantTime(t, "denied update: at", upd.At)
		wantJSON(t, "denied update: before", upd.Before, ofKey(k))
		want := ofKey(k)
		want.Scope = ""
		wantJSON(t, "denied update: after", upd.After, want)
		if del.Outcome != store.OutcomeDenied || del.Action != "key.delete" || del.After != nil {
			t.Errorf("denied delete: %+v", del)
		}
		wantJSON(t, "denied delete: before", del.Before, ofKey(k))
		if created.Outcome != store.OutcomeAllowed || created.Reason != "" {
			t.Errorf("a change's outcome %q, reason %q; want allowed and none", created.Outcome, created.Reason)
		}
		// Nothing else changed.
		if got := f.getKey("k"); !cmp.Equal(got, k) {
			t.Errorf("key after denied events: %+v, want %+v", got, k)
		}
	})
	t.Run("an id-ordered token still pages", func(t *testing.T) {
		// Tokens of the listing before (at, id) order named the event id
		// alone: they continue after that event.
		f, _ := fill(t)
		evs := f.events("acct")
		tok := store.PageToken{Seq: evs[2].ID}.String()
		rest, next, err := f.s.ListAuditEvents(f.ctx, "acct", store.AuditFilter{}, store.Page{Size: 2, Token: tok})
		if err != nil || len(rest) != 2 || rest[0].ID != evs[3].ID || rest[1].ID != evs[4].ID || next == "" {
			t.Fatalf("after an id token: %d events, next %q, %v", len(rest), next, err)
		}
		if _, _, err := f.s.ListAuditEvents(f.ctx, "other", store.AuditFilter{}, store.Page{Token: tok}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("another account's event id as token: %v, want ErrInvalid", err)
		}
	})
}

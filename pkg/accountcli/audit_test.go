package accountcli

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

func record(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAuditChanges: the CHANGES cell names only the fields that changed,
// old → new, summarises creates and deletes, says why a denied call was
// refused, and stays within its width.
func TestAuditChanges(t *testing.T) {
	key := map[string]any{
		"id": "k1", "account_id": "acct", "name": "billing-prod", "type": "service", "app_id": "billing",
		"tenant_id": "acme", "scope": "email-api", "active": true, "origin": "generated",
		"created_at": "2026-12-01T10:00:00.123456Z", "updated_at": "2026-12-01T10:00:00.123456Z",
	}
	with := func(changes map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range key {
			out[k] = v
		}
		for k, v := range changes {
			if v == nil {
				delete(out, k)
				continue
			}
			out[k] = v
		}
		out["updated_at"] = "2026-12-02T10:00:00Z"
		return out
	}
	long := strings.Repeat("email-api:mutation:sendEmail ", 10)
	for _, tc := range []struct {
		name          string
		action        string
		outcome       string
		reason        string
		before, after map[string]any
		want          string
	}{
		{"update", "key.update", "allowed", "", key, with(map[string]any{"active": false, "scope": "sms-api"}),
			`active: true → false; scope: "email-api" → "sms-api"`},
		{"a field set and one cleared", "key.update", "allowed", "", key,
			with(map[string]any{"expires_at": "2027-01-01T00:00:00Z", "tenant_id": nil}),
			`expires_at: - → 2027-01-01T00:00:00Z; tenant_id: "acme" → -`},
		{"lists as JSON", "key.update", "allowed", "", key, with(map[string]any{"ip_filters": []any{"10.0.0.0/8"}}),
			`ip_filters: - → ["10.0.0.0/8"]`},
		{"empty scope", "key.update", "allowed", "", key, with(map[string]any{"scope": ""}), `scope: "email-api" → * (all)`},
		{"long values cut", "key.update", "allowed", "", key, with(map[string]any{"scope": long}),
			`scope: "email-api" → "email-api:mutation:send…"`},
		{"many changes: +N more", "key.update", "allowed", "", key, with(map[string]any{
			"active": false, "description": "a longer description", "group": "team-a", "name": "renamed", "scope": "sms-api"}),
			`active: true → false; description: - → "a longer description"; +3 more`},
		{"create", "key.create", "allowed", "", nil, key, `created service key "billing-prod", app billing, tenant acme, scope "email-api"`},
		{"create of an app", "app.create", "allowed", "", nil, map[string]any{"id": "billing", "name": "Billing", "active": false},
			`created "Billing", inactive`},
		{"delete", "key.delete", "allowed", "", key, nil, `deleted service key "billing-prod", app billing, tenant acme, scope "email-api"`},
		{"regenerate, no grace", "key.regenerate", "allowed", "", key, with(nil), "new secret"},
		{"regenerate with grace", "key.regenerate", "allowed", "", key, with(map[string]any{"previous_valid_until": "2026-12-09T10:00:00Z"}),
			"new secret; previous_valid_until: - → 2026-12-09T10:00:00Z"},
		{"limits", "account.limits", "allowed", "", map[string]any{}, map[string]any{"max_keys": float64(500)}, "max_keys: - → 500"},
		{"denied update", "key.update", "denied", "scope_exceeds_caller: the account key would allow …", key, with(map[string]any{"scope": ""}),
			`scope_exceeds_caller; scope: "email-api" → * (all)`},
		{"denied create", "key.create", "denied", "scope_exceeds_caller: x", nil,
			map[string]any{"name": "x", "type": "account", "scope": ""}, `scope_exceeds_caller; would create account key "x", scope * (all)`},
		{"denied delete", "key.delete", "denied", "scope_exceeds_caller: x", key, nil, "scope_exceeds_caller"},
		{"denied regenerate", "key.regenerate", "denied", "scope_exceeds_caller: x", key, nil, "scope_exceeds_caller; new secret"},
		{"nothing", "key.update", "allowed", "", key, with(nil), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &accountv1.AuditEvent{Action: tc.action, Outcome: tc.outcome, Reason: tc.reason}
			if tc.before != nil {
				ev.Before = record(t, tc.before)
			}
			if tc.after != nil {
				ev.After = record(t, tc.after)
			}
			got := auditChanges(ev)
			if got != tc.want {
				t.Errorf("changes\n got %s\nwant %s", got, tc.want)
			}
			if n := utf8.RuneCountInString(got); n > changesWidth {
				t.Errorf("%d runes, more than %d", n, changesWidth)
			}
		})
	}
}

// TestAuditRowAction: a denied event's ACTION says so.
func TestAuditRowAction(t *testing.T) {
	row := auditRow(&accountv1.AuditEvent{Id: 7, Action: "key.update", Outcome: "denied", ActorKeyId: "k9", ActorKeyName: "ci",
		ObjectType: "key", ObjectId: "k1", Reason: "scope_exceeds_caller: x"})
	if row[2] != "k9 (ci)" || row[3] != "key.update (denied)" || row[4] != "key k1" || row[5] != "scope_exceeds_caller" {
		t.Fatalf("row %q", row)
	}
	if row := auditRow(&accountv1.AuditEvent{Action: "key.update", Outcome: "allowed"}); row[3] != "key.update" || row[2] != "(bootstrap)" {
		t.Fatalf("row %q", row)
	}
}

// TestParseAuditTime: RFC 3339, a date, or a duration back from now with
// days; anything else names the flag and the forms.
func TestParseAuditTime(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2027-01-01T09:30:00Z", time.Date(2027, 1, 1, 9, 30, 0, 0, time.UTC)},
		{"2027-01-01T09:30:00+02:00", time.Date(2027, 1, 1, 7, 30, 0, 0, time.UTC)},
		{"2027-01-01", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"30m", now.Add(-30 * time.Minute)},
		{"24h", now.Add(-24 * time.Hour)},
		{"7d", now.Add(-7 * 24 * time.Hour)},
		{"1d12h", now.Add(-36 * time.Hour)},
		{"0d90m", now.Add(-90 * time.Minute)},
	} {
		got, err := parseAuditTime("since", tc.in, now)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "yesterday", "7", "-1h", "0s", "0d", "d", "7d-1h", "1.5d", "2027-13-01", "99999999d", "100000d", "1d 2h", "2027-01-01 10:00"} {
		_, err := parseAuditTime("since", bad, now)
		want := `--since: want an RFC 3339 time (2027-01-01T09:00:00Z), a date (2027-01-01) or a duration back from now (30m, 24h, 7d), got "` + bad + `"`
		if err == nil || err.Error() != want {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// FuzzParseAuditTime: never panics, and a duration never lands after
// now nor more than 100 years before it.
func FuzzParseAuditTime(f *testing.F) {
	for _, s := range []string{"7d", "1d12h", "30m", "2027-01-01", "2027-01-01T00:00:00Z", "999999d", "9223372036854775807ns"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		if d, ok := parseAgo(s); ok && (d <= 0 || d > maxAuditAgo) {
			t.Fatalf("%q: %v", s, d)
		}
		_, _ = parseAuditTime("since", s, now)
	})
}

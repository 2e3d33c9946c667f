package console

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzReadKeyForm: any form body reads into a key form without a panic,
// and what it reads is what the service gets: every non-empty row, the
// scope's patterns each once (a ticked deny toggle's as "!pattern"), and
// a rate limit and quota that are none, or valid, or an error naming
// their field.
func FuzzReadKeyForm(f *testing.F) {
	f.Add("type=service&name=a&scope=x:y&perm=x:y&perm=z&ip_address=10.0.0.0&ip_netmask=255.0.0.0&header_name=h&header_value=v&header_off=0")
	f.Add("ip_address=&ip_netmask=24&ip_netmask=extra&header_name=&header_value=v&header_off=7&header_off=x")
	f.Add("scope=%00%20a%20a&perm=a&perm=&active=on&expires_at=2030-01-01T00:00")
	f.Add("scope=a%20!b&perm=a&deny=b&deny=!c&deny=!&rate_limit_requests=5&rate_limit_unit=second&quota_requests=1,000&quota_period=day")
	f.Add("rate_limit_requests=0&rate_limit_unit=none&quota_requests=x&quota_period=year")
	f.Fuzz(func(t *testing.T, body string) {
		r, err := http.NewRequest("POST", "/keys", strings.NewReader(body))
		if err != nil {
			t.Skip()
		}
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if r.ParseForm() != nil {
			return
		}
		kf := readKeyForm(r)
		typed := map[string]int{}
		for _, p := range strings.Fields(r.PostForm.Get("scope")) {
			typed[p]++
		}
		got := map[string]int{}
		for _, p := range strings.Fields(kf.Scope) {
			got[p]++
		}
		for p, n := range got {
			if n > max(1, typed[p]) {
				t.Fatalf("pattern %q %d times in %q", p, n, kf.Scope)
			}
		}
		for _, perm := range r.PostForm["perm"] {
			for _, p := range strings.Fields(perm) {
				if got[p] == 0 {
					t.Fatalf("ticked %q not in the scope %q", p, kf.Scope)
				}
			}
		}
		for _, deny := range r.PostForm["deny"] {
			for _, p := range strings.Fields(deny) {
				if p = strings.TrimLeft(p, "!"); p != "" && got["!"+p] == 0 {
					t.Fatalf("denied %q not in the scope %q", p, kf.Scope)
				}
			}
		}
		errs := map[string]string{}
		rl, q := kf.limits(errs)
		for field, err := range errs {
			if field != "rate_limit" && field != "quota" || !strings.HasPrefix(err, field+": ") {
				t.Fatalf("error %q for field %q", err, field)
			}
		}
		if errs["rate_limit"] == "" && !rl.IsZero() && rl.Unit.String() == "" {
			t.Fatalf("rate limit %+v without a unit", rl)
		}
		if errs["quota"] == "" && !q.IsZero() && (q.Requests <= 0 || q.Period.String() == "") {
			t.Fatalf("quota %+v", q)
		}
		if got := kf.ipFilters(); len(got) != len(kf.IPs) {
			t.Fatalf("%d filters from %d rows", len(got), len(kf.IPs))
		}
		for _, row := range kf.IPs {
			if row.Address == "" && row.Netmask == "" {
				t.Fatal("an empty IP row was kept")
			}
		}
		for _, row := range kf.Headers {
			if row.Name == "" && row.Value == "" {
				t.Fatal("an empty header row was kept")
			}
		}
		kf.times(map[string]string{})
	})
}

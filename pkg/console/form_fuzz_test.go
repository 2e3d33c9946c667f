package console

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzReadKeyForm: any form body reads into a key form without a panic,
// and what it reads is what the service gets: every non-empty row, the
// scope's patterns each once.
func FuzzReadKeyForm(f *testing.F) {
	f.Add("type=service&name=a&scope=x:y&perm=x:y&perm=z&ip_address=10.0.0.0&ip_netmask=255.0.0.0&header_name=h&header_value=v&header_off=0")
	f.Add("ip_address=&ip_netmask=24&ip_netmask=extra&header_name=&header_value=v&header_off=7&header_off=x")
	f.Add("scope=%00%20a%20a&perm=a&perm=&active=on&expires_at=2030-01-01T00:00")
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

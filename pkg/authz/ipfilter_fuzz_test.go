package authz_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/authz"
)

// FuzzParseIPFilters feeds random filter strings and client addresses to
// the IP filter parser and matcher (SPEC §9 "IP filters"). It must never
// panic; an accepted filter must be strict (no zone, no white space) and
// hold the address it was written with, when that address is of the same
// family as the client; an IPv4 client never matches an IPv6 filter nor
// the reverse; an unknown client never passes a non-empty filter; and a
// refusal names the entry without quoting more than the entry.
func FuzzParseIPFilters(f *testing.F) {
	for _, s := range [][2]string{
		{"10.0.0.0/8", "10.1.2.3"},
		{"192.168.178.1/255.255.255.0", "192.168.178.77"},
		{"10.0.0.0/255.0.255.0", "10.0.0.1"},
		{"2001:db8::/32", "2001:db8::1%eth0"},
		{"2001:db8::/ffff::", "::ffff:10.0.0.1"},
		{"::ffff:10.0.0.0/104", "10.0.0.1"},
		{"fe80::1%eth0", "fe80::1"},
		{"0.0.0.0/0", "::1"},
		{"::/0", "127.0.0.1"},
		{"10.0.0.0/8/8", ""},
		{" 10.0.0.1", "not-an-ip"},
		{"010.0.0.1", "10.0.0.1"},
		{"1.2.3.4/", "1.2.3.4"},
		{"1.2.3.4/255.255.255.255", "1.2.3.4"},
		{"1.2.3.4/0.0.0.0", "255.255.255.255"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, client string) {
		ip, _ := netip.ParseAddr(client) // the zero Addr when unparseable, as the adapter does
		fl, err := authz.ParseIPFilters([]string{filter})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "[0] ") {
				t.Fatalf("error does not name the entry: %v", err)
			}
			if len(err.Error()) > len(filter)*6+200 {
				t.Fatalf("error of %d bytes for a %d-byte filter", len(err.Error()), len(filter))
			}
			return
		}
		if fl.Len() != 1 {
			t.Fatalf("one filter compiled to %d", fl.Len())
		}
		if strings.ContainsAny(filter, "% \t\n") {
			t.Fatalf("accepted %q", filter)
		}
		allowed := fl.Allows(ip)
		if !ip.IsValid() && allowed {
			t.Fatalf("%q allows an unknown client", filter)
		}
		addrPart, _, _ := strings.Cut(filter, "/")
		written, err := netip.ParseAddr(addrPart)
		if err != nil {
			t.Fatalf("accepted %q whose address does not parse: %v", filter, err)
		}
		if ip.IsValid() {
			c := ip.Unmap().WithZone("")
			if allowed && c.Is4() != written.Is4() {
				t.Fatalf("%q allows %s of the other family", filter, client)
			}
		}
		// The written address (masked) is inside its own filter, unless
		// it is an IPv4-mapped IPv6 address, which no client can be.
		if !written.Is4In6() && !fl.Allows(written) {
			t.Fatalf("%q does not allow its own address", filter)
		}
		// Parsing is deterministic and the matcher has no state.
		again, err := authz.ParseIPFilters([]string{filter})
		if err != nil || again.Allows(ip) != allowed {
			t.Fatalf("second parse of %q differs: %v", filter, err)
		}
	})
}

// A key's IP filters (SPEC §5, row 7): parsing the addresses, CIDR ranges
// and IPv4 address/netmasks a key may be used from, and the check of a
// client address against them.

package authz

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// IPFilter is a compiled set of IP filters; empty allows any client.
type IPFilter struct {
	prefixes []netip.Prefix
}

// ParseIPFilters compiles filters written as CIDR ("10.0.0.0/8",
// "2001:db8::/32", host bits masked), a bare address (/32 or /128), or IPv4
// address/netmask ("192.168.178.1/255.255.255.0", contiguous masks only).
func ParseIPFilters(filters []string) (IPFilter, error) {
	var f IPFilter
	var errs []error
	for i, s := range filters {
		p, err := parseIPFilter(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("[%d] %q: %w; %s", i, s, err, IPFilterForms))
			continue
		}
		f.prefixes = append(f.prefixes, p)
	}
	if len(errs) > 0 {
		return IPFilter{}, errors.Join(errs...)
	}
	return f, nil
}

// IPFilterForms closes every message about a filter that does not parse,
// so that it says what to write instead.
const IPFilterForms = "accepted forms: a CIDR (10.0.0.0/8, 2001:db8::/32), an address (10.1.2.3), an IPv4 address/netmask (10.0.0.0/255.0.0.0)"

// ErrIPFilterList is the error of a filter holding a comma: several
// filters written as one, which would otherwise read as a bad netmask or
// address.
var ErrIPFilterList = errors.New("a comma-separated list: give one address or CIDR per filter")

func parseIPFilter(s string) (netip.Prefix, error) {
	if strings.Contains(s, ",") {
		return netip.Prefix{}, ErrIPFilterList
	}
	addrPart, maskPart, hasMask := strings.Cut(s, "/")
	addr, err := netip.ParseAddr(addrPart)
	if err != nil {
		return netip.Prefix{}, errors.New("not an IPv4 or IPv6 address")
	}
	if addr.Zone() != "" {
		return netip.Prefix{}, errors.New("an address zone is not allowed")
	}
	if !hasMask {
		return netip.PrefixFrom(addr, addr.BitLen()), nil
	}
	if strings.Contains(maskPart, ".") || strings.Contains(maskPart, ":") {
		if !addr.Is4() {
			return netip.Prefix{}, errors.New("a netmask is only allowed with an IPv4 address; use /bits for IPv6")
		}
		mask, err := netip.ParseAddr(maskPart)
		if err != nil || !mask.Is4() {
			return netip.Prefix{}, errors.New("netmask is not an IPv4 address")
		}
		bits, ok := maskBits(mask.As4())
		if !ok {
			return netip.Prefix{}, errors.New("netmask is not contiguous")
		}
		return netip.PrefixFrom(addr, bits).Masked(), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("prefix length must be 0..%d", addr.BitLen())
	}
	return p.Masked(), nil
}

// maskBits returns the prefix length of a contiguous IPv4 netmask.
func maskBits(m [4]byte) (int, bool) {
	v := uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])
	ones := 0
	for v&0x80000000 != 0 {
		ones++
		v <<= 1
	}
	return ones, v == 0
}

// Allows reports whether ip passes the filters. An empty filter allows any
// client, even an unknown one; a non-empty filter refuses an unknown
// (invalid) address. IPv4-mapped IPv6 sources are unmapped, zones ignored,
// and IPv4 sources never match IPv6 filters nor the reverse.
func (f *IPFilter) Allows(ip netip.Addr) bool {
	if len(f.prefixes) == 0 {
		return true
	}
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range f.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Prefixes lists the compiled filters (host bits masked, netmasks as
// lengths), in the order written: what the key is checked against (the
// record does not keep the filters' text).
func (f *IPFilter) Prefixes() []netip.Prefix { return slices.Clone(f.prefixes) }

// IPFilter returns the key's compiled IP filters (an empty filter, which
// allows every address, for a key without any).
func (k *Key) IPFilter() *IPFilter {
	if k.extra == nil {
		return new(IPFilter)
	}
	return &k.extra.ips
}

// Len is the number of filters.
func (f *IPFilter) Len() int { return len(f.prefixes) }

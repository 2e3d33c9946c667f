package authz

import (
	"net/netip"
	"unsafe"
)

// What a transport adapter keeps for a key once it has allowed a request
// (extauthz: the key's last allow in its wire form, in the server's slabs
// and named by the key's AdapterRef since 2026-12-07; before, in an object
// of the key's own, AdapterData). The slabs have a bound of their own;
// records are still charged for an allow, so that the cache's bound stays
// an over-estimate of records and allows together, wherever allows live:
// adapterBase for a key without response headers, and adapterPerHeader
// plus the rendered value for each response header. Measured with
// extauthz's BenchmarkAllowMemo (heap after one allow per key, 2,000 keys:
// 710 B a key without response headers, 22,007 B with 20 of 1 KiB),
// rounded up. (Before the allow was kept encoded only: 3.7 KB a key.)
const (
	adapterBase      = 768
	adapterPerHeader = 64
)

// Size is the approximate number of bytes the record keeps in memory: the
// struct, its strings, its compiled scope, IP filters and response
// headers, and an estimate of what an adapter builds with it on its first
// allow (AdapterData). Strings shared between keys (interned ids and names,
// shared scopes) are counted for every key that holds them, so that a bound
// on the sum holds whatever the sharing. It is computed once, when the
// record is compiled, never on a lookup.
func (k *Key) Size() int64 {
	if k.size > 0 {
		return k.size
	}
	return k.computeSize() // a record built without Compile (tests)
}

func (k *Key) computeSize() int64 {
	n := int64(unsafe.Sizeof(*k)) + infoStringsSize(&k.Spec)
	if e := k.extra; e != nil {
		n += int64(unsafe.Sizeof(*e)) + int64(len(e.unloadable)) +
			int64(cap(e.ips.prefixes))*int64(unsafe.Sizeof(netip.Prefix{})) + headersSize(e.headers)
	}
	if a := k.Spec.KeyAccess; a != nil {
		// Counted for every key, shared or not, as scopes are: the
		// access, its effective scope, and with roles the own scope and
		// the role pointers.
		n += int64(unsafe.Sizeof(*a)) + a.effective.Size()
		if len(a.roles) > 0 {
			n += a.own.Size() + int64(cap(a.roles))*int64(unsafe.Sizeof((*Role)(nil)))
		}
	}
	return n + AdapterCost(k)
}

// AdapterCost is the estimate, within Size, of what an adapter keeps with
// the key once it has allowed a request (AdapterData): every header it
// sends, with the rendered values.
func AdapterCost(k *Key) int64 {
	headers := k.templates()
	n := int64(adapterBase) + int64(len(headers))*adapterPerHeader
	for i := range headers {
		n += int64(len(headers[i].static))
	}
	return n
}

// infoStringsSize is what a KeyInfo holds outside its struct.
func infoStringsSize(s *KeyInfo) int64 {
	n := int64(len(s.ID) + len(s.Name) + len(s.Group))
	if o := s.KeyOwner; o != nil {
		n += int64(unsafe.Sizeof(*o)) + int64(len(o.AccountID)+len(o.AppID)+len(o.AppName)+len(o.TenantID)+len(o.TenantName))
	}
	if a := s.KeyAccess; a != nil {
		n += int64(len(a.Scope)) + int64(cap(a.Roles))*int64(unsafe.Sizeof(""))
		for _, r := range a.Roles {
			n += int64(len(r))
		}
	}
	return n
}

// headersSize is what the compiled response headers hold.
func headersSize(hs []headerTemplate) int64 {
	n := int64(cap(hs)) * int64(unsafe.Sizeof(headerTemplate{}))
	for i := range hs {
		h := &hs[i]
		n += int64(len(h.name) + len(h.static))
		n += int64(cap(h.parts)) * int64(unsafe.Sizeof(templatePart{}))
		for _, p := range h.parts {
			n += int64(len(p.lit))
		}
	}
	return n
}

package authz

import (
	"slices"
	"strings"
)

// RenamedOperations are the Account API operations SPEC §14 renamed to
// their GraphQL field names, by their earlier (gRPC-derived) names.
// Migration 0011 rewrites stored scopes with the same rule as
// CanonicalScope (keygate_canonical_scope; a test keeps them in step).
// Every input of scopes applies CanonicalScope: the Account API (package
// account) and the keys file (package keyfile, and so serve --keys-file
// and import-file), which is why it lives here, below both.
var RenamedOperations = []struct{ Old, New string }{
	{"getApp", "app"}, {"listApps", "apps"},
	{"getTenant", "tenant"}, {"listTenants", "tenants"},
	{"getKey", "key"}, {"listKeys", "keys"},
	{"listAuditEvents", "auditEvents"},
}

// CanonicalScope rewrites the patterns of a scope that name Account API
// operations by their earlier names, so that the scope allows and denies
// what it did before the rename:
//
//   - account-api:<kind>:listApps becomes account-api:<kind>:apps (deny
//     patterns alike);
//   - a pattern whose service is a wildcard (*, acc*) keeps its literal
//     old name, which other services may use, and gains an
//     account-api:<kind>:<new> pattern beside it;
//   - a prefix (account-api:query:list*) that matched old names the new
//     names no longer start with gains a pattern per such new name.
//
// A scope without such patterns is returned as it was; otherwise the
// patterns are joined by single spaces.
func CanonicalScope(s string) string {
	fields := strings.Fields(s)
	out := make([]string, 0, len(fields))
	changed := false
	var added []string
	for _, p := range fields {
		neg, pat := "", p
		if strings.HasPrefix(pat, "!") {
			neg, pat = "!", pat[1:]
		}
		segs := strings.Split(pat, ":")
		if len(segs) != 3 || !segmentMatches(segs[0], AccountAPIService) {
			out = append(out, p)
			continue
		}
		svc, kind, op := segs[0], segs[1], segs[2]
		renamed := p
		for _, r := range RenamedOperations {
			var hit bool
			if prefix, ok := strings.CutSuffix(op, "*"); ok {
				hit = prefix != "" && strings.HasPrefix(r.Old, prefix) && !strings.HasPrefix(r.New, prefix)
			} else {
				hit = op == r.Old
			}
			switch {
			case !hit:
			case svc == AccountAPIService && op == r.Old:
				renamed = neg + svc + ":" + kind + ":" + r.New
			default:
				added = append(added, neg+AccountAPIService+":"+kind+":"+r.New)
			}
		}
		changed = changed || renamed != p
		out = append(out, renamed)
	}
	for _, a := range added {
		if !slices.Contains(out, a) {
			out = append(out, a)
			changed = true
		}
	}
	if !changed {
		return s
	}
	return strings.Join(out, " ")
}

// segmentMatches reports whether a scope segment (a literal, * or a
// prefix ending in *) matches name.
func segmentMatches(seg, name string) bool {
	if prefix, ok := strings.CutSuffix(seg, "*"); ok {
		return strings.HasPrefix(name, prefix)
	}
	return seg == name
}

// CanonicalScopeCases are CanonicalScope's test table, exported so that
// the migration that applies the same rule in SQL is tested against it.
var CanonicalScopeCases = []struct{ In, Want string }{
	{"", ""},
	{"email-api account-api:query:*", "email-api account-api:query:*"},
	{"account-api:query:listApps", "account-api:query:apps"},
	{"  account-api:query:getApp\temail-api  ", "account-api:query:app email-api"},
	{"!account-api:query:listKeys account-api", "!account-api:query:keys account-api"},
	{"account-api:*:getTenant account-api:query:listTenants account-api:query:listAuditEvents",
		"account-api:*:tenant account-api:query:tenants account-api:query:auditEvents"},
	{"account-api:query:getKey", "account-api:query:key"},
	{"account-api:query:list*", "account-api:query:list* account-api:query:apps account-api:query:tenants account-api:query:keys account-api:query:auditEvents"},
	{"account-api:query:get*", "account-api:query:get* account-api:query:app account-api:query:tenant account-api:query:key"},
	{"!account-api:*:listA*", "!account-api:*:listA* !account-api:*:apps !account-api:*:auditEvents"},
	{"*:query:listApps", "*:query:listApps account-api:query:apps"},
	{"acc*:query:getApp", "acc*:query:getApp account-api:query:app"},
	{"email-api:query:listApps", "email-api:query:listApps"},
	{"account-api:query:apps account-api:query:listApps", "account-api:query:apps account-api:query:apps"},
	{"account-api:query:a*", "account-api:query:a*"},
	{"account-api:query", "account-api:query"},
}

package envoy_test

// What every shipped Envoy config guarantees beyond loading (issue 13,
// SPEC §9): one path for Envoy, keygate and the upstream; no header names
// with underscores; rate limits keyed on the account with the tenant (or
// key, or app); host routes of keygate's example routes file paired with an
// Envoy virtual host of their own; a GraphQL body never read whole when cut.
// The same rules are applied to the Envoy (and Istio) YAML blocks of
// docs/*.md and README.md.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// shippedConfigs loads every Envoy config in this directory.
func shippedConfigs(t *testing.T) map[string]*bootstrapv3.Bootstrap {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Envoy configs found: %v", err)
	}
	out := map[string]*bootstrapv3.Bootstrap{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := loadBootstrap(raw)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = b
	}
	return out
}

// eachMessage calls f for m and every message below it, opening every Any.
func eachMessage(m protoreflect.Message, f func(protoreflect.Message)) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		if inner, err := a.UnmarshalNew(); err == nil {
			eachMessage(inner.ProtoReflect(), f)
		}
		return
	}
	f(m)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					eachMessage(mv.Message(), f)
					return true
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				for i := range v.List().Len() {
					eachMessage(v.List().Get(i).Message(), f)
				}
			}
		case fd.Message() != nil:
			eachMessage(v.Message(), f)
		}
		return true
	})
}

// each collects every T below m (Anys opened).
func each[T proto.Message](m proto.Message) []T {
	var out []T
	eachMessage(m.ProtoReflect(), func(m protoreflect.Message) {
		if v, ok := m.Interface().(T); ok {
			out = append(out, v)
		}
	})
	return out
}

// ---- paths and header names -----------------------------------------------

// hardeningErrors: what a connection manager in front of keygate must set
// (SPEC §9): Envoy normalises the path as keygate does, refuses or
// redirects encoded slashes and backslashes (which keygate refuses,
// invalid_path), and refuses header names with underscores, which upstreams
// may fold into identity headers.
func hardeningErrors(h *hcmv3.HttpConnectionManager) []error {
	var errs []error
	if !h.GetNormalizePath().GetValue() {
		errs = append(errs, errors.New("normalize_path is not true"))
	}
	if !h.GetMergeSlashes() {
		errs = append(errs, errors.New("merge_slashes is not true"))
	}
	switch a := h.GetPathWithEscapedSlashesAction(); a {
	case hcmv3.HttpConnectionManager_REJECT_REQUEST, hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT:
	default:
		errs = append(errs, fmt.Errorf("path_with_escaped_slashes_action %v, want REJECT_REQUEST or UNESCAPE_AND_REDIRECT", a))
	}
	if a := h.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction(); a != corev3.HttpProtocolOptions_REJECT_REQUEST {
		errs = append(errs, fmt.Errorf("common_http_protocol_options.headers_with_underscores_action %v, want REJECT_REQUEST", a))
	}
	return errs
}

func TestEveryConfigNormalisesPathsAndRejectsUnderscores(t *testing.T) {
	for f, b := range shippedConfigs(t) {
		t.Run(f, func(t *testing.T) {
			hs := each[*hcmv3.HttpConnectionManager](b)
			if len(hs) == 0 {
				t.Fatal("no HTTP connection manager")
			}
			for _, h := range hs {
				for _, err := range hardeningErrors(h) {
					t.Errorf("connection manager %s: %v", h.GetStatPrefix(), err)
				}
			}
		})
	}
}

// TestHardeningCheckFails proves the check above bites: each setting taken
// out of envoy.yaml is reported.
func TestHardeningCheckFails(t *testing.T) {
	good, err := os.ReadFile("envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ old, new, want string }{
		{"normalize_path: true", "normalize_path: false", "normalize_path"},
		{"merge_slashes: true", "merge_slashes: false", "merge_slashes"},
		{"path_with_escaped_slashes_action: REJECT_REQUEST", "path_with_escaped_slashes_action: KEEP_UNCHANGED", "path_with_escaped_slashes_action"},
		{"headers_with_underscores_action: REJECT_REQUEST", "headers_with_underscores_action: ALLOW", "headers_with_underscores_action"},
	}
	for _, c := range cases {
		t.Run(c.new, func(t *testing.T) {
			if n := strings.Count(string(good), c.old); n != 1 {
				t.Fatalf("envoy.yaml has %d copies of %q, want 1: update this case", n, c.old)
			}
			b, err := loadBootstrap([]byte(strings.Replace(string(good), c.old, c.new, 1)))
			if err != nil {
				t.Fatal(err)
			}
			var all []error
			for _, h := range each[*hcmv3.HttpConnectionManager](b) {
				all = append(all, hardeningErrors(h)...)
			}
			if err := errors.Join(all...); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("with %q: got %v, want an error naming %s", c.new, err, c.want)
			}
		})
	}
}

// ---- rate limits keyed on the account -------------------------------------

// Identity ids that are unique only within an account (SPEC §9 "Identity
// across accounts"): a descriptor holding one must hold account_id too.
var perAccountIDs = []string{"tenant_id", "key_id", "app_id"}

// metadataKeys lists the descriptor keys of a rate limit's actions that
// read keygate's dynamic metadata, by the metadata key they read; an action
// that reads it with a default value or skip_if_absent is reported, since
// either would make a descriptor without the account. One exception: a
// descriptor that also reads key_id (never skipped) may skip tenant_id or
// app_id, which keys without a tenant (or app) lack: the key id, unique
// within the account, still keeps every key's counter apart.
func metadataKeys(rl *routev3.RateLimit) (keys map[string]string, errs []error) {
	keys = map[string]string{}
	hasKeyID := false
	for _, a := range rl.GetActions() {
		md := a.GetMetadata()
		if md.GetMetadataKey().GetKey() == extAuthzName && len(md.GetMetadataKey().GetPath()) == 1 &&
			md.GetMetadataKey().GetPath()[0].GetKey() == "key_id" && !md.GetSkipIfAbsent() && md.GetDefaultValue() == "" {
			hasKeyID = true
		}
	}
	for _, a := range rl.GetActions() {
		md := a.GetMetadata()
		if md == nil || md.GetMetadataKey().GetKey() != extAuthzName {
			continue
		}
		path := md.GetMetadataKey().GetPath()
		if len(path) != 1 || md.GetSource() != routev3.RateLimit_Action_MetaData_DYNAMIC {
			errs = append(errs, fmt.Errorf("action %q: want source DYNAMIC and one path key", md.GetDescriptorKey()))
			continue
		}
		k := path[0].GetKey()
		keys[k] = md.GetDescriptorKey()
		if hasKeyID && (k == "tenant_id" || k == "app_id") && md.GetSkipIfAbsent() && md.GetDefaultValue() == "" {
			continue
		}
		if (k == "account_id" || slices.Contains(perAccountIDs, k)) && (md.GetDefaultValue() != "" || md.GetSkipIfAbsent()) {
			errs = append(errs, fmt.Errorf("action %q on %s: default_value or skip_if_absent would build the descriptor without it", md.GetDescriptorKey(), k))
		}
	}
	return keys, errs
}

// rateLimitErrors checks every rate limit of a config: each that reads a
// per-account id from keygate's metadata reads account_id as well, and each
// local rate-limit descriptor naming such an id names account_id. It
// returns how many rate limits read a per-account id.
func rateLimitErrors(m proto.Message) (n int, errs []error) {
	for _, rl := range each[*routev3.RateLimit](m) {
		keys, e := metadataKeys(rl)
		errs = append(errs, e...)
		for _, id := range perAccountIDs {
			if _, ok := keys[id]; !ok {
				continue
			}
			n++
			if _, ok := keys["account_id"]; !ok {
				errs = append(errs, fmt.Errorf("rate_limits actions %v read %s without account_id: one account would spend another's budget", slices.Sorted(mapKeys(keys)), id))
			}
		}
	}
	for _, d := range each[*commonrlv3.LocalRateLimitDescriptor](m) {
		var ks []string
		for _, e := range d.GetEntries() {
			ks = append(ks, e.GetKey())
		}
		for _, id := range perAccountIDs {
			if slices.Contains(ks, id) && !slices.Contains(ks, "account_id") {
				errs = append(errs, fmt.Errorf("local rate-limit descriptor %v has %s without account_id", ks, id))
			}
		}
	}
	return n, errs
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestRateLimitsKeyOnAccount(t *testing.T) {
	total := 0
	for f, b := range shippedConfigs(t) {
		n, errs := rateLimitErrors(b)
		total += n
		for _, err := range errs {
			t.Errorf("%s: %v", f, err)
		}
	}
	if total == 0 {
		t.Error("no shipped rate limit reads tenant_id, key_id or app_id: the test checks nothing")
	}
}

// TestRateLimitCheckFails: a tenant-only action, as the configs had before
// issue 13, is reported.
func TestRateLimitCheckFails(t *testing.T) {
	rl := &routev3.RateLimit{Actions: []*routev3.RateLimit_Action{{
		ActionSpecifier: &routev3.RateLimit_Action_Metadata{Metadata: &routev3.RateLimit_Action_MetaData{
			DescriptorKey: "tenant_id",
			MetadataKey:   metadataKey("tenant_id"),
			Source:        routev3.RateLimit_Action_MetaData_DYNAMIC,
		}},
	}}}
	n, errs := rateLimitErrors(&routev3.VirtualHost{Name: "api", RateLimits: []*routev3.RateLimit{rl}})
	if n != 1 || len(errs) != 1 || !strings.Contains(errs[0].Error(), "without account_id") {
		t.Errorf("tenant-only action: n=%d errs=%v", n, errs)
	}
	d := &commonrlv3.LocalRateLimitDescriptor{Entries: []*commonrlv3.RateLimitDescriptor_Entry{{Key: "tenant_id"}}}
	if _, errs := rateLimitErrors(d); len(errs) != 1 {
		t.Errorf("tenant-only local descriptor: %v", errs)
	}
}

// ---- the envoyproxy/ratelimit config beside envoy-ratelimit.yaml ----------

// rlDescriptor is one node of envoyproxy/ratelimit's config format.
type rlDescriptor struct {
	Key         string         `yaml:"key"`
	Value       string         `yaml:"value"`
	RateLimit   *rlLimit       `yaml:"rate_limit"`
	Descriptors []rlDescriptor `yaml:"descriptors"`
	ShadowMode  bool           `yaml:"shadow_mode"`
}

type rlLimit struct {
	Unit            string `yaml:"unit"`
	RequestsPerUnit uint32 `yaml:"requests_per_unit"`
	Unlimited       bool   `yaml:"unlimited"`
}

type rlConfig struct {
	Domain      string         `yaml:"domain"`
	Descriptors []rlDescriptor `yaml:"descriptors"`
}

// rlConfigErrors: what envoyproxy/ratelimit refuses at load (an empty key,
// the same key and value twice at one level, a bad unit), and a per-account
// id on a path that does not start with account_id.
func rlConfigErrors(ds []rlDescriptor, path []string) []error {
	var errs []error
	seen := map[string]bool{}
	for _, d := range ds {
		composite := d.Key
		if d.Value != "" {
			composite += "_" + d.Value
		}
		p := append(slices.Clone(path), composite)
		if d.Key == "" {
			errs = append(errs, fmt.Errorf("%v: descriptor without key", p))
		}
		if seen[composite] {
			errs = append(errs, fmt.Errorf("%v: duplicate descriptor composite key (envoyproxy/ratelimit refuses the file)", p))
		}
		seen[composite] = true
		if slices.Contains(perAccountIDs, d.Key) && (len(path) == 0 || !strings.HasPrefix(path[0], "account_id")) {
			errs = append(errs, fmt.Errorf("%v: %s not under account_id", p, d.Key))
		}
		if l := d.RateLimit; l != nil && !l.Unlimited {
			if !slices.Contains([]string{"second", "minute", "hour", "day", "week", "month", "year"}, l.Unit) || l.RequestsPerUnit == 0 {
				errs = append(errs, fmt.Errorf("%v: rate_limit %+v", p, *l))
			}
		}
		errs = append(errs, rlConfigErrors(d.Descriptors, p)...)
	}
	return errs
}

// rlLookup finds the limit of a descriptor as envoyproxy/ratelimit does:
// each entry by key and value, else by key alone, never backtracking; the
// limit is that of the node the last entry lands on.
func rlLookup(ds []rlDescriptor, entries [][2]string) *rlLimit {
	for i, e := range entries {
		var next *rlDescriptor
		for j := range ds {
			if ds[j].Key == e[0] && ds[j].Value == e[1] {
				next = &ds[j]
			}
		}
		if next == nil {
			for j := range ds {
				if ds[j].Key == e[0] && ds[j].Value == "" {
					next = &ds[j]
				}
			}
		}
		if next == nil {
			return nil
		}
		if i == len(entries)-1 {
			return next.RateLimit
		}
		ds = next.Descriptors
	}
	return nil
}

func TestRateLimitServiceConfig(t *testing.T) {
	files, err := filepath.Glob("ratelimit/config/*.yaml")
	if err != nil || len(files) != 1 {
		t.Fatalf("want one envoyproxy/ratelimit config in ratelimit/config/, have %v (%v)", files, err)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var cfg rlConfig
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("%s: %v", files[0], err)
	}
	for _, err := range rlConfigErrors(cfg.Descriptors, nil) {
		t.Errorf("%s: %v", files[0], err)
	}

	p := loadFrontProxy(t, "envoy-ratelimit.yaml")
	for _, hf := range p.hcm.GetHttpFilters() {
		if hf.GetName() == "envoy.filters.http.ratelimit" {
			m, err := hf.GetTypedConfig().UnmarshalNew()
			if err != nil {
				t.Fatal(err)
			}
			if d := m.ProtoReflect().Get(m.ProtoReflect().Descriptor().Fields().ByName("domain")).String(); d != cfg.Domain {
				t.Errorf("envoy-ratelimit.yaml asks domain %q, %s configures %q", d, files[0], cfg.Domain)
			}
		}
	}

	// Each descriptor envoy-ratelimit.yaml builds, for requests of two
	// accounts that both have a tenant acme, finds a limit; the two
	// accounts' descriptors differ, so they count apart.
	values := map[string][]string{
		"account_id": {"demo", "other"},
		"tenant_id":  {"acme", "t1"},
		"operation":  {"sendEmail"},
	}
	checked := 0
	for _, rl := range each[*routev3.RateLimit](p.hcm) {
		var keys []string
		for _, a := range rl.GetActions() {
			keys = append(keys, a.GetMetadata().GetMetadataKey().GetPath()[0].GetKey())
		}
		if rl.GetLimit() != nil {
			// The limit comes with the descriptor (keygate's rate_limit
			// metadata): the service's config need not know it, and must
			// not limit it when a key has none.
			for _, account := range values["account_id"] {
				entries := [][2]string{{"account_id", account}, {"tenant_id", "acme"}, {"key_id", "k-1"}}
				if l := rlLookup(cfg.Descriptors, entries); l != nil {
					t.Errorf("descriptor %v with a limit override also finds %+v in %s", entries, *l, files[0])
				}
			}
			continue
		}
		for _, account := range values["account_id"] {
			for _, tenant := range values["tenant_id"] {
				var entries [][2]string
				for _, k := range keys {
					v := map[string]string{"account_id": account, "tenant_id": tenant, "operation": "sendEmail"}[k]
					entries = append(entries, [2]string{k, v})
				}
				checked++
				if l := rlLookup(cfg.Descriptors, entries); l == nil {
					t.Errorf("descriptor %v finds no limit in %s", entries, files[0])
				}
			}
		}
	}
	if checked == 0 {
		t.Error("envoy-ratelimit.yaml builds no descriptor")
	}
	if l := rlLookup(cfg.Descriptors, [][2]string{{"account_id", "demo"}, {"tenant_id", "acme"}}); l == nil || l.RequestsPerUnit != 500 {
		t.Errorf("(demo, acme): %+v, want the 500/s override", l)
	}
	if l := rlLookup(cfg.Descriptors, [][2]string{{"account_id", "other"}, {"tenant_id", "acme"}}); l == nil || l.RequestsPerUnit != 100 {
		t.Errorf("(other, acme): %+v, want 100/s: another account's acme must not get demo's override", l)
	}
}

func TestRateLimitServiceConfigCheckFails(t *testing.T) {
	// The shape docs/envoy.md showed before issue 13: tenant_id twice at
	// the top (refused by envoyproxy/ratelimit) and without the account.
	ds := []rlDescriptor{
		{Key: "tenant_id", RateLimit: &rlLimit{Unit: "second", RequestsPerUnit: 100}},
		{Key: "tenant_id", Descriptors: []rlDescriptor{{Key: "operation", Value: "sendEmail", RateLimit: &rlLimit{Unit: "minute", RequestsPerUnit: 10}}}},
	}
	err := errors.Join(rlConfigErrors(ds, nil)...)
	for _, want := range []string{"duplicate", "not under account_id"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error saying %q", err, want)
		}
	}
}

// ---- host routes and virtual hosts ----------------------------------------

// exampleRoute is one route of examples/routes.yaml, read generically.
type exampleRoute struct {
	service, host, path, prefix, kind, operation string
}

func exampleRoutes(t *testing.T) []exampleRoute {
	t.Helper()
	raw, err := os.ReadFile("../examples/routes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services []struct {
			Name   string           `yaml:"name"`
			Routes []map[string]any `yaml:"routes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	var out []exampleRoute
	for _, s := range f.Services {
		for _, r := range s.Routes {
			str := func(k string) string { v, _ := r[k].(string); return v }
			out = append(out, exampleRoute{s.Name, str("host"), str("path"), str("path_prefix"), str("kind"), str("operation")})
		}
	}
	return out
}

func segments(p string) []string {
	return strings.Split(strings.Trim(p, "/"), "/")
}

// overlaps reports whether a host-less route can match a path under the
// prefix: segment by segment, a {param} matches any one segment.
func overlaps(prefix string, r exampleRoute) bool {
	if r.prefix == "/" {
		return true
	}
	p := segments(prefix)
	other := segments(r.path + r.prefix)
	for i := range min(len(p), len(other)) {
		if p[i] != other[i] && !(strings.HasPrefix(other[i], "{") && r.path != "") {
			return false
		}
	}
	if r.path != "" {
		return len(other) >= len(p) // an exact path or template as long as the prefix or longer
	}
	return true
}

// The configs that front every service of examples/routes.yaml (by its
// routes file or by context_extensions). envoy-graphql.yaml fronts the
// GraphQL server alone.
var frontProxies = []string{"envoy.yaml", "envoy-ratelimit.yaml", "envoy-http.yaml"}

func TestHostRoutesHaveVirtualHosts(t *testing.T) {
	routes := exampleRoutes(t)
	var hostRoutes []exampleRoute
	for _, r := range routes {
		if r.host != "" {
			hostRoutes = append(hostRoutes, r)
		}
	}
	if len(hostRoutes) == 0 {
		t.Fatal("examples/routes.yaml has no host route: keep one, it documents the feature")
	}
	for _, h := range hostRoutes {
		// No host-less route can match the same path with another target:
		// the two resolutions of SPEC §9 would disagree (403 unknown_route)
		// or, before, the Host would have steered the decision.
		if h.prefix == "" || h.prefix == "/" {
			t.Errorf("host route %s %s: give it a path prefix no host-less route covers", h.host, h.path+h.prefix)
			continue
		}
		for _, r := range routes {
			if r.host == "" && overlaps(h.prefix, r) {
				t.Errorf("host route %s %s and host-less route %s (%s) can match the same path", h.host, h.prefix, r.path+r.prefix, r.service)
			}
		}
	}
	for _, f := range frontProxies {
		t.Run(f, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			b, err := loadBootstrap(raw)
			if err != nil {
				t.Fatal(err)
			}
			vhs := each[*routev3.VirtualHost](b)
			for _, h := range hostRoutes {
				var vh *routev3.VirtualHost
				for _, v := range vhs {
					if slices.Contains(v.GetDomains(), h.host) {
						vh = v
					}
				}
				if vh == nil {
					t.Errorf("no virtual host for %s (keygate's host route %s)", h.host, h.prefix)
					continue
				}
				if slices.Contains(vh.GetDomains(), "*") {
					t.Errorf("virtual host %s: domains %v: give %s a virtual host of its own", vh.GetName(), vh.GetDomains(), h.host)
				}
				for _, r := range vh.GetRoutes() {
					m := r.GetMatch().GetPrefix() + r.GetMatch().GetPath()
					if m != h.prefix && !strings.HasPrefix(m, h.prefix+"/") {
						t.Errorf("virtual host %s routes %q, outside keygate's host route %s", vh.GetName(), m, h.prefix)
					}
					a, ok := r.GetTypedPerFilterConfig()[extAuthzName]
					if !ok {
						continue
					}
					ce := unpack[*extauthzv3.ExtAuthzPerRoute](t, a).GetCheckSettings().GetContextExtensions()
					want := map[string]string{"service": h.service, "kind": h.kind, "operation": h.operation}
					for k, v := range want {
						if ce[k] != v {
							t.Errorf("virtual host %s, route %s: context_extensions %s=%q, keygate's host route says %q", vh.GetName(), m, k, ce[k], v)
						}
					}
				}
			}
		})
	}
}

func TestOverlaps(t *testing.T) {
	cases := []struct {
		r    exampleRoute
		want bool
	}{
		{exampleRoute{prefix: "/"}, true},
		{exampleRoute{path: "/webmail"}, true},
		{exampleRoute{path: "/webmail/x"}, true},
		{exampleRoute{path: "/{id}"}, true},
		{exampleRoute{path: "/{id}/x"}, true},
		{exampleRoute{prefix: "/webmail/attachments"}, true},
		{exampleRoute{prefix: "/web"}, false},
		{exampleRoute{path: "/email/{id}"}, false},
		{exampleRoute{path: "/users"}, false},
		{exampleRoute{prefix: "/{id}"}, false}, // a prefix is literal
	}
	for _, c := range cases {
		if got := overlaps("/webmail", c.r); got != c.want {
			t.Errorf("overlaps(/webmail, %+v) = %v, want %v", c.r, got, c.want)
		}
	}
}

// ---- HTTP mode: a cut GraphQL body -----------------------------------------

func TestHTTPService(t *testing.T) {
	raw, err := os.ReadFile("envoy-http.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadBootstrap(raw)
	if err != nil {
		t.Fatal(err)
	}
	authz := each[*extauthzv3.ExtAuthz](b)
	if len(authz) != 1 || authz[0].GetHttpService() == nil {
		t.Fatalf("want one ext_authz filter with an http_service, have %d", len(authz))
	}
	a := authz[0]
	if a.GetFailureModeAllow() {
		t.Error("failure_mode_allow must be false")
	}
	if a.GetHttpService().GetServerUri().GetTimeout().AsDuration() <= 0 {
		t.Error("http_service: no timeout")
	}
	if err := partialBodyErrors(a, each[*extauthzv3.ExtAuthzPerRoute](b)); err != nil {
		t.Error(err)
	}
	// The GraphQL route sends its body.
	body := false
	for _, r := range each[*routev3.Route](b) {
		if pr, ok := r.GetTypedPerFilterConfig()[extAuthzName]; ok && r.GetMatch().GetPath() == "/graphql" {
			body = unpack[*extauthzv3.ExtAuthzPerRoute](t, pr).GetCheckSettings().GetWithRequestBody() != nil
		}
	}
	if !body {
		t.Error("/graphql: no per-route with_request_body: keygate could not read the operations")
	}
	// keygate's health is asked on its admin listener (every path of the
	// HTTP listener is a check).
	want := keygateDefaultPort(t, "admin-addr")
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() != a.GetHttpService().GetServerUri().GetCluster() {
			continue
		}
		for _, e := range c.GetLoadAssignment().GetEndpoints() {
			for _, lb := range e.GetLbEndpoints() {
				if got := lb.GetEndpoint().GetHealthCheckConfig().GetPortValue(); got != want {
					t.Errorf("cluster %s: health check port %d, keygate's --admin-addr defaults to %d", c.GetName(), got, want)
				}
			}
		}
	}
}

// partialBodyErrors: in HTTP mode the CheckRequest's headers reach keygate
// only through allowed_headers, so the x-envoy-auth-partial-body marker
// must be allowed, and no body may be sent cut (allow_partial_message).
func partialBodyErrors(a *extauthzv3.ExtAuthz, perRoute []*extauthzv3.ExtAuthzPerRoute) error {
	var errs []error
	allowed := false
	// Older Envoy reads the list from authorization_request, deprecated
	// since, and a config for it is still checked.
	//lint:ignore SA1019 the deprecated field is what older Envoy reads
	older := a.GetHttpService().GetAuthorizationRequest().GetAllowedHeaders().GetPatterns()
	for _, m := range append(a.GetAllowedHeaders().GetPatterns(), older...) {
		if strings.EqualFold(m.GetExact(), "x-envoy-auth-partial-body") {
			allowed = true
		}
	}
	if !allowed {
		errs = append(errs, errors.New("allowed_headers do not forward x-envoy-auth-partial-body: keygate would read a cut body as whole"))
	}
	wrbs := []*extauthzv3.BufferSettings{a.GetWithRequestBody()}
	for _, pr := range perRoute {
		wrbs = append(wrbs, pr.GetCheckSettings().GetWithRequestBody())
	}
	for _, w := range wrbs {
		if w.GetAllowPartialMessage() {
			errs = append(errs, errors.New("with_request_body.allow_partial_message: true: set it false in HTTP mode"))
		}
	}
	return errors.Join(errs...)
}

// ---- the YAML blocks of the docs --------------------------------------------

var yamlBlock = regexp.MustCompile("(?ms)^([ \t]*)```yaml\n(.*?)^[ \t]*```")

// docBlocks returns the ```yaml blocks of docs/*.md and README.md, each
// parsed, by "file:line".
func docBlocks(t *testing.T) map[string]any {
	t.Helper()
	files, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../README.md")
	out := map[string]any{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range yamlBlock.FindAllSubmatchIndex(raw, -1) {
			indent := string(raw[m[2]:m[3]])
			var body strings.Builder
			for _, line := range strings.SplitAfter(string(raw[m[4]:m[5]]), "\n") {
				body.WriteString(strings.TrimPrefix(line, indent))
			}
			where := fmt.Sprintf("%s:%d", strings.TrimPrefix(f, "../"), bytes.Count(raw[:m[0]], []byte("\n"))+1)
			var v any
			if err := yaml.Unmarshal([]byte(body.String()), &v); err != nil {
				t.Errorf("%s: YAML block does not parse: %v", where, err)
				continue
			}
			out[where] = v
		}
	}
	return out
}

// eachMap calls f for every mapping in a parsed YAML tree.
func eachMap(v any, f func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		f(v)
		for _, c := range v {
			eachMap(c, f)
		}
	case []any:
		for _, c := range v {
			eachMap(c, f)
		}
	}
}

func yget(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// docBlockErrors applies the rules of the shipped configs to one doc block.
func docBlockErrors(v any) []error {
	var errs []error
	// An Istio EnvoyFilter merges into connection managers Istio builds
	// (deploy/istio_hardening_test.go checks the shipped one): here it must
	// reject underscore header names, and is no connection manager itself.
	if yget(v, "kind") == "EnvoyFilter" {
		rejects := false
		eachMap(v, func(m map[string]any) {
			rejects = rejects || yget(m, "common_http_protocol_options", "headers_with_underscores_action") == "REJECT_REQUEST"
		})
		if !rejects {
			errs = append(errs, errors.New("EnvoyFilter without headers_with_underscores_action: REJECT_REQUEST"))
		}
		return errs
	}
	hardening := []string{"normalize_path", "merge_slashes", "path_with_escaped_slashes_action", "common_http_protocol_options"}
	eachMap(v, func(m map[string]any) {
		// A connection manager: by its type, or by any setting of one.
		typ, _ := m["@type"].(string)
		isHCM := strings.HasSuffix(typ, ".HttpConnectionManager") || m["route_config"] != nil
		for _, k := range hardening {
			isHCM = isHCM || m[k] != nil
		}
		if isHCM {
			if m["normalize_path"] != true || m["merge_slashes"] != true {
				errs = append(errs, errors.New("connection manager without normalize_path: true and merge_slashes: true"))
			}
			if a := m["path_with_escaped_slashes_action"]; a != "REJECT_REQUEST" && a != "UNESCAPE_AND_REDIRECT" {
				errs = append(errs, fmt.Errorf("connection manager with path_with_escaped_slashes_action %v", a))
			}
			if a := yget(m, "common_http_protocol_options", "headers_with_underscores_action"); a != "REJECT_REQUEST" {
				errs = append(errs, fmt.Errorf("connection manager with headers_with_underscores_action %v", a))
			}
		}
		// Rate-limit actions (route, virtual host, local rate limit).
		if actions, ok := m["actions"].([]any); ok {
			var keys []string
			for _, a := range actions {
				if k, ok := yget(a, "metadata", "metadata_key", "path").([]any); ok && len(k) == 1 && yget(a, "metadata", "metadata_key", "key") == extAuthzName {
					s, _ := yget(k[0], "key").(string)
					keys = append(keys, s)
				}
			}
			for _, id := range perAccountIDs {
				if slices.Contains(keys, id) && !slices.Contains(keys, "account_id") {
					errs = append(errs, fmt.Errorf("rate-limit actions %v read %s without account_id", keys, id))
				}
			}
		}
		// Local rate-limit descriptors.
		if entries, ok := m["entries"].([]any); ok {
			var keys []string
			for _, e := range entries {
				s, _ := yget(e, "key").(string)
				keys = append(keys, s)
			}
			for _, id := range perAccountIDs {
				if slices.Contains(keys, id) && !slices.Contains(keys, "account_id") {
					errs = append(errs, fmt.Errorf("local rate-limit descriptor %v has %s without account_id", keys, id))
				}
			}
		}
		// envoyproxy/ratelimit's config.
		if _, ok := m["domain"].(string); ok && m["descriptors"] != nil {
			var buf bytes.Buffer
			enc := yaml.NewEncoder(&buf)
			var cfg rlConfig
			if err := enc.Encode(m); err == nil {
				dec := yaml.NewDecoder(&buf)
				dec.KnownFields(true)
				if err := dec.Decode(&cfg); err != nil {
					errs = append(errs, fmt.Errorf("rate-limit service config: %v", err))
				}
			}
			errs = append(errs, rlConfigErrors(cfg.Descriptors, nil)...)
		}
		// Envoy's ext_authz with an http_service.
		if m["http_service"] != nil {
			var a extauthzv3.ExtAuthz
			var pr []*extauthzv3.ExtAuthzPerRoute
			for _, p := range listOf(yget(m, "allowed_headers", "patterns")) {
				if s, ok := yget(p, "exact").(string); ok {
					a.AllowedHeaders = appendExact(a.AllowedHeaders, s)
				}
			}
			a.Services = &extauthzv3.ExtAuthz_HttpService{HttpService: &extauthzv3.HttpService{}}
			if yget(m, "with_request_body") != nil {
				a.WithRequestBody = &extauthzv3.BufferSettings{AllowPartialMessage: yget(m, "with_request_body", "allow_partial_message") == true}
			}
			eachMap(v, func(w map[string]any) {
				if b, ok := w["with_request_body"].(map[string]any); ok {
					pr = append(pr, &extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_CheckSettings{CheckSettings: &extauthzv3.CheckSettings{
						WithRequestBody: &extauthzv3.BufferSettings{AllowPartialMessage: b["allow_partial_message"] == true},
					}}})
				}
			})
			if err := partialBodyErrors(&a, pr); err != nil {
				errs = append(errs, err)
			}
		}
		// Istio's mesh config.
		if mc, ok := m["meshConfig"].(map[string]any); ok {
			if n := yget(mc, "pathNormalization", "normalization"); n != "DECODE_AND_MERGE_SLASHES" {
				errs = append(errs, fmt.Errorf("meshConfig.pathNormalization.normalization %v, want DECODE_AND_MERGE_SLASHES", n))
			}
		}
	})
	return errs
}

func listOf(v any) []any {
	l, _ := v.([]any)
	return l
}

func TestDocsYAMLBlocks(t *testing.T) {
	blocks := docBlocks(t)
	if len(blocks) == 0 {
		t.Fatal("no ```yaml blocks in docs/ and README.md")
	}
	for where, v := range blocks {
		for _, err := range docBlockErrors(v) {
			t.Errorf("%s: %v", where, err)
		}
	}
}

func TestDocBlockCheckFails(t *testing.T) {
	cases := map[string]string{
		"connection manager": `
"@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
normalize_path: true
merge_slashes: true
path_with_escaped_slashes_action: KEEP_UNCHANGED`,
		"tenant-only actions": `
rate_limits:
  - actions:
      - metadata: {descriptor_key: tenant_id, metadata_key: {key: envoy.filters.http.ext_authz, path: [{key: tenant_id}]}, source: DYNAMIC}`,
		"tenant-only local descriptor": `
descriptors:
  - entries: [{key: tenant_id}]`,
		"rate-limit service without the account": `
domain: keygate
descriptors:
  - key: tenant_id
    rate_limit: {unit: second, requests_per_unit: 100}`,
		"http_service with a partial body and no marker": `
http_service: {server_uri: {uri: "http://127.0.0.1:9194", cluster: keygate_http, timeout: 0.25s}}
allowed_headers: {patterns: [{exact: x-api-key}]}
with_request_body: {max_request_bytes: 65536, allow_partial_message: true}`,
		"mesh config without path normalisation": `
spec:
  meshConfig:
    extensionProviders: []`,
	}
	for name, src := range cases {
		var v any
		if err := yaml.Unmarshal([]byte(src), &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if errs := docBlockErrors(v); len(errs) == 0 {
			t.Errorf("%s: no error", name)
		}
	}
}

func appendExact(l *matcherv3.ListStringMatcher, s string) *matcherv3.ListStringMatcher {
	if l == nil {
		l = &matcherv3.ListStringMatcher{}
	}
	l.Patterns = append(l.Patterns, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}})
	return l
}

func metadataKey(key string) *metadatav3.MetadataKey {
	return &metadatav3.MetadataKey{
		Key:  extAuthzName,
		Path: []*metadatav3.MetadataKey_PathSegment{{Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: key}}},
	}
}

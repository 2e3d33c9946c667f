// Package envoy_test keeps the Envoy configs in this directory loadable and
// honest.
//
// Every YAML file here must parse into Envoy's own Bootstrap proto with
// every typed_config resolved, no unknown field, and Envoy's validation
// rules met also inside each typed_config (ValidateAll does not look into
// an Any by itself, so the test unpacks each one); every cluster a config
// names must exist, and every per-route filter config must name a filter of
// its chain. envoy.yaml and envoy-ratelimit.yaml are then checked for the
// parts the docs promise (docs/envoy.md), against keygate's own defaults read
// from cmd/keygate and its example routes file.
package envoy_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/formatter/req_without_query/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/keygate/keygate/pkg/route"
)

// The dynamic-metadata namespace keygate's answers land in, and the filter
// name per-route configs refer to.
const extAuthzName = "envoy.filters.http.ext_authz"

func TestConfigsLoadIntoBootstrap(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Envoy configs found: %v", err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			b, err := loadBootstrap(raw)
			if err != nil {
				t.Fatal(err)
			}
			for _, err := range checkReferences(b) {
				t.Error(err)
			}
		})
	}
}

// loadBootstrap does what Envoy does with a config file: YAML to JSON to
// the Bootstrap proto, failing on an unknown field or an unresolvable
// typed_config, then Envoy's validation rules, inside every Any as well.
func loadBootstrap(raw []byte) (*bootstrapv3.Bootstrap, error) {
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("YAML: %w", err)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("to JSON: %w", err)
	}
	var b bootstrapv3.Bootstrap
	// DiscardUnknown false: a misspelt field fails, as in Envoy.
	if err := (protojson.UnmarshalOptions{}).Unmarshal(js, &b); err != nil {
		return nil, fmt.Errorf("not a valid Envoy Bootstrap: %w", err)
	}
	if err := errors.Join(validateDeep(&b, "bootstrap")...); err != nil {
		return nil, fmt.Errorf("Envoy's validation rules: %w", err)
	}
	return &b, nil
}

// validateDeep runs m's generated validation and that of every message
// packed in an Any below it (typed_config, typed_per_filter_config, …).
func validateDeep(m proto.Message, where string) []error {
	var errs []error
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
	}
	eachAny(m.ProtoReflect(), func(a *anypb.Any) {
		inner, err := a.UnmarshalNew()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", where, a.GetTypeUrl(), err))
			return
		}
		errs = append(errs, validateDeep(inner, where+" > "+string(inner.ProtoReflect().Descriptor().Name()))...)
	})
	return errs
}

// eachAny calls f for every Any directly below m (not inside another Any).
func eachAny(m protoreflect.Message, f func(*anypb.Any)) {
	visit := func(v protoreflect.Message) {
		if a, ok := v.Interface().(*anypb.Any); ok {
			f(a)
			return
		}
		eachAny(v, f)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					visit(mv.Message())
					return true
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				for i := range v.List().Len() {
					visit(v.List().Get(i).Message())
				}
			}
		case fd.Message() != nil:
			visit(v.Message())
		}
		return true
	})
}

// unpack opens an Any that must hold a T.
func unpack[T proto.Message](t *testing.T, a *anypb.Any) T {
	t.Helper()
	m, err := a.UnmarshalNew()
	if err != nil {
		t.Fatalf("%s: %v", a.GetTypeUrl(), err)
	}
	v, ok := m.(T)
	if !ok {
		var zero T
		t.Fatalf("typed_config is %s, want %T", a.GetTypeUrl(), zero)
	}
	return v
}

// hcms returns every HTTP connection manager of the static listeners.
func hcms(t *testing.T, b *bootstrapv3.Bootstrap) []*hcmv3.HttpConnectionManager {
	t.Helper()
	var out []*hcmv3.HttpConnectionManager
	for _, l := range b.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				if a := f.GetTypedConfig(); a != nil && a.MessageIs((*hcmv3.HttpConnectionManager)(nil)) {
					out = append(out, unpack[*hcmv3.HttpConnectionManager](t, a))
				}
			}
		}
	}
	return out
}

// checkReferences finds what Envoy would only find at start or, worse,
// silently ignore: clusters that do not exist, per-route configs for a
// filter the chain does not have.
func checkReferences(b *bootstrapv3.Bootstrap) []error {
	var errs []error
	clusters := map[string]bool{}
	for _, c := range b.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = true
	}
	// Every cluster named anywhere: route actions, envoy_grpc services
	// (ext_authz, rate limit), HTTP services.
	eachMessage(b.ProtoReflect(), func(m protoreflect.Message) {
		switch v := m.Interface().(type) {
		case *routev3.RouteAction:
			if c := v.GetCluster(); c != "" && !clusters[c] {
				errs = append(errs, fmt.Errorf("bootstrap: route to cluster %q, which is not defined", c))
			}
		case *corev3.GrpcService_EnvoyGrpc:
			if c := v.GetClusterName(); !clusters[c] {
				errs = append(errs, fmt.Errorf("bootstrap: gRPC service on cluster %q, which is not defined", c))
			}
		case *corev3.HttpUri:
			if c := v.GetCluster(); c != "" && !clusters[c] {
				errs = append(errs, fmt.Errorf("bootstrap: HTTP service on cluster %q, which is not defined", c))
			}
		}
	})

	// typed_per_filter_config keys must name a filter of the chain.
	for _, l := range b.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				a := f.GetTypedConfig()
				if a == nil || !a.MessageIs((*hcmv3.HttpConnectionManager)(nil)) {
					continue
				}
				var h hcmv3.HttpConnectionManager
				if err := a.UnmarshalTo(&h); err != nil {
					errs = append(errs, err)
					continue
				}
				names := map[string]bool{}
				for _, hf := range h.GetHttpFilters() {
					names[hf.GetName()] = true
				}
				for _, vh := range h.GetRouteConfig().GetVirtualHosts() {
					for name := range vh.GetTypedPerFilterConfig() {
						if !names[name] {
							errs = append(errs, fmt.Errorf("listener %s: virtual host %s: typed_per_filter_config %q names no filter of the chain", l.GetName(), vh.GetName(), name))
						}
					}
					for _, r := range vh.GetRoutes() {
						for name := range r.GetTypedPerFilterConfig() {
							if !names[name] {
								errs = append(errs, fmt.Errorf("listener %s: route %s: typed_per_filter_config %q names no filter of the chain", l.GetName(), routeName(r), name))
							}
						}
					}
				}
			}
		}
	}
	return errs
}

func routeName(r *routev3.Route) string {
	m := r.GetMatch()
	switch {
	case m.GetPath() != "":
		return "path " + m.GetPath()
	case m.GetPrefix() != "":
		return "prefix " + m.GetPrefix()
	}
	return r.GetName()
}

// TestMisspeltConfigsFail proves the loader is strict: each broken copy of
// envoy.yaml must be refused, so a typo in a real config cannot pass.
func TestMisspeltConfigsFail(t *testing.T) {
	good, err := os.ReadFile("envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadBootstrap(good); err != nil {
		t.Fatalf("envoy.yaml itself does not load: %v", err)
	}
	cases := []struct {
		name, old, new, want string
	}{
		{"misspelt field inside the ext_authz typed_config",
			"failure_mode_allow: false", "failure_mode_alow: false", "failure_mode_alow"},
		{"misspelt field in a per-route config (an Any inside an Any)",
			"disabled: true", "disable: true", "disable"},
		{"misspelt field of the bootstrap itself",
			"static_resources:", "static_resource:", "static_resource"},
		{"typed_config of an unknown type",
			"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
			"type.googleapis.com/envoy.extensions.filters.http.router.v3.Routr", "Routr"},
		{"validation rule broken inside a typed_config (max_request_bytes must be > 0)",
			"max_request_bytes: 65536", "max_request_bytes: 0", "MaxRequestBytes"},
		{"validation rule broken inside a typed_config (stat_prefix must not be empty)",
			"stat_prefix: tenant_ratelimit", `stat_prefix: ""`, "StatPrefix"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if n := strings.Count(string(good), c.old); n != 1 {
				t.Fatalf("envoy.yaml has %d copies of %q, want 1: update this case", n, c.old)
			}
			bad := strings.Replace(string(good), c.old, c.new, 1)
			_, err := loadBootstrap([]byte(bad))
			if err == nil {
				t.Fatalf("a config with %q instead of %q loaded", c.new, c.old)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error does not name %q: %v", c.want, err)
			}
		})
	}
}

// keygateDefaultPort reads the default port of a keygate flag from the
// struct tags in cmd/keygate, so that a changed default fails this test.
func keygateDefaultPort(t *testing.T, flag string) uint32 {
	t.Helper()
	files, err := filepath.Glob("../cmd/keygate/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("cmd/keygate sources: %v", err)
	}
	fset := token.NewFileSet()
	var found []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			field, ok := n.(*ast.Field)
			if !ok || field.Tag == nil {
				return true
			}
			tag, err := strconv.Unquote(field.Tag.Value)
			if err != nil {
				return true
			}
			st := reflect.StructTag(tag)
			if st.Get("name") == flag {
				found = append(found, st.Get("default"))
			}
			return true
		})
	}
	if len(found) == 0 {
		t.Fatalf("no flag %q in cmd/keygate", flag)
	}
	_, port, err := splitHostPort(found[0])
	if err != nil {
		t.Fatalf("flag %s: default %q: %v", flag, found[0], err)
	}
	return port
}

func splitHostPort(s string) (string, uint32, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", 0, fmt.Errorf("no port in %q", s)
	}
	p, err := strconv.ParseUint(s[i+1:], 10, 16)
	if err != nil {
		return "", 0, err
	}
	return s[:i], uint32(p), nil
}

// frontProxy is what the checks of one config look at.
type frontProxy struct {
	b        *bootstrapv3.Bootstrap
	hcm      *hcmv3.HttpConnectionManager
	authz    *extauthzv3.ExtAuthz
	filters  []string
	clusters map[string]*clusterv3.Cluster
}

func loadFrontProxy(t *testing.T, file string) *frontProxy {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadBootstrap(raw)
	if err != nil {
		t.Fatal(err)
	}
	hs := hcms(t, b)
	if len(hs) != 1 {
		t.Fatalf("%s: %d HTTP connection managers, want 1", file, len(hs))
	}
	p := &frontProxy{b: b, hcm: hs[0], clusters: map[string]*clusterv3.Cluster{}}
	for _, c := range b.GetStaticResources().GetClusters() {
		p.clusters[c.GetName()] = c
	}
	for _, hf := range p.hcm.GetHttpFilters() {
		p.filters = append(p.filters, hf.GetName())
		if hf.GetName() == extAuthzName {
			p.authz = unpack[*extauthzv3.ExtAuthz](t, hf.GetTypedConfig())
		}
	}
	if p.authz == nil {
		t.Fatalf("%s: no %s filter", file, extAuthzName)
	}
	return p
}

// checkAuthz checks the ext_authz filter and the keygate cluster: the same
// in every front proxy.
func (p *frontProxy) checkAuthz(t *testing.T) {
	t.Helper()
	a := p.authz
	if a.GetFailureModeAllow() {
		t.Error("ext_authz: failure_mode_allow must be false: keygate unreachable must deny")
	}
	if a.GetTransportApiVersion().String() != "V3" {
		t.Errorf("ext_authz: transport_api_version %v, want V3", a.GetTransportApiVersion())
	}
	gs := a.GetGrpcService()
	if gs == nil {
		t.Fatal("ext_authz: no grpc_service")
	}
	if d := gs.GetTimeout().AsDuration(); d <= 0 || d > 1e9 {
		t.Errorf("ext_authz: grpc_service timeout %v, want set and at most 1s", d)
	}
	if i := slices.Index(p.filters, extAuthzName); i != 0 {
		t.Errorf("http_filters %v: ext_authz must come first, so every later filter sees its metadata", p.filters)
	}
	if p.filters[len(p.filters)-1] != "envoy.filters.http.router" {
		t.Errorf("http_filters %v: the router must come last", p.filters)
	}

	name := gs.GetEnvoyGrpc().GetClusterName()
	c := p.clusters[name]
	if c == nil {
		t.Fatalf("ext_authz names cluster %q, which is not defined", name)
	}
	// HTTP/2: gRPC does not work over HTTP/1.1.
	opts, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	if !ok {
		t.Errorf("cluster %s: no HttpProtocolOptions: gRPC needs HTTP/2", name)
	} else if po := unpack[*upstreamhttpv3.HttpProtocolOptions](t, opts); po.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Errorf("cluster %s: not HTTP/2: gRPC needs it", name)
	}
	// The port keygate listens on by default.
	want := keygateDefaultPort(t, "authz-addr")
	var ports []uint32
	for _, e := range c.GetLoadAssignment().GetEndpoints() {
		for _, lb := range e.GetLbEndpoints() {
			ports = append(ports, lb.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue())
		}
	}
	if len(ports) == 0 {
		t.Errorf("cluster %s: no endpoints", name)
	}
	for _, got := range ports {
		if got != want {
			t.Errorf("cluster %s: endpoint port %d, keygate's --authz-addr defaults to port %d", name, got, want)
		}
	}
	// Health checked with keygate's grpc.health.v1 service, by the name
	// keygate registers.
	hcOK := false
	for _, hc := range c.GetHealthChecks() {
		if g := hc.GetGrpcHealthCheck(); g != nil && g.GetServiceName() == authv3.Authorization_ServiceDesc.ServiceName {
			hcOK = true
		}
	}
	if !hcOK {
		t.Errorf("cluster %s: no gRPC health check on service %s", name, authv3.Authorization_ServiceDesc.ServiceName)
	}
}

// perRoute returns the ext_authz per-route config of each route that has one.
func (p *frontProxy) perRoute(t *testing.T) map[string]*extauthzv3.ExtAuthzPerRoute {
	t.Helper()
	out := map[string]*extauthzv3.ExtAuthzPerRoute{}
	for _, vh := range p.hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if a, ok := r.GetTypedPerFilterConfig()[extAuthzName]; ok {
				out[routeName(r)] = unpack[*extauthzv3.ExtAuthzPerRoute](t, a)
			}
		}
	}
	return out
}

// accessLogFormat renders the access logs' formats as JSON text.
func (p *frontProxy) accessLogFormat(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, al := range p.hcm.GetAccessLog() {
		m, err := al.GetTypedConfig().UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		js, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(js)
	}
	return b.String()
}

// isTenantMetadata: a rate-limit action that reads tenant_id from the
// dynamic metadata keygate returns.
func isTenantMetadata(a *routev3.RateLimit_Action) bool {
	md := a.GetMetadata()
	if md == nil || md.GetSource() != routev3.RateLimit_Action_MetaData_DYNAMIC || md.GetMetadataKey().GetKey() != extAuthzName {
		return false
	}
	path := md.GetMetadataKey().GetPath()
	return len(path) == 1 && path[0].GetKey() == "tenant_id"
}

func TestFrontProxy(t *testing.T) {
	p := loadFrontProxy(t, "envoy.yaml")
	p.checkAuthz(t)

	routes := p.perRoute(t)
	if pr := routes["path /healthz"]; pr == nil || !pr.GetDisabled() {
		t.Error("/healthz: ext_authz must be disabled on the health route")
	}

	// Per-route with_request_body on the GraphQL route, and no service
	// extension there: a service extension wins over the body (SPEC §9).
	var bodyRoutes []string
	for name, pr := range routes {
		wrb := pr.GetCheckSettings().GetWithRequestBody()
		if wrb == nil {
			continue
		}
		bodyRoutes = append(bodyRoutes, name)
		if wrb.GetMaxRequestBytes() == 0 || !wrb.GetAllowPartialMessage() || !wrb.GetPackAsBytes() {
			t.Errorf("%s: with_request_body %v, want max_request_bytes, allow_partial_message and pack_as_bytes", name, wrb)
		}
		if s := pr.GetCheckSettings().GetContextExtensions()["service"]; s != "" {
			t.Errorf("%s: with_request_body and context_extensions service %q: the service extension would win over the body", name, s)
		}
	}
	if !slices.Contains(bodyRoutes, "path /graphql") {
		t.Errorf("routes with with_request_body: %v, want path /graphql", bodyRoutes)
	}
	if p.authz.GetWithRequestBody() != nil {
		t.Error("ext_authz: with_request_body at the filter level buffers every request; set it per route")
	}

	// context_extensions name services keygate's example routes declare.
	table, _, err := route.LoadFile("../examples/routes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	exts := 0
	for name, pr := range routes {
		ce := pr.GetCheckSettings().GetContextExtensions()
		if s, ok := ce["service"]; ok {
			exts++
			if _, ok := table.Service(s); !ok {
				t.Errorf("%s: context_extensions service %q is not declared in examples/routes.yaml (services %v)", name, s, table.ServiceNames())
			}
		}
		for k := range ce {
			if k != "service" && k != "kind" && k != "operation" {
				t.Errorf("%s: context_extensions key %q: keygate reads service, kind and operation", name, k)
			}
		}
	}
	if exts == 0 {
		t.Error("no route sets context_extensions")
	}

	// The access log prints who called.
	format := p.accessLogFormat(t)
	for _, want := range []string{
		"%DYNAMIC_METADATA(envoy.filters.http.ext_authz:key_id)%",
		"%DYNAMIC_METADATA(envoy.filters.http.ext_authz:account_id)%",
		"%DYNAMIC_METADATA(envoy.filters.http.ext_authz:tenant_id)%",
	} {
		if !strings.Contains(format, want) {
			t.Errorf("access log does not print %s", want)
		}
	}
	if strings.Contains(strings.ToLower(format), "x-api-key") {
		t.Error("access log prints the key header")
	}

	// Local rate limit per tenant, after ext_authz.
	i := slices.Index(p.filters, "envoy.filters.http.local_ratelimit")
	if i < 0 {
		t.Fatal("no local_ratelimit filter")
	}
	lrl := unpack[*localrlv3.LocalRateLimit](t, p.hcm.GetHttpFilters()[i].GetTypedConfig())
	if lrl.GetFilterEnabled().GetDefaultValue().GetNumerator() == 0 || lrl.GetFilterEnforced().GetDefaultValue().GetNumerator() == 0 {
		t.Error("local_ratelimit: filter_enabled and filter_enforced default to 0%: the filter would do nothing")
	}
	// Keyed on account_id and tenant_id together: tenant ids are unique
	// only within an account (TestRateLimitsKeyOnAccount checks every
	// action of every config for the account).
	keyed := false
	for _, rl := range lrl.GetRateLimits() {
		for _, a := range rl.GetActions() {
			if isTenantMetadata(a) && a.GetMetadata().GetDescriptorKey() == "tenant_id" {
				keyed = true
			}
		}
	}
	if !keyed {
		t.Error("local_ratelimit: no rate_limits action reading tenant_id from the ext_authz dynamic metadata")
	}
	wildcard := false
	for _, d := range lrl.GetDescriptors() {
		es := d.GetEntries()
		if len(es) == 2 && es[0].GetKey() == "account_id" && es[0].GetValue() == "" && es[1].GetKey() == "tenant_id" && es[1].GetValue() == "" {
			wildcard = true
		}
	}
	if !wildcard {
		t.Error("local_ratelimit: no descriptor {key: account_id}, {key: tenant_id} without values (one bucket per tenant of an account)")
	}
}

func TestGlobalRateLimit(t *testing.T) {
	p := loadFrontProxy(t, "envoy-ratelimit.yaml")
	p.checkAuthz(t)
	if pr := p.perRoute(t)["path /healthz"]; pr == nil || !pr.GetDisabled() {
		t.Error("/healthz: ext_authz must be disabled on the health route")
	}

	i := slices.Index(p.filters, "envoy.filters.http.ratelimit")
	if i < 0 {
		t.Fatal("no ratelimit filter")
	}
	rl := unpack[*ratelimitv3.RateLimit](t, p.hcm.GetHttpFilters()[i].GetTypedConfig())
	if rl.GetDomain() == "" {
		t.Error("ratelimit: no domain")
	}
	svc := rl.GetRateLimitService()
	if svc.GetTransportApiVersion().String() != "V3" {
		t.Errorf("ratelimit: transport_api_version %v, want V3", svc.GetTransportApiVersion())
	}
	c := p.clusters[svc.GetGrpcService().GetEnvoyGrpc().GetClusterName()]
	if c == nil {
		t.Fatalf("ratelimit: service cluster %q not defined", svc.GetGrpcService().GetEnvoyGrpc().GetClusterName())
	}
	if _, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; !ok {
		t.Errorf("cluster %s: the rate-limit service speaks gRPC: HTTP/2 needed", c.GetName())
	}

	// Route-level (virtual host) descriptors from the tenant in keygate's metadata.
	keyed := false
	for _, vh := range p.hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRateLimits() {
			for _, a := range r.GetActions() {
				keyed = keyed || isTenantMetadata(a)
			}
		}
		for _, r := range vh.GetRoutes() {
			for _, l := range r.GetRoute().GetRateLimits() {
				for _, a := range l.GetActions() {
					keyed = keyed || isTenantMetadata(a)
				}
			}
		}
	}
	if !keyed {
		t.Error("no rate_limits action reading tenant_id from the ext_authz dynamic metadata")
	}

	// Each virtual host has the per-key descriptor (account_id, tenant_id,
	// key_id) whose limit is keygate's rate_limit metadata (SPEC §12).
	for _, vh := range p.hcm.GetRouteConfig().GetVirtualHosts() {
		found := 0
		for _, r := range vh.GetRateLimits() {
			if keyRateLimit(r) {
				found++
			}
		}
		if found != 1 {
			t.Errorf("virtual host %s: %d rate_limits with the key's limit override, want 1: actions account_id, tenant_id (skip_if_absent), key_id from %s and limit.dynamic_metadata reading %s:rate_limit", vh.GetName(), found, extAuthzName, extAuthzName)
		}
	}
}

// keyRateLimit: a rate limit whose descriptor is (account_id, tenant_id,
// key_id) from keygate's metadata, tenant_id skipped when absent, and
// whose limit is the rate_limit struct keygate returns.
func keyRateLimit(r *routev3.RateLimit) bool {
	want := []struct {
		key  string
		skip bool
	}{{"account_id", false}, {"tenant_id", true}, {"key_id", false}}
	as := r.GetActions()
	if len(as) != len(want) {
		return false
	}
	for i, a := range as {
		md := a.GetMetadata()
		if md == nil || md.GetSource() != routev3.RateLimit_Action_MetaData_DYNAMIC || md.GetMetadataKey().GetKey() != extAuthzName ||
			len(md.GetMetadataKey().GetPath()) != 1 || md.GetMetadataKey().GetPath()[0].GetKey() != want[i].key ||
			md.GetDescriptorKey() != want[i].key || md.GetSkipIfAbsent() != want[i].skip || md.GetDefaultValue() != "" {
			return false
		}
	}
	mk := r.GetLimit().GetDynamicMetadata().GetMetadataKey()
	return mk.GetKey() == extAuthzName && len(mk.GetPath()) == 1 && mk.GetPath()[0].GetKey() == "rate_limit"
}

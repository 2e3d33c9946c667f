package deploy_test

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// meshPeer is what the mesh-mTLS manifests are checked against: keygate's
// data-plane pods and the proxies that call Check.
type meshPeer struct {
	namespace string            // keygate's namespace
	pods      map[string]string // labels of the data plane's pods
	authzPort int               // their ext_authz gRPC port
	askers    []string          // namespaces whose proxies ask keygate (CUSTOM policies)
}

var spiffePrincipal = regexp.MustCompile(`^cluster\.local/ns/([a-z0-9-]+)/sa/[a-z0-9.-]+$`)

// meshMTLSErrors: what Istio's mesh-mTLS alternative to keygate's own TLS
// must do (docs/tls.md, "Istio: mesh mTLS instead"): a PeerAuthentication
// in mode STRICT for keygate's pods, with no port let off; and an ALLOW
// AuthorizationPolicy on them under which only named proxy identities
// reach the Check port — one per namespace whose proxies ask keygate —
// and every rule names who it allows.
func meshMTLSErrors(docs []doc, p meshPeer) []error {
	peers, errs := istioKind(docs, "PeerAuthentication", "security.istio.io/")
	strict := 0
	for _, d := range peers {
		if ns := str(d.obj, "metadata", "namespace"); ns != p.namespace {
			errs = append(errs, fmt.Errorf("%s: namespace %q, want keygate's %q", d, ns, p.namespace))
			continue
		}
		sel := labels(d.obj, "spec", "selector", "matchLabels")
		if len(sel) > 0 && !selects(sel, p.pods) {
			errs = append(errs, fmt.Errorf("%s: selector %v does not select keygate's pods %v", d, sel, p.pods))
			continue
		}
		if m := str(d.obj, "spec", "mtls", "mode"); m != "STRICT" {
			errs = append(errs, fmt.Errorf("%s: mtls.mode %q, want STRICT", d, m))
			continue
		}
		for port, m := range portModes(get(d.obj, "spec", "portLevelMtls")) {
			if m != "STRICT" {
				errs = append(errs, fmt.Errorf("%s: portLevelMtls %s mode %q lets that port take cleartext", d, port, m))
			}
		}
		strict++
	}
	if strict == 0 {
		errs = append(errs, fmt.Errorf("no PeerAuthentication with mtls.mode STRICT for keygate's pods in namespace %s", p.namespace))
	}

	policies, perrs := istioKind(docs, "AuthorizationPolicy", "security.istio.io/")
	errs = append(errs, perrs...)
	allows := 0
	for _, d := range policies {
		if str(d.obj, "metadata", "namespace") != p.namespace {
			continue
		}
		if a := str(d.obj, "spec", "action"); a != "ALLOW" {
			if a == "" {
				errs = append(errs, fmt.Errorf("%s: say action: ALLOW", d))
			}
			continue
		}
		if !selects(labels(d.obj, "spec", "selector", "matchLabels"), p.pods) {
			errs = append(errs, fmt.Errorf("%s: its selector does not select keygate's data-plane pods %v", d, p.pods))
			continue
		}
		allows++
		callers := map[string]bool{}
		for i, r := range list(d.obj, "spec", "rules") {
			where := fmt.Sprintf("%s: rules[%d]", d, i)
			from := list(r, "from")
			if len(from) == 0 {
				errs = append(errs, fmt.Errorf("%s: no from: it allows anyone", where))
				continue
			}
			check := reachesPort(r, p.authzPort)
			for _, f := range from {
				principals, namespaces := list(f, "source", "principals"), list(f, "source", "namespaces")
				if len(principals)+len(namespaces) == 0 {
					errs = append(errs, fmt.Errorf("%s: a source without principals or namespaces", where))
				}
				if check && len(namespaces) > 0 {
					errs = append(errs, fmt.Errorf("%s: reaches Check (port %d) by namespace: name the proxies' principals", where, p.authzPort))
				}
				for _, v := range append(principals, namespaces...) {
					s, _ := v.(string)
					if strings.Contains(s, "*") {
						errs = append(errs, fmt.Errorf("%s: wildcard %q", where, s))
					}
				}
				for _, v := range principals {
					s, _ := v.(string)
					m := spiffePrincipal.FindStringSubmatch(s)
					if m == nil {
						errs = append(errs, fmt.Errorf("%s: principal %q is not cluster.local/ns/NAMESPACE/sa/ACCOUNT", where, s))
					} else if check {
						callers[m[1]] = true
					}
				}
			}
		}
		for _, ns := range p.askers {
			if !callers[ns] {
				errs = append(errs, fmt.Errorf("%s: no principal of namespace %s may call Check, whose proxies ask keygate", d, ns))
			}
		}
	}
	if allows == 0 {
		errs = append(errs, fmt.Errorf("no ALLOW AuthorizationPolicy on keygate's data-plane pods in namespace %s", p.namespace))
	}
	return errs
}

// istioKind returns the documents of one kind, with an error for each whose
// apiVersion is not of the API group.
func istioKind(docs []doc, kind, group string) ([]doc, []error) {
	var out []doc
	var errs []error
	for _, d := range docs {
		if d.kind() != kind {
			continue
		}
		if v := str(d.obj, "apiVersion"); !strings.HasPrefix(v, group) {
			errs = append(errs, fmt.Errorf("%s: apiVersion %q", d, v))
		}
		out = append(out, d)
	}
	return out, errs
}

// portModes reads a PeerAuthentication's portLevelMtls: port → mode. The
// ports are its keys, which YAML decodes as ints unless quoted.
func portModes(v any) map[string]string {
	out := map[string]string{}
	switch m := v.(type) {
	case map[string]any:
		for port, l := range m {
			out[port] = str(l, "mode")
		}
	case map[any]any:
		for port, l := range m {
			out[fmt.Sprint(port)] = str(l, "mode")
		}
	}
	return out
}

// reachesPort reports whether an AuthorizationPolicy rule's to allows the
// port (no to, or an operation without ports, allows every port).
func reachesPort(rule any, port int) bool {
	to := list(rule, "to")
	if len(to) == 0 {
		return true
	}
	for _, t := range to {
		ports := list(t, "operation", "ports")
		if len(ports) == 0 || slices.Contains(ports, any(strconv.Itoa(port))) {
			return true
		}
	}
	return false
}

// dataPlane returns deploy/kubernetes's namespace, its data-plane pods'
// labels and their ext_authz container port.
func dataPlane(t *testing.T) meshPeer {
	t.Helper()
	for _, s := range kustomizations(t) {
		if s.dir != "kubernetes" {
			continue
		}
		d, ok := s.find("Deployment", "keygate")
		if !ok {
			t.Fatal("deploy/kubernetes has no Deployment keygate")
		}
		spec, lbls := podTemplate(d)
		for _, c := range list(spec, "containers") {
			if port, ok := newContainer(c.(map[string]any)).ports["authz"]; ok {
				return meshPeer{namespace: s.namespace, pods: lbls, authzPort: port}
			}
		}
		t.Fatal("deploy/kubernetes's Deployment keygate has no container port authz")
	}
	t.Fatal("no kustomization in deploy/kubernetes")
	return meshPeer{}
}

// TestIstioMeshMTLS checks deploy/istio/mesh-mtls.yaml against keygate's
// Deployment in deploy/kubernetes, and the CUSTOM policies of
// deploy/istio: every namespace whose proxies ask keygate has a principal
// allowed to call Check.
func TestIstioMeshMTLS(t *testing.T) {
	p := dataPlane(t)
	docs := readDocs(t, "istio/mesh-mtls.yaml")
	for _, d := range readDocs(t, "istio/authorization-policy.yaml") {
		if d.kind() == "AuthorizationPolicy" && str(d.obj, "spec", "action") == "CUSTOM" && str(d.obj, "spec", "provider", "name") == "keygate" {
			p.askers = append(p.askers, str(d.obj, "metadata", "namespace"))
		}
	}
	if len(p.askers) == 0 {
		t.Fatal("deploy/istio/authorization-policy.yaml has no CUSTOM policy naming provider keygate")
	}
	for _, err := range meshMTLSErrors(docs, p) {
		t.Error(err)
	}
}

func TestIstioMeshMTLSCheckFails(t *testing.T) {
	p := meshPeer{
		namespace: "keygate",
		pods:      map[string]string{"app.kubernetes.io/name": "keygate", "app.kubernetes.io/component": "authz"},
		authzPort: 9191,
		askers:    []string{"istio-system", "email"},
	}
	const peer = `{apiVersion: security.istio.io/v1, kind: PeerAuthentication, metadata: {name: p, namespace: keygate},
  spec: {selector: {matchLabels: {app.kubernetes.io/name: keygate}}, mtls: {mode: STRICT}}}`
	const allow = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a, namespace: keygate}
spec:
  selector: {matchLabels: {app.kubernetes.io/component: authz}}
  action: ALLOW
  rules:
    - from: [{source: {principals: [cluster.local/ns/istio-system/sa/gw, cluster.local/ns/email/sa/email-api]}}]
      to: [{operation: {ports: ["9191"]}}]
    - from: [{source: {namespaces: [monitoring]}}]
      to: [{operation: {ports: ["9193"]}}]`
	parse := func(src string) doc {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(src), &m); err != nil {
			t.Fatal(err)
		}
		return doc{file: "test.yaml", obj: m}
	}
	for _, c := range []struct {
		name, peer, allow, want string
	}{
		{name: "good", peer: peer, allow: allow},
		{name: "permissive", peer: strings.Replace(peer, "STRICT", "PERMISSIVE", 1), allow: allow, want: `mtls.mode "PERMISSIVE", want STRICT`},
		{name: "a port let off", peer: strings.Replace(peer, "}}}", "}, portLevelMtls: {9191: {mode: DISABLE}}}}", 1), allow: allow, want: `portLevelMtls 9191 mode "DISABLE"`},
		{name: "a port let off, quoted", peer: strings.Replace(peer, "}}}", "}, portLevelMtls: {\"9193\": {mode: PERMISSIVE}}}}", 1), allow: allow, want: `portLevelMtls 9193 mode "PERMISSIVE"`},
		{name: "other pods", peer: strings.Replace(peer, "name: keygate}", "name: other}", 1), allow: allow, want: "does not select keygate's pods"},
		{name: "no peer authentication", allow: allow, want: "no PeerAuthentication with mtls.mode STRICT"},
		{name: "no allow policy", peer: peer, want: "no ALLOW AuthorizationPolicy"},
		{name: "action left out", peer: peer, allow: strings.Replace(allow, "  action: ALLOW\n", "", 1), want: "say action: ALLOW"},
		{name: "rule without from", peer: peer, allow: allow + "\n    - to: [{operation: {ports: [\"9191\"]}}]", want: "no from: it allows anyone"},
		{name: "wildcard principal", peer: peer, allow: strings.Replace(allow, "cluster.local/ns/email/sa/email-api", `"*"`, 1), want: `wildcard "*"`},
		{name: "check by namespace", peer: peer, allow: strings.Replace(allow, "ports: [\"9193\"]", "ports: [\"9191\"]", 1), want: "reaches Check (port 9191) by namespace"},
		{name: "rule on every port", peer: peer, allow: allow + "\n    - from: [{source: {namespaces: [other]}}]", want: "reaches Check (port 9191) by namespace"},
		{name: "an asker left out", peer: peer, allow: strings.Replace(allow, ", cluster.local/ns/email/sa/email-api", "", 1), want: "no principal of namespace email may call Check"},
		{name: "not a spiffe id", peer: peer, allow: strings.Replace(allow, "cluster.local/ns/istio-system/sa/gw", "istio-system/gw", 1), want: `principal "istio-system/gw" is not`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var docs []doc
			for _, src := range []string{c.peer, c.allow} {
				if src != "" {
					docs = append(docs, parse(src))
				}
			}
			err := errors.Join(meshMTLSErrors(docs, p)...)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

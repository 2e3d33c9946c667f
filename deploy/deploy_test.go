// Package deploy_test keeps the Kubernetes and Istio manifests in deploy/
// consistent with each other and with keygate itself.
//
// Every YAML document under deploy/ is parsed (generically: no Kubernetes
// client types), and the cross-references a typo would silently break are
// checked: selectors against pod labels, Service target ports against
// container ports, probes against keygate's admin and authz listeners, env
// vars against the ones keygate reads, Secret and ConfigMap keys against
// their references, the routes and keys files inside ConfigMaps against
// keygate's own parsers, Istio's extension provider against the Service.
// keygate's listener defaults and env var names are read from the flag tags
// in cmd/keygate, so changing a default there fails this test until the
// manifests follow.
package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.yaml.in/yaml/v3"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/keyfile"
	"github.com/keygate/keygate/pkg/route"
)

// ---- keygate's flags, read from the code -------------------------------

// keygateFlag is one flag of cmd/keygate as its struct tags declare it.
type keygateFlag struct {
	name, def string
	envs      []string
}

// keygate is what the manifests are checked against.
type keygate struct {
	flags map[string]keygateFlag // by flag name, e.g. "authz-addr"
	envs  map[string]string      // env var → flag name
}

// readKeygate parses cmd/keygate/*.go and collects every struct field tag
// with a `name:"…"`: its default and its env vars.
func readKeygate(t *testing.T) *keygate {
	t.Helper()
	files, err := filepath.Glob("../cmd/keygate/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("cmd/keygate sources: %v", err)
	}
	k := &keygate{flags: map[string]keygateFlag{}, envs: map[string]string{}}
	fset := token.NewFileSet()
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
			name := st.Get("name")
			if name == "" {
				return true
			}
			fl := k.flags[name]
			fl.name = name
			if d, ok := st.Lookup("default"); ok && fl.def == "" {
				fl.def = d
			}
			if env := st.Get("env"); env != "" {
				for _, e := range strings.Split(env, ",") {
					if !slices.Contains(fl.envs, e) {
						fl.envs = append(fl.envs, e)
					}
					k.envs[e] = name
				}
			}
			k.flags[name] = fl
			return true
		})
	}
	return k
}

// defaultPort is the port of an address flag's default; 0 for a listener
// that is off unless set (no default).
func (k *keygate) defaultPort(t *testing.T, flag string) (int, bool) {
	t.Helper()
	fl, ok := k.flags[flag]
	if !ok {
		return 0, false
	}
	if fl.def == "" {
		return 0, true
	}
	_, port, err := splitHostPort(fl.def)
	if err != nil {
		t.Fatalf("cmd/keygate: --%s default %q: %v", flag, fl.def, err)
	}
	return port, true
}

func splitHostPort(s string) (string, int, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", 0, fmt.Errorf("no port in %q", s)
	}
	p, err := strconv.Atoi(s[i+1:])
	if err != nil || p <= 0 || p > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", s)
	}
	return s[:i], p, nil
}

// The container ports of keygate, by name, and the flag that sets each
// listener. The Service names each port as in servicePortName, which is
// also what Istio reads the protocol from.
var (
	listenerFlag = map[string]string{
		"authz":      "authz-addr",
		"admin":      "admin-addr",
		"account":    "account-listen-addr",
		"http-authz": "http-authz-addr",
	}
	servicePortName = map[string]string{
		"authz":      "grpc-authz",
		"account":    "grpc-account",
		"admin":      "http-admin",
		"http-authz": "http-authz",
	}
	// Env vars a pod may set that are not keygate's own.
	runtimeEnv = []string{"GOMEMLIMIT", "GOMAXPROCS", "GOGC"}
)

func TestKeygateDefaultsFromCode(t *testing.T) {
	k := readKeygate(t)
	for _, flag := range []string{"authz-addr", "admin-addr", "account-listen-addr"} {
		fl, ok := k.flags[flag]
		if !ok {
			t.Errorf("cmd/keygate has no --%s", flag)
			continue
		}
		host, _, err := splitHostPort(fl.def)
		if err != nil {
			t.Errorf("--%s: %v", flag, err)
		}
		// SPEC §8: loopback by default, which is why every pod overrides it.
		if host != "127.0.0.1" && host != "localhost" && host != "[::1]" {
			t.Errorf("--%s defaults to %q: the manifests assume keygate binds loopback unless told otherwise", flag, fl.def)
		}
		if len(fl.envs) == 0 {
			t.Errorf("--%s has no env var", flag)
		}
	}
	if _, ok := k.flags["http-authz-addr"]; !ok {
		t.Log("cmd/keygate has no --http-authz-addr yet: the manifests expose no HTTP ext_authz port")
	}
}

// ---- manifests -----------------------------------------------------------

// doc is one YAML document of a file under deploy/.
type doc struct {
	file string // relative to deploy/
	obj  map[string]any
}

func (d doc) kind() string { return str(d.obj, "kind") }
func (d doc) name() string { return str(d.obj, "metadata", "name") }
func (d doc) String() string {
	return fmt.Sprintf("%s: %s/%s", d.file, d.kind(), d.name())
}

// get walks maps by key; nil when a step is missing.
func get(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any, keys ...string) string {
	s, _ := get(v, keys...).(string)
	return s
}

func list(v any, keys ...string) []any {
	l, _ := get(v, keys...).([]any)
	return l
}

func dict(v any, keys ...string) map[string]any {
	m, _ := get(v, keys...).(map[string]any)
	return m
}

func integer(v any, keys ...string) (int, bool) {
	switch n := get(v, keys...).(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case uint64:
		return int(n), true
	}
	return 0, false
}

// labels reads a string map (labels, selectors).
func labels(v any, keys ...string) map[string]string {
	out := map[string]string{}
	for k, v := range dict(v, keys...) {
		s, _ := v.(string)
		out[k] = s
	}
	return out
}

// selects reports whether a non-empty selector matches the labels.
func selects(selector, lbls map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if lbls[k] != v {
			return false
		}
	}
	return true
}

// readDocs parses every document of a YAML file; empty documents are skipped.
func readDocs(t *testing.T, file string) []doc {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(".", file)
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var out []doc
	for i := 0; ; i++ {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", rel, i, err)
		}
		if v == nil {
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: document %d is not a mapping", rel, i)
		}
		out = append(out, doc{file: filepath.ToSlash(rel), obj: m})
	}
	return out
}

// yamlFiles lists the *.yaml files under dir, recursively.
func yamlFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEveryManifestParses(t *testing.T) {
	files := yamlFiles(t, ".")
	if len(files) == 0 {
		t.Fatal("no manifests under deploy/")
	}
	for _, f := range files {
		docs := readDocs(t, f)
		if len(docs) == 0 {
			t.Errorf("%s: no document", f)
		}
		for _, d := range docs {
			if str(d.obj, "apiVersion") == "" || d.kind() == "" {
				t.Errorf("%s: a document without apiVersion or kind", d.file)
			}
			if d.kind() != "Kustomization" && d.name() == "" {
				t.Errorf("%s: no metadata.name", d)
			}
		}
	}
}

// kset is one kustomization: the manifests `kubectl apply -k dir` applies.
type kset struct {
	dir       string
	namespace string
	listed    []string // resources, as written
	docs      []doc
}

func (s *kset) of(kind string) []doc {
	var out []doc
	for _, d := range s.docs {
		if d.kind() == kind {
			out = append(out, d)
		}
	}
	return out
}

func (s *kset) find(kind, name string) (doc, bool) {
	for _, d := range s.of(kind) {
		if d.name() == name {
			return d, true
		}
	}
	return doc{}, false
}

// kustomizations loads every kustomization.yaml under deploy/ with the
// manifests it lists.
func kustomizations(t *testing.T) []*kset {
	t.Helper()
	var sets []*kset
	for _, f := range yamlFiles(t, ".") {
		if filepath.Base(f) != "kustomization.yaml" {
			continue
		}
		dir := filepath.Dir(f)
		k := readDocs(t, f)[0]
		s := &kset{dir: filepath.ToSlash(dir), namespace: str(k.obj, "namespace")}
		var listed []string
		for _, r := range list(k.obj, "resources") {
			name, _ := r.(string)
			listed = append(listed, name)
			p := filepath.Join(dir, filepath.FromSlash(name))
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s lists %s: %v", f, name, err)
				continue
			}
			s.docs = append(s.docs, readDocs(t, p)...)
		}
		s.listed = listed
		sets = append(sets, s)
	}
	if len(sets) == 0 {
		t.Fatal("no kustomization.yaml under deploy/")
	}
	return sets
}

func TestKustomizations(t *testing.T) {
	sets := kustomizations(t)
	var dirs []string
	for _, s := range sets {
		dirs = append(dirs, s.dir)
	}
	for _, want := range []string{"kubernetes", "kubernetes/keyfile"} {
		if !slices.Contains(dirs, want) {
			t.Errorf("no kustomization in deploy/%s (have %v)", want, dirs)
		}
	}
	for _, s := range sets {
		// Every YAML file beside the kustomization is one of its resources.
		beside, err := filepath.Glob(filepath.Join(filepath.FromSlash(s.dir), "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range beside {
			if base := filepath.Base(b); base != "kustomization.yaml" && !slices.Contains(s.listed, base) {
				t.Errorf("%s/kustomization.yaml does not list %s: `kubectl apply -k` would leave it out", s.dir, base)
			}
		}
	}
	k := readKeygate(t)
	for _, s := range sets {
		t.Run(s.dir, func(t *testing.T) { checkSet(t, s, k) })
	}
}

// ---- one kustomization ----------------------------------------------------

// container is keygate's container in a pod template.
type container struct {
	obj   map[string]any
	ports map[string]int // container port by name
}

func newContainer(obj map[string]any) *container {
	c := &container{obj: obj, ports: map[string]int{}}
	for _, p := range list(obj, "ports") {
		n, _ := integer(p, "containerPort")
		c.ports[str(p, "name")] = n
	}
	return c
}

// env returns the container's env entries by name.
func (c *container) env() map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, e := range list(c.obj, "env") {
		m, _ := e.(map[string]any)
		out[str(m, "name")] = m
	}
	return out
}

// setting is the literal value a flag gets in the container: from an
// argument --flag=value or from one of its env vars.
func (c *container) setting(k *keygate, flag string) (string, bool) {
	for _, a := range list(c.obj, "args") {
		s, _ := a.(string)
		if v, ok := strings.CutPrefix(s, "--"+flag+"="); ok {
			return v, true
		}
	}
	env := c.env()
	for _, name := range k.flags[flag].envs {
		if e, ok := env[name]; ok {
			v, isLiteral := e["value"].(string)
			return v, isLiteral
		}
	}
	return "", false
}

// setsFlag reports whether the flag is set at all (also from a Secret).
func (c *container) setsFlag(k *keygate, flag string) bool {
	for _, a := range list(c.obj, "args") {
		if s, _ := a.(string); strings.HasPrefix(s, "--"+flag+"=") || s == "--"+flag {
			return true
		}
	}
	env := c.env()
	for _, name := range k.flags[flag].envs {
		if _, ok := env[name]; ok {
			return true
		}
	}
	return false
}

// port resolves a probe's or Service's port (name or number) to a
// container port number.
func (c *container) port(v any) (int, bool) {
	switch p := v.(type) {
	case int:
		for _, n := range c.ports {
			if n == p {
				return p, true
			}
		}
	case string:
		n, ok := c.ports[p]
		return n, ok
	}
	return 0, false
}

func (c *container) portName(n int) string {
	for name, p := range c.ports {
		if p == n {
			return name
		}
	}
	return ""
}

func (c *container) args() []string {
	var out []string
	for _, v := range append(list(c.obj, "command"), list(c.obj, "args")...) {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

// podTemplate returns the pod spec and labels of a workload.
func podTemplate(d doc) (spec map[string]any, lbls map[string]string) {
	return dict(d.obj, "spec", "template", "spec"), labels(d.obj, "spec", "template", "metadata", "labels")
}

// workload is a Deployment with its `keygate serve` container.
type workload struct {
	dep    doc
	spec   map[string]any
	labels map[string]string
	c      *container
}

// workloads are the set's Deployments, each running `keygate serve`, each
// selecting its own pods and no other Deployment's.
func workloads(t *testing.T, s *kset) []workload {
	var ws []workload
	for _, dep := range s.of("Deployment") {
		spec, podLabels := podTemplate(dep)
		if sel := labels(dep.obj, "spec", "selector", "matchLabels"); !selects(sel, podLabels) {
			t.Errorf("%s: selector %v does not match its pod labels %v", dep, sel, podLabels)
		}
		w := workload{dep: dep, spec: spec, labels: podLabels}
		for _, v := range list(spec, "containers") {
			m, _ := v.(map[string]any)
			if cc := newContainer(m); slices.Contains(cc.args(), "serve") {
				w.c = cc
			}
		}
		if w.c == nil {
			t.Fatalf("%s: no container runs `keygate serve`", dep)
		}
		ws = append(ws, w)
	}
	if len(ws) == 0 {
		t.Fatal("no Deployment")
	}
	for i, a := range ws {
		for _, b := range ws[i+1:] {
			if selects(labels(a.dep.obj, "spec", "selector", "matchLabels"), b.labels) ||
				selects(labels(b.dep.obj, "spec", "selector", "matchLabels"), a.labels) {
				t.Errorf("%s and %s select each other's pods", a.dep, b.dep)
			}
		}
	}
	return ws
}

// checkRoles: some workload answers Check (its authz port exposed) and,
// with a database, some serves the Account API; a workload whose Account
// API is off sets it off explicitly.
func checkRoles(t *testing.T, ws []workload, database bool) {
	var authz, account bool
	for _, w := range ws {
		_, a := w.c.ports["authz"]
		_, b := w.c.ports["account"]
		authz, account = authz || a, account || b
		if !a && !b {
			t.Errorf("%s: exposes neither the authz nor the account listener", w.dep)
		}
	}
	if !authz {
		t.Error("no Deployment exposes the authz listener")
	}
	if database && !account {
		t.Error("no Deployment exposes the Account API")
	}
}

func checkSet(t *testing.T, s *kset, k *keygate) {
	// Namespace: the one the kustomization sets exists in the set, and no
	// manifest hard-codes another.
	if s.namespace != "" {
		if _, ok := s.find("Namespace", s.namespace); !ok {
			t.Errorf("kustomization sets namespace %q but no manifest creates it", s.namespace)
		}
	}
	for _, d := range s.docs {
		if ns := str(d.obj, "metadata", "namespace"); ns != "" && ns != s.namespace {
			t.Errorf("%s: namespace %q, the kustomization sets %q", d, ns, s.namespace)
		}
	}

	ws := workloads(t, s)
	database := ws[0].c.setsFlag(k, "database-url")
	for _, w := range ws {
		t.Run(w.dep.name(), func(t *testing.T) {
			if w.c.setsFlag(k, "database-url") != database {
				t.Errorf("%s: database mode differs from %s's", w.dep, ws[0].dep)
			}
			t.Run("listeners", func(t *testing.T) { checkListeners(t, w.dep, w.c, k, database) })
			t.Run("env", func(t *testing.T) { checkEnv(t, s, w.dep, w.c, k) })
			t.Run("files", func(t *testing.T) { checkFiles(t, s, w.dep, w.spec, w.c, k, database) })
			t.Run("probes", func(t *testing.T) { checkProbes(t, w.dep, w.c) })
			t.Run("pod", func(t *testing.T) { checkPod(t, w.dep, w.spec, w.labels, w.c, k) })
			t.Run("disruption", func(t *testing.T) { checkScaling(t, s, w.dep, w.labels, w.c, database) })
		})
	}
	t.Run("roles", func(t *testing.T) { checkRoles(t, ws, database) })
	t.Run("services", func(t *testing.T) { checkServices(t, s, ws) })
	t.Run("networkpolicies", func(t *testing.T) { checkNetworkPolicies(t, s, ws, database) })
	if database {
		t.Run("migration", func(t *testing.T) { checkMigration(t, s, ws[0].c, k) })
	}
	t.Run("secrets", func(t *testing.T) {
		for _, sec := range s.of("Secret") {
			for key, v := range dict(sec.obj, "stringData") {
				if sv, _ := v.(string); !strings.Contains(sv, "CHANGE-ME") {
					t.Errorf("%s: stringData.%s is not marked as a placeholder (CHANGE-ME): no real secret belongs in Git", sec, key)
				}
			}
			if len(dict(sec.obj, "data")) > 0 {
				t.Errorf("%s: base64 data in Git; use a placeholder in stringData", sec)
			}
		}
	})
}

// checkListeners: every container port is a keygate listener on its
// default port, and the pod makes that listener leave loopback.
func checkListeners(t *testing.T, dep doc, c *container, k *keygate, database bool) {
	need := []string{"admin"}
	if v, ok := c.setting(k, "authz-addr"); !ok || !strings.HasPrefix(v, "127.0.0.1:") {
		need = append(need, "authz") // unless kept on loopback (an Account API Deployment)
	}
	if database {
		// The Account API: exposed, or turned off explicitly (a data plane
		// Deployment), never left on its loopback default by accident.
		switch v, ok := c.setting(k, "account-listen-addr"); {
		case !ok:
			t.Errorf("%s: --account-listen-addr is not set: expose the Account API or turn it off (\"\")", dep)
		case v != "":
			need = append(need, "account")
		}
	} else if _, ok := c.ports["account"]; ok {
		t.Errorf("%s: an account port without a database: the Account API runs with a database only", dep)
	}
	for _, name := range need {
		if _, ok := c.ports[name]; !ok {
			t.Errorf("%s: no container port %q (keygate's --%s listener)", dep, name, listenerFlag[name])
		}
	}
	for name, n := range c.ports {
		flag, ok := listenerFlag[name]
		if !ok {
			t.Errorf("%s: container port %q is none of keygate's listeners %v", dep, name, sortedKeys(listenerFlag))
			continue
		}
		def, ok := k.defaultPort(t, flag)
		if !ok {
			t.Errorf("%s: container port %q, but cmd/keygate has no --%s", dep, name, flag)
			continue
		}
		if def != 0 && n != def {
			t.Errorf("%s: container port %s is %d, keygate's --%s defaults to port %d", dep, name, n, flag, def)
		}
		v, ok := c.setting(k, flag)
		if !ok {
			t.Errorf("%s: --%s is not set (env %v): keygate would listen on loopback only", dep, flag, k.flags[flag].envs)
			continue
		}
		host, port, err := splitHostPort(v)
		if err != nil {
			t.Errorf("%s: --%s=%q: %v", dep, flag, v, err)
			continue
		}
		if port != n {
			t.Errorf("%s: --%s=%q listens on %d, the container port %s is %d", dep, flag, v, port, name, n)
		}
		switch host {
		case "", "0.0.0.0", "[::]", "::":
		default:
			t.Errorf("%s: --%s=%q: in a pod, listen on every address (\":%d\")", dep, flag, v, n)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// checkEnv: env vars are keygate's (or the Go runtime's), and every Secret
// or ConfigMap they reference exists with that key.
func checkEnv(t *testing.T, s *kset, dep doc, c *container, k *keygate) {
	for name, e := range c.env() {
		if _, ok := k.envs[name]; !ok && !slices.Contains(runtimeEnv, name) {
			t.Errorf("%s: env %s is read by no flag of cmd/keygate", dep, name)
		}
		checkValueFrom(t, s, dep, name, e)
	}
	// The database URL holds a password: from a Secret, never a literal.
	for _, name := range k.flags["database-url"].envs {
		if e, ok := c.env()[name]; ok && get(e, "valueFrom", "secretKeyRef") == nil {
			t.Errorf("%s: env %s must come from a Secret (valueFrom.secretKeyRef)", dep, name)
		}
	}
	for _, a := range c.args() {
		if strings.HasPrefix(a, "--database-url") {
			t.Errorf("%s: the database URL in the arguments shows in `ps` and the pod spec; use the Secret", dep)
		}
	}
}

func checkValueFrom(t *testing.T, s *kset, owner doc, name string, e map[string]any) {
	if ref := dict(e, "valueFrom", "secretKeyRef"); ref != nil {
		sec, ok := s.find("Secret", str(ref, "name"))
		switch {
		case !ok:
			t.Errorf("%s: env %s: Secret %q is not in the kustomization", owner, name, str(ref, "name"))
		case get(sec.obj, "stringData", str(ref, "key")) == nil && get(sec.obj, "data", str(ref, "key")) == nil:
			t.Errorf("%s: env %s: %s has no key %q", owner, name, sec, str(ref, "key"))
		}
	}
	if ref := dict(e, "valueFrom", "configMapKeyRef"); ref != nil {
		cm, ok := s.find("ConfigMap", str(ref, "name"))
		switch {
		case !ok:
			t.Errorf("%s: env %s: ConfigMap %q is not in the kustomization", owner, name, str(ref, "name"))
		case get(cm.obj, "data", str(ref, "key")) == nil:
			t.Errorf("%s: env %s: %s has no key %q", owner, name, cm, str(ref, "key"))
		}
	}
}

// checkFiles: the routes file (and the keys file in key-file mode) is a
// key of a ConfigMap mounted where keygate is told to read it, mounted as a
// directory so updates arrive, and its content loads with keygate's parser.
func checkFiles(t *testing.T, s *kset, dep doc, spec map[string]any, c *container, k *keygate, database bool) {
	routesPath, ok := c.setting(k, "routes-file")
	if !ok {
		t.Fatalf("%s: --routes-file is not set", dep)
	}
	routes := mountedFile(t, s, dep, spec, c, routesPath)
	if routes == nil {
		return
	}
	table, warns, err := route.Parse(routes, routesPath)
	if err != nil {
		t.Fatalf("%s: the routes file in the ConfigMap does not load: %v", dep, err)
	}
	for _, w := range warns {
		t.Errorf("%s: routes file warning: %s", dep, w)
	}

	keysPath, hasKeys := c.setting(k, "keys-file")
	switch {
	case database && hasKeys:
		t.Errorf("%s: both --database-url and --keys-file: keygate refuses to start", dep)
	case !database && !hasKeys:
		t.Errorf("%s: neither --database-url nor --keys-file: keygate has no keys", dep)
	case hasKeys:
		keys := mountedFile(t, s, dep, spec, c, keysPath)
		if keys == nil {
			return
		}
		opts := keyfile.Options{HasService: func(name string) bool {
			_, ok := table.Service(name)
			return ok || name == authz.AccountAPIService
		}}
		if _, warns, err := keyfile.Parse(keys, keysPath, opts); err != nil {
			t.Errorf("%s: the keys file in the ConfigMap does not load: %v", dep, err)
		} else {
			for _, w := range warns {
				t.Errorf("%s: keys file warning: %s", dep, w)
			}
		}
	}
}

// mountedFile finds the ConfigMap key behind a path in the container.
func mountedFile(t *testing.T, s *kset, dep doc, spec map[string]any, c *container, file string) []byte {
	t.Helper()
	for _, vm := range list(c.obj, "volumeMounts") {
		mount := str(vm, "mountPath")
		if mount == file && str(vm, "subPath") != "" {
			t.Errorf("%s: %s is mounted with subPath: ConfigMap updates never reach it, so keygate cannot reload", dep, file)
			return nil
		}
		rel, ok := strings.CutPrefix(file, strings.TrimSuffix(mount, "/")+"/")
		if !ok {
			continue
		}
		if str(vm, "subPath") != "" {
			t.Errorf("%s: %s is mounted with subPath: ConfigMap updates never reach it, so keygate cannot reload", dep, file)
		}
		var vol map[string]any
		for _, v := range list(spec, "volumes") {
			if str(v, "name") == str(vm, "name") {
				vol, _ = v.(map[string]any)
			}
		}
		cmName := str(vol, "configMap", "name")
		if cmName == "" {
			t.Errorf("%s: %s is on volume %q, which is no ConfigMap", dep, file, str(vm, "name"))
			return nil
		}
		key := rel
		if items := list(vol, "configMap", "items"); items != nil {
			key = ""
			for _, it := range items {
				if str(it, "path") == rel {
					key = str(it, "key")
				}
			}
			if key == "" {
				t.Errorf("%s: volume %q projects no item at %s", dep, str(vm, "name"), rel)
				return nil
			}
		}
		cm, ok := s.find("ConfigMap", cmName)
		if !ok {
			t.Errorf("%s: ConfigMap %q is not in the kustomization", dep, cmName)
			return nil
		}
		data, ok := get(cm.obj, "data", key).(string)
		if !ok {
			t.Errorf("%s: %s has no key %q (mounted as %s)", dep, cm, key, file)
			return nil
		}
		return []byte(data)
	}
	t.Errorf("%s: no volume is mounted where %s is", dep, file)
	return nil
}

// checkProbes: ready = /readyz on the admin port; alive = gRPC health on
// the authz port (or /healthz); a startup probe covers the warm load.
func checkProbes(t *testing.T, dep doc, c *container) {
	admin, authzPort := c.ports["admin"], c.ports["authz"]

	ready := dict(c.obj, "readinessProbe")
	if p := str(ready, "httpGet", "path"); p != "/readyz" {
		t.Errorf("%s: readinessProbe path %q, want /readyz", dep, p)
	}
	if n, ok := c.port(get(ready, "httpGet", "port")); !ok || n != admin {
		t.Errorf("%s: readinessProbe port %v is not the admin port %d", dep, get(ready, "httpGet", "port"), admin)
	}

	live := dict(c.obj, "livenessProbe")
	switch {
	case get(live, "grpc") != nil:
		// gRPC probes take a number: a named port is rejected by the API.
		n, isNum := integer(live, "grpc", "port")
		if !isNum || n != authzPort {
			t.Errorf("%s: livenessProbe gRPC port %v, want the authz port %d as a number", dep, get(live, "grpc", "port"), authzPort)
		}
		if svc := str(live, "grpc", "service"); svc != "" && svc != authv3.Authorization_ServiceDesc.ServiceName {
			t.Errorf("%s: livenessProbe gRPC service %q: keygate's health service knows \"\" and %q", dep, svc, authv3.Authorization_ServiceDesc.ServiceName)
		}
	case get(live, "httpGet") != nil:
		if p := str(live, "httpGet", "path"); p != "/healthz" {
			t.Errorf("%s: livenessProbe path %q, want /healthz (never /readyz: a degraded database must not restart every pod)", dep, p)
		}
		if n, ok := c.port(get(live, "httpGet", "port")); !ok || n != admin {
			t.Errorf("%s: livenessProbe port is not the admin port %d", dep, admin)
		}
	default:
		t.Errorf("%s: no gRPC or HTTP livenessProbe", dep)
	}

	start := dict(c.obj, "startupProbe")
	switch {
	case start == nil:
		t.Errorf("%s: no startupProbe: the liveness probe could kill a pod still loading its keys", dep)
	case get(start, "httpGet") != nil:
		if p := str(start, "httpGet", "path"); p != "/healthz" && p != "/readyz" {
			t.Errorf("%s: startupProbe path %q", dep, p)
		}
		if n, ok := c.port(get(start, "httpGet", "port")); !ok || n != admin {
			t.Errorf("%s: startupProbe port is not the admin port %d", dep, admin)
		}
	case get(start, "grpc") != nil:
		if n, _ := integer(start, "grpc", "port"); n != authzPort {
			t.Errorf("%s: startupProbe gRPC port is not the authz port %d", dep, authzPort)
		}
	}
}

// checkPod: graceful shutdown fits in the grace period, the pod is locked
// down, resources are set, replicas are spread.
func checkPod(t *testing.T, dep doc, spec map[string]any, podLabels map[string]string, c *container, k *keygate) {
	grace := 30 // Kubernetes' default
	if n, ok := integer(spec, "terminationGracePeriodSeconds"); ok {
		grace = n
	}
	preStop, _ := integer(c.obj, "lifecycle", "preStop", "sleep", "seconds")
	// After SIGTERM keygate drains (--drain-period, where the flag exists)
	// and then waits up to --shutdown-timeout for checks in flight.
	need := time.Duration(preStop) * time.Second
	parts := []string{fmt.Sprintf("preStop %ds", preStop)}
	for _, flag := range []string{"drain-period", "shutdown-timeout"} {
		fl, exists := k.flags[flag]
		if !exists {
			continue
		}
		v, ok := c.setting(k, flag)
		if !ok {
			v = fl.def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s: --%s %q: %v", dep, flag, v, err)
		}
		need += d
		parts = append(parts, fmt.Sprintf("--%s %v", flag, d))
	}
	if time.Duration(grace)*time.Second <= need {
		t.Errorf("%s: terminationGracePeriodSeconds %d is not more than %s: in-flight checks would be killed", dep, grace, strings.Join(parts, " + "))
	}
	if preStop == 0 {
		t.Errorf("%s: no preStop sleep: Envoys still send checks to a pod that is shutting down", dep)
	}

	nonRoot := get(spec, "securityContext", "runAsNonRoot") == true || get(c.obj, "securityContext", "runAsNonRoot") == true
	if !nonRoot {
		t.Errorf("%s: runAsNonRoot is not set", dep)
	}
	if get(c.obj, "securityContext", "readOnlyRootFilesystem") != true {
		t.Errorf("%s: readOnlyRootFilesystem is not set", dep)
	}
	if get(c.obj, "securityContext", "allowPrivilegeEscalation") != false {
		t.Errorf("%s: allowPrivilegeEscalation is not false", dep)
	}
	for _, r := range [][]string{{"requests", "cpu"}, {"requests", "memory"}, {"limits", "memory"}} {
		if get(c.obj, append([]string{"resources"}, r...)...) == nil {
			t.Errorf("%s: resources.%s is not set", dep, strings.Join(r, "."))
		}
	}

	spread := false
	for _, tsc := range list(spec, "topologySpreadConstraints") {
		spread = spread || selects(labels(tsc, "labelSelector", "matchLabels"), podLabels)
	}
	for _, key := range []string{"requiredDuringSchedulingIgnoredDuringExecution", "preferredDuringSchedulingIgnoredDuringExecution"} {
		for _, term := range list(spec, "affinity", "podAntiAffinity", key) {
			sel := labels(term, "labelSelector", "matchLabels")
			if sel2 := labels(term, "podAffinityTerm", "labelSelector", "matchLabels"); len(sel2) > 0 {
				sel = sel2
			}
			spread = spread || selects(sel, podLabels)
		}
	}
	if !spread {
		t.Errorf("%s: no topology spread or pod anti-affinity selecting its own pods", dep)
	}
}

// checkServices: every Service selects the pods of one keygate Deployment
// (and nothing else), targets its container ports by the port names Istio
// reads, and the authz and account listeners are exposed.
func checkServices(t *testing.T, s *kset, ws []workload) {
	svcs := s.of("Service")
	if len(svcs) == 0 {
		t.Fatal("no Service")
	}
	exposed := map[string]bool{}
	for _, svc := range svcs {
		sel := labels(svc.obj, "spec", "selector")
		var c *container
		for _, w := range ws {
			if selects(sel, w.labels) {
				if c != nil {
					t.Errorf("%s: selector %v matches the pods of more than one Deployment", svc, sel)
				}
				c = w.c
			}
		}
		if c == nil {
			t.Errorf("%s: selector %v matches no keygate pods", svc, sel)
			continue
		}
		for _, other := range append(s.of("Job"), s.of("StatefulSet")...) {
			if _, lbls := podTemplate(other); selects(sel, lbls) {
				t.Errorf("%s: selector %v also matches the pods of %s", svc, sel, other)
			}
		}
		for _, p := range list(svc.obj, "spec", "ports") {
			target := get(p, "targetPort")
			if target == nil {
				target = get(p, "port")
			}
			n, ok := c.port(target)
			if !ok {
				t.Errorf("%s: port %q targets %v, which is no container port", svc, str(p, "name"), target)
				continue
			}
			name := c.portName(n)
			exposed[name] = true
			if port, _ := integer(p, "port"); port != n {
				t.Errorf("%s: port %q is %d, its container port is %d: keep them equal", svc, str(p, "name"), port, n)
			}
			if want := servicePortName[name]; str(p, "name") != want {
				t.Errorf("%s: the port to %s is named %q, want %q", svc, name, str(p, "name"), want)
			}
			wantProto := strings.SplitN(servicePortName[name], "-", 2)[0]
			if got := str(p, "appProtocol"); got != wantProto {
				t.Errorf("%s: port %q has appProtocol %q, want %q", svc, str(p, "name"), got, wantProto)
			}
		}
	}
	if !exposed["authz"] {
		t.Error("no Service exposes the authz port")
	}
	for _, w := range ws {
		if _, ok := w.c.ports["account"]; ok && !exposed["account"] {
			t.Errorf("%s serves the Account API but no Service exposes it", w.dep)
		}
	}
}

// checkScaling: the PDB and the HPA point at the Deployment and leave
// room for each other.
func checkScaling(t *testing.T, s *kset, dep doc, podLabels map[string]string, c *container, database bool) {
	var hpas []doc
	for _, h := range s.of("HorizontalPodAutoscaler") {
		if str(h.obj, "spec", "scaleTargetRef", "name") == dep.name() {
			hpas = append(hpas, h)
		}
	}
	_, answersCheck := c.ports["authz"]
	minReplicas := 0
	if n, ok := integer(dep.obj, "spec", "replicas"); ok {
		minReplicas = n
		if len(hpas) > 0 {
			t.Errorf("%s: spec.replicas is set while an HPA owns the count: each apply would reset it", dep)
		}
	} else if len(hpas) == 0 {
		minReplicas = 1
	}
	if database && answersCheck && len(hpas) == 0 {
		t.Errorf("%s: no HorizontalPodAutoscaler", dep)
	}
	for _, h := range hpas {
		if v := str(h.obj, "apiVersion"); v != "autoscaling/v2" {
			t.Errorf("%s: apiVersion %q, want autoscaling/v2", h, v)
		}
		ref := dict(h.obj, "spec", "scaleTargetRef")
		if str(ref, "apiVersion") != "apps/v1" || str(ref, "kind") != "Deployment" || str(ref, "name") != dep.name() {
			t.Errorf("%s: scaleTargetRef %v, want apps/v1 Deployment %s", h, ref, dep.name())
		}
		cpu := false
		for _, m := range list(h.obj, "spec", "metrics") {
			cpu = cpu || (str(m, "type") == "Resource" && str(m, "resource", "name") == "cpu")
		}
		if !cpu {
			t.Errorf("%s: no CPU metric", h)
		}
		lo, _ := integer(h.obj, "spec", "minReplicas")
		hi, _ := integer(h.obj, "spec", "maxReplicas")
		if lo < 2 || hi < lo {
			t.Errorf("%s: minReplicas %d, maxReplicas %d: want at least 2 and max >= min", h, lo, hi)
		}
		minReplicas = lo
	}

	var pdbs []doc
	for _, p := range s.of("PodDisruptionBudget") {
		if selects(labels(p.obj, "spec", "selector", "matchLabels"), podLabels) {
			pdbs = append(pdbs, p)
		}
	}
	if len(pdbs) == 0 {
		t.Errorf("%s: no PodDisruptionBudget selects its pods", dep)
	}
	for _, p := range pdbs {
		if sel := labels(p.obj, "spec", "selector", "matchLabels"); !selects(sel, podLabels) {
			t.Errorf("%s: selector %v does not match the keygate pods %v", p, sel, podLabels)
		}
		if n, ok := integer(p.obj, "spec", "minAvailable"); ok && n >= minReplicas {
			t.Errorf("%s: minAvailable %d with %d replicas: no node could ever be drained", p, n, minReplicas)
		}
		if n, ok := integer(p.obj, "spec", "maxUnavailable"); ok && n < 1 {
			t.Errorf("%s: maxUnavailable %d: no node could ever be drained", p, n)
		}
		if get(p.obj, "spec", "minAvailable") == nil && get(p.obj, "spec", "maxUnavailable") == nil {
			t.Errorf("%s: neither minAvailable nor maxUnavailable", p)
		}
	}
}

// checkMigration: a Job runs `keygate migrate` with the same image and the
// same database URL as the server.
func checkMigration(t *testing.T, s *kset, server *container, k *keygate) {
	var found bool
	for _, job := range s.of("Job") {
		spec, _ := podTemplate(job)
		for _, v := range list(spec, "containers") {
			m, _ := v.(map[string]any)
			c := newContainer(m)
			args := c.args()
			if !slices.Contains(args, "migrate") {
				continue
			}
			found = true
			if args[0] != "migrate" && (len(args) < 2 || args[1] != "migrate") {
				t.Errorf("%s: %v: `migrate` must be the subcommand", job, args)
			}
			if str(c.obj, "image") != str(server.obj, "image") {
				t.Errorf("%s: image %q, the server runs %q: migrations must match the binary", job, str(c.obj, "image"), str(server.obj, "image"))
			}
			if rp := str(spec, "restartPolicy"); rp != "Never" && rp != "OnFailure" {
				t.Errorf("%s: restartPolicy %q", job, rp)
			}
			var jobRef, serverRef any
			for _, name := range k.flags["database-url"].envs {
				if e, ok := c.env()[name]; ok {
					jobRef = get(e, "valueFrom", "secretKeyRef")
				}
				if e, ok := server.env()[name]; ok {
					serverRef = get(e, "valueFrom", "secretKeyRef")
				}
				if e, ok := c.env()[name]; ok {
					checkValueFrom(t, s, job, name, e)
				}
			}
			if jobRef == nil || !reflect.DeepEqual(jobRef, serverRef) {
				t.Errorf("%s: database URL from %v, the server's from %v", job, jobRef, serverRef)
			}
			for name := range c.env() {
				if _, ok := k.envs[name]; !ok && !slices.Contains(runtimeEnv, name) {
					t.Errorf("%s: env %s is read by no flag of cmd/keygate", job, name)
				}
			}
		}
	}
	if !found {
		t.Error("no Job runs `keygate migrate`")
	}
}

// ---- Istio ----------------------------------------------------------------

// Field names of Istio's MeshConfig.ExtensionProvider for ext_authz
// (istio.io/api mesh/v1alpha1): a misspelt one is ignored by Istio.
var istioFields = map[string][]string{
	"provider":                  {"name", "envoyExtAuthzGrpc", "envoyExtAuthzHttp"},
	"envoyExtAuthzGrpc":         {"service", "port", "timeout", "failOpen", "statusOnError", "includeRequestBodyInCheck"},
	"includeRequestBodyInCheck": {"maxRequestBytes", "allowPartialMessage", "packAsBytes"},
}

func unknownFields(m map[string]any, kind string) []string {
	var out []string
	for k := range m {
		if !slices.Contains(istioFields[kind], k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// meshProviders reads extensionProviders from an IstioOperator
// (spec.meshConfig) or from the istio ConfigMap (data.mesh).
func meshProviders(t *testing.T, docs []doc) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, d := range docs {
		var mesh any
		switch {
		case d.kind() == "IstioOperator":
			mesh = get(d.obj, "spec", "meshConfig")
		case d.kind() == "ConfigMap" && d.name() == "istio":
			var v any
			if err := yaml.Unmarshal([]byte(str(d.obj, "data", "mesh")), &v); err != nil {
				t.Fatalf("%s: data.mesh: %v", d, err)
			}
			mesh = v
		default:
			continue
		}
		for _, p := range list(mesh, "extensionProviders") {
			m, _ := p.(map[string]any)
			out = append(out, m)
		}
	}
	return out
}

func TestIstio(t *testing.T) {
	k := readKeygate(t)
	var docs []doc
	for _, f := range yamlFiles(t, "istio") {
		docs = append(docs, readDocs(t, f)...)
	}
	var db *kset
	for _, s := range kustomizations(t) {
		if s.dir == "kubernetes" {
			db = s
		}
	}
	if db == nil {
		t.Fatal("no deploy/kubernetes kustomization")
	}
	svc, ok := db.find("Service", "keygate")
	if !ok {
		t.Fatal("deploy/kubernetes: no Service keygate")
	}
	svcPort := 0
	for _, p := range list(svc.obj, "spec", "ports") {
		if str(p, "name") == servicePortName["authz"] {
			svcPort, _ = integer(p, "port")
		}
	}
	authzDefault, _ := k.defaultPort(t, "authz-addr")
	if svcPort != authzDefault {
		t.Errorf("%s: port %s is %d, keygate's --authz-addr defaults to %d", svc, servicePortName["authz"], svcPort, authzDefault)
	}
	host := fmt.Sprintf("%s.%s.svc.cluster.local", svc.name(), db.namespace)
	_, podLabels := podTemplate(db.of("Deployment")[0])

	providers := map[string]map[string]any{}
	for _, p := range meshProviders(t, docs) {
		name := str(p, "name")
		if u := unknownFields(p, "provider"); len(u) > 0 {
			t.Errorf("extension provider %q: unknown fields %v", name, u)
		}
		providers[name] = p
		g := dict(p, "envoyExtAuthzGrpc")
		if g == nil {
			continue
		}
		if u := unknownFields(g, "envoyExtAuthzGrpc"); len(u) > 0 {
			t.Errorf("extension provider %q: envoyExtAuthzGrpc: unknown fields %v", name, u)
		}
		if b := dict(g, "includeRequestBodyInCheck"); b != nil {
			if u := unknownFields(b, "includeRequestBodyInCheck"); len(u) > 0 {
				t.Errorf("extension provider %q: includeRequestBodyInCheck: unknown fields %v", name, u)
			}
			if n, _ := integer(b, "maxRequestBytes"); n <= 0 {
				t.Errorf("extension provider %q: includeRequestBodyInCheck.maxRequestBytes must be > 0", name)
			}
		}
		service := str(g, "service")
		if _, h, ok := strings.Cut(service, "/"); ok {
			service = h // [<Namespace>/]<Hostname>
		}
		if service != host {
			t.Errorf("extension provider %q: service %q, keygate's Service is %s", name, str(g, "service"), host)
		}
		if port, _ := integer(g, "port"); port != svcPort {
			t.Errorf("extension provider %q: port %v, keygate's Service port %s is %d", name, get(g, "port"), servicePortName["authz"], svcPort)
		}
		if get(g, "failOpen") == true {
			t.Errorf("extension provider %q: failOpen: keygate unreachable must deny", name)
		}
		if to := str(g, "timeout"); to != "" {
			if d, err := time.ParseDuration(to); err != nil || d <= 0 {
				t.Errorf("extension provider %q: timeout %q", name, to)
			}
		} else {
			t.Errorf("extension provider %q: no timeout (Istio's default is 600s)", name)
		}
	}
	if len(providers) == 0 {
		t.Fatal("no meshConfig.extensionProviders under deploy/istio")
	}

	policies := 0
	for _, d := range docs {
		if d.kind() != "AuthorizationPolicy" {
			continue
		}
		if str(d.obj, "spec", "action") != "CUSTOM" && str(d.obj, "metadata", "namespace") == db.namespace {
			// A policy guarding keygate itself (mesh-mtls.yaml), not one
			// asking it: TestIstioMeshMTLS checks those.
			continue
		}
		policies++
		if v := str(d.obj, "apiVersion"); v != "security.istio.io/v1" {
			t.Errorf("%s: apiVersion %q, want security.istio.io/v1", d, v)
		}
		if a := str(d.obj, "spec", "action"); a != "CUSTOM" {
			t.Errorf("%s: action %q, want CUSTOM", d, a)
		}
		pname := str(d.obj, "spec", "provider", "name")
		if p, ok := providers[pname]; !ok || dict(p, "envoyExtAuthzGrpc") == nil {
			t.Errorf("%s: provider %q is no envoyExtAuthzGrpc extension provider (have %v)", d, pname, sortedKeys(providers))
		}
		sel := labels(d.obj, "spec", "selector", "matchLabels")
		if len(sel) == 0 {
			t.Errorf("%s: no selector: the policy would cover every workload of its namespace (of the mesh in the root namespace)", d)
		}
		if selects(sel, podLabels) {
			t.Errorf("%s: selector %v matches keygate itself: every check would need a check", d, sel)
		}
		if len(list(d.obj, "spec", "rules")) == 0 {
			t.Errorf("%s: no rules: a CUSTOM policy without rules never calls keygate", d)
		}
	}
	if policies == 0 {
		t.Error("no AuthorizationPolicy under deploy/istio")
	}
}

// Package keyfile is keygate's embedded key store: a read-only YAML file of
// apps, tenants and key hashes, validated as a whole and hot-reloaded
// (SPEC §6 "Embedded default"). It is meant for trying keygate, tests and
// small GitOps-managed deployments; Postgres is the system of record.
//
// The file looks like this (field names are a public contract):
//
//	account: default         # optional: absent or empty is "default"
//	apps:    [{id: billing, name: Billing}]
//	tenants: [{id: acme, name: ACME Corp}]
//	roles:   [{id: r-read, name: readers, scope: "email-api:query:*"}]   # roles.go
//	denials: [{id: d-1, tenant: acme, app: billing, scope: email-api, reason: "…"}]
//	keys:
//	  - id: k-1
//	    name: acme-billing
//	    type: service            # service | app | account
//	    app: billing
//	    tenant: acme
//	    hash: "sha256:…"         # from `keygate keygen` or `keygate hash`
//	    scope: "email-api:query:*"
//	    roles: [r-read]          # effective scope: own scope and the roles' (SPEC §11)
//	    active: true             # default true
//	    not_before: 2026-01-01T00:00:00Z
//	    expires_at: 2027-01-01T00:00:00Z
//	    ip_filters: ["10.0.0.0/8"]
//	    group: partners
//	    description: "…"
//	    response_headers:
//	      - {name: x-tier, value: gold, disabled: false}
//
// Every key of a file belongs to its one account: the account field, or
// DefaultAccount ("default") when the file names none. The account id is
// never empty, so every allow names it in x-keygate-account-id and in
// dynamic_metadata account_id (SPEC §9 "Identity across accounts"). Names
// (of apps, tenants and keys) and groups may not hold bidirectional,
// invisible or control characters; response headers follow SPEC §9's name
// rules (authz.Compile).
package keyfile

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/yamlfile"
)

// DefaultAccount is the account of a file that names none.
const DefaultAccount = "default"

// Options are the server settings a file is checked against.
type Options struct {
	// Algorithm is how the server hashes presented secrets; a key hashed
	// any other way could never be found, so it is an error. The zero value
	// means SHA256 (no pepper).
	Algorithm apikey.Algorithm
	// Compile is passed to authz.Compile for every key.
	Compile authz.CompileOptions
	// HasService, when set, reports whether a service is declared; a scope
	// naming an undeclared one is a warning (SPEC §9), not an error, so that
	// keys and routes can be rolled out in either order.
	HasService func(name string) bool
}

// Error is one problem in a keys file, "file:line: entry: field: message";
// Parse joins all of them.
type Error = yamlfile.Error

// Set is one parsed and compiled file.
type Set struct {
	account string
	byHash  map[apikey.Digest]*authz.Key
	order   []*authz.Key
	// specs are the keys as the file states them, in order's order: the
	// compiled records keep only what decisions read (authz.KeyInfo).
	specs   []authz.KeySpec
	apps    []Owner
	tenants []Owner
	roles   []*authz.Role
	denials []*authz.CompiledDenial
	// modified is when the file was last changed, as Store read it
	// (zero for a Set that Parse returned by itself).
	modified time.Time
}

// Owner is an app or a tenant as a keys file lists it.
type Owner struct {
	ID   string
	Name string
	// Quota is a tenant's monthly request quota (SPEC §12), 0 for none.
	Quota int64
}

// Apps returns the file's apps in file order.
func (s *Set) Apps() []Owner { return slices.Clone(s.apps) }

// Tenants returns the file's tenants in file order.
func (s *Set) Tenants() []Owner { return slices.Clone(s.tenants) }

// Roles returns the file's roles in file order. The caller owns the
// slice, not the roles.
func (s *Set) Roles() []*authz.Role { return slices.Clone(s.roles) }

// Denials returns the file's service access denials in file order. The
// caller owns the slice, not the denials.
func (s *Set) Denials() []*authz.CompiledDenial { return slices.Clone(s.denials) }

// Len is the number of keys.
func (s *Set) Len() int { return len(s.order) }

// Keys returns the keys in file order. The caller owns the slice, not the
// keys, which are shared and must not be modified.
func (s *Set) Keys() []*authz.Key { return slices.Clone(s.order) }

// Specs returns the keys as the file states them (with their
// descriptions, IP filters and response headers), in file order, each
// with its account, app and tenant names. The caller owns the slice, not
// the specs' own slices, which must not be modified.
func (s *Set) Specs() []authz.KeySpec { return slices.Clone(s.specs) }

// Account is the account every key of the file belongs to.
func (s *Set) Account() string { return s.account }

// Modified is the file's modification time when Store loaded this Set:
// the time of the last change to what it holds. Zero for a Set that Parse
// returned by itself.
func (s *Set) Modified() time.Time { return s.modified }

var (
	topFields    = []string{"account", "apps", "tenants", "roles", "denials", "keys"}
	ownerFields  = []string{"id", "name"}
	tenantFields = []string{"id", "name", "quota"}
	keyFields    = []string{"id", "name", "type", "app", "tenant", "hash", "scope", "roles", "active", "not_before", "expires_at", "ip_filters", "group", "description", "response_headers", "rate_limit", "quota"}
	headerFields = []string{"name", "value", "disabled"}
)

// Parse reads and compiles a keys file. filename only labels messages. It
// reports every problem at once, each naming file, line, entry and field;
// on error the Set is nil. Warnings are returned either way.
func Parse(data []byte, filename string, opts Options) (*Set, []string, error) {
	if opts.Algorithm == "" {
		opts.Algorithm = apikey.SHA256
	}
	p := &parser{Reader: yamlfile.NewReader(filename, yamlfile.Wording{})}
	set := p.parse(data, opts)
	if errs := p.Errors(); len(errs) > 0 {
		// Line order reads like the file, whatever order the checks ran in.
		slices.SortStableFunc(errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
		return nil, p.Warnings(), yamlfile.Join(errs)
	}
	return set, p.Warnings(), nil
}

// parser reads a keys file with the one YAML reader; it knows the fields.
type parser struct {
	*yamlfile.Reader
}

// owner is an app or a tenant as the file declares it.
type owner struct {
	name  string
	label string
	line  int
	quota int64 // a tenant's monthly quota
}

func (p *parser) parse(data []byte, opts Options) *Set {
	root, ok := p.Document(data)
	if !ok {
		return nil
	}
	if root == nil {
		p.Fail(0, "", "keys", errNoKeysList)
		return nil
	}
	set := &Set{account: DefaultAccount, byHash: map[apikey.Digest]*authz.Key{}}
	top := p.Mapping(root, "", topFields, "want a mapping with account, apps, tenants, roles, denials and keys")
	if top == nil {
		return nil
	}
	if s, _ := p.String(top["account"].Value, "", "account"); s != "" {
		set.account = s
	}
	apps, appList := p.owners(top["apps"].Value, "apps")
	tenants, tenantList := p.owners(top["tenants"].Value, "tenants")
	set.apps, set.tenants = appList, tenantList
	roles, roleOrder := p.roles(top["roles"].Value, set.account, opts.HasService)
	set.roles = roleOrder
	set.denials = p.denials(top["denials"].Value, set.account, apps, tenants, opts.HasService)
	// Keys are compiled against the file's roles (a key naming a role the
	// file does not hold, or holds broken, is an error of its own).
	opts.Compile.Roles = roles

	items := p.keysList(top, root)
	kp := keyParser{parser: p, opts: opts, set: set, apps: apps, tenants: tenants,
		ids: map[string]seen{}, names: map[string]seen{}, hashes: map[apikey.Digest]seen{}}
	for i, n := range items {
		if p.Stopped() {
			break
		}
		kp.key(i, n)
	}
	return set
}

// errNoKeysList words a file without a keys list and what to do about it.
var errNoKeysList = errors.New("the file has no keys list (empty or truncated?): " +
	"restore the file, or write `keys: []` to serve no keys")

// keysList returns the items of the keys list. A file without one, or with
// `keys:` left empty, is refused rather than read as zero keys: a file
// emptied or cut short (a half-written ConfigMap, a bad merge) would
// otherwise deny every client, where a refused reload keeps the last good
// keys. Serving no keys takes an explicit `keys: []`.
func (p *parser) keysList(top yamlfile.Fields, root *yaml.Node) []*yaml.Node {
	f := top["keys"]
	if yamlfile.IsNull(f.Value) {
		p.Fail(lineOf(f.Key, root), "", "keys", errNoKeysList)
		return nil
	}
	items, _ := p.List(f.Value, "", "keys")
	return items
}

// label refuses, in a name or a group, what authz.CheckLabelText refuses
// (bidirectional, invisible and control characters), naming the code
// point; it reports whether it did.
func (p *parser) label(n *yaml.Node, entry, field, text string) bool {
	if n == nil || text == "" {
		return false
	}
	if err := authz.CheckLabelText(text); err != nil {
		p.Fail(n.Line, entry, field, err)
		return true
	}
	return false
}

// owners reads the apps or tenants list, by id and in file order.
func (p *parser) owners(n *yaml.Node, list string) (map[string]owner, []Owner) {
	items, _ := p.List(n, "", list)
	out := make(map[string]owner, len(items))
	var ordered []Owner
	for i, n := range items {
		id := yamlfile.Peek(n, "id")
		label := entryLabel(list, i, id)
		fields, want := ownerFields, "want a mapping with id and name"
		if list == "tenants" {
			fields, want = tenantFields, "want a mapping with id, name and quota"
		}
		f := p.Mapping(n, label, fields, want)
		if f == nil {
			continue
		}
		id, _ = p.String(f["id"].Value, label, "id")
		name, _ := p.String(f["name"].Value, label, "name")
		p.label(f["name"].Value, label, "name", name)
		var quota authz.Quota
		if list == "tenants" {
			quota, _ = p.quota(f["quota"].Value, label, true)
		}
		switch first, dup := out[id]; {
		case id == "":
			p.Fail(lineOf(f["id"].Value, n), label, "id", errors.New("required"))
		case dup:
			p.Errorf(f["id"].Value, label, "id", "%q is also the id of %s (line %d)", id, first.label, first.line)
		default:
			out[id] = owner{name: name, label: label, line: f["id"].Value.Line, quota: quota.Requests}
			ordered = append(ordered, Owner{ID: id, Name: name, Quota: quota.Requests})
		}
	}
	return out, ordered
}

func entryLabel(list string, i int, id string) string {
	if id == "" {
		return fmt.Sprintf("%s[%d]", list, i)
	}
	return fmt.Sprintf("%s[%d] (id %q)", list, i, id)
}

// lineOf is the line of a field's value, or of its entry when the field is
// absent.
func lineOf(field, entry *yaml.Node) int {
	if field != nil {
		return field.Line
	}
	return entry.Line
}

// seen remembers where a unique value first appeared.
type seen struct {
	label string
	line  int
}

type keyParser struct {
	*parser
	opts          Options
	set           *Set
	apps, tenants map[string]owner
	ids, names    map[string]seen
	hashes        map[apikey.Digest]seen
}

func (kp *keyParser) key(i int, n *yaml.Node) {
	label := entryLabel("keys", i, yamlfile.Peek(n, "id"))
	f := kp.Mapping(n, label, keyFields, "want a mapping with id, name, type, hash, …")
	if f == nil {
		return
	}
	errsBefore := kp.NumErrors()
	// Fields with a problem reported here: authz.Compile would only repeat
	// it in other words.
	reported := map[string]bool{}
	str := func(field string) string {
		s, ok := kp.String(f[field].Value, label, field)
		if !ok {
			reported[field] = true
		}
		return s
	}
	spec := authz.KeySpec{
		ID:          str("id"),
		Name:        str("name"),
		AccountID:   kp.set.account,
		AppID:       str("app"),
		TenantID:    str("tenant"),
		Hash:        str("hash"),
		Scope:       kp.canonicalScope(f["scope"].Value, label, str("scope")),
		Active:      true,
		Group:       str("group"),
		Description: str("description"),
	}
	if t := str("type"); t != "" {
		typ, err := authz.ParseKeyType(t)
		if err != nil {
			kp.Fail(f["type"].Value.Line, label, "type", err)
			reported["type"] = true
		}
		spec.Type = typ
	}
	for _, field := range []string{"name", "group"} {
		if kp.label(f[field].Value, label, field, map[string]string{"name": spec.Name, "group": spec.Group}[field]) {
			reported[field] = true
		}
	}
	if v := f["active"].Value; v != nil {
		spec.Active, _ = kp.Bool(v, label, "active")
	}
	spec.NotBefore, _ = kp.Time(f["not_before"].Value, label, "not_before")
	spec.ExpiresAt, _ = kp.Time(f["expires_at"].Value, label, "expires_at")
	// A list with a malformed item reaches Compile without it, so Compile's
	// "[i]" would name the wrong item: its findings wait for the next run.
	n0 := kp.NumErrors()
	filters, _ := kp.List(f["ip_filters"].Value, label, "ip_filters")
	for j, v := range filters {
		if s, ok := kp.String(v, label, fmt.Sprintf("ip_filters[%d]", j)); ok {
			spec.IPFilters = append(spec.IPFilters, s)
		}
	}
	reported["ip_filters"] = kp.NumErrors() > n0
	spec.Roles, reported["roles"] = kp.keyRoles(f["roles"].Value, label)
	spec.RateLimit, reported["rate_limit"] = kp.rateLimit(f["rate_limit"].Value, label)
	spec.Quota, reported["quota"] = kp.quota(f["quota"].Value, label, false)
	n0 = kp.NumErrors()
	spec.ResponseHeaders = kp.headers(f["response_headers"].Value, label)
	reported["response_headers"] = kp.NumErrors() > n0
	if app, ok := kp.apps[spec.AppID]; ok {
		spec.AppName = app.name
	}
	if tenant, ok := kp.tenants[spec.TenantID]; ok {
		spec.TenantName, spec.TenantQuota = tenant.name, tenant.quota
	}
	if _, ok := apikey.KindOf(spec.Hash); ok {
		// Named without quoting it: the value is a live secret.
		kp.Errorf(f["hash"].Value, label, "hash", "this is a secret key, not its hash; store the output of `keygate hash`")
		reported["hash"] = true
		spec.Hash = ""
	}

	key, err := authz.Compile(spec, kp.opts.Compile)
	kp.compileErrors(err, f, n, label, reported)
	kp.references(spec, f, label, reported)
	kp.unique(spec, f, label)

	if key == nil || kp.NumErrors() > errsBefore {
		return
	}
	if kp.opts.HasService != nil {
		for _, svc := range key.OwnScope().Services() {
			if !kp.opts.HasService(svc) {
				kp.Warnf(f["scope"].Value, label, "scope", "service %q is not declared", svc)
			}
		}
	}
	kp.set.byHash[key.Digest] = key
	kp.set.order = append(kp.set.order, key)
	kp.set.specs = append(kp.set.specs, spec)
}

func (kp *keyParser) headers(n *yaml.Node, label string) []authz.HeaderSpec {
	items, _ := kp.List(n, label, "response_headers")
	var out []authz.HeaderSpec
	for j, item := range items {
		field := fmt.Sprintf("response_headers[%d]", j)
		h := kp.Mapping(item, label+": "+field, headerFields, "want a mapping with name, value and disabled")
		if h == nil {
			continue
		}
		name, _ := kp.String(h["name"].Value, label, field+".name")
		value, _ := kp.String(h["value"].Value, label, field+".value")
		var disabled bool
		if v := h["disabled"].Value; v != nil {
			disabled, _ = kp.Bool(v, label, field+".disabled")
		}
		out = append(out, authz.HeaderSpec{Name: name, Value: value, Disabled: disabled})
	}
	return out
}

// compileErrors reports authz.Compile's field errors at the field's line,
// one message per problem.
func (kp *keyParser) compileErrors(err error, f yamlfile.Fields, entry *yaml.Node, label string, reported map[string]bool) {
	for _, e := range flatten(err) {
		var fe *authz.FieldError
		if !errors.As(e, &fe) {
			kp.Fail(entry.Line, label, "", e)
			continue
		}
		if reported[fe.Field] {
			continue
		}
		reported[fe.Field] = true
		for _, inner := range flatten(fe.Err) {
			// Some packages already prefix their message with the field.
			msg := strings.TrimPrefix(inner.Error(), fe.Field+": ")
			kp.Fail(itemLine(f[fe.Field].Value, entry, msg), label, fe.Field, errors.New(msg))
		}
	}
}

// itemLine points a message about item "[i] …" of a list field at the
// item's own line, which matters when the list is written one item a line;
// anything else gets the field's line.
func itemLine(field, entry *yaml.Node, msg string) int {
	line := lineOf(field, entry)
	rest, ok := strings.CutPrefix(msg, "[")
	if !ok || field == nil || field.Kind != yaml.SequenceNode {
		return line
	}
	num, _, ok := strings.Cut(rest, "]")
	i, err := strconv.Atoi(num)
	if !ok || err != nil || i < 0 || i >= len(field.Content) {
		return line
	}
	return field.Content[i].Line
}

// flatten splits errors.Join trees into their leaves.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// references checks that the key's app and tenant are declared in the file.
func (kp *keyParser) references(spec authz.KeySpec, f yamlfile.Fields, label string, reported map[string]bool) {
	if spec.AppID != "" && !reported["app"] {
		if _, ok := kp.apps[spec.AppID]; !ok {
			kp.Errorf(f["app"].Value, label, "app", "%q is not listed in apps", spec.AppID)
		}
	}
	if spec.TenantID != "" && !reported["tenant"] {
		if _, ok := kp.tenants[spec.TenantID]; !ok {
			kp.Errorf(f["tenant"].Value, label, "tenant", "%q is not listed in tenants", spec.TenantID)
		}
	}
}

// unique checks key ids, names and hashes against the keys before it, and
// that the hash is one the server can ever match.
func (kp *keyParser) unique(spec authz.KeySpec, f yamlfile.Fields, label string) {
	if spec.ID != "" {
		if first, dup := kp.ids[spec.ID]; dup {
			kp.Errorf(f["id"].Value, label, "id", "%q is also the id of %s (line %d)", spec.ID, first.label, first.line)
		} else {
			kp.ids[spec.ID] = seen{label, f["id"].Value.Line}
		}
	}
	if spec.Name != "" {
		if first, dup := kp.names[spec.Name]; dup {
			kp.Errorf(f["name"].Value, label, "name", "%q is also the name of %s (line %d)", spec.Name, first.label, first.line)
		} else {
			kp.names[spec.Name] = seen{label, f["name"].Value.Line}
		}
	}
	alg, digest, err := apikey.ParseHash(spec.Hash)
	if err != nil {
		return // Compile has reported it
	}
	if alg != kp.opts.Algorithm {
		kp.Errorf(f["hash"].Value, label, "hash", "%s but the server hashes with %s (%s)", alg, kp.opts.Algorithm, pepperNote(kp.opts.Algorithm))
	}
	if first, dup := kp.hashes[digest]; dup {
		kp.Errorf(f["hash"].Value, label, "hash", "same hash as %s (line %d)", first.label, first.line)
	} else {
		kp.hashes[digest] = seen{label, f["hash"].Value.Line}
	}
}

func pepperNote(a apikey.Algorithm) string {
	if a == apikey.HMACSHA256 {
		return "a pepper is configured"
	}
	return "no pepper is configured"
}

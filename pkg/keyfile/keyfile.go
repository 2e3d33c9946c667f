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
//	keys:
//	  - id: k-1
//	    name: acme-billing
//	    type: service            # service | app | account
//	    app: billing
//	    tenant: acme
//	    hash: "sha256:…"         # from `keygate keygen` or `keygate hash`
//	    scope: "email-api:query:*"
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
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
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

// Error is one problem in a keys file. Parse joins all of them.
type Error struct {
	File  string
	Line  int    // 1-based; 0 when unknown
	Entry string // e.g. `keys[2] (id "k-3")`; "" for the top level
	Field string // e.g. "tenant"; "" when the entry as a whole is wrong
	Err   error
}

// Error reads like `keys.yaml:12: keys[2] (id "k-3"): tenant: required for service keys`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Entry != "" {
		b.WriteString(e.Entry)
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Set is one parsed and compiled file.
type Set struct {
	account string
	byHash  map[apikey.Digest]*authz.Key
	order   []*authz.Key
	apps    int
	tenants int
}

// Len is the number of keys.
func (s *Set) Len() int { return len(s.order) }

// Keys returns the keys in file order. The caller owns the slice, not the
// keys, which are shared and must not be modified.
func (s *Set) Keys() []*authz.Key { return slices.Clone(s.order) }

// Account is the account every key of the file belongs to.
func (s *Set) Account() string { return s.account }

var (
	topFields    = []string{"account", "apps", "tenants", "keys"}
	ownerFields  = []string{"id", "name"}
	keyFields    = []string{"id", "name", "type", "app", "tenant", "hash", "scope", "active", "not_before", "expires_at", "ip_filters", "group", "description", "response_headers"}
	headerFields = []string{"name", "value", "disabled"}
)

// Parse reads and compiles a keys file. filename only labels messages. It
// reports every problem at once, each naming file, line, entry and field;
// on error the Set is nil. Warnings are returned either way.
func Parse(data []byte, filename string, opts Options) (*Set, []string, error) {
	if opts.Algorithm == "" {
		opts.Algorithm = apikey.SHA256
	}
	p := &parser{file: filename}
	set := p.parse(data, opts)
	warnings := make([]string, len(p.warns))
	for i, w := range p.warns {
		warnings[i] = w.Error()
	}
	if len(p.errs) > 0 {
		// Line order reads like the file, whatever order the checks ran in.
		slices.SortStableFunc(p.errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
		errs := make([]error, len(p.errs))
		for i, e := range p.errs {
			errs[i] = e
		}
		return nil, warnings, errors.Join(errs...)
	}
	return set, warnings, nil
}

type parser struct {
	file  string
	errs  []*Error
	warns []*Error

	// budget is how many nodes aliases may still add to the walk. Without
	// it a few kilobytes of nested aliases make millions of keys to compile
	// and an error message of gigabytes.
	budget int
	sizes  map[*yaml.Node]int
	blowup bool // the budget ran out; the walk stops
}

// aliasRatio is how many times its own size aliases may expand a file;
// minAliasBudget keeps small files free to share lists through anchors.
const (
	aliasRatio     = 10
	minAliasBudget = 10_000
)

func (p *parser) fail(line int, entry, field string, err error) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Entry: entry, Field: field, Err: err})
}

func (p *parser) failf(n *yaml.Node, entry, field, format string, args ...any) {
	p.fail(n.Line, entry, field, fmt.Errorf(format, args...))
}

// owner is an app or a tenant as the file declares it.
type owner struct {
	name  string
	label string
	line  int
}

func (p *parser) parse(data []byte, opts Options) *Set {
	root, ok := p.document(data)
	if !ok {
		return nil
	}
	set := &Set{account: DefaultAccount, byHash: map[apikey.Digest]*authz.Key{}}
	if root == nil {
		return set // empty file: zero keys
	}
	top := p.mapping(root, "", topFields, "want a mapping with account, apps, tenants and keys")
	if top == nil {
		return nil
	}
	if n := top["account"]; n != nil {
		if s, ok := p.str(n, "", "account"); ok && s != "" {
			set.account = s
		}
	}
	apps := p.owners(top["apps"], "apps")
	tenants := p.owners(top["tenants"], "tenants")
	set.apps, set.tenants = len(apps), len(tenants)

	items := p.seq(top["keys"], "", "keys")
	kp := keyParser{parser: p, opts: opts, set: set, apps: apps, tenants: tenants,
		ids: map[string]seen{}, names: map[string]seen{}, hashes: map[apikey.Digest]seen{}}
	for i, n := range items {
		if p.blowup {
			break
		}
		kp.key(i, n)
	}
	return set
}

// document returns the root node of the file's only YAML document, or nil
// for a file without content.
func (p *parser) document(data []byte) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true
		}
		p.yamlError(err)
		return nil, false
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		p.yamlError(err)
		return nil, false
	default:
		// Silently ignoring a second document would drop its keys.
		p.fail(extra.Line, "", "", errors.New("a second YAML document (---); the file must hold exactly one"))
		return nil, false
	}
	p.sizes = map[*yaml.Node]int{}
	p.budget = max(minAliasBudget, aliasRatio*p.size(&doc))
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, true
		}
		return p.follow(doc.Content[0]), true
	}
	return p.follow(&doc), true
}

// size counts the nodes of a tree as written, aliases as one node each.
func (p *parser) size(n *yaml.Node) int {
	if s, ok := p.sizes[n]; ok {
		return s
	}
	s := 1
	if n.Kind != yaml.AliasNode {
		for _, c := range n.Content {
			s += p.size(c)
		}
	}
	p.sizes[n] = s
	return s
}

// follow resolves an alias and charges what it adds to the walk.
func (p *parser) follow(n *yaml.Node) *yaml.Node {
	if n == nil || n.Kind != yaml.AliasNode {
		return n
	}
	t := resolve(n)
	if t == nil {
		return n // reported as the wrong kind of node by the caller
	}
	if p.budget -= p.size(t); p.budget < 0 && !p.blowup {
		p.blowup = true
		p.failf(n, "", "", "aliases expand the file more than %d-fold; write the values out", aliasRatio)
	}
	return t
}

// yamlError turns "yaml: line 3: …" into a message in the file's own
// file:line form.
func (p *parser) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if line, err := strconv.Atoi(num); err == nil {
				p.fail(line, "", "", errors.New(text))
				return
			}
		}
	}
	p.fail(0, "", "", errors.New(msg))
}

// resolve follows an alias to its anchored node. The walk below never goes
// deeper than a key's header list, so aliases cannot make it loop; their
// cost is bounded by follow.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// mapping checks that n is a mapping of known fields, each given once, and
// returns their value nodes (aliases resolved). It returns nil, having
// reported why, when n is not a mapping.
func (p *parser) mapping(n *yaml.Node, entry string, known []string, want string) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		p.failf(n, entry, "", "%s", want)
		return nil
	}
	fields := make(map[string]*yaml.Node, len(n.Content)/2)
	lines := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content) && !p.blowup; i += 2 {
		k, v := n.Content[i], p.follow(n.Content[i+1])
		name := k.Value
		switch {
		case k.Kind != yaml.ScalarNode:
			p.failf(k, entry, "", "a field name must be a plain string")
		case name == "<<":
			p.failf(k, entry, "", "merge keys (<<) are not supported; write each field out")
		case !slices.Contains(known, name):
			p.failf(k, entry, "", "unknown field %q (known: %s)", name, strings.Join(known, ", "))
		case lines[name] != 0:
			p.failf(k, entry, name, "given twice (first on line %d)", lines[name])
		default:
			fields[name], lines[name] = v, k.Line
		}
	}
	return fields
}

// seq returns the items of a list field (aliases resolved); absent or null
// is an empty list.
func (p *parser) seq(n *yaml.Node, entry, field string) []*yaml.Node {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.failf(n, entry, field, "want a list")
		return nil
	}
	items := make([]*yaml.Node, 0, len(n.Content))
	for _, c := range n.Content {
		if c = p.follow(c); p.blowup {
			break
		}
		items = append(items, c)
	}
	return items
}

// str reads a scalar as the text written, so that `id: 007` stays "007".
// Absent or null is "".
func (p *parser) str(n *yaml.Node, entry, field string) (string, bool) {
	if isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		p.failf(n, entry, field, "want a string")
		return "", false
	}
	return n.Value, true
}

// boolean accepts only YAML 1.2 true/false: "yes" or "off" on a flag that
// decides whether a key works is more likely a mistake than an intent.
func (p *parser) boolean(n *yaml.Node, entry, field string) (bool, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		switch strings.ToLower(n.Value) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		p.failf(n, entry, field, "want true or false, got %q", n.Value)
	} else {
		p.failf(n, entry, field, "want true or false")
	}
	return false, false
}

// timestamp accepts an RFC 3339 time, written as a YAML timestamp or a
// quoted string; YAML's looser forms (a bare date, a space for the T) are
// refused because the API and the database take RFC 3339 only.
func (p *parser) timestamp(n *yaml.Node, entry, field string) time.Time {
	s, ok := p.str(n, entry, field)
	if !ok || s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		p.failf(n, entry, field, "%q is not an RFC 3339 timestamp (like 2026-01-01T00:00:00Z)", s)
		return time.Time{}
	}
	return t.UTC()
}

// label refuses, in a name or a group, what authz.CheckLabelText refuses
// (bidirectional, invisible and control characters), naming the code
// point; it reports whether it did.
func (p *parser) label(n *yaml.Node, entry, field, text string) bool {
	if n == nil || text == "" {
		return false
	}
	if err := authz.CheckLabelText(text); err != nil {
		p.fail(n.Line, entry, field, err)
		return true
	}
	return false
}

// owners reads the apps or tenants list.
func (p *parser) owners(n *yaml.Node, list string) map[string]owner {
	items := p.seq(n, "", list)
	out := make(map[string]owner, len(items))
	for i, n := range items {
		id := peek(n, "id")
		label := entryLabel(list, i, id)
		f := p.mapping(n, label, ownerFields, "want a mapping with id and name")
		if f == nil {
			continue
		}
		id, _ = p.str(f["id"], label, "id")
		name, _ := p.str(f["name"], label, "name")
		p.label(f["name"], label, "name", name)
		switch first, dup := out[id]; {
		case id == "":
			p.fail(lineOf(f["id"], n), label, "id", errors.New("required"))
		case dup:
			p.failf(f["id"], label, "id", "%q is also the id of %s (line %d)", id, first.label, first.line)
		default:
			out[id] = owner{name: name, label: label, line: f["id"].Line}
		}
	}
	return out
}

// peek finds a scalar field before the mapping is checked, so that every
// message about an entry can already name it by id.
func peek(n *yaml.Node, field string) string {
	if n == nil || n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == field {
			if v := resolve(n.Content[i+1]); v != nil && v.Kind == yaml.ScalarNode && !isNull(v) {
				return v.Value
			}
			return ""
		}
	}
	return ""
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
	label := entryLabel("keys", i, peek(n, "id"))
	f := kp.mapping(n, label, keyFields, "want a mapping with id, name, type, hash, …")
	if f == nil {
		return
	}
	errsBefore := len(kp.errs)
	// Fields with a problem reported here: authz.Compile would only repeat
	// it in other words.
	reported := map[string]bool{}
	str := func(field string) string {
		s, ok := kp.str(f[field], label, field)
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
		Scope:       str("scope"),
		Active:      true,
		Group:       str("group"),
		Description: str("description"),
	}
	if t := str("type"); t != "" {
		typ, err := authz.ParseKeyType(t)
		if err != nil {
			kp.fail(f["type"].Line, label, "type", err)
			reported["type"] = true
		}
		spec.Type = typ
	}
	for _, field := range []string{"name", "group"} {
		if kp.label(f[field], label, field, map[string]string{"name": spec.Name, "group": spec.Group}[field]) {
			reported[field] = true
		}
	}
	if v := f["active"]; v != nil {
		spec.Active, _ = kp.boolean(v, label, "active")
	}
	spec.NotBefore = kp.timestamp(f["not_before"], label, "not_before")
	spec.ExpiresAt = kp.timestamp(f["expires_at"], label, "expires_at")
	// A list with a malformed item reaches Compile without it, so Compile's
	// "[i]" would name the wrong item: its findings wait for the next run.
	n0 := len(kp.errs)
	for j, v := range kp.seq(f["ip_filters"], label, "ip_filters") {
		if s, ok := kp.str(v, label, fmt.Sprintf("ip_filters[%d]", j)); ok {
			spec.IPFilters = append(spec.IPFilters, s)
		}
	}
	reported["ip_filters"] = len(kp.errs) > n0
	n0 = len(kp.errs)
	spec.ResponseHeaders = kp.headers(f["response_headers"], label)
	reported["response_headers"] = len(kp.errs) > n0
	if app, ok := kp.apps[spec.AppID]; ok {
		spec.AppName = app.name
	}
	if tenant, ok := kp.tenants[spec.TenantID]; ok {
		spec.TenantName = tenant.name
	}
	if _, ok := apikey.KindOf(spec.Hash); ok {
		// Named without quoting it: the value is a live secret.
		kp.failf(f["hash"], label, "hash", "this is a secret key, not its hash; store the output of `keygate hash`")
		reported["hash"] = true
		spec.Hash = ""
	}

	key, err := authz.Compile(spec, kp.opts.Compile)
	kp.compileErrors(err, f, n, label, reported)
	kp.references(spec, f, label, reported)
	kp.unique(spec, f, label)

	if key == nil || len(kp.errs) > errsBefore {
		return
	}
	if kp.opts.HasService != nil {
		for _, svc := range key.Scope().Services() {
			if !kp.opts.HasService(svc) {
				kp.warns = append(kp.warns, &Error{File: kp.file, Line: f["scope"].Line, Entry: label, Field: "scope",
					Err: fmt.Errorf("service %q is not declared", svc)})
			}
		}
	}
	kp.set.byHash[key.Digest] = key
	kp.set.order = append(kp.set.order, key)
}

func (kp *keyParser) headers(n *yaml.Node, label string) []authz.HeaderSpec {
	items := kp.seq(n, label, "response_headers")
	var out []authz.HeaderSpec
	for j, item := range items {
		field := fmt.Sprintf("response_headers[%d]", j)
		h := kp.mapping(item, label+": "+field, headerFields, "want a mapping with name, value and disabled")
		if h == nil {
			continue
		}
		name, _ := kp.str(h["name"], label, field+".name")
		value, _ := kp.str(h["value"], label, field+".value")
		var disabled bool
		if v := h["disabled"]; v != nil {
			disabled, _ = kp.boolean(v, label, field+".disabled")
		}
		out = append(out, authz.HeaderSpec{Name: name, Value: value, Disabled: disabled})
	}
	return out
}

// compileErrors reports authz.Compile's field errors at the field's line,
// one message per problem.
func (kp *keyParser) compileErrors(err error, f map[string]*yaml.Node, entry *yaml.Node, label string, reported map[string]bool) {
	for _, e := range flatten(err) {
		var fe *authz.FieldError
		if !errors.As(e, &fe) {
			kp.fail(entry.Line, label, "", e)
			continue
		}
		if reported[fe.Field] {
			continue
		}
		reported[fe.Field] = true
		for _, inner := range flatten(fe.Err) {
			// Some packages already prefix their message with the field.
			msg := strings.TrimPrefix(inner.Error(), fe.Field+": ")
			kp.fail(itemLine(f[fe.Field], entry, msg), label, fe.Field, errors.New(msg))
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
func (kp *keyParser) references(spec authz.KeySpec, f map[string]*yaml.Node, label string, reported map[string]bool) {
	if spec.AppID != "" && !reported["app"] {
		if _, ok := kp.apps[spec.AppID]; !ok {
			kp.failf(f["app"], label, "app", "%q is not listed in apps", spec.AppID)
		}
	}
	if spec.TenantID != "" && !reported["tenant"] {
		if _, ok := kp.tenants[spec.TenantID]; !ok {
			kp.failf(f["tenant"], label, "tenant", "%q is not listed in tenants", spec.TenantID)
		}
	}
}

// unique checks key ids, names and hashes against the keys before it, and
// that the hash is one the server can ever match.
func (kp *keyParser) unique(spec authz.KeySpec, f map[string]*yaml.Node, label string) {
	if spec.ID != "" {
		if first, dup := kp.ids[spec.ID]; dup {
			kp.failf(f["id"], label, "id", "%q is also the id of %s (line %d)", spec.ID, first.label, first.line)
		} else {
			kp.ids[spec.ID] = seen{label, f["id"].Line}
		}
	}
	if spec.Name != "" {
		if first, dup := kp.names[spec.Name]; dup {
			kp.failf(f["name"], label, "name", "%q is also the name of %s (line %d)", spec.Name, first.label, first.line)
		} else {
			kp.names[spec.Name] = seen{label, f["name"].Line}
		}
	}
	alg, digest, err := apikey.ParseHash(spec.Hash)
	if err != nil {
		return // Compile has reported it
	}
	if alg != kp.opts.Algorithm {
		kp.failf(f["hash"], label, "hash", "%s but the server hashes with %s (%s)", alg, kp.opts.Algorithm, pepperNote(kp.opts.Algorithm))
	}
	if first, dup := kp.hashes[digest]; dup {
		kp.failf(f["hash"], label, "hash", "same hash as %s (line %d)", first.label, first.line)
	} else {
		kp.hashes[digest] = seen{label, f["hash"].Line}
	}
}

func pepperNote(a apikey.Algorithm) string {
	if a == apikey.HMACSHA256 {
		return "a pepper is configured"
	}
	return "no pepper is configured"
}

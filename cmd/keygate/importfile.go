package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/keyfile"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres"
)

// importFileCmd copies a keys file into an account of the database,
// hashes as they are: the file's secrets keep working, nothing is
// reissued.
type importFileCmd struct {
	databaseURLFlags
	limitFlags
	requestFlags
	hashFlags
	Account string `name:"account" required:"" help:"Account to import into; it must exist (keygate bootstrap creates one)."`
	DryRun  bool   `name:"dry-run" help:"List what the import would do (create, update, unchanged, kept) and change nothing."`
	File    string `arg:"" name:"keys-file" type:"path" help:"The keys file to import (the format serve --keys-file reads)."`
}

// Run parses the file as serve would, then plans and applies the import
// in one transaction (rolled back with --dry-run), printing the plan.
func (c *importFileCmd) Run(e *env) error {
	if err := errors.Join(c.validate(), c.require()); err != nil {
		return err
	}
	want, fileAccount, warnings, err := c.read()
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintln(e.stderr, "warning:", w)
	}
	if fileAccount != c.Account {
		fmt.Fprintf(e.stderr, "note: %s names account %q; its apps, tenants, roles, denials and keys go into account %q (--account)\n",
			c.File, fileAccount, c.Account)
	}
	cfg := c.config()
	st, pool, err := openStore(e, c.DatabaseURL, postgres.Options{Compile: authzCompileOptions(cfg), Limits: c.limits()}, false)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := postgres.CheckSchema(e.ctx, pool); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	plan, err := st.Import(e.ctx, postgres.ImportActor, c.Account, want, c.DryRun)
	if err != nil {
		return c.explain(err)
	}
	if err := printImportPlan(e.stdout, plan); err != nil {
		return err
	}
	switch n := plan.Changes(); {
	case n == 0:
		fmt.Fprintf(e.stdout, "nothing to change: account %s already holds what %s holds\n", c.Account, c.File)
	case c.DryRun:
		fmt.Fprintf(e.stdout, "dry run: nothing written; without --dry-run the import makes %d changes in one transaction\n", n)
	default:
		fmt.Fprintf(e.stdout, "imported: %d changes in one transaction, audited as import-file\n", n)
	}
	return nil
}

// read parses the keys file with the server's hash algorithm and rules
// (every problem at once, each with its line) and converts it. The
// parse's warnings (earlier Account API operation names read as today's,
// SPEC §14) are returned for the caller to print.
func (c *importFileCmd) read() (store.ImportSet, string, []string, error) {
	h, err := c.hasher()
	if err != nil {
		return store.ImportSet{}, "", nil, err
	}
	cfg := c.config()
	if err := cfg.Validate(); err != nil {
		return store.ImportSet{}, "", nil, err
	}
	data, err := os.ReadFile(c.File)
	if err != nil {
		return store.ImportSet{}, "", nil, fmt.Errorf("keys file: %w", err)
	}
	set, warnings, err := keyfile.Parse(data, c.File, keyfile.Options{Algorithm: h.Algorithm(), Compile: authzCompileOptions(cfg)})
	if err != nil {
		return store.ImportSet{}, "", warnings, fmt.Errorf("%w\nkeys file %s is invalid: nothing imported; correct it (keygate check-config --keys-file checks it too)", err, c.File)
	}
	return importSetOf(set), set.Account(), warnings, nil
}

// importSetOf is a parsed keys file as an import wants it: apps and
// tenants active, roles and denials, keys with their hashes, the ids of
// the roles they hold and the origin of imported keys.
func importSetOf(set *keyfile.Set) store.ImportSet {
	var out store.ImportSet
	for _, o := range set.Apps() {
		out.Apps = append(out.Apps, store.App{ID: o.ID, Name: o.Name, Active: true})
	}
	for _, o := range set.Tenants() {
		out.Tenants = append(out.Tenants, store.Tenant{ID: o.ID, Name: o.Name, Active: true})
	}
	for _, r := range set.Roles() {
		out.Roles = append(out.Roles, store.Role{ID: r.ID, Name: r.Name, Scope: r.Scope, Description: r.Description, RateLimit: r.RateLimit})
	}
	for _, d := range set.Denials() {
		out.Denials = append(out.Denials, store.Denial{ID: d.ID, TenantID: d.TenantID, AppID: d.AppID, Scope: d.Scope, Reason: d.Reason})
	}
	for _, spec := range set.Specs() {
		spec.IPFilters = slices.Clone(spec.IPFilters)
		spec.ResponseHeaders = slices.Clone(spec.ResponseHeaders)
		spec.AppName, spec.TenantName = "", ""
		// A stored key holds its roles by id (store.Key.RoleIDs): the
		// store compiles the key with them, not from the spec.
		roles := spec.Roles
		spec.Roles = nil
		out.Keys = append(out.Keys, store.Key{Spec: spec, Origin: store.ImportOrigin(spec.Type), RoleIDs: store.NormalizeRoleIDs(roles)})
	}
	return out
}

// explain words an import's refusal: what is wrong and what to do.
func (c *importFileCmd) explain(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound) && strings.HasPrefix(err.Error(), "account "):
		return fmt.Errorf("import-file: account %q does not exist: create it first with "+
			"`keygate bootstrap --database-url … --account %s` (which also makes its first account key), then run import-file again", c.Account, c.Account)
	case errors.Is(err, store.ErrImportConflict):
		return fmt.Errorf("import-file: nothing imported; the file and account %q disagree:\n%w", c.Account, err)
	case errors.Is(err, store.ErrSecretInUse):
		return fmt.Errorf("import-file: nothing imported: %w: that secret cannot be imported; issue the client a new key", err)
	}
	return fmt.Errorf("import-file: nothing imported: %w", err)
}

// printImportPlan writes one line per object (kind, id, action, the
// fields an update changes, notes) and a count per kind.
func printImportPlan(w io.Writer, p store.ImportPlan) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tID\tACTION\tDETAIL")
	var summary []string
	section := func(kind, plural string, steps []store.ImportAction, ids []string, changed [][]string, notes [][]string) {
		counts := map[store.ImportAction]int{}
		for i, a := range steps {
			counts[a]++
			detail := strings.Join(changed[i], ", ")
			if len(notes[i]) > 0 {
				if detail != "" {
					detail += "; "
				}
				detail += strings.Join(notes[i], "; ")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", kind, ids[i], a, detail)
		}
		var parts []string
		for _, a := range store.ImportActions {
			parts = append(parts, fmt.Sprintf("%d %s", counts[a], a))
		}
		summary = append(summary, plural+": "+strings.Join(parts, ", "))
	}
	section(planColumns(p.Apps))
	section(planColumns(p.Tenants))
	section(planColumns(p.Roles))
	section(planColumns(p.Denials))
	section(planColumns(p.Keys))
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, strings.Join(summary, "; "))
	return err
}

// planColumns is one section of a plan as printImportPlan lists it.
func planColumns[T any](s store.ImportSection[T]) (kind, plural string, actions []store.ImportAction, ids []string, changed, notes [][]string) {
	for _, st := range s.Steps {
		actions = append(actions, st.Action)
		ids = append(ids, st.ID)
		changed = append(changed, st.Changed)
		notes = append(notes, st.Notes)
	}
	return s.Kind, s.Kind + "s", actions, ids, changed, notes
}

// exportFileCmd writes an account's apps, tenants, roles, denials and keys
// as a keys file.
type exportFileCmd struct {
	databaseURLFlags
	Account string `name:"account" required:"" help:"Account to export."`
	Output  string `name:"output" short:"o" type:"path" placeholder:"FILE" help:"Write the keys file to FILE (replaced whole, mode 0600) instead of stdout."`
}

// Run reads the account from one snapshot and writes it in the keys file
// format: hashes only, never a secret.
func (c *exportFileCmd) Run(e *env) error {
	if err := c.require(); err != nil {
		return err
	}
	st, pool, err := openStore(e, c.DatabaseURL, postgres.Options{}, false)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := postgres.CheckSchema(e.ctx, pool); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	set, err := st.Export(e.ctx, c.Account)
	if err != nil {
		return fmt.Errorf("export-file: %w", err)
	}
	f, warnings := keyFileOf(c.Account, set, time.Now())
	for _, w := range warnings {
		fmt.Fprintln(e.stderr, "warning:", w)
	}
	data, err := keyfile.Marshal(f, fmt.Sprintf("keygate keys file: account %s, exported by keygate export-file.\nHashes only: no secret is in this file.", c.Account))
	if err != nil {
		return err
	}
	if c.Output == "" {
		_, err = e.stdout.Write(data)
		return err
	}
	if err := writeFileAtomic(c.Output, data); err != nil {
		return fmt.Errorf("export-file: %w", err)
	}
	fmt.Fprintf(e.stderr, "exported account %s to %s: %d apps, %d tenants, %d roles, %d denials, %d keys\n",
		c.Account, c.Output, len(f.Apps), len(f.Tenants), len(f.Roles), len(f.Denials), len(f.Keys))
	return nil
}

// keyFileOf is an account's content as a keys file, and what a keys file
// cannot say the way the database does, as warnings: a key of an inactive
// app or tenant is written inactive itself (a keys file has no inactive
// apps: serving it must not revive the key), and a key regenerated with
// a grace period keeps only its new hash.
func keyFileOf(account string, set store.ImportSet, now time.Time) (keyfile.File, []string) {
	f := keyfile.File{Account: account}
	inactive := map[string]bool{}
	var warnings []string
	for _, a := range set.Apps {
		f.Apps = append(f.Apps, keyfile.Owner{ID: a.ID, Name: a.Name})
		if !a.Active {
			inactive["app "+a.ID] = true
		}
	}
	for _, t := range set.Tenants {
		f.Tenants = append(f.Tenants, keyfile.Owner{ID: t.ID, Name: t.Name})
		if !t.Active {
			inactive["tenant "+t.ID] = true
		}
	}
	for _, r := range set.Roles {
		f.Roles = append(f.Roles, authz.Role{ID: r.ID, Name: r.Name, Scope: r.Scope, Description: r.Description, RateLimit: r.RateLimit})
	}
	for _, d := range set.Denials {
		f.Denials = append(f.Denials, authz.Denial{ID: d.ID, TenantID: d.TenantID, AppID: d.AppID, Scope: d.Scope, Reason: d.Reason})
	}
	for _, k := range set.Keys {
		spec := k.Spec
		spec.Roles = slices.Clone(k.RoleIDs)
		if spec.Active && (inactive["app "+spec.AppID] || inactive["tenant "+spec.TenantID]) {
			spec.Active = false
			warnings = append(warnings, fmt.Sprintf("key %q: its app or tenant is inactive; written with active: false", spec.ID))
		}
		if spec.PreviousHash != "" && spec.PreviousValidUntil.After(now) {
			warnings = append(warnings, fmt.Sprintf("key %q: its previous secret is valid until %s; the file holds the new hash only",
				spec.ID, spec.PreviousValidUntil.Format(time.RFC3339)))
		}
		spec.PreviousHash, spec.PreviousValidUntil = "", time.Time{}
		f.Keys = append(f.Keys, spec)
	}
	return f, warnings
}

// writeFileAtomic replaces path with data by rename, so that a server
// watching it never reads half a file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

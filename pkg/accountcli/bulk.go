package accountcli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accountv1"
)

// bulkFlags select the keys `keys update` changes when no key is named.
// --group, --name and --active are already the changes a single update
// makes, so the filters on those fields are spelled --where-….
type bulkFlags struct {
	App            string `name:"app" group:"Filters (no key argument: change every key they select)" help:"Keys of this app."`
	Tenant         string `name:"tenant" group:"Filters (no key argument: change every key they select)" help:"Keys of this tenant."`
	Type           string `name:"type" group:"Filters (no key argument: change every key they select)" help:"Keys of this type: service, app or account."`
	WhereGroup     string `name:"where-group" group:"Filters (no key argument: change every key they select)" help:"Keys of this group (--group is the new group)."`
	WhereName      string `name:"where-name" group:"Filters (no key argument: change every key they select)" help:"The key of this name (--name is the new name)."`
	WhereRole      string `name:"where-role" placeholder:"ROLE-ID" group:"Filters (no key argument: change every key they select)" help:"Keys holding this role (--role sets the roles of one key)."`
	WhereActive    bool   `name:"where-active" group:"Filters (no key argument: change every key they select)" xor:"where-active" help:"Active keys only (--active/--no-active is the change)."`
	WhereInactive  bool   `name:"where-inactive" group:"Filters (no key argument: change every key they select)" xor:"where-active" help:"Inactive keys only."`
	ExpiringBefore string `name:"expiring-before" placeholder:"TIME|DURATION" group:"Filters (no key argument: change every key they select)" help:"Keys expiring before this time (RFC 3339 or a date, 2027-01-01) or within this duration from now (30d, 720h)."`
	UnusedSince    string `name:"unused-since" placeholder:"TIME|DURATION" group:"Filters (no key argument: change every key they select)" help:"Keys not used since this time or for this duration (90d)."`
	All            bool   `name:"all" group:"Filters (no key argument: change every key they select)" help:"Change every key of the account (refused without it when no filter is given)."`
	DryRun         bool   `name:"dry-run" group:"Filters (no key argument: change every key they select)" help:"Only show how many keys (and which) would change."`
	Yes            bool   `name:"yes" short:"y" group:"Filters (no key argument: change every key they select)" help:"Do not ask before changing many keys; required when stdin is not a terminal."`
}

// set reports whether any filter flag (or --dry-run) is given; --yes is
// harmless with one key.
func (b *bulkFlags) set() bool {
	return b.App != "" || b.Tenant != "" || b.Type != "" || b.WhereGroup != "" || b.WhereName != "" || b.WhereRole != "" ||
		b.WhereActive || b.WhereInactive || b.ExpiringBefore != "" || b.UnusedSince != "" || b.All || b.DryRun
}

// filter is the filter the flags give; empty when none is set.
func (b *bulkFlags) filter(now time.Time) (*accountv1.KeyFilter, error) {
	f := &accountv1.KeyFilter{AppId: b.App, TenantId: b.Tenant, Group: b.WhereGroup, Name: b.WhereName, RoleId: b.WhereRole}
	if b.Type != "" {
		if f.Type = typeFromName(b.Type); f.Type == accountv1.KeyType_KEY_TYPE_UNSPECIFIED {
			return nil, fmt.Errorf("--type: want service, app or account, got %q", b.Type)
		}
	}
	switch {
	case b.WhereActive:
		f.Active = new(true)
	case b.WhereInactive:
		f.Active = new(false)
	}
	if b.ExpiringBefore != "" {
		t, err := parseTimeOrAge("expiring-before", b.ExpiringBefore, now, 1)
		if err != nil {
			return nil, err
		}
		f.ExpiringBefore = timestamppb.New(t)
	}
	if b.UnusedSince != "" {
		t, err := parseTimeOrAge("unused-since", b.UnusedSince, now, -1)
		if err != nil {
			return nil, err
		}
		f.UnusedSince = timestamppb.New(t)
	}
	return f, nil
}

func emptyFilter(f *accountv1.KeyFilter) bool {
	return f.GetAppId() == "" && f.GetTenantId() == "" && f.GetGroup() == "" && f.GetName() == "" && f.GetRoleId() == "" &&
		f.GetType() == accountv1.KeyType_KEY_TYPE_UNSPECIFIED && f.Active == nil && f.ExpiringBefore == nil && f.UnusedSince == nil
}

// bulkRequest is the change of a bulk update: the fields that make sense
// for many keys at once.
func (c *KeysUpdateCmd) bulkRequest() (*accountv1.UpdateKeysRequest, error) {
	switch {
	case c.Name != nil:
		return nil, errors.New("--name: a name is unique, it cannot be given to many keys (to select a key by name: --where-name)")
	case c.NotBefore != "" || c.ClearNotBefore || len(c.IPFilter) > 0 || c.ClearIPFilters ||
		len(c.Header) > 0 || len(c.DisabledHeader) > 0 || c.ClearHeaders || len(c.Role) > 0 || c.ClearRoles:
		return nil, errors.New("many keys at once take --description, --group, --scope, --active/--no-active, --expires-at and --clear-expires-at; change the other fields key by key (keygate keys update KEY …)")
	}
	r := &accountv1.UpdateKeysRequest{Description: c.Description, Group: c.Group, Scope: c.Scope, Active: c.Active,
		ClearExpiresAt: c.ClearExpiresAt, All: c.All}
	if c.ExpiresAt != "" {
		if c.ClearExpiresAt {
			return nil, errors.New("--expires-at and --clear-expires-at exclude each other")
		}
		t, err := parseTime("expires-at", c.ExpiresAt)
		if err != nil {
			return nil, err
		}
		r.ExpiresAt = timestamppb.New(t)
	}
	if r.Description == nil && r.Group == nil && r.Scope == nil && r.Active == nil && r.ExpiresAt == nil && !r.ClearExpiresAt && !c.DryRun {
		return nil, errNothingToUpdate
	}
	f, err := c.filter(time.Now())
	if err != nil {
		return nil, err
	}
	switch {
	case emptyFilter(f) && !c.All:
		return nil, errors.New("no key and no filter: name a key (id or name), or select keys with --app, --tenant, --type, --where-group, --where-name, --where-role, --where-active/--where-inactive, --expiring-before or --unused-since (--all: every key of the account)")
	case !emptyFilter(f) && c.All:
		return nil, errors.New("--all and filters exclude each other")
	case !c.All:
		r.Filter = f
	}
	return r, nil
}

// runBulk changes every key the filters select: a dry run first shows how
// many; then, confirmed by --yes or on a terminal, the change is sent with
// that count as expected_count, so that the server refuses it if other
// keys match by then.
func (c *KeysUpdateCmd) runBulk(e *Env) error {
	req, err := c.bulkRequest()
	if err != nil {
		return err
	}
	return run(&c.ClientFlags, e, func(cl *client) error {
		req.DryRun = true
		dry, err := call(cl, cl.api.UpdateKeys, req)
		if err != nil {
			return err
		}
		n := int(dry.GetCount())
		fmt.Fprintf(cl.env.Stderr, "%s match%s\n", keysPhrase(n), firstIDs(dry.GetKeyIds(), n))
		if c.DryRun || n == 0 {
			return printBulk(cl, dry)
		}
		if n > account.MaxBulkKeys {
			return fmt.Errorf("%s match, more than the %d one call may change (max_keys_per_update); no key changed: narrow the filters (--app, --tenant, --where-group, --where-name, --type, …) and run it once for each part",
				keysPhrase(n), account.MaxBulkKeys)
		}
		if !c.Yes {
			if !isTerminal(cl.env) {
				return fmt.Errorf("%s would change and stdin is not a terminal to confirm: add --yes to change them", keysPhrase(n))
			}
			if !confirm(cl.env, fmt.Sprintf("update %s? [y/N] ", keysPhrase(n))) {
				return errors.New("no key changed")
			}
		}
		req.DryRun = false
		req.ExpectedCount = new(int32(n))
		r, err := call(cl, cl.api.UpdateKeys, req)
		if err != nil {
			return err
		}
		printWarnings(cl, r.GetWarnings())
		return printBulk(cl, r)
	})
}

// firstIDs is " (a, b, c, …)": the first ids of n matching keys.
func firstIDs(ids []string, n int) string {
	const show = 5
	if n == 0 {
		return ""
	}
	more := ""
	if len(ids) > show {
		ids = ids[:show]
	}
	if n > len(ids) {
		more = ", …"
	}
	return " (" + strings.Join(ids, ", ") + more + ")"
}

// printBulk prints a bulk update's result: in JSON the response (count
// and ids), as a table the ids.
func printBulk(cl *client, r *accountv1.UpdateKeysResponse) error {
	if cl.out.json {
		return cl.out.object(r, nil)
	}
	verb := "updated"
	if r.GetDryRun() {
		verb = "would update"
	}
	if err := cl.out.line("%s %s", verb, keysPhrase(int(r.GetCount()))); err != nil {
		return err
	}
	for _, id := range r.GetKeyIds() {
		if err := cl.out.line("%s", id); err != nil {
			return err
		}
	}
	if int(r.GetCount()) > len(r.GetKeyIds()) {
		return cl.out.line("… and %d more", int(r.GetCount())-len(r.GetKeyIds()))
	}
	return nil
}

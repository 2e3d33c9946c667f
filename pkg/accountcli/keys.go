package accountcli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/authz"
)

var errNothingToUpdate = errors.New("nothing to update: give at least one field flag")

// KeysCmd is `keygate keys`.
type KeysCmd struct {
	Generate   KeysGenerateCmd   `cmd:"" help:"Generate a key; prints it and its secret (once, last line of stdout)."`
	Import     KeysImportCmd     `cmd:"" help:"Create a key with your own secret, read from stdin (e.g. to migrate keys)."`
	List       KeysListCmd       `cmd:"" help:"List keys, with filters."`
	Get        KeysGetCmd        `cmd:"" help:"Show a key (never its secret), by id or name."`
	Update     KeysUpdateCmd     `cmd:"" help:"Change the fields given of one key (by id or name), or of every key the filters select; the others stay as they are."`
	Regenerate KeysRegenerateCmd `cmd:"" help:"Give a key (by id or name) a new secret; prints it once (last line of stdout)."`
	Delete     KeysDeleteCmd     `cmd:"" help:"Delete a key (by id or name): its secret stops working."`
}

// keyFlags are the fields of a new key.
type keyFlags struct {
	ID             string   `name:"id" help:"Key id (letters, digits, . _ ~ -); default: one is generated."`
	Name           string   `name:"name" help:"Key name, unique in the account; default: the key id."`
	Description    string   `name:"description" help:"Description."`
	Group          string   `name:"group" help:"Group, to list keys together."`
	Scope          string   `name:"scope" help:"Scope: space-separated service[:kind[:operation]] patterns, ! denies (e.g. 'email-api !email-api:mutation:sendEmail'); empty allows all."`
	Inactive       bool     `name:"inactive" help:"Create the key inactive (every request with it is denied until activated)."`
	ExpiresAt      string   `name:"expires-at" placeholder:"TIME" help:"When the key expires: RFC 3339 (2027-01-01T12:00:00Z) or a date (2027-01-01, midnight UTC); default: never."`
	NotBefore      string   `name:"not-before" placeholder:"TIME" help:"When the key starts to be valid: RFC 3339 (2027-01-01T12:00:00Z) or a date (2027-01-01, midnight UTC); default: at once."`
	IPFilter       []string `name:"ip-filter" sep:"none" placeholder:"CIDR" help:"Client addresses allowed: CIDR, address, or IPv4 address/netmask (repeatable); default: any."`
	Header         []string `name:"header" sep:"none" placeholder:"NAME=VALUE" help:"Response header added on allow, value may be a template such as $${key.id} or $${tenant.name} (repeatable)."`
	DisabledHeader []string `name:"disabled-header" sep:"none" placeholder:"NAME=VALUE" help:"Response header kept with the key but not sent (repeatable)."`
	Role           []string `name:"role" sep:"none" placeholder:"ROLE-ID" help:"Role the key holds (repeatable): its scope is added to the key's."`
	RateLimit      string   `name:"rate-limit" placeholder:"N/UNIT" help:"Rate limit Envoy enforces for the key: N/second, N/minute, N/hour or N/day (5/s, 100/m, 1000/h, 10/d); wins over its roles'; default: its roles' (the most restrictive), else none."`
	Quota          string   `name:"quota" placeholder:"N/PERIOD" help:"Requests the key is admitted per calendar day or month (UTC): N/day or N/month (1000/day); over it, 429 quota_exceeded until the period resets. Its tenant's quota binds it too. Default: none."`
}

// keyFields is keyFlags parsed.
type keyFields struct {
	active               *bool
	expiresAt, notBefore *timestamppb.Timestamp
	headers              []*accountv1.ResponseHeader
	rateLimit            *accountv1.RateLimit
	quota                *accountv1.Quota
}

func (f *keyFlags) parse() (keyFields, error) {
	var out keyFields
	if f.Inactive {
		out.active = proto.Bool(false)
	}
	if f.ExpiresAt != "" {
		t, err := parseTime("expires-at", f.ExpiresAt)
		if err != nil {
			return out, err
		}
		out.expiresAt = timestamppb.New(t)
	}
	if f.NotBefore != "" {
		t, err := parseTime("not-before", f.NotBefore)
		if err != nil {
			return out, err
		}
		out.notBefore = timestamppb.New(t)
	}
	if err := checkIPFilterFlags(f.IPFilter); err != nil {
		return out, err
	}
	h, err := parseHeaders("header", f.Header, false)
	if err != nil {
		return out, err
	}
	d, err := parseHeaders("disabled-header", f.DisabledHeader, true)
	if err != nil {
		return out, err
	}
	out.headers = append(h, d...)
	if out.rateLimit, err = parseRateLimitFlag("rate-limit", f.RateLimit); err != nil {
		return out, err
	}
	if out.quota, err = parseQuotaFlag("quota", f.Quota); err != nil {
		return out, err
	}
	return out, nil
}

// KeysGenerateCmd is `keygate keys generate`.
type KeysGenerateCmd struct {
	ClientFlags
	Type   string `name:"type" required:"" enum:"service,app,account" help:"Key type: service (one app and tenant), app (one app) or account (this API)."`
	App    string `name:"app" help:"App id (service and app keys)."`
	Tenant string `name:"tenant" help:"Tenant id (service keys)."`
	keyFlags
}

func (c *KeysGenerateCmd) Run(e *Env) error {
	f, err := c.parse()
	if err != nil {
		return err
	}
	switch {
	case c.Type == "app" && c.Tenant != "":
		return errors.New("--tenant is not allowed with --type app (app keys have no tenant)")
	case c.Type == "account" && (c.App != "" || c.Tenant != ""):
		return errors.New("--app and --tenant are not allowed with --type account")
	}
	return run(&c.ClientFlags, e, func(cl *client) error {
		switch c.Type {
		case "service":
			r, err := call(cl, cl.api.GenerateServiceAccessKey, &accountv1.GenerateServiceAccessKeyRequest{
				AppId: c.App, TenantId: c.Tenant, Id: c.ID, Name: c.Name, Description: c.Description, Group: c.Group,
				Scope: c.Scope, Active: f.active, ExpiresAt: f.expiresAt, NotBefore: f.notBefore,
				IpFilters: c.IPFilter, ResponseHeaders: f.headers, RoleIds: c.Role, RateLimit: f.rateLimit, Quota: f.quota,
			})
			if err != nil {
				return err
			}
			return printSecret(cl, r, r.GetKey(), r.GetPrivateKey())
		case "app":
			r, err := call(cl, cl.api.GenerateAppAccessKey, &accountv1.GenerateAppAccessKeyRequest{
				AppId: c.App, Id: c.ID, Name: c.Name, Description: c.Description, Group: c.Group,
				Scope: c.Scope, Active: f.active, ExpiresAt: f.expiresAt, NotBefore: f.notBefore,
				IpFilters: c.IPFilter, ResponseHeaders: f.headers, RoleIds: c.Role, RateLimit: f.rateLimit, Quota: f.quota,
			})
			if err != nil {
				return err
			}
			return printSecret(cl, r, r.GetKey(), r.GetPrivateKey())
		default:
			r, err := call(cl, cl.api.GenerateAccountAccessKey, &accountv1.GenerateAccountAccessKeyRequest{
				Id: c.ID, Name: c.Name, Description: c.Description, Group: c.Group,
				Scope: c.Scope, Active: f.active, ExpiresAt: f.expiresAt, NotBefore: f.notBefore,
				IpFilters: c.IPFilter, ResponseHeaders: f.headers, RoleIds: c.Role, RateLimit: f.rateLimit, Quota: f.quota,
			})
			if err != nil {
				return err
			}
			return printSecret(cl, r, r.GetKey(), r.GetPrivateKey())
		}
	})
}

// printSecret shows a key and its new secret: in JSON the response with
// private_key; in table mode the key's table, then the secret alone on
// the last line of stdout (a script takes it with `tail -n1`). The secret
// never goes to stderr.
func printSecret(cl *client, resp proto.Message, k *accountv1.Key, secret string) error {
	if w, ok := resp.(interface{ GetWarnings() []string }); ok {
		printWarnings(cl, w.GetWarnings())
	}
	if cl.out.json {
		return cl.out.object(resp, nil)
	}
	if err := cl.out.object(k, keyRows(k)); err != nil {
		return err
	}
	fmt.Fprintln(cl.env.Stderr, "The key's secret follows on the last line of stdout. It is shown only this once: store it now.")
	_, err := fmt.Fprintln(cl.out.w, secret)
	return err
}

// KeysImportCmd is `keygate keys import`.
type KeysImportCmd struct {
	ClientFlags
	Type           string `name:"type" required:"" enum:"service,app,account" help:"Key type: service, app or account."`
	App            string `name:"app" help:"App id (service and app keys)."`
	Tenant         string `name:"tenant" help:"Tenant id (service keys)."`
	PrivateKeyFile string `name:"private-key-file" default:"-" help:"File whose first line is the secret (16–512 printable ASCII bytes, no comma, not starting with kg_); - reads stdin."`
	keyFlags
}

func (c *KeysImportCmd) Run(e *Env) error {
	f, err := c.parse()
	if err != nil {
		return err
	}
	secret, err := c.readSecret(e)
	if err != nil {
		return err
	}
	return run(&c.ClientFlags, e, func(cl *client) error {
		r, err := call(cl, cl.api.ImportKey, &accountv1.ImportKeyRequest{
			Type: typeFromName(c.Type), AppId: c.App, TenantId: c.Tenant, PrivateKey: secret,
			Id: c.ID, Name: c.Name, Description: c.Description, Group: c.Group,
			Scope: c.Scope, Active: f.active, ExpiresAt: f.expiresAt, NotBefore: f.notBefore,
			IpFilters: c.IPFilter, ResponseHeaders: f.headers, RoleIds: c.Role, RateLimit: f.rateLimit, Quota: f.quota,
		})
		if err != nil {
			return err
		}
		printWarnings(cl, r.GetWarnings())
		return cl.out.object(r.GetKey(), keyRows(r.GetKey()))
	})
}

// readSecret reads the first line of the secret file or stdin, without
// its line ending; nothing else is trimmed (keygate never trims keys).
func (c *KeysImportCmd) readSecret(e *Env) (string, error) {
	src, what, err := c.secretSource(e)
	if err != nil {
		return "", err
	}
	defer src.Close()
	line, err := bufio.NewReader(io.LimitReader(src, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the secret from %s: %w", what, err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", fmt.Errorf("no secret on %s: give the secret on one line", what)
	}
	return line, nil
}

// secretSource opens the private key file, or stdin (with a prompt and
// no echo on a terminal), and says which it is for error messages.
func (c *KeysImportCmd) secretSource(e *Env) (io.ReadCloser, string, error) {
	if c.PrivateKeyFile == "-" {
		in, err := SecretInput(e)
		return io.NopCloser(in), "stdin", err
	}
	f, err := os.Open(c.PrivateKeyFile)
	if err != nil {
		return nil, "", fmt.Errorf("private-key-file: %w", err)
	}
	return f, c.PrivateKeyFile, nil
}

// KeysListCmd is `keygate keys list`.
type KeysListCmd struct {
	ClientFlags
	App            string `name:"app" help:"Only keys of this app."`
	Tenant         string `name:"tenant" help:"Only keys of this tenant."`
	Group          string `name:"group" help:"Only keys of this group."`
	Type           string `name:"type" help:"Only keys of this type: service, app or account."`
	Name           string `name:"name" help:"Only the key of this name."`
	NameContains   string `name:"name-contains" placeholder:"TEXT" help:"Only keys whose name contains this text (letters compared without case)."`
	OrderBy        string `name:"order-by" placeholder:"SORT" help:"Sort by created (the default: oldest first), name, expires or last_used; --order-by=-name etc. for descending (with =: a value starting with - is not a flag)."`
	Active         *bool  `name:"active" negatable:"" help:"Only active (--active) or inactive (--no-active) keys."`
	ExpiringBefore string `name:"expiring-before" placeholder:"TIME|DURATION" help:"Only keys expiring before this time (RFC 3339, or a date such as 2027-01-01: midnight UTC) or within this duration from now (Go units or days: 720h, 30d, 1d12h)."`
	UnusedSince    string `name:"unused-since" placeholder:"TIME|DURATION" help:"Only keys not used since this time (RFC 3339, or a date such as 2027-01-01: midnight UTC) or for this duration (Go units or days: 2160h, 90d)."`
	Role           string `name:"role" placeholder:"ROLE-ID" help:"Only keys holding this role."`
	pageFlags
}

func (c *KeysListCmd) Run(e *Env) error {
	req := &accountv1.ListKeysRequest{AppId: c.App, TenantId: c.Tenant, Group: c.Group, Name: c.Name, Active: c.Active, PageSize: c.PageSize, RoleId: c.Role,
		NameContains: c.NameContains, OrderBy: c.OrderBy}
	if c.Type != "" {
		if req.Type = typeFromName(c.Type); req.Type == accountv1.KeyType_KEY_TYPE_UNSPECIFIED {
			return fmt.Errorf("--type: want service, app or account, got %q", c.Type)
		}
	}
	now := time.Now()
	if c.ExpiringBefore != "" {
		t, err := parseTimeOrAge("expiring-before", c.ExpiringBefore, now, 1)
		if err != nil {
			return err
		}
		req.ExpiringBefore = timestamppb.New(t)
	}
	if c.UnusedSince != "" {
		t, err := parseTimeOrAge("unused-since", c.UnusedSince, now, -1)
		if err != nil {
			return err
		}
		req.UnusedSince = timestamppb.New(t)
	}
	return run(&c.ClientFlags, e, func(cl *client) error {
		var all []*accountv1.Key
		err := c.pages(cl, func(token string) (string, error) {
			req.PageToken = token
			r, err := call(cl, cl.api.ListKeys, req)
			all = append(all, r.GetKeys()...)
			return r.GetNextPageToken(), err
		})
		if err != nil {
			return err
		}
		msgs := make([]proto.Message, len(all))
		rows := make([][]string, len(all))
		for i, k := range all {
			msgs[i], rows[i] = k, keyRow(k)
		}
		return cl.out.list(msgs, keyHeader, rows)
	})
}

type keyRef struct {
	ClientFlags
	ID string `arg:"" name:"key" help:"Key id or name."`
}

// KeysGetCmd is `keygate keys get`.
type KeysGetCmd struct{ keyRef }

func (c *KeysGetCmd) Run(e *Env) error {
	return run(&c.ClientFlags, e, func(cl *client) error {
		k, err := resolveKey(cl, c.ID)
		if err != nil {
			return err
		}
		rows := keyRows(k)
		if !cl.out.json {
			rows = append(append(rows, keyQuotaRows(cl, k.GetId())...), keySyncRow(cl, k.GetId()))
		}
		return cl.out.object(k, rows)
	})
}

// KeysUpdateCmd is `keygate keys update`.
type KeysUpdateCmd struct {
	ClientFlags
	ID             string   `arg:"" optional:"" name:"key" help:"Key id or name; leave it out to change every key the filters (--app, --tenant, --type, --where-group, --where-name, --where-active/--where-inactive, --expiring-before, --unused-since, or --all) select."`
	Name           *string  `name:"name" help:"New name (unique in the account)."`
	Description    *string  `name:"description" help:"New description (\"\" clears it)."`
	Group          *string  `name:"group" help:"New group (\"\" clears it)."`
	Scope          *string  `name:"scope" help:"New scope (\"\" allows all)."`
	Active         *bool    `name:"active" negatable:"" help:"Activate (--active) or deactivate (--no-active) the key."`
	ExpiresAt      string   `name:"expires-at" placeholder:"TIME" help:"New expiry: RFC 3339 (2027-01-01T12:00:00Z) or a date (2027-01-01, midnight UTC). A past time is accepted (the key is denied expired_key at once), with a warning."`
	ClearExpiresAt bool     `name:"clear-expires-at" help:"Remove the expiry: the key never expires."`
	NotBefore      string   `name:"not-before" placeholder:"TIME" help:"New start of validity: RFC 3339 (2027-01-01T12:00:00Z) or a date (2027-01-01, midnight UTC)."`
	ClearNotBefore bool     `name:"clear-not-before" help:"Remove the start of validity."`
	IPFilter       []string `name:"ip-filter" sep:"none" placeholder:"CIDR" help:"Replace the IP filters with these (repeatable)."`
	ClearIPFilters bool     `name:"clear-ip-filters" help:"Remove every IP filter: any client address."`
	Header         []string `name:"header" sep:"none" placeholder:"NAME=VALUE" help:"Replace the response headers with these (repeatable, with --disabled-header)."`
	DisabledHeader []string `name:"disabled-header" sep:"none" placeholder:"NAME=VALUE" help:"Disabled response header, in the replacing list (repeatable)."`
	ClearHeaders   bool     `name:"clear-headers" help:"Remove every response header."`
	Role           []string `name:"role" sep:"none" placeholder:"ROLE-ID" help:"Replace the roles the key holds with these (repeatable)."`
	ClearRoles     bool     `name:"clear-roles" help:"Take every role from the key."`
	RateLimit      string   `name:"rate-limit" placeholder:"N/UNIT" help:"New rate limit of the key: N/second, N/minute, N/hour or N/day (5/s, 100/m, 1000/h, 10/d)."`
	ClearRateLimit bool     `name:"clear-rate-limit" help:"Remove the key's own rate limit (its roles' applies, if any)."`
	Quota          string   `name:"quota" placeholder:"N/PERIOD" help:"New quota of the key: N/day or N/month (1000/day)."`
	ClearQuota     bool     `name:"clear-quota" help:"Remove the key's own quota (its tenant's still binds it)."`
	bulkFlags
}

func (c *KeysUpdateCmd) request() (*accountv1.UpdateKeyRequest, error) {
	r := &accountv1.UpdateKeyRequest{
		Id: c.ID, Name: c.Name, Description: c.Description, Group: c.Group, Scope: c.Scope, Active: c.Active,
		ClearExpiresAt: c.ClearExpiresAt, ClearNotBefore: c.ClearNotBefore,
	}
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
	if c.NotBefore != "" {
		if c.ClearNotBefore {
			return nil, errors.New("--not-before and --clear-not-before exclude each other")
		}
		t, err := parseTime("not-before", c.NotBefore)
		if err != nil {
			return nil, err
		}
		r.NotBefore = timestamppb.New(t)
	}
	switch {
	case len(c.IPFilter) > 0 && c.ClearIPFilters:
		return nil, errors.New("--ip-filter and --clear-ip-filters exclude each other")
	case len(c.IPFilter) > 0:
		if err := checkIPFilterFlags(c.IPFilter); err != nil {
			return nil, err
		}
		r.IpFilters = &accountv1.IPFilters{Filters: c.IPFilter}
	case c.ClearIPFilters:
		r.IpFilters = &accountv1.IPFilters{}
	}
	hasHeaders := len(c.Header) > 0 || len(c.DisabledHeader) > 0
	switch {
	case hasHeaders && c.ClearHeaders:
		return nil, errors.New("--header/--disabled-header and --clear-headers exclude each other")
	case hasHeaders:
		h, err := parseHeaders("header", c.Header, false)
		if err != nil {
			return nil, err
		}
		d, err := parseHeaders("disabled-header", c.DisabledHeader, true)
		if err != nil {
			return nil, err
		}
		r.ResponseHeaders = &accountv1.ResponseHeaders{Headers: append(h, d...)}
	case c.ClearHeaders:
		r.ResponseHeaders = &accountv1.ResponseHeaders{}
	}
	switch {
	case len(c.Role) > 0 && c.ClearRoles:
		return nil, errors.New("--role and --clear-roles exclude each other")
	case len(c.Role) > 0:
		r.RoleIds = &accountv1.RoleIDs{Ids: c.Role}
	case c.ClearRoles:
		r.RoleIds = &accountv1.RoleIDs{}
	}
	if c.RateLimit != "" && c.ClearRateLimit {
		return nil, errors.New("--rate-limit and --clear-rate-limit exclude each other")
	}
	rl, err := parseRateLimitFlag("rate-limit", c.RateLimit)
	if err != nil {
		return nil, err
	}
	r.RateLimit, r.ClearRateLimit = rl, c.ClearRateLimit
	if c.Quota != "" && c.ClearQuota {
		return nil, errors.New("--quota and --clear-quota exclude each other")
	}
	if r.Quota, err = parseQuotaFlag("quota", c.Quota); err != nil {
		return nil, err
	}
	r.ClearQuota = c.ClearQuota
	if r.Name == nil && r.Description == nil && r.Group == nil && r.Scope == nil && r.Active == nil &&
		r.ExpiresAt == nil && !r.ClearExpiresAt && r.NotBefore == nil && !r.ClearNotBefore &&
		r.IpFilters == nil && r.ResponseHeaders == nil && r.RoleIds == nil && r.RateLimit == nil && !r.ClearRateLimit &&
		r.Quota == nil && !r.ClearQuota {
		return nil, errNothingToUpdate
	}
	return r, nil
}

func (c *KeysUpdateCmd) Run(e *Env) error {
	if c.ID == "" {
		return c.runBulk(e)
	}
	if c.bulkFlags.set() {
		return errors.New("give either a key (id or name) or filters, not both: filters select many keys")
	}
	req, err := c.request()
	if err != nil {
		return err
	}
	return run(&c.ClientFlags, e, func(cl *client) error {
		if req.Id, err = keyID(cl, c.ID); err != nil {
			return err
		}
		r, err := call(cl, cl.api.UpdateKey, req)
		if err != nil {
			return err
		}
		printWarnings(cl, r.GetWarnings())
		return cl.out.object(r.GetKey(), keyRows(r.GetKey()))
	})
}

// KeysRegenerateCmd is `keygate keys regenerate`.
type KeysRegenerateCmd struct {
	ClientFlags
	ID    string   `arg:"" name:"key" help:"Key id or name."`
	Grace Duration `name:"grace" default:"0s" placeholder:"DURATION" help:"How long the old secret stays valid: Go units (90m, 36h) or days (7d, 1d12h) (e.g. 10m, 24h, 7d); 0: it stops at once."`
}

func (c *KeysRegenerateCmd) Run(e *Env) error {
	if c.Grace < 0 {
		return errors.New("--grace: must not be negative")
	}
	return run(&c.ClientFlags, e, func(cl *client) error {
		id, err := keyID(cl, c.ID)
		if err != nil {
			return err
		}
		req := &accountv1.RegenerateKeyRequest{Id: id}
		if c.Grace > 0 {
			req.GracePeriod = durationpb.New(c.Grace.D())
		}
		r, err := call(cl, cl.api.RegenerateKey, req)
		if err != nil {
			return err
		}
		return printSecret(cl, r, r.GetKey(), r.GetPrivateKey())
	})
}

// KeysDeleteCmd is `keygate keys delete`.
type KeysDeleteCmd struct{ keyRef }

func (c *KeysDeleteCmd) Run(e *Env) error {
	return run(&c.ClientFlags, e, func(cl *client) error {
		id, err := keyID(cl, c.ID)
		if err != nil {
			return err
		}
		r, err := call(cl, cl.api.DeleteKey, &accountv1.DeleteKeyRequest{Id: id})
		if err != nil {
			return err
		}
		return deleted(cl.out, r.GetKey(), "key", id)
	})
}

// checkIPFilterFlags refuses a comma in an --ip-filter value before the
// call: the flag takes one filter (kong does not split it, sep:"none"), and
// the server would only see one value that is not an address.
func checkIPFilterFlags(values []string) error {
	for _, v := range values {
		if strings.Contains(v, ",") {
			return fmt.Errorf("--ip-filter %q: give one address or CIDR per --ip-filter flag (repeat the flag); %s", v, authz.IPFilterForms)
		}
	}
	return nil
}

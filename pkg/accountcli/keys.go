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
	Get        KeysGetCmd        `cmd:"" help:"Show a key (never its secret)."`
	Update     KeysUpdateCmd     `cmd:"" help:"Change the fields given; the others stay as they are."`
	Regenerate KeysRegenerateCmd `cmd:"" help:"Give a key a new secret; prints it once (last line of stdout)."`
	Delete     KeysDeleteCmd     `cmd:"" help:"Delete a key: its secret stops working."`
}

// keyFlags are the fields of a new key.
type keyFlags struct {
	ID             string   `name:"id" help:"Key id (letters, digits, . _ ~ -); default: one is generated."`
	Name           string   `name:"name" help:"Key name, unique in the account; default: the key id."`
	Description    string   `name:"description" help:"Description."`
	Group          string   `name:"group" help:"Group, to list keys together."`
	Scope          string   `name:"scope" help:"Scope: space-separated service[:kind[:operation]] patterns, ! denies (e.g. 'email-api !email-api:mutation:sendEmail'); empty allows all."`
	Inactive       bool     `name:"inactive" help:"Create the key inactive (every request with it is denied until activated)."`
	ExpiresAt      string   `name:"expires-at" placeholder:"RFC3339" help:"When the key expires (RFC 3339); default: never."`
	NotBefore      string   `name:"not-before" placeholder:"RFC3339" help:"When the key starts to be valid (RFC 3339); default: at once."`
	IPFilter       []string `name:"ip-filter" sep:"none" placeholder:"CIDR" help:"Client addresses allowed: CIDR, address, or IPv4 address/netmask (repeatable); default: any."`
	Header         []string `name:"header" sep:"none" placeholder:"NAME=VALUE" help:"Response header added on allow, value may be a template such as $${key.id} or $${tenant.name} (repeatable)."`
	DisabledHeader []string `name:"disabled-header" sep:"none" placeholder:"NAME=VALUE" help:"Response header kept with the key but not sent (repeatable)."`
	Role           []string `name:"role" sep:"none" placeholder:"ROLE-ID" help:"Role the key holds (repeatable): its scope is added to the key's."`
}

// keyFields is keyFlags parsed.
type keyFields struct {
	active               *bool
	expiresAt, notBefore *timestamppb.Timestamp
	headers              []*accountv1.ResponseHeader
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
				IpFilters: c.IPFilter, ResponseHeaders: f.headers, RoleIds: c.Role,
			})
			if err != nil {
				return err
			}
			return printSecret(cl, r, r.GetKey(), r.GetPrivateKey())
		case "app":
			r, err := call(cl, cl.api.GenerateAppAccessKey, &accountv1.GenerateAppAccessKeyRequest{
				AppId: c.App, Id: c.ID, Name: c.Name, Description: c.Description, Group: c.Group,
				Scope: c.Scope, Active: f.active, ExpiresAt: f.expiresAt, NotBefore: f.notBefore,
				IpFilters: c.IPFilter, ResponseHeaders: f.headers, RoleIds: c.Role,
			})
			if err != nil {
				return err
			}
			return printSecret(cl, r, r.GetKey(), r.GetPrivateKey())
		default:
			r, err := call(cl, cl.api.GenerateAccountAccessKey, &accountv1.GenerateAccountAccessKeyRequest{
				Id: c.ID, Name: c.Name, Description: c.Description, Group: c.Group,
				Scope: c.Scope, Active: f.active, ExpiresAt: f.expiresAt, NotBefore: f.notBefore,
				IpFilters: c.IPFilter, ResponseHeaders: f.headers, RoleIds: c.Role,
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
			IpFilters: c.IPFilter, ResponseHeaders: f.headers, RoleIds: c.Role,
		})
		if err != nil {
			return err
		}
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
	Active         *bool  `name:"active" negatable:"" help:"Only active (--active) or inactive (--no-active) keys."`
	ExpiringBefore string `name:"expiring-before" placeholder:"TIME|DURATION" help:"Only keys expiring before this time (RFC 3339) or within this duration (e.g. 720h)."`
	UnusedSince    string `name:"unused-since" placeholder:"TIME|DURATION" help:"Only keys not used since this time (RFC 3339) or for this duration (e.g. 2160h)."`
	Role           string `name:"role" placeholder:"ROLE-ID" help:"Only keys holding this role."`
	pageFlags
}

func (c *KeysListCmd) Run(e *Env) error {
	req := &accountv1.ListKeysRequest{AppId: c.App, TenantId: c.Tenant, Group: c.Group, Active: c.Active, PageSize: c.PageSize, RoleId: c.Role}
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
	ID string `arg:"" name:"id" help:"Key id."`
}

// KeysGetCmd is `keygate keys get`.
type KeysGetCmd struct{ keyRef }

func (c *KeysGetCmd) Run(e *Env) error {
	return run(&c.ClientFlags, e, func(cl *client) error {
		r, err := call(cl, cl.api.GetKey, &accountv1.GetKeyRequest{Id: c.ID})
		if err != nil {
			return err
		}
		return cl.out.object(r.GetKey(), keyRows(r.GetKey()))
	})
}

// KeysUpdateCmd is `keygate keys update`.
type KeysUpdateCmd struct {
	ClientFlags
	ID             string   `arg:"" name:"id" help:"Key id."`
	Name           *string  `name:"name" help:"New name (unique in the account)."`
	Description    *string  `name:"description" help:"New description (\"\" clears it)."`
	Group          *string  `name:"group" help:"New group (\"\" clears it)."`
	Scope          *string  `name:"scope" help:"New scope (\"\" allows all)."`
	Active         *bool    `name:"active" negatable:"" help:"Activate (--active) or deactivate (--no-active) the key."`
	ExpiresAt      string   `name:"expires-at" placeholder:"RFC3339" help:"New expiry (RFC 3339)."`
	ClearExpiresAt bool     `name:"clear-expires-at" help:"Remove the expiry: the key never expires."`
	NotBefore      string   `name:"not-before" placeholder:"RFC3339" help:"New start of validity (RFC 3339)."`
	ClearNotBefore bool     `name:"clear-not-before" help:"Remove the start of validity."`
	IPFilter       []string `name:"ip-filter" sep:"none" placeholder:"CIDR" help:"Replace the IP filters with these (repeatable)."`
	ClearIPFilters bool     `name:"clear-ip-filters" help:"Remove every IP filter: any client address."`
	Header         []string `name:"header" sep:"none" placeholder:"NAME=VALUE" help:"Replace the response headers with these (repeatable, with --disabled-header)."`
	DisabledHeader []string `name:"disabled-header" sep:"none" placeholder:"NAME=VALUE" help:"Disabled response header, in the replacing list (repeatable)."`
	ClearHeaders   bool     `name:"clear-headers" help:"Remove every response header."`
	Role           []string `name:"role" sep:"none" placeholder:"ROLE-ID" help:"Replace the roles the key holds with these (repeatable)."`
	ClearRoles     bool     `name:"clear-roles" help:"Take every role from the key."`
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
	if r.Name == nil && r.Description == nil && r.Group == nil && r.Scope == nil && r.Active == nil &&
		r.ExpiresAt == nil && !r.ClearExpiresAt && r.NotBefore == nil && !r.ClearNotBefore &&
		r.IpFilters == nil && r.ResponseHeaders == nil && r.RoleIds == nil {
		return nil, errNothingToUpdate
	}
	return r, nil
}

func (c *KeysUpdateCmd) Run(e *Env) error {
	req, err := c.request()
	if err != nil {
		return err
	}
	return run(&c.ClientFlags, e, func(cl *client) error {
		r, err := call(cl, cl.api.UpdateKey, req)
		if err != nil {
			return err
		}
		return cl.out.object(r.GetKey(), keyRows(r.GetKey()))
	})
}

// KeysRegenerateCmd is `keygate keys regenerate`.
type KeysRegenerateCmd struct {
	ClientFlags
	ID    string        `arg:"" name:"id" help:"Key id."`
	Grace time.Duration `name:"grace" default:"0s" help:"How long the old secret stays valid (e.g. 10m, 24h); 0: it stops at once."`
}

func (c *KeysRegenerateCmd) Run(e *Env) error {
	if c.Grace < 0 {
		return errors.New("--grace: must not be negative")
	}
	return run(&c.ClientFlags, e, func(cl *client) error {
		req := &accountv1.RegenerateKeyRequest{Id: c.ID}
		if c.Grace > 0 {
			req.GracePeriod = durationpb.New(c.Grace)
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
		r, err := call(cl, cl.api.DeleteKey, &accountv1.DeleteKeyRequest{Id: c.ID})
		if err != nil {
			return err
		}
		return deleted(cl.out, r.GetKey(), "key", c.ID)
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

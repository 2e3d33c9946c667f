package accountcli

import (
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accountv1"
)

// RolesCmd is `keygate roles`.
type RolesCmd struct {
	Create RolesCreateCmd `cmd:"" help:"Create a role: a named scope keys hold (--role on keys generate, import, update)."`
	List   RolesListCmd   `cmd:"" help:"List roles."`
	Get    RolesGetCmd    `cmd:"" help:"Show a role."`
	Update RolesUpdateCmd `cmd:"" help:"Change a role's name, description or scope; every key holding it follows."`
	Delete RolesDeleteCmd `cmd:"" help:"Delete a role; one keys hold only with --force, which takes it from them."`
}

func roleRows(r *accountv1.ServiceAccessRole) [][2]string {
	return [][2]string{
		{"ID", r.GetId()},
		{"NAME", r.GetName()},
		{"SCOPE", r.GetScope()},
		{"RATE LIMIT", rateLimitText(r.GetRateLimit())},
		{"DESCRIPTION", r.GetDescription()},
		{"CREATED", fmtTime(r.GetCreateTime())},
		{"UPDATED", fmtTime(r.GetUpdateTime())},
	}
}

// RolesCreateCmd is `keygate roles create`.
type RolesCreateCmd struct {
	ClientFlags
	Name        string `name:"name" required:"" help:"Name, unique in the account."`
	Scope       string `name:"scope" required:"" help:"Scope the role grants: space-separated service[:kind[:operation]] patterns, ! denies (required)."`
	Description string `name:"description" help:"Description."`
	ID          string `name:"id" help:"Id to use (letters, digits, . _ ~ -); default: one is generated."`
	RateLimit   string `name:"rate-limit" placeholder:"N/UNIT" help:"Rate limit of the keys holding the role that have none of their own (the most restrictive of their roles' applies): N/second, N/minute, N/hour or N/day (5/s, 100/m, 1000/h, 10/d)."`
}

func (c *RolesCreateCmd) Run(e *Env) error {
	rl, err := parseRateLimitFlag("rate-limit", c.RateLimit)
	if err != nil {
		return err
	}
	return run(&c.ClientFlags, e, func(cl *client) error {
		r, err := call(cl, cl.api.CreateServiceAccessRole, &accountv1.CreateServiceAccessRoleRequest{
			Id: c.ID, Name: c.Name, Description: c.Description, Scope: c.Scope, RateLimit: rl})
		if err != nil {
			return err
		}
		return cl.out.object(r.GetRole(), roleRows(r.GetRole()))
	})
}

// RolesListCmd is `keygate roles list`.
type RolesListCmd struct {
	ClientFlags
	pageFlags
}

func (c *RolesListCmd) Run(e *Env) error {
	return run(&c.ClientFlags, e, func(cl *client) error {
		var all []*accountv1.ServiceAccessRole
		err := c.pages(cl, func(token string) (string, error) {
			r, err := call(cl, cl.api.ListServiceAccessRoles, &accountv1.ListServiceAccessRolesRequest{PageSize: c.PageSize, PageToken: token})
			all = append(all, r.GetRoles()...)
			return r.GetNextPageToken(), err
		})
		if err != nil {
			return err
		}
		msgs := make([]proto.Message, len(all))
		rows := make([][]string, len(all))
		for i, r := range all {
			msgs[i] = r
			rows[i] = []string{r.GetId(), r.GetName(), r.GetScope(), r.GetDescription(), fmtTime(r.GetCreateTime())}
		}
		return cl.out.list(msgs, []string{"ID", "NAME", "SCOPE", "DESCRIPTION", "CREATED"}, rows)
	})
}

// RolesGetCmd is `keygate roles get`.
type RolesGetCmd struct {
	ClientFlags
	ID string `arg:"" name:"id" help:"Role id."`
}

func (c *RolesGetCmd) Run(e *Env) error {
	return run(&c.ClientFlags, e, func(cl *client) error {
		r, err := call(cl, cl.api.GetServiceAccessRole, &accountv1.GetServiceAccessRoleRequest{Id: c.ID})
		if err != nil {
			return err
		}
		return cl.out.object(r.GetRole(), roleRows(r.GetRole()))
	})
}

// RolesUpdateCmd is `keygate roles update`.
type RolesUpdateCmd struct {
	ClientFlags
	ID             string  `arg:"" name:"id" help:"Role id."`
	Name           *string `name:"name" help:"New name (unique in the account)."`
	Description    *string `name:"description" help:"New description (\"\" clears it)."`
	Scope          *string `name:"scope" help:"New scope (not empty): every key holding the role follows."`
	RateLimit      string  `name:"rate-limit" placeholder:"N/UNIT" help:"New rate limit: N/second, N/minute, N/hour or N/day (5/s, 100/m, 1000/h, 10/d)."`
	ClearRateLimit bool    `name:"clear-rate-limit" help:"Remove the role's rate limit."`
}

func (c *RolesUpdateCmd) Run(e *Env) error {
	if c.RateLimit != "" && c.ClearRateLimit {
		return errors.New("--rate-limit and --clear-rate-limit exclude each other")
	}
	rl, err := parseRateLimitFlag("rate-limit", c.RateLimit)
	if err != nil {
		return err
	}
	if c.Name == nil && c.Description == nil && c.Scope == nil && rl == nil && !c.ClearRateLimit {
		return errNothingToUpdate
	}
	return run(&c.ClientFlags, e, func(cl *client) error {
		r, err := call(cl, cl.api.UpdateServiceAccessRole, &accountv1.UpdateServiceAccessRoleRequest{
			Id: c.ID, Name: c.Name, Description: c.Description, Scope: c.Scope, RateLimit: rl, ClearRateLimit: c.ClearRateLimit})
		if err != nil {
			return err
		}
		return cl.out.object(r.GetRole(), roleRows(r.GetRole()))
	})
}

// RolesDeleteCmd is `keygate roles delete`.
type RolesDeleteCmd struct {
	ClientFlags
	ID    string `arg:"" name:"id" help:"Role id."`
	Force bool   `name:"force" help:"Take the role from the keys holding it, then delete it. On a terminal, asks first, showing how many."`
	Yes   bool   `name:"yes" short:"y" help:"Do not ask before --force takes the role from keys; required when stdin is not a terminal."`
}

// Run deletes the role. Without --force the server refuses a role keys
// hold, saying how many; with it, the role is only taken from keys once
// confirmed: by --yes, or on a terminal by answering y to a question
// showing the count, which a first call without force learns.
func (c *RolesDeleteCmd) Run(e *Env) error {
	return run(&c.ClientFlags, e, func(cl *client) error {
		del := func(force bool) (proto.Message, error) {
			return call(cl, cl.api.DeleteServiceAccessRole, &accountv1.DeleteServiceAccessRoleRequest{Id: c.ID, Force: force})
		}
		if !c.Force || c.Yes {
			r, err := del(c.Force)
			if err != nil {
				return err
			}
			return deleted(cl.out, r, "role", c.ID)
		}
		r, err := del(false)
		n, ok := heldCount(err)
		if !ok {
			if err != nil {
				return err
			}
			return deleted(cl.out, r, "role", c.ID)
		}
		if !isTerminal(cl.env) {
			return fmt.Errorf("role %s is held by %s and stdin is not a terminal to confirm: add --yes to take it from them and delete it", c.ID, keysPhrase(n))
		}
		if !confirm(cl.env, fmt.Sprintf("take role %s from %s and delete it? [y/N] ", c.ID, keysPhrase(n))) {
			return fmt.Errorf("role %s not deleted", c.ID)
		}
		if r, err = del(true); err != nil {
			return err
		}
		return deleted(cl.out, r, "role", c.ID)
	})
}

// heldCount is the number of keys a role_held refusal reports.
func heldCount(err error) (int, bool) {
	st, ok := status.FromError(err)
	if err == nil || !ok || st.Code() != codes.FailedPrecondition {
		return 0, false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == account.ReasonRoleHeld {
			n, err := strconv.Atoi(info.GetMetadata()["keys"])
			return n, err == nil
		}
	}
	return 0, false
}

// DenialsCmd is `keygate denials`.
type DenialsCmd struct {
	Create DenialsCreateCmd `cmd:"" help:"Block one tenant of one app from what --scope names; its callers get 403 access_denied with --reason."`
	List   DenialsListCmd   `cmd:"" help:"List denials (--tenant, --app filter)."`
	Get    DenialsGetCmd    `cmd:"" help:"Show a denial."`
	Update DenialsUpdateCmd `cmd:"" help:"Change a denial's scope or reason."`
	Delete DenialsDeleteCmd `cmd:"" help:"Delete a denial, which restores access."`
}

func denialRows(d *accountv1.ServiceAccessDenial) [][2]string {
	return [][2]string{
		{"ID", d.GetId()},
		{"TENANT", d.GetTenantId()},
		{"APP", d.GetAppId()},
		{"SCOPE", d.GetScope()},
		{"REASON", d.GetReason()},
		{"CREATED", fmtTime(d.GetCreateTime())},
		{"UPDATED", fmtTime(d.GetUpdateTime())},
	}
}

// DenialsCreateCmd is `keygate denials create`.
type DenialsCreateCmd struct {
	ClientFlags
	Tenant string `name:"tenant" required:"" help:"Tenant id (required)."`
	App    string `name:"app" required:"" help:"App id (required)."`
	Scope  string `name:"scope" required:"" help:"What is blocked: space-separated service[:kind[:operation]] patterns, no ! (required)."`
	Reason string `name:"reason" required:"" help:"Text the blocked caller sees (required, at most 500 bytes; newlines and tabs allowed)."`
	ID     string `name:"id" help:"Id to use (letters, digits, . _ ~ -); default: one is generated."`
}

func (c *DenialsCreateCmd) Run(e *Env) error {
	return run(&c.ClientFlags, e, func(cl *client) error {
		r, err := call(cl, cl.api.CreateServiceAccessDenial, &accountv1.CreateServiceAccessDenialRequest{
			Id: c.ID, TenantId: c.Tenant, AppId: c.App, Scope: c.Scope, Reason: c.Reason})
		if err != nil {
			return err
		}
		return cl.out.object(r.GetDenial(), denialRows(r.GetDenial()))
	})
}

// DenialsListCmd is `keygate denials list`.
type DenialsListCmd struct {
	ClientFlags
	Tenant string `name:"tenant" help:"Only denials of this tenant."`
	App    string `name:"app" help:"Only denials of this app."`
	pageFlags
}

func (c *DenialsListCmd) Run(e *Env) error {
	return run(&c.ClientFlags, e, func(cl *client) error {
		var all []*accountv1.ServiceAccessDenial
		err := c.pages(cl, func(token string) (string, error) {
			r, err := call(cl, cl.api.ListServiceAccessDenials, &accountv1.ListServiceAccessDenialsRequest{
				TenantId: c.Tenant, AppId: c.App, PageSize: c.PageSize, PageToken: token})
			all = append(all, r.GetDenials()...)
			return r.GetNextPageToken(), err
		})
		if err != nil {
			return err
		}
		msgs := make([]proto.Message, len(all))
		rows := make([][]string, len(all))
		for i, d := range all {
			msgs[i] = d
			rows[i] = []string{d.GetId(), d.GetTenantId(), d.GetAppId(), d.GetScope(), d.GetReason(), fmtTime(d.GetCreateTime())}
		}
		return cl.out.list(msgs, []string{"ID", "TENANT", "APP", "SCOPE", "REASON", "CREATED"}, rows)
	})
}

// DenialsGetCmd is `keygate denials get`.
type DenialsGetCmd struct {
	ClientFlags
	ID string `arg:"" name:"id" help:"Denial id."`
}

func (c *DenialsGetCmd) Run(e *Env) error {
	return run(&c.ClientFlags, e, func(cl *client) error {
		r, err := call(cl, cl.api.GetServiceAccessDenial, &accountv1.GetServiceAccessDenialRequest{Id: c.ID})
		if err != nil {
			return err
		}
		return cl.out.object(r.GetDenial(), denialRows(r.GetDenial()))
	})
}

// DenialsUpdateCmd is `keygate denials update`.
type DenialsUpdateCmd struct {
	ClientFlags
	ID     string  `arg:"" name:"id" help:"Denial id."`
	Scope  *string `name:"scope" help:"New scope (not empty, no !)."`
	Reason *string `name:"reason" help:"New reason text the blocked caller sees (not empty, at most 500 bytes)."`
}

func (c *DenialsUpdateCmd) Run(e *Env) error {
	if c.Scope == nil && c.Reason == nil {
		return errNothingToUpdate
	}
	return run(&c.ClientFlags, e, func(cl *client) error {
		r, err := call(cl, cl.api.UpdateServiceAccessDenial, &accountv1.UpdateServiceAccessDenialRequest{Id: c.ID, Scope: c.Scope, Reason: c.Reason})
		if err != nil {
			return err
		}
		return cl.out.object(r.GetDenial(), denialRows(r.GetDenial()))
	})
}

// DenialsDeleteCmd is `keygate denials delete`.
type DenialsDeleteCmd struct {
	ClientFlags
	ID string `arg:"" name:"id" help:"Denial id."`
}

func (c *DenialsDeleteCmd) Run(e *Env) error {
	return run(&c.ClientFlags, e, func(cl *client) error {
		r, err := call(cl, cl.api.DeleteServiceAccessDenial, &accountv1.DeleteServiceAccessDenialRequest{Id: c.ID})
		if err != nil {
			return err
		}
		return deleted(cl.out, r, "denial", c.ID)
	})
}

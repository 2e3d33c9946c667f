package accountcli

import (
	"errors"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// owner is what the CLI shows of an app or a tenant.
type owner interface {
	proto.Message
	GetId() string
	GetName() string
	GetDescription() string
	GetActive() bool
	GetCreateTime() *timestamppb.Timestamp
	GetUpdateTime() *timestamppb.Timestamp
}

func printOwner(p printer, o owner) error {
	return p.object(o, ownerRows(o.GetId(), o.GetName(), o.GetDescription(), o.GetActive(), o.GetCreateTime(), o.GetUpdateTime()))
}

var ownerHeader = []string{"ID", "NAME", "ACTIVE", "DESCRIPTION", "CREATED"}

func printOwners[T owner](p printer, list []T) error {
	msgs := make([]proto.Message, len(list))
	rows := make([][]string, len(list))
	for i, o := range list {
		msgs[i] = o
		rows[i] = []string{o.GetId(), o.GetName(), yesNo(o.GetActive()), o.GetDescription(), fmtTime(o.GetCreateTime())}
	}
	return p.list(msgs, ownerHeader, rows)
}

// ownerCreate are the flags of apps/tenants create.
type ownerCreate struct {
	ClientFlags
	Name        string `name:"name" required:"" help:"Display name."`
	Description string `name:"description" help:"Description."`
	ID          string `name:"id" help:"Id to use (letters, digits, . _ ~ -); default: one is generated."`
}

type ownerRef struct {
	ClientFlags
	ID string `arg:"" name:"id" help:"Id."`
}

type ownerUpdate struct {
	ClientFlags
	ID          string  `arg:"" name:"id" help:"Id."`
	Name        *string `name:"name" help:"New display name."`
	Description *string `name:"description" help:"New description (\"\" clears it)."`
	Active      *bool   `name:"active" negatable:"" help:"Activate (--active) or deactivate (--no-active): an inactive one denies all its keys."`
}

func (u *ownerUpdate) empty() bool { return u.Name == nil && u.Description == nil && u.Active == nil }

type ownerList struct {
	ClientFlags
	pageFlags
}

// AppsCmd is `keygate apps`.
type AppsCmd struct {
	Create AppsCreateCmd `cmd:"" help:"Create an app."`
	List   AppsListCmd   `cmd:"" help:"List apps."`
	Get    AppsGetCmd    `cmd:"" help:"Show an app."`
	Update AppsUpdateCmd `cmd:"" help:"Change an app's name, description or active flag."`
	Delete AppsDeleteCmd `cmd:"" help:"Delete an app; one with keys only with --cascade, which deletes them too."`
}

// AppsCreateCmd is `keygate apps create`.
type AppsCreateCmd struct{ ownerCreate }

func (c *AppsCreateCmd) Run(e *Env) error {
	return run(&c.ClientFlags, e, func(cl *client) error {
		r, err := call(cl, cl.api.CreateApp, &accountv1.CreateAppRequest{Id: c.ID, Name: c.Name, Description: c.Description})
		if err != nil {
			return err
		}
		return printOwner(cl.out, r.GetApp())
	})
}

// AppsListCmd is `keygate apps list`.
type AppsListCmd struct{ ownerList }

func (c *AppsListCmd) Run(e *Env) error {
	return run(&c.ClientFlags, e, func(cl *client) error {
		var all []*accountv1.App
		err := c.pages(cl, func(token string) (string, error) {
			r, err := call(cl, cl.api.ListApps, &accountv1.ListAppsRequest{PageSize: c.PageSize, PageToken: token})
			all = append(all, r.GetApps()...)
			return r.GetNextPageToken(), err
		})
		if err != nil {
			return err
		}
		return printOwners(cl.out, all)
	})
}

// AppsGetCmd is `keygate apps get`.
type AppsGetCmd struct{ ownerRef }

func (c *AppsGetCmd) Run(e *Env) error {
	return run(&c.ClientFlags, e, func(cl *client) error {
		r, err := call(cl, cl.api.GetApp, &accountv1.GetAppRequest{Id: c.ID})
		if err != nil {
			return err
		}
		return printOwner(cl.out, r.GetApp())
	})
}

// AppsUpdateCmd is `keygate apps update`.
type AppsUpdateCmd struct{ ownerUpdate }

func (c *AppsUpdateCmd) Run(e *Env) error {
	if c.empty() {
		return errNothingToUpdate
	}
	return run(&c.ClientFlags, e, func(cl *client) error {
		r, err := call(cl, cl.api.UpdateApp, &accountv1.UpdateAppRequest{Id: c.ID, Name: c.Name, Description: c.Description, Active: c.Active})
		if err != nil {
			return err
		}
		return printOwner(cl.out, r.GetApp())
	})
}

// AppsDeleteCmd is `keygate apps delete`.
type AppsDeleteCmd struct{ ownerDelete }

func (c *AppsDeleteCmd) Run(e *Env) error {
	return run(&c.ClientFlags, e, func(cl *client) error {
		return c.deleteOwner(cl, "app", func(cascade bool) (proto.Message, error) {
			r, err := call(cl, cl.api.DeleteApp, &accountv1.DeleteAppRequest{Id: c.ID, Cascade: cascade})
			return r.GetApp(), err
		})
	})
}

// TenantsCmd is `keygate tenants`.
type TenantsCmd struct {
	Create TenantsCreateCmd `cmd:"" help:"Create a tenant."`
	List   TenantsListCmd   `cmd:"" help:"List tenants."`
	Get    TenantsGetCmd    `cmd:"" help:"Show a tenant."`
	Update TenantsUpdateCmd `cmd:"" help:"Change a tenant's name, description, active flag or monthly quota."`
	Delete TenantsDeleteCmd `cmd:"" help:"Delete a tenant; one with keys only with --cascade, which deletes them too."`
}

// TenantsCreateCmd is `keygate tenants create`.
type TenantsCreateCmd struct {
	ownerCreate
	Quota int64 `name:"quota" placeholder:"N" help:"Requests the tenant's keys together are admitted per calendar month (UTC); over it, 429 quota_exceeded until the month ends. Default: none."`
}

func (c *TenantsCreateCmd) Run(e *Env) error {
	quota, err := tenantQuotaFlag(c.Quota)
	if err != nil {
		return err
	}
	return run(&c.ClientFlags, e, func(cl *client) error {
		r, err := call(cl, cl.api.CreateTenant, &accountv1.CreateTenantRequest{Id: c.ID, Name: c.Name, Description: c.Description, Quota: quota})
		if err != nil {
			return err
		}
		return printTenant(cl.out, r.GetTenant(), nil)
	})
}

// printTenant is printOwner with the tenant's quota and, when known, its
// state.
func printTenant(p printer, t *accountv1.Tenant, st *accountv1.QuotaStatus) error {
	rows := ownerRows(t.GetId(), t.GetName(), t.GetDescription(), t.GetActive(), t.GetCreateTime(), t.GetUpdateTime())
	rows = append(rows, [2]string{"QUOTA", quotaText(t.GetQuota())})
	if st != nil {
		rows = append(rows, [2]string{"QUOTA USED", quotaStatusText(st)})
	}
	return p.object(t, rows)
}

// TenantsListCmd is `keygate tenants list`.
type TenantsListCmd struct{ ownerList }

func (c *TenantsListCmd) Run(e *Env) error {
	return run(&c.ClientFlags, e, func(cl *client) error {
		var all []*accountv1.Tenant
		err := c.pages(cl, func(token string) (string, error) {
			r, err := call(cl, cl.api.ListTenants, &accountv1.ListTenantsRequest{PageSize: c.PageSize, PageToken: token})
			all = append(all, r.GetTenants()...)
			return r.GetNextPageToken(), err
		})
		if err != nil {
			return err
		}
		return printOwners(cl.out, all)
	})
}

// TenantsGetCmd is `keygate tenants get`.
type TenantsGetCmd struct{ ownerRef }

func (c *TenantsGetCmd) Run(e *Env) error {
	return run(&c.ClientFlags, e, func(cl *client) error {
		r, err := call(cl, cl.api.GetTenant, &accountv1.GetTenantRequest{Id: c.ID})
		if err != nil {
			return err
		}
		return printTenant(cl.out, r.GetTenant(), r.GetQuotaStatus())
	})
}

// TenantsUpdateCmd is `keygate tenants update`.
type TenantsUpdateCmd struct {
	ownerUpdate
	Quota      int64 `name:"quota" placeholder:"N" help:"New monthly quota: requests the tenant's keys together are admitted per calendar month (UTC)."`
	ClearQuota bool  `name:"clear-quota" help:"Remove the tenant's quota."`
}

func (c *TenantsUpdateCmd) Run(e *Env) error {
	if c.empty() && c.Quota == 0 && !c.ClearQuota {
		return errNothingToUpdate
	}
	if c.Quota != 0 && c.ClearQuota {
		return errors.New("--quota and --clear-quota exclude each other")
	}
	quota, err := tenantQuotaFlag(c.Quota)
	if err != nil {
		return err
	}
	return run(&c.ClientFlags, e, func(cl *client) error {
		r, err := call(cl, cl.api.UpdateTenant, &accountv1.UpdateTenantRequest{Id: c.ID, Name: c.Name, Description: c.Description, Active: c.Active,
			Quota: quota, ClearQuota: c.ClearQuota})
		if err != nil {
			return err
		}
		return printTenant(cl.out, r.GetTenant(), nil)
	})
}

// TenantsDeleteCmd is `keygate tenants delete`.
type TenantsDeleteCmd struct{ ownerDelete }

func (c *TenantsDeleteCmd) Run(e *Env) error {
	return run(&c.ClientFlags, e, func(cl *client) error {
		return c.deleteOwner(cl, "tenant", func(cascade bool) (proto.Message, error) {
			r, err := call(cl, cl.api.DeleteTenant, &accountv1.DeleteTenantRequest{Id: c.ID, Cascade: cascade})
			return r.GetTenant(), err
		})
	})
}

// deleted reports a deletion: a line in table mode, in JSON mode the
// object as it was just before the delete (what was deleted).
func deleted(p printer, resp proto.Message, noun, id string) error {
	if p.json {
		return p.object(resp, nil)
	}
	return p.line("deleted %s %s", noun, id)
}

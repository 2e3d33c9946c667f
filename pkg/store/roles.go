package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/keygate/keygate/pkg/authz"
)

// Role is an account-level, named scope that keys hold (SPEC §11): a
// key's effective scope is the union of its own scope's allow patterns
// and its roles', with every deny pattern of any of them.
type Role struct {
	AccountID   string
	ID          string
	Name        string // unique per account
	Description string
	Scope       string // non-empty, SPEC §3's grammar
	// RateLimit is the role's rate limit (SPEC §12), zero for none.
	RateLimit authz.RateLimit
	CreatedAt time.Time
	UpdatedAt time.Time
}

// RoleUpdate lists the fields UpdateRole changes; nil fields stay.
type RoleUpdate struct {
	Name        *string
	Description *string
	Scope       *string
	// RateLimit replaces the role's rate limit (the zero value: none).
	RateLimit *authz.RateLimit
}

// Apply returns r with the fields u sets changed.
func (u *RoleUpdate) Apply(r Role) Role {
	setIf(&r.Name, u.Name)
	setIf(&r.Description, u.Description)
	setIf(&r.Scope, u.Scope)
	setIf(&r.RateLimit, u.RateLimit)
	return r
}

// Denial is a service access denial (SPEC §11): for one tenant of one app
// (both required), a non-empty scope of allow-form patterns naming what it
// blocks, and the reason text the blocked caller sees.
type Denial struct {
	AccountID string
	ID        string
	TenantID  string
	AppID     string
	Scope     string
	Reason    string // at most MaxDenialReasonLen bytes
	CreatedAt time.Time
	UpdatedAt time.Time
}

// MaxDenialReasonLen bounds a denial's reason text (SPEC §11).
const MaxDenialReasonLen = 500

// DenialUpdate lists the fields UpdateDenial changes; a denial's tenant
// and app are fixed at creation (delete it and create another).
type DenialUpdate struct {
	Scope  *string
	Reason *string
}

// Apply returns d with the fields u sets changed.
func (u *DenialUpdate) Apply(d Denial) Denial {
	setIf(&d.Scope, u.Scope)
	setIf(&d.Reason, u.Reason)
	return d
}

// DenialFilter narrows ListDenials; zero fields do not filter.
type DenialFilter struct {
	TenantID string
	AppID    string
}

// ErrRoleHeld is what deleting a role that keys hold returns without
// force (*RoleHeldError says how many).
var ErrRoleHeld = errors.New("role is held by keys")

// RoleHeldError is a role delete refused because keys hold the role.
type RoleHeldError struct {
	ID   string
	Keys int
}

func (e *RoleHeldError) Error() string {
	return fmt.Sprintf("role %q is held by %d keys", e.ID, e.Keys)
}

func (e *RoleHeldError) Unwrap() error { return ErrRoleHeld }

// KeyRole is a role as the data plane needs it with a key that holds it:
// what compiling the key's effective scope takes. LookupKey*, LoadAll and
// LookupKeysOfParent of the PostgreSQL store read these with each key
// (see postgres keyRow.Roles); the merge with the data plane passes them
// to authz.
type KeyRole struct {
	ID        string
	Name      string
	Scope     string
	RateLimit authz.RateLimit
}

// Roles is what the Account API writes and reads of roles and denials.
// Every write runs in one transaction with its audit event and its
// change-feed entry; a create is held to the account's quota
// (QuotaRoles, QuotaDenials).
type Roles interface {
	CreateRole(ctx context.Context, actor Actor, r Role) (Role, error)
	GetRole(ctx context.Context, accountID, id string) (Role, error)
	ListRoles(ctx context.Context, accountID string, p Page) ([]Role, string, error)
	UpdateRole(ctx context.Context, actor Actor, accountID, id string, u RoleUpdate) (Role, error)
	// DeleteRole deletes a role. While keys hold it, it refuses with a
	// *RoleHeldError unless force is set: then the role is taken from
	// them in the same transaction, each key audited as "key.update".
	DeleteRole(ctx context.Context, actor Actor, accountID, id string, force bool) error

	// CreateDenial stores a denial; its tenant and app must exist in the
	// account (else ErrNotFound).
	CreateDenial(ctx context.Context, actor Actor, d Denial) (Denial, error)
	GetDenial(ctx context.Context, accountID, id string) (Denial, error)
	ListDenials(ctx context.Context, accountID string, f DenialFilter, p Page) ([]Denial, string, error)
	UpdateDenial(ctx context.Context, actor Actor, accountID, id string, u DenialUpdate) (Denial, error)
	DeleteDenial(ctx context.Context, actor Actor, accountID, id string) error
}

// AccessSource is what the data-plane cache needs of roles and denials
// beside Source: the warm load of every role and denial, and the lookups
// that apply a ChangeRole or ChangeDenial feed entry. A role change is one
// entry whatever the number of keys holding the role (LookupKeysOfParent
// with ChangeRole reads them, compiled, in one round trip).
type AccessSource interface {
	// LoadRoles calls fn for every role of every account, and
	// LoadDenials for every denial. Called after LoadAll, whose seq they
	// follow: a change after it is on the feed.
	LoadRoles(ctx context.Context, fn func(Role) error) error
	LoadDenials(ctx context.Context, fn func(Denial) error) error
	// LookupRole and LookupDenial read one; ErrNotFound when it no longer
	// exists (a delete).
	LookupRole(ctx context.Context, accountID, id string) (Role, error)
	LookupDenial(ctx context.Context, accountID, id string) (Denial, error)
	// KeysHoldingRole names the keys that hold a role.
	KeysHoldingRole(ctx context.Context, accountID, roleID string) ([]KeyRef, error)
}

// NormalizeRoleIDs is ids sorted, without duplicates, as stores keep a
// key's role ids; nil for none.
func NormalizeRoleIDs(ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Clip(slices.Compact(out))
}

// RoleAudit is the audit record of a role. HeldBy, on a forced delete,
// is how many keys the role was taken from.
type RoleAudit struct {
	ID          string    `json:"id"`
	AccountID   string    `json:"account_id"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Scope       string    `json:"scope"`
	RateLimit   string    `json:"rate_limit,omitempty"`
	HeldBy      int       `json:"held_by_keys,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// RoleAuditOf is the audit record of a role.
func RoleAuditOf(r Role) *RoleAudit {
	return &RoleAudit{ID: r.ID, AccountID: r.AccountID, Name: r.Name, Description: r.Description,
		Scope: r.Scope, RateLimit: r.RateLimit.String(), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// DenialAudit is the audit record of a denial.
type DenialAudit struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account_id"`
	TenantID  string    `json:"tenant_id"`
	AppID     string    `json:"app_id"`
	Scope     string    `json:"scope"`
	Reason    string    `json:"reason"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// DenialAuditOf is the audit record of a denial.
func DenialAuditOf(d Denial) *DenialAudit {
	return &DenialAudit{ID: d.ID, AccountID: d.AccountID, TenantID: d.TenantID, AppID: d.AppID,
		Scope: d.Scope, Reason: d.Reason, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
}

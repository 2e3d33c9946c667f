package store

import "time"

// The records an audit event's before and after hold, as JSON: every field
// of the object but its hashes and secrets, listed one by one so that a
// new secret column cannot leak into the log. Every store writes these
// shapes, so that what the audit log says does not depend on the store
// (the contract suite, pkg/store/storetest, checks them against its own
// reading of the rules).
type (
	// AccountAudit is an account.
	AccountAudit struct {
		ID        string    `json:"id"`
		Name      string    `json:"name"`
		CreatedAt time.Time `json:"created_at"`
	}
	// ParentAudit is an app or a tenant.
	ParentAudit struct {
		ID          string    `json:"id"`
		AccountID   string    `json:"account_id"`
		Name        string    `json:"name"`
		Description string    `json:"description,omitempty"`
		Active      bool      `json:"active"`
		Quota       int64     `json:"quota,omitempty"`
		CreatedAt   time.Time `json:"created_at"`
		UpdatedAt   time.Time `json:"updated_at"`
	}
	// HeaderAudit is a key's response header.
	HeaderAudit struct {
		Name     string `json:"name"`
		Value    string `json:"value"`
		Disabled bool   `json:"disabled,omitempty"`
	}
	// KeyAudit is a key, without its hash or previous hash.
	KeyAudit struct {
		ID                 string        `json:"id"`
		AccountID          string        `json:"account_id"`
		Name               string        `json:"name"`
		Type               string        `json:"type"`
		AppID              string        `json:"app_id,omitempty"`
		TenantID           string        `json:"tenant_id,omitempty"`
		Scope              string        `json:"scope"`
		Active             bool          `json:"active"`
		NotBefore          *time.Time    `json:"not_before,omitempty"`
		ExpiresAt          *time.Time    `json:"expires_at,omitempty"`
		IPFilters          []string      `json:"ip_filters,omitempty"`
		Group              string        `json:"group,omitempty"`
		Description        string        `json:"description,omitempty"`
		ResponseHeaders    []HeaderAudit `json:"response_headers,omitempty"`
		Origin             string        `json:"origin"`
		PreviousValidUntil *time.Time    `json:"previous_valid_until,omitempty"`
		RoleIDs            []string      `json:"role_ids,omitempty"`
		RateLimit          string        `json:"rate_limit,omitempty"`
		Quota              string        `json:"quota,omitempty"`
		CreatedAt          time.Time     `json:"created_at"`
		UpdatedAt          time.Time     `json:"updated_at"`
	}
)

// AccountAuditOf is the audit record of an account.
func AccountAuditOf(a Account) *AccountAudit {
	return &AccountAudit{ID: a.ID, Name: a.Name, CreatedAt: a.CreatedAt}
}

// ParentAuditOf is the audit record of an app or a tenant.
func ParentAuditOf(a App) *ParentAudit {
	return &ParentAudit{ID: a.ID, AccountID: a.AccountID, Name: a.Name, Description: a.Description,
		Active: a.Active, Quota: a.Quota, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}

// KeyAuditOf is the audit record of a key.
func KeyAuditOf(k Key) *KeyAudit {
	sp := &k.Spec
	a := &KeyAudit{
		ID: sp.ID, AccountID: sp.AccountID, Name: sp.Name, Type: sp.Type.String(),
		AppID: sp.AppID, TenantID: sp.TenantID, Scope: sp.Scope, Active: sp.Active,
		NotBefore: timePtr(sp.NotBefore), ExpiresAt: timePtr(sp.ExpiresAt),
		IPFilters: sp.IPFilters, Group: sp.Group, Description: sp.Description,
		Origin: string(k.Origin), PreviousValidUntil: timePtr(sp.PreviousValidUntil),
		CreatedAt: k.CreatedAt, UpdatedAt: k.UpdatedAt, RoleIDs: k.RoleIDs,
		RateLimit: sp.RateLimit.String(),
		Quota:     sp.Quota.String(),
	}
	for _, h := range sp.ResponseHeaders {
		a.ResponseHeaders = append(a.ResponseHeaders, HeaderAudit{Name: h.Name, Value: h.Value, Disabled: h.Disabled})
	}
	return a
}

// timePtr is t, or nil for the zero time ("unset"), which the audit JSON
// leaves out.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

package keyfile

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/keygate/keygate/pkg/authz"
)

// File is what Marshal writes: a keys file's content. Keys carry hashes,
// never secrets; their AccountID, AppName and TenantName are not written
// (the file's account and its apps and tenants say them), nor a rotation's
// previous hash (a keys file holds one hash per key). Roles and Denials
// (SPEC §11) are written without their AccountID (the file's account);
// a key's Spec.Roles are the ids of the roles it holds.
type File struct {
	Account string
	Apps    []Owner
	Tenants []Owner
	Roles   []authz.Role
	Denials []authz.Denial
	Keys    []authz.KeySpec
}

type roleOut struct {
	ID          string        `yaml:"id"`
	Name        string        `yaml:"name"`
	Scope       string        `yaml:"scope"`
	Description string        `yaml:"description,omitempty"`
	RateLimit   *rateLimitOut `yaml:"rate_limit,omitempty,flow"`
}

type denialOut struct {
	ID     string `yaml:"id"`
	Tenant string `yaml:"tenant"`
	App    string `yaml:"app"`
	Scope  string `yaml:"scope"`
	Reason string `yaml:"reason"`
}

type ownerOut struct {
	ID    string    `yaml:"id"`
	Name  string    `yaml:"name"`
	Quota *quotaOut `yaml:"quota,omitempty,flow"`
}

type headerOut struct {
	Name     string `yaml:"name"`
	Value    string `yaml:"value"`
	Disabled bool   `yaml:"disabled,omitempty"`
}

type keyOut struct {
	ID              string        `yaml:"id"`
	Name            string        `yaml:"name"`
	Type            string        `yaml:"type"`
	App             string        `yaml:"app,omitempty"`
	Tenant          string        `yaml:"tenant,omitempty"`
	Hash            string        `yaml:"hash"`
	Scope           string        `yaml:"scope,omitempty"`
	Roles           []string      `yaml:"roles,omitempty,flow"`
	Active          *bool         `yaml:"active,omitempty"`
	NotBefore       string        `yaml:"not_before,omitempty"`
	ExpiresAt       string        `yaml:"expires_at,omitempty"`
	IPFilters       []string      `yaml:"ip_filters,omitempty,flow"`
	Group           string        `yaml:"group,omitempty"`
	Description     string        `yaml:"description,omitempty"`
	ResponseHeaders []headerOut   `yaml:"response_headers,omitempty"`
	RateLimit       *rateLimitOut `yaml:"rate_limit,omitempty,flow"`
	Quota           *quotaOut     `yaml:"quota,omitempty,flow"`
}

type fileOut struct {
	Account string      `yaml:"account"`
	Apps    []ownerOut  `yaml:"apps"`
	Tenants []ownerOut  `yaml:"tenants"`
	Roles   []roleOut   `yaml:"roles,omitempty"`
	Denials []denialOut `yaml:"denials,omitempty"`
	Keys    []keyOut    `yaml:"keys"`
}

// Marshal writes f in the format Parse reads, every list present (an
// empty one as []), a key's fields in Parse's order, defaults left out
// (active: true, no expiry), times in RFC 3339 to the nanosecond; header
// is written first as comment lines. The roles and denials lists are
// left out when empty (a file without them reads as before issue 18).
func Marshal(f File, header string) ([]byte, error) {
	out := fileOut{Account: f.Account, Apps: []ownerOut{}, Tenants: []ownerOut{}, Keys: []keyOut{}}
	for _, o := range f.Apps {
		out.Apps = append(out.Apps, ownerOut{ID: o.ID, Name: o.Name})
	}
	for _, o := range f.Tenants {
		out.Tenants = append(out.Tenants, ownerOut{ID: o.ID, Name: o.Name, Quota: quotaYAML(authz.Monthly(o.Quota))})
	}
	for _, r := range f.Roles {
		out.Roles = append(out.Roles, roleOut{ID: r.ID, Name: r.Name, Scope: r.Scope, Description: r.Description, RateLimit: rateLimitYAML(r.RateLimit)})
	}
	for _, d := range f.Denials {
		out.Denials = append(out.Denials, denialOut{ID: d.ID, Tenant: d.TenantID, App: d.AppID, Scope: d.Scope, Reason: d.Reason})
	}
	for _, k := range f.Keys {
		ko := keyOut{ID: k.ID, Name: k.Name, Type: k.Type.String(), App: k.AppID, Tenant: k.TenantID,
			Hash: k.Hash, Scope: k.Scope, Roles: k.Roles, NotBefore: timeText(k.NotBefore), ExpiresAt: timeText(k.ExpiresAt),
			IPFilters: k.IPFilters, Group: k.Group, Description: k.Description, RateLimit: rateLimitYAML(k.RateLimit),
			Quota: quotaYAML(k.Quota)}
		if !k.Active {
			ko.Active = new(bool)
		}
		for _, h := range k.ResponseHeaders {
			ko.ResponseHeaders = append(ko.ResponseHeaders, headerOut(h))
		}
		out.Keys = append(out.Keys, ko)
	}
	var b bytes.Buffer
	for _, line := range splitLines(header) {
		fmt.Fprintf(&b, "# %s\n", line)
	}
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("keys file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("keys file: %w", err)
	}
	return b.Bytes(), nil
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

// File is the set's content as Marshal writes it: what Parse read, less
// what the file does not say itself (the AccountID of each record, a key's
// app and tenant names). Marshal(s.File()) parses back to the same set.
func (s *Set) File() File {
	f := File{Account: s.account, Apps: slices.Clone(s.apps), Tenants: slices.Clone(s.tenants)}
	for _, r := range s.roles {
		c := *r
		c.AccountID = ""
		f.Roles = append(f.Roles, c)
	}
	for _, d := range s.denials {
		c := d.Denial
		c.AccountID = ""
		f.Denials = append(f.Denials, c)
	}
	for _, sp := range s.specs {
		sp.AccountID, sp.AppName, sp.TenantName = "", "", ""
		sp.Roles = slices.Clone(sp.Roles)
		sp.IPFilters = slices.Clone(sp.IPFilters)
		sp.ResponseHeaders = slices.Clone(sp.ResponseHeaders)
		f.Keys = append(f.Keys, sp)
	}
	return f
}

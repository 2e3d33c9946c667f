package account

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/scope"
	"github.com/keygate/keygate/pkg/store"
)

// Secret is a key's plaintext secret, returned once by GenerateKey and
// RegenerateKey. It redacts itself wherever it is printed or logged; only
// Reveal gives the text, for the one answer that carries it.
type Secret string

// Reveal returns the secret's text.
func (s Secret) Reveal() string { return string(s) }

func (Secret) String() string               { return "[redacted]" }
func (Secret) GoString() string             { return "[redacted]" }
func (Secret) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// KeyInput creates a key. Type decides which of AppID and TenantID it
// needs. Nil pointers are absent: a key is active unless Active says
// otherwise, and valid from now, for ever, unless NotBefore or ExpiresAt
// say otherwise.
type KeyInput struct {
	Type                                authz.KeyType
	ID, Name, Description, Group, Scope string
	AppID, TenantID                     string
	Active                              *bool
	NotBefore, ExpiresAt                *time.Time
	IPFilters                           []string
	ResponseHeaders                     []authz.HeaderSpec
	// RoleIDs are roles of the account the key holds (SPEC §11); the
	// caller must be able to give each role's scope itself.
	RoleIDs []string
	// RateLimit is the key's own rate limit (SPEC §12), zero for none.
	RateLimit authz.RateLimit
	// Quota is the key's own quota (SPEC §12), zero for none.
	Quota authz.Quota
}

// KeyFilter selects keys of ListKeys; zero fields select everything
// (Type KeyTypeUnknown is every type).
type KeyFilter = store.KeyFilter

// KeyUpdate changes the fields of a key that are set; a pointer to the
// zero time clears NotBefore or ExpiresAt.
type KeyUpdate = store.KeyUpdate

// Now is the service's clock, for adapters that show times relative to
// it (a rotated-out secret's remaining grace).
func (s *Service) Now() time.Time { return s.now() }

// newKey validates in, builds the key spec with the hash of secret and
// compiles it as the data plane will, then checks that its app and tenant
// exist in the caller's account. Nothing is written.
func (s *Service) newKey(ctx context.Context, c Caller, in KeyInput, secret string) (authz.KeySpec, error) {
	in.Scope = authz.CanonicalScope(in.Scope) // earlier operation names accepted (SPEC §14)
	var v Violations
	v.checkID("id", in.ID, false)
	v.checkName("name", in.Name, false)
	v.checkDescription("description", in.Description)
	v.checkGroup("group", in.Group)
	v.checkScope("scope", in.Scope)
	v.checkIPFilters("ip_filters", in.IPFilters)
	v.checkHeaders("response_headers", in.ResponseHeaders)
	v.checkTime("not_before", in.NotBefore)
	v.checkTime("expires_at", in.ExpiresAt)
	v.checkRoleIDs("role_ids", in.RoleIDs)
	v.checkRateLimit("rate_limit", in.RateLimit)
	v.checkQuota("quota", in.Quota)
	if in.ExpiresAt != nil && !in.ExpiresAt.IsZero() && !in.ExpiresAt.After(s.now()) {
		v.add("expires_at", "%s is not in the future: the key would be denied expired_key from the start; give a later time, or none for a key that never expires",
			in.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if len(in.AppID) > MaxIDLen {
		v.add("app_id", "longer than %d bytes", MaxIDLen)
	}
	if len(in.TenantID) > MaxIDLen {
		v.add("tenant_id", "longer than %d bytes", MaxIDLen)
	}
	if !v.empty() {
		return authz.KeySpec{}, v.err()
	}

	id := in.ID
	if id == "" {
		var err error
		if id, err = newID(); err != nil {
			s.log.Error("account API: generating a key id", "err", err)
			return authz.KeySpec{}, internal()
		}
	}
	name := in.Name
	if name == "" {
		name = id
	}
	active := true
	if in.Active != nil {
		active = *in.Active
	}
	spec := authz.KeySpec{
		ID:              id,
		Name:            name,
		Type:            in.Type,
		AccountID:       c.AccountID,
		AppID:           in.AppID,
		TenantID:        in.TenantID,
		Hash:            s.hasher.HashString(secret),
		Scope:           in.Scope,
		Active:          active,
		NotBefore:       deref(in.NotBefore),
		ExpiresAt:       deref(in.ExpiresAt),
		IPFilters:       append([]string(nil), in.IPFilters...),
		Group:           in.Group,
		Description:     in.Description,
		ResponseHeaders: append([]authz.HeaderSpec(nil), in.ResponseHeaders...),
		RateLimit:       in.RateLimit,
		Quota:           in.Quota,
	}
	compiled, err := authz.Compile(spec, s.compile)
	if err != nil {
		v.compileErrors(err)
		return authz.KeySpec{}, v.err()
	}
	// The escalation rule sees the key's effective scope: its own and
	// its roles' (SPEC §11).
	effective, err := s.effectiveScope(ctx, c, spec.Type, compiled.Scope(), in.RoleIDs)
	if err != nil {
		return authz.KeySpec{}, err
	}
	if err := withinCaller(c, spec.Type, effective); err != nil {
		// Account keys are always generated (ImportKey refuses them).
		now := s.now()
		attempted := store.Key{Spec: spec, Origin: store.OriginGenerated, CreatedAt: now, UpdatedAt: now}
		return authz.KeySpec{}, s.refused(ctx, c, err, "key.create", spec.ID, nil, store.KeyAuditOf(attempted))
	}
	if err := s.keyRoles(ctx, c, spec.Type, "role_ids", in.RoleIDs); err != nil {
		now := s.now()
		attempted := store.Key{Spec: spec, Origin: store.OriginGenerated, CreatedAt: now, UpdatedAt: now}
		return authz.KeySpec{}, s.refused(ctx, c, err, "key.create", spec.ID, nil, store.KeyAuditOf(attempted))
	}
	if spec.AppID != "" {
		a, err := s.store.GetApp(ctx, c.AccountID, spec.AppID)
		if errors.Is(err, store.ErrNotFound) {
			return authz.KeySpec{}, fieldError(NotFound, "app_id", "app %q not found", spec.AppID)
		} else if err != nil {
			return authz.KeySpec{}, s.storeError(ctx, "GetApp", quoted("app", spec.AppID), err)
		}
		spec.AppName = a.Name
	}
	if spec.TenantID != "" {
		t, err := s.store.GetTenant(ctx, c.AccountID, spec.TenantID)
		if errors.Is(err, store.ErrNotFound) {
			return authz.KeySpec{}, fieldError(NotFound, "tenant_id", "tenant %q not found", spec.TenantID)
		} else if err != nil {
			return authz.KeySpec{}, s.storeError(ctx, "GetTenant", quoted("tenant", spec.TenantID), err)
		}
		spec.TenantName = t.Name
	}
	return spec, nil
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// GenerateKey creates a key of in.Type with a new generated secret and
// returns the secret (to be shown once) and the stored key.
// The warnings name accepted but suspicious settings (scopeWarnings).
func (s *Service) GenerateKey(ctx context.Context, c Caller, in KeyInput) (Secret, store.Key, Warnings, error) {
	if err := s.check(c); err != nil {
		return "", store.Key{}, nil, err
	}
	op, ok := GenerateOperation(in.Type)
	if !ok {
		return "", store.Key{}, nil, fieldError(InvalidArgument, "type", "required: service, app or account")
	}
	secret, err := apikey.Generate(in.Type.SecretKind())
	if err != nil {
		s.log.Error("account API: generating a secret", "op", op, "err", err)
		return "", store.Key{}, nil, internal()
	}
	k, err := s.createKey(ctx, op, c, in, secret, store.OriginGenerated)
	if err != nil {
		return "", store.Key{}, nil, err
	}
	return Secret(secret), k, s.scopeWarnings(k.Spec.Scope), nil
}

// ImportKey creates a key whose secret the caller supplies (origin
// custom), with GenerateKey's warnings.
func (s *Service) ImportKey(ctx context.Context, c Caller, in KeyInput, secret string) (store.Key, Warnings, error) {
	k, err := s.importKey(ctx, c, in, secret)
	if err != nil {
		return store.Key{}, nil, err
	}
	return k, s.scopeWarnings(k.Spec.Scope), nil
}

func (s *Service) importKey(ctx context.Context, c Caller, in KeyInput, secret string) (store.Key, error) {
	if err := s.check(c); err != nil {
		return store.Key{}, err
	}
	var v Violations
	switch _, ok := GenerateOperation(in.Type); {
	case !ok:
		v.add("type", "required: service or app")
	case in.Type == authz.KeyTypeAccount:
		// An account key controls the account: it is always generated,
		// so that its secret is never one a person chose or reused.
		v.add("type", "account keys are always generated, never imported: use generateAccountAccessKey")
	}
	if err := apikey.ValidateImport(secret); err != nil {
		// The apikey messages never quote the secret.
		v.add("private_key", "%v", err)
	}
	if err := v.err(); err != nil {
		return store.Key{}, err
	}
	return s.createKey(ctx, "ImportKey", c, in, secret, store.OriginCustom)
}

func (s *Service) createKey(ctx context.Context, op string, c Caller, in KeyInput, secret string, origin store.Origin) (store.Key, error) {
	spec, err := s.newKey(ctx, c, in, secret)
	if err != nil {
		return store.Key{}, err
	}
	now := s.now()
	k, err := s.store.CreateKey(ctx, c.Actor, store.Key{Spec: spec, Origin: origin, CreatedAt: now, UpdatedAt: now,
		RoleIDs: store.NormalizeRoleIDs(in.RoleIDs)})
	if errors.Is(err, store.ErrSecretInUse) {
		// Never which key or account holds it (SPEC §9: no oracles).
		return store.Key{}, fieldError(AlreadyExists, "private_key", "this secret cannot be used: choose another, or generate one")
	}
	if err != nil {
		return store.Key{}, s.storeError(ctx, op, fmt.Sprintf("key %q (name %q)", spec.ID, spec.Name), err)
	}
	s.log.Info("account API: key created", "key_id", k.Spec.ID, "type", k.Spec.Type.String(),
		"origin", string(origin), "account_id", c.AccountID, "actor_key_id", c.Actor.KeyID)
	return k, nil
}

// GetKey returns one key of the caller's account.
func (s *Service) GetKey(ctx context.Context, c Caller, id string) (store.Key, error) {
	if err := s.check(c); err != nil {
		return store.Key{}, err
	}
	if err := refError("id", id); err != nil {
		return store.Key{}, err
	}
	k, err := s.store.GetKey(ctx, c.AccountID, id)
	if err != nil {
		return store.Key{}, s.storeError(ctx, "GetKey", quoted("key", id), err)
	}
	return k, nil
}

// ListKeys returns one page of the caller's keys that pass f, and the
// next page's token; the page stops early at MaxListBytes.
func (s *Service) ListKeys(ctx context.Context, c Caller, f KeyFilter, p PageInput) ([]store.Key, string, error) {
	if err := s.check(c); err != nil {
		return nil, "", err
	}
	var v Violations
	v.checkPage(p.Size, p.Token)
	v.checkKeyFilter(&f)
	if err := v.err(); err != nil {
		return nil, "", err
	}
	keys, next, err := pageOf(p, func(pg store.Page) ([]store.Key, string, error) {
		return s.store.ListKeys(ctx, c.AccountID, f, pg)
	}, keyBytes, func(k store.Key) string { return store.KeyToken(k, f.Order) })
	if err != nil {
		return nil, "", s.storeError(ctx, "ListKeys", "page", err)
	}
	return keys, next, nil
}

// checkKeyFilter checks a keys filter (ListKeys', CountKeys').
func (v *Violations) checkKeyFilter(f *KeyFilter) {
	if len(f.AppID) > MaxIDLen {
		v.add("app_id", "longer than %d bytes", MaxIDLen)
	}
	if len(f.TenantID) > MaxIDLen {
		v.add("tenant_id", "longer than %d bytes", MaxIDLen)
	}
	if len(f.Group) > MaxGroupLen {
		v.add("group", "longer than %d bytes", MaxGroupLen)
	}
	if len(f.RoleID) > MaxIDLen {
		v.add("role_id", "longer than %d bytes", MaxIDLen)
	}
	if len(f.NameContains) > MaxNameLen {
		v.add("name_contains", "longer than %d bytes", MaxNameLen)
	}
	if len(f.IDs) > MaxBulkIDs {
		v.add("ids", "more than %d ids", MaxBulkIDs)
	}
	if !f.Order.Valid() {
		v.add("order_by", "unknown sort %q: give created, name, expires or last_used", f.Order.By)
	}
}

// checkKeyUpdate checks the fields an update sets.
func checkKeyUpdate(id string, u *KeyUpdate) error {
	var v Violations
	v.checkRef("id", id)
	if u.Name != nil {
		v.checkName("name", *u.Name, true)
	}
	if u.Description != nil {
		v.checkDescription("description", *u.Description)
	}
	if u.Group != nil {
		v.checkGroup("group", *u.Group)
	}
	if u.Scope != nil {
		sc := authz.CanonicalScope(*u.Scope) // earlier operation names accepted (SPEC §14)
		u.Scope = &sc
		v.checkScope("scope", *u.Scope)
	}
	if u.IPFilters != nil {
		v.checkIPFilters("ip_filters", *u.IPFilters)
	}
	if u.ResponseHeaders != nil {
		v.checkHeaders("response_headers", *u.ResponseHeaders)
	}
	if u.RoleIDs != nil {
		v.checkRoleIDs("role_ids", *u.RoleIDs)
	}
	if u.RateLimit != nil {
		v.checkRateLimit("rate_limit", *u.RateLimit)
	}
	if u.Quota != nil {
		v.checkQuota("quota", *u.Quota)
	}
	return v.err()
}

func emptyKeyUpdate(u *KeyUpdate) bool {
	return u.Name == nil && u.Description == nil && u.Group == nil && u.Scope == nil && u.Active == nil &&
		u.NotBefore == nil && u.ExpiresAt == nil && u.IPFilters == nil && u.ResponseHeaders == nil && u.RoleIDs == nil &&
		u.RateLimit == nil && u.Quota == nil
}

// UpdateKey changes the fields set in u; the resulting key is compiled as
// a whole before anything is written. The warnings name a new scope's
// suspicious patterns (scopeWarnings) and a new expiry that is not in the
// future (accepted: expiring a key at once is legitimate).
func (s *Service) UpdateKey(ctx context.Context, c Caller, id string, u KeyUpdate) (store.Key, Warnings, error) {
	k, err := s.updateKey(ctx, c, id, u)
	if err != nil {
		return store.Key{}, nil, err
	}
	return k, s.updateWarnings(u), nil
}

// updateWarnings are the warnings of the changes u makes.
func (s *Service) updateWarnings(u KeyUpdate) Warnings {
	var w Warnings
	if u.Scope != nil {
		w = s.scopeWarnings(*u.Scope)
	}
	if u.ExpiresAt != nil && !u.ExpiresAt.IsZero() && !u.ExpiresAt.After(s.now()) {
		w = append(w, expiredWarning(*u.ExpiresAt))
	}
	return w
}

func (s *Service) updateKey(ctx context.Context, c Caller, id string, u KeyUpdate) (store.Key, error) {
	if err := s.check(c); err != nil {
		return store.Key{}, err
	}
	if err := checkKeyUpdate(id, &u); err != nil {
		return store.Key{}, err
	}
	attempted := func(k store.Key) *store.KeyAudit {
		k.Spec = u.Apply(k.Spec)
		k.UpdatedAt = s.now()
		return store.KeyAuditOf(k)
	}
	k, err := s.managedKey(ctx, c, id, "key.update", attempted)
	if err != nil {
		return store.Key{}, err
	}
	if emptyKeyUpdate(&u) {
		return k, nil
	}
	// Headers saved under older rules do not block an update that leaves
	// them alone (deactivating the key, say): the data plane drops them.
	compile := authz.Compile
	if u.ResponseHeaders == nil {
		compile = compileStored
	}
	updated, err := compile(u.Apply(k.Spec), s.compile)
	if err != nil {
		var v Violations
		v.compileErrors(err)
		return store.Key{}, v.err()
	}
	// Nor may the key as it would be (a widened scope, or roles), by its
	// effective scope (SPEC §11).
	roleIDs := k.RoleIDs
	if u.RoleIDs != nil {
		roleIDs = *u.RoleIDs
	}
	effective, err := s.effectiveScope(ctx, c, updated.Spec.Type, updated.Scope(), roleIDs)
	if err != nil {
		return store.Key{}, err
	}
	if err := withinCaller(c, updated.Spec.Type, effective); err != nil {
		return store.Key{}, s.refused(ctx, c, err, "key.update", k.Spec.ID, store.KeyAuditOf(k), attempted(k))
	}
	if u.RoleIDs != nil {
		if err := s.keyRoles(ctx, c, k.Spec.Type, "role_ids", *u.RoleIDs); err != nil {
			return store.Key{}, s.refused(ctx, c, err, "key.update", k.Spec.ID, store.KeyAuditOf(k), attempted(k))
		}
	}
	k, err = s.store.UpdateKey(ctx, c.Actor, c.AccountID, id, u)
	if err != nil {
		return store.Key{}, s.storeError(ctx, "UpdateKey", quoted("key", id), err)
	}
	return k, nil
}

// RegenerateKey gives a key a new generated secret of its type. A custom
// (imported) key gets a generated secret too: keygate cannot invent a
// custom one. The old secret stays valid for grace.
func (s *Service) RegenerateKey(ctx context.Context, c Caller, id string, grace time.Duration) (Secret, store.Key, error) {
	if err := s.check(c); err != nil {
		return "", store.Key{}, err
	}
	var v Violations
	v.checkRef("id", id)
	switch {
	case grace < 0:
		v.add("grace_period", "must not be negative")
	case grace > s.maxGrace:
		v.add("grace_period", "at most %s", s.maxGrace)
	}
	if err := v.err(); err != nil {
		return "", store.Key{}, err
	}
	k, err := s.managedKey(ctx, c, id, "key.regenerate", nil)
	if err != nil {
		return "", store.Key{}, err
	}
	secret, err := apikey.Generate(k.Spec.Type.SecretKind())
	if err != nil {
		s.log.Error("account API: generating a secret", "op", "RegenerateKey", "key_id", k.Spec.ID, "err", err)
		return "", store.Key{}, internal()
	}
	now := s.now()
	spec := k.Spec
	spec.Hash = s.hasher.HashString(secret)
	spec.PreviousHash, spec.PreviousValidUntil = "", time.Time{}
	var graceUntil time.Time
	if grace > 0 {
		graceUntil = now.Add(grace)
		old, _, err := apikey.ParseHash(k.Spec.Hash)
		if err == nil && old != s.hasher.Algorithm() {
			return "", store.Key{}, fieldError(FailedPrecondition, "grace_period",
				"the key's secret is hashed with %s but new secrets are hashed with %s, so the old secret cannot stay valid beside the new one; regenerate without a grace period",
				old, s.hasher.Algorithm())
		}
		spec.PreviousHash, spec.PreviousValidUntil = k.Spec.Hash, graceUntil
	}
	// A new secret leaves the response headers as stored.
	if _, err := compileStored(spec, s.compile); err != nil {
		v.compileErrors(err)
		return "", store.Key{}, v.err()
	}
	k, err = s.store.RotateKey(ctx, c.Actor, c.AccountID, k.Spec.ID, spec.Hash, graceUntil)
	if err != nil {
		return "", store.Key{}, s.storeError(ctx, "RotateKey", quoted("key", id), err)
	}
	s.log.Info("account API: key regenerated", "key_id", k.Spec.ID, "grace", grace.String(),
		"account_id", c.AccountID, "actor_key_id", c.Actor.KeyID)
	return Secret(secret), k, nil
}

// managedKey fetches a key the caller is about to change, rotate or
// delete, and refuses it when its rights exceed the caller's (withinCaller):
// reactivating, rotating or removing a stronger key is not the caller's to do.
// A refusal is audited as a denied action on the key, with the key as it
// would have become (change; nil when the call changes no field).
func (s *Service) managedKey(ctx context.Context, c Caller, id, action string, change func(store.Key) *store.KeyAudit) (store.Key, error) {
	k, err := s.store.GetKey(ctx, c.AccountID, id)
	if err != nil {
		return k, s.storeError(ctx, "GetKey", quoted("key", id), err)
	}
	if k.Spec.Type != authz.KeyTypeAccount {
		return k, nil
	}
	own, err := scope.Parse(k.Spec.Scope)
	if err != nil { // stored scopes compiled when they were written
		return k, s.storeError(ctx, "GetKey", quoted("key", id), err)
	}
	// Its rights are its effective scope: its own and its roles' (SPEC §11).
	ks, err := s.effectiveScope(ctx, c, k.Spec.Type, own, k.RoleIDs)
	if err != nil {
		return k, err
	}
	if err := withinCaller(c, k.Spec.Type, ks); err != nil {
		var after *store.KeyAudit
		if change != nil {
			after = change(k)
		}
		return k, s.refused(ctx, c, err, action, k.Spec.ID, store.KeyAuditOf(k), after)
	}
	return k, nil
}

// DeleteKey removes a key and returns it as it was read before the delete.
func (s *Service) DeleteKey(ctx context.Context, c Caller, id string) (store.Key, error) {
	if err := s.check(c); err != nil {
		return store.Key{}, err
	}
	if err := refError("id", id); err != nil {
		return store.Key{}, err
	}
	k, err := s.managedKey(ctx, c, id, "key.delete", nil)
	if err != nil {
		return store.Key{}, err
	}
	if err := s.store.DeleteKey(ctx, c.Actor, c.AccountID, id); err != nil {
		return store.Key{}, s.storeError(ctx, "DeleteKey", quoted("key", id), err)
	}
	return k, nil
}

// compileStored is authz.CompileStored with Compile's signature, for a
// change that keeps a key's stored response headers: those that break
// today's rules are the data plane's to drop, not a reason to refuse it.
func compileStored(spec authz.KeySpec, opts authz.CompileOptions) (*authz.Key, error) {
	k, _, err := authz.CompileStored(spec, opts)
	return k, err
}

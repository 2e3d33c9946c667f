package account

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/scope"
	"github.com/keygate/keygate/pkg/store"
)

// keyInput is what every key-creating request carries.
type keyInput struct {
	typ                                 authz.KeyType
	id, name, description, group, scope string
	appID, tenantID                     string
	active                              *bool
	notBefore, expiresAt                *timestamppb.Timestamp
	ipFilters                           []string
	headers                             []*accountv1.ResponseHeader
}

// newKey validates in, builds the key spec with the hash of secret and
// compiles it as the data plane will, then checks that its app and tenant
// exist in the caller's account. Nothing is written.
func (s *Server) newKey(ctx context.Context, c caller, in keyInput, secret string) (authz.KeySpec, error) {
	var v violations
	v.checkID("id", in.id, false)
	v.checkName("name", in.name, false)
	v.checkDescription("description", in.description)
	v.checkGroup("group", in.group)
	v.checkScope("scope", in.scope)
	v.checkIPFilters("ip_filters", in.ipFilters)
	headers := headersFromProto(in.headers)
	v.checkHeaders("response_headers", headers)
	notBefore := v.timeOf("not_before", in.notBefore)
	expiresAt := v.timeOf("expires_at", in.expiresAt)
	if len(in.appID) > MaxIDLen {
		v.add("app_id", "longer than %d bytes", MaxIDLen)
	}
	if len(in.tenantID) > MaxIDLen {
		v.add("tenant_id", "longer than %d bytes", MaxIDLen)
	}
	if !v.empty() {
		return authz.KeySpec{}, v.err()
	}

	id := in.id
	if id == "" {
		var err error
		if id, err = newID(); err != nil {
			s.log.Error("account API: generating a key id", "err", err)
			return authz.KeySpec{}, status.Error(codes.Internal, "internal error")
		}
	}
	name := in.name
	if name == "" {
		name = id
	}
	active := true
	if in.active != nil {
		active = *in.active
	}
	spec := authz.KeySpec{
		ID:              id,
		Name:            name,
		Type:            in.typ,
		AccountID:       c.accountID,
		AppID:           in.appID,
		TenantID:        in.tenantID,
		Hash:            s.hasher.HashString(secret),
		Scope:           in.scope,
		Active:          active,
		NotBefore:       notBefore,
		ExpiresAt:       expiresAt,
		IPFilters:       append([]string(nil), in.ipFilters...),
		Group:           in.group,
		Description:     in.description,
		ResponseHeaders: headers,
	}
	compiled, err := authz.Compile(spec, s.compile)
	if err != nil {
		v.compileErrors(err)
		return authz.KeySpec{}, v.err()
	}
	if err := withinCaller(c, spec.Type, compiled.Scope()); err != nil {
		return authz.KeySpec{}, err
	}
	if spec.AppID != "" {
		a, err := s.store.GetApp(ctx, c.accountID, spec.AppID)
		if errors.Is(err, store.ErrNotFound) {
			return authz.KeySpec{}, status.Errorf(codes.NotFound, "app_id: app %q not found", spec.AppID)
		} else if err != nil {
			return authz.KeySpec{}, s.storeError(ctx, "GetApp", quoted("app", spec.AppID), err)
		}
		spec.AppName = a.Name
	}
	if spec.TenantID != "" {
		t, err := s.store.GetTenant(ctx, c.accountID, spec.TenantID)
		if errors.Is(err, store.ErrNotFound) {
			return authz.KeySpec{}, status.Errorf(codes.NotFound, "tenant_id: tenant %q not found", spec.TenantID)
		} else if err != nil {
			return authz.KeySpec{}, s.storeError(ctx, "GetTenant", quoted("tenant", spec.TenantID), err)
		}
		spec.TenantName = t.Name
	}
	return spec, nil
}

// generateKey creates a key of in.typ with a new generated secret and
// returns the secret (to be shown once) and the stored key.
func (s *Server) generateKey(ctx context.Context, op string, in keyInput) (string, *accountv1.Key, error) {
	c, err := s.callerFrom(ctx)
	if err != nil {
		return "", nil, err
	}
	secret, err := apikey.Generate(kindOf(in.typ))
	if err != nil {
		s.log.Error("account API: generating a secret", "op", op, "err", err)
		return "", nil, status.Error(codes.Internal, "internal error")
	}
	k, err := s.createKey(ctx, op, c, in, secret, store.OriginGenerated)
	if err != nil {
		return "", nil, err
	}
	return secret, k, nil
}

func (s *Server) createKey(ctx context.Context, op string, c caller, in keyInput, secret string, origin store.Origin) (*accountv1.Key, error) {
	spec, err := s.newKey(ctx, c, in, secret)
	if err != nil {
		return nil, err
	}
	now := s.now()
	k, err := s.store.CreateKey(ctx, c.actor, store.Key{Spec: spec, Origin: origin, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		return nil, s.storeError(ctx, op, fmt.Sprintf("key %q (name %q)", spec.ID, spec.Name), err)
	}
	s.log.Info("account API: key created", "key_id", k.Spec.ID, "type", k.Spec.Type.String(),
		"origin", string(origin), "account_id", c.accountID, "actor_key_id", c.actor.KeyID)
	return keyProto(k, now), nil
}

// GenerateServiceAccessKey creates a tenant-level service key.
func (s *Server) GenerateServiceAccessKey(ctx context.Context, r *accountv1.GenerateServiceAccessKeyRequest) (*accountv1.GenerateServiceAccessKeyResponse, error) {
	secret, k, err := s.generateKey(ctx, "GenerateServiceAccessKey", keyInput{
		typ: authz.KeyTypeService, appID: r.GetAppId(), tenantID: r.GetTenantId(),
		id: r.GetId(), name: r.GetName(), description: r.GetDescription(), group: r.GetGroup(), scope: r.GetScope(),
		active: r.Active, notBefore: r.GetNotBefore(), expiresAt: r.GetExpiresAt(),
		ipFilters: r.GetIpFilters(), headers: r.GetResponseHeaders(),
	})
	if err != nil {
		return nil, err
	}
	return &accountv1.GenerateServiceAccessKeyResponse{PrivateKey: secret, Key: k}, nil
}

// GenerateAppAccessKey creates an app-level key.
func (s *Server) GenerateAppAccessKey(ctx context.Context, r *accountv1.GenerateAppAccessKeyRequest) (*accountv1.GenerateAppAccessKeyResponse, error) {
	secret, k, err := s.generateKey(ctx, "GenerateAppAccessKey", keyInput{
		typ: authz.KeyTypeApp, appID: r.GetAppId(),
		id: r.GetId(), name: r.GetName(), description: r.GetDescription(), group: r.GetGroup(), scope: r.GetScope(),
		active: r.Active, notBefore: r.GetNotBefore(), expiresAt: r.GetExpiresAt(),
		ipFilters: r.GetIpFilters(), headers: r.GetResponseHeaders(),
	})
	if err != nil {
		return nil, err
	}
	return &accountv1.GenerateAppAccessKeyResponse{PrivateKey: secret, Key: k}, nil
}

// GenerateAccountAccessKey creates an account key.
func (s *Server) GenerateAccountAccessKey(ctx context.Context, r *accountv1.GenerateAccountAccessKeyRequest) (*accountv1.GenerateAccountAccessKeyResponse, error) {
	secret, k, err := s.generateKey(ctx, "GenerateAccountAccessKey", keyInput{
		typ: authz.KeyTypeAccount,
		id:  r.GetId(), name: r.GetName(), description: r.GetDescription(), group: r.GetGroup(), scope: r.GetScope(),
		active: r.Active, notBefore: r.GetNotBefore(), expiresAt: r.GetExpiresAt(),
		ipFilters: r.GetIpFilters(), headers: r.GetResponseHeaders(),
	})
	if err != nil {
		return nil, err
	}
	return &accountv1.GenerateAccountAccessKeyResponse{PrivateKey: secret, Key: k}, nil
}

// ImportKey creates a key whose secret the caller supplies (origin custom).
func (s *Server) ImportKey(ctx context.Context, r *accountv1.ImportKeyRequest) (*accountv1.ImportKeyResponse, error) {
	c, err := s.callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	var v violations
	typ, ok := KeyTypeFromProto(r.GetType())
	if !ok {
		v.add("type", "required: KEY_TYPE_SERVICE, KEY_TYPE_APP or KEY_TYPE_ACCOUNT")
	}
	if err := apikey.ValidateCustom(r.GetPrivateKey()); err != nil {
		// The apikey messages never quote the secret.
		v.add("private_key", "%v", err)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	k, err := s.createKey(ctx, "ImportKey", c, keyInput{
		typ: typ, appID: r.GetAppId(), tenantID: r.GetTenantId(),
		id: r.GetId(), name: r.GetName(), description: r.GetDescription(), group: r.GetGroup(), scope: r.GetScope(),
		active: r.Active, notBefore: r.GetNotBefore(), expiresAt: r.GetExpiresAt(),
		ipFilters: r.GetIpFilters(), headers: r.GetResponseHeaders(),
	}, r.GetPrivateKey(), store.OriginCustom)
	if err != nil {
		return nil, err
	}
	return &accountv1.ImportKeyResponse{Key: k}, nil
}

// GetKey returns one key of the caller's account.
func (s *Server) GetKey(ctx context.Context, r *accountv1.GetKeyRequest) (*accountv1.GetKeyResponse, error) {
	c, err := s.callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	if err := refError("id", r.GetId()); err != nil {
		return nil, err
	}
	k, err := s.store.GetKey(ctx, c.accountID, r.GetId())
	if err != nil {
		return nil, s.storeError(ctx, "GetKey", quoted("key", r.GetId()), err)
	}
	return &accountv1.GetKeyResponse{Key: keyProto(k, s.now())}, nil
}

// ListKeys returns one page of the caller's keys that pass the filters.
func (s *Server) ListKeys(ctx context.Context, r *accountv1.ListKeysRequest) (*accountv1.ListKeysResponse, error) {
	c, err := s.callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	var v violations
	v.checkPage(r.GetPageSize(), r.GetPageToken())
	if len(r.GetAppId()) > MaxIDLen {
		v.add("app_id", "longer than %d bytes", MaxIDLen)
	}
	if len(r.GetTenantId()) > MaxIDLen {
		v.add("tenant_id", "longer than %d bytes", MaxIDLen)
	}
	if len(r.GetGroup()) > MaxGroupLen {
		v.add("group", "longer than %d bytes", MaxGroupLen)
	}
	f := store.KeyFilter{
		AppID:          r.GetAppId(),
		TenantID:       r.GetTenantId(),
		Group:          r.GetGroup(),
		Active:         r.Active,
		ExpiringBefore: v.timeOf("expiring_before", r.GetExpiringBefore()),
		UnusedSince:    v.timeOf("unused_since", r.GetUnusedSince()),
	}
	if r.GetType() != accountv1.KeyType_KEY_TYPE_UNSPECIFIED {
		t, ok := KeyTypeFromProto(r.GetType())
		if !ok {
			v.add("type", "unknown key type %d", r.GetType())
		}
		f.Type = t
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	keys, next, err := s.store.ListKeys(ctx, c.accountID, f, store.Page{Size: int(r.GetPageSize()), Token: r.GetPageToken()})
	if err != nil {
		return nil, s.storeError(ctx, "ListKeys", "page", err)
	}
	now := s.now()
	out := &accountv1.ListKeysResponse{NextPageToken: next, Keys: make([]*accountv1.Key, len(keys))}
	for i, k := range keys {
		out.Keys[i] = keyProto(k, now)
	}
	return out, nil
}

// keyUpdate checks an UpdateKeyRequest and returns the store update.
func keyUpdate(r *accountv1.UpdateKeyRequest) (store.KeyUpdate, error) {
	var v violations
	var u store.KeyUpdate
	v.checkRef("id", r.GetId())
	if r.Name != nil {
		v.checkName("name", *r.Name, true)
		u.Name = r.Name
	}
	if r.Description != nil {
		v.checkDescription("description", *r.Description)
		u.Description = r.Description
	}
	if r.Group != nil {
		v.checkGroup("group", *r.Group)
		u.Group = r.Group
	}
	if r.Scope != nil {
		v.checkScope("scope", *r.Scope)
		u.Scope = r.Scope
	}
	u.Active = r.Active
	switch {
	case r.NotBefore != nil && r.GetClearNotBefore():
		v.add("not_before", "set together with clear_not_before")
	case r.NotBefore != nil:
		u.NotBefore = ptr(v.timeOf("not_before", r.NotBefore))
	case r.GetClearNotBefore():
		u.NotBefore = &time.Time{}
	}
	switch {
	case r.ExpiresAt != nil && r.GetClearExpiresAt():
		v.add("expires_at", "set together with clear_expires_at")
	case r.ExpiresAt != nil:
		u.ExpiresAt = ptr(v.timeOf("expires_at", r.ExpiresAt))
	case r.GetClearExpiresAt():
		u.ExpiresAt = &time.Time{}
	}
	if r.IpFilters != nil {
		f := append([]string{}, r.IpFilters.GetFilters()...)
		v.checkIPFilters("ip_filters", f)
		u.IPFilters = &f
	}
	if r.ResponseHeaders != nil {
		h := headersFromProto(r.ResponseHeaders.GetHeaders())
		if h == nil {
			h = []authz.HeaderSpec{}
		}
		v.checkHeaders("response_headers", h)
		u.ResponseHeaders = &h
	}
	return u, v.err()
}

func emptyKeyUpdate(u *store.KeyUpdate) bool {
	return u.Name == nil && u.Description == nil && u.Group == nil && u.Scope == nil && u.Active == nil &&
		u.NotBefore == nil && u.ExpiresAt == nil && u.IPFilters == nil && u.ResponseHeaders == nil
}

// UpdateKey changes the fields present; the resulting key is compiled as a
// whole before anything is written.
func (s *Server) UpdateKey(ctx context.Context, r *accountv1.UpdateKeyRequest) (*accountv1.UpdateKeyResponse, error) {
	c, err := s.callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	u, err := keyUpdate(r)
	if err != nil {
		return nil, err
	}
	what := quoted("key", r.GetId())
	k, err := s.managedKey(ctx, c, r.GetId())
	if err != nil {
		return nil, err
	}
	if emptyKeyUpdate(&u) {
		return &accountv1.UpdateKeyResponse{Key: keyProto(k, s.now())}, nil
	}
	// Headers saved under older rules do not block an update that leaves
	// them alone (deactivating the key, say): the data plane drops them.
	compile := authz.Compile
	if u.ResponseHeaders == nil {
		compile = compileStored
	}
	updated, err := compile(u.Apply(k.Spec), s.compile)
	if err != nil {
		var v violations
		v.compileErrors(err)
		return nil, v.err()
	}
	// Nor may the key as it would be (a widened scope).
	if err := withinCaller(c, updated.Spec.Type, updated.Scope()); err != nil {
		return nil, err
	}
	k, err = s.store.UpdateKey(ctx, c.actor, c.accountID, r.GetId(), u)
	if err != nil {
		return nil, s.storeError(ctx, "UpdateKey", what, err)
	}
	return &accountv1.UpdateKeyResponse{Key: keyProto(k, s.now())}, nil
}

// RegenerateKey gives a key a new generated secret of its type. A custom
// (imported) key gets a generated secret too: keygate cannot invent a
// custom one. The old secret stays valid for the grace period.
func (s *Server) RegenerateKey(ctx context.Context, r *accountv1.RegenerateKeyRequest) (*accountv1.RegenerateKeyResponse, error) {
	c, err := s.callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	var v violations
	v.checkRef("id", r.GetId())
	var grace time.Duration
	if g := r.GetGracePeriod(); g != nil {
		if err := g.CheckValid(); err != nil {
			v.add("grace_period", "not a valid duration")
		} else if grace = g.AsDuration(); grace < 0 {
			v.add("grace_period", "must not be negative")
		} else if grace > s.maxGrace {
			v.add("grace_period", "at most %s", s.maxGrace)
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	what := quoted("key", r.GetId())
	k, err := s.managedKey(ctx, c, r.GetId())
	if err != nil {
		return nil, err
	}
	kind := kindOf(k.Spec.Type)
	secret, err := apikey.Generate(kind)
	if err != nil {
		s.log.Error("account API: generating a secret", "op", "RegenerateKey", "key_id", k.Spec.ID, "err", err)
		return nil, status.Error(codes.Internal, "internal error")
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
			return nil, status.Errorf(codes.FailedPrecondition,
				"grace_period: the key's secret is hashed with %s but new secrets are hashed with %s, so the old secret cannot stay valid beside the new one; regenerate without a grace period",
				old, s.hasher.Algorithm())
		}
		spec.PreviousHash, spec.PreviousValidUntil = k.Spec.Hash, graceUntil
	}
	// A new secret leaves the response headers as stored.
	if _, err := compileStored(spec, s.compile); err != nil {
		v.compileErrors(err)
		return nil, v.err()
	}
	k, err = s.store.RotateKey(ctx, c.actor, c.accountID, k.Spec.ID, spec.Hash, graceUntil)
	if err != nil {
		return nil, s.storeError(ctx, "RotateKey", what, err)
	}
	s.log.Info("account API: key regenerated", "key_id", k.Spec.ID, "grace", grace.String(),
		"account_id", c.accountID, "actor_key_id", c.actor.KeyID)
	return &accountv1.RegenerateKeyResponse{PrivateKey: secret, Key: keyProto(k, now)}, nil
}

// managedKey fetches a key the caller is about to change, rotate or
// delete, and refuses it when its rights exceed the caller's (withinCaller):
// reactivating, rotating or removing a stronger key is not the caller's to do.
func (s *Server) managedKey(ctx context.Context, c caller, id string) (store.Key, error) {
	k, err := s.store.GetKey(ctx, c.accountID, id)
	if err != nil {
		return k, s.storeError(ctx, "GetKey", quoted("key", id), err)
	}
	if k.Spec.Type != authz.KeyTypeAccount {
		return k, nil
	}
	ks, err := scope.Parse(k.Spec.Scope)
	if err != nil { // stored scopes compiled when they were written
		return k, s.storeError(ctx, "GetKey", quoted("key", id), err)
	}
	return k, withinCaller(c, k.Spec.Type, ks)
}

// DeleteKey removes a key.
func (s *Server) DeleteKey(ctx context.Context, r *accountv1.DeleteKeyRequest) (*accountv1.DeleteKeyResponse, error) {
	c, err := s.callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	if err := refError("id", r.GetId()); err != nil {
		return nil, err
	}
	if _, err := s.managedKey(ctx, c, r.GetId()); err != nil {
		return nil, err
	}
	if err := s.store.DeleteKey(ctx, c.actor, c.accountID, r.GetId()); err != nil {
		return nil, s.storeError(ctx, "DeleteKey", quoted("key", r.GetId()), err)
	}
	return &accountv1.DeleteKeyResponse{}, nil
}

// ListAuditEvents returns one page of the caller's audit log.
func (s *Server) ListAuditEvents(ctx context.Context, r *accountv1.ListAuditEventsRequest) (*accountv1.ListAuditEventsResponse, error) {
	c, err := s.callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	if err := pageError(r.GetPageSize(), r.GetPageToken()); err != nil {
		return nil, err
	}
	evs, next, err := s.store.ListAuditEvents(ctx, c.accountID, store.Page{Size: int(r.GetPageSize()), Token: r.GetPageToken()})
	if err != nil {
		return nil, s.storeError(ctx, "ListAuditEvents", "page", err)
	}
	out := &accountv1.ListAuditEventsResponse{NextPageToken: next, Events: make([]*accountv1.AuditEvent, len(evs))}
	for i, e := range evs {
		pe := &accountv1.AuditEvent{
			Id:           e.ID,
			Time:         ts(e.At),
			ActorKeyId:   e.Actor.KeyID,
			ActorKeyName: e.Actor.KeyName,
			Action:       e.Action,
			ObjectType:   e.ObjectType,
			ObjectId:     e.ObjectID,
		}
		if pe.Before, err = jsonStruct(e.Before); err != nil {
			s.log.Warn("account API: audit event with a before that is not a JSON object", "event_id", e.ID, "err", err)
		}
		if pe.After, err = jsonStruct(e.After); err != nil {
			s.log.Warn("account API: audit event with an after that is not a JSON object", "event_id", e.ID, "err", err)
		}
		out.Events[i] = pe
	}
	return out, nil
}

// compileStored is authz.CompileStored with Compile's signature, for a
// change that keeps a key's stored response headers: those that break
// today's rules are the data plane's to drop, not a reason to refuse it.
func compileStored(spec authz.KeySpec, opts authz.CompileOptions) (*authz.Key, error) {
	k, _, err := authz.CompileStored(spec, opts)
	return k, err
}

package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// Denials is the cache's index of service access denials (SPEC §11, row
// 9): loaded with the keys (Warm, and every reload after a truncated
// feed) and kept current by the change feed. Give it to the engine
// (authz.Engine.Denials); it is never nil.
func (c *Cache) Denials() *authz.DenialIndex { return c.denials }

// compileDenial compiles a stored denial (authz.CompileStoredDenial):
// one whose reason the rule refuses (written before it, or past the
// Account API) still blocks what its scope names, with a generic reason;
// one that does not compile otherwise blocks everything of its tenant and
// app, since skipping it would let through what it was written to block.
// Either is logged by id.
func (c *Cache) compileDenial(d store.Denial) *authz.CompiledDenial {
	cd, fallback, err := authz.CompileStoredDenial(authz.Denial{ID: d.ID, AccountID: d.AccountID, TenantID: d.TenantID,
		AppID: d.AppID, Scope: d.Scope, Reason: d.Reason})
	var msg string
	switch fallback {
	case authz.StoredDenialAsWritten:
		return cd
	case authz.StoredDenialGenericReason:
		msg = "stored service access denial has a reason the rules refuse; it blocks what its scope names with a generic reason until its reason is fixed (keygate denials update --reason)"
	default:
		msg = "stored service access denial does not compile; it blocks every operation of its tenant and app until fixed"
	}
	c.log.Error(msg, "account_id", d.AccountID, "denial_id", d.ID, "tenant_id", d.TenantID, "app_id", d.AppID,
		"error", strings.ReplaceAll(err.Error(), "\n", "; "))
	return cd // nil without a tenant or app: it could block nothing anyway
}

// loadDenials reads every denial. It runs right after LoadAll: a denial
// written after LoadAll's snapshot is then either read here or on the
// feed after the watermark (and re-read, idempotently), never missed.
func (c *Cache) loadDenials(ctx context.Context) ([]*authz.CompiledDenial, error) {
	if c.access == nil {
		return nil, nil
	}
	var out []*authz.CompiledDenial
	err := c.access.LoadDenials(ctx, func(d store.Denial) error {
		if cd := c.compileDenial(d); cd != nil {
			out = append(out, cd)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cache: load denials: %w", err)
	}
	return out, nil
}

// applyDenials applies denial changes: each denial is read again and put
// in the index, or deleted from it when gone, in one atomic batch. A new
// denial is a revocation: catchUp applies these ahead of app, tenant and
// role changes, and applyUrgent while one of those is being read.
func (c *Cache) applyDenials(ctx context.Context, pass []*store.Change) error {
	if c.access == nil {
		return nil
	}
	seen := map[authz.DenialRef]bool{}
	var (
		put []*authz.CompiledDenial
		del []authz.DenialRef
	)
	for _, ch := range pass {
		ref := authz.DenialRef{AccountID: ch.AccountID, ID: ch.ID}
		if seen[ref] {
			continue
		}
		seen[ref] = true
		d, err := c.access.LookupDenial(ctx, ch.AccountID, ch.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			del = append(del, ref)
		case err != nil:
			return fmt.Errorf("denial %s: %w", ch.ID, err)
		default:
			if cd := c.compileDenial(d); cd != nil {
				put = append(put, cd)
			} else {
				del = append(del, ref)
			}
		}
	}
	c.denials.Apply(put, del)
	return nil
}

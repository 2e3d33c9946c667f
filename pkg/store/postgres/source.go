package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// LookupKey finds the key whose current or previous digest is d, compiled,
// with Spec.Active false when its app or tenant is inactive. A previous
// digest past its grace period is still returned: authz.Key.Matches
// refuses it. No key: authz.ErrKeyNotFound.
func (s *Store) LookupKey(ctx context.Context, d apikey.Digest) (*authz.Key, error) {
	// Both indexes can answer (a BitmapOr); the trigger keeps a digest from
	// being current for one key and previous for another, and ORDER BY is
	// the belt to those braces.
	return s.lookup(ctx, dataKeyQuery+` WHERE k.digest = $1 OR k.previous_digest = $1
		ORDER BY k.digest = $1 DESC LIMIT 1`, d[:])
}

// LookupKeyByID is LookupKey by account and key id.
func (s *Store) LookupKeyByID(ctx context.Context, accountID, id string) (*authz.Key, error) {
	return s.lookup(ctx, dataKeyQuery+` WHERE k.account_id = $1 AND k.id = $2`, accountID, id)
}

// LookupKeysByID reads many keys in one statement; keys that no longer
// exist are left out.
func (s *Store) LookupKeysByID(ctx context.Context, refs []store.KeyRef) ([]*authz.Key, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	accounts, ids := refColumns(refs)
	return s.lookupMany(ctx, dataKeyQuery+`
		JOIN unnest($1::text[], $2::text[]) AS r(account_id, id) ON k.account_id = r.account_id AND k.id = r.id`,
		accounts, ids)
}

// LookupKeysOfParent reads every key of an app or tenant in one statement:
// an app's or tenant's change is one feed entry, applied to its keys at once.
func (s *Store) LookupKeysOfParent(ctx context.Context, accountID string, kind store.ChangeKind, id string) ([]*authz.Key, error) {
	switch kind {
	case store.ChangeApp:
		return s.lookupMany(ctx, dataKeyQuery+` WHERE k.account_id = $1 AND k.app_id = $2`, accountID, id)
	case store.ChangeTenant:
		return s.lookupMany(ctx, dataKeyQuery+` WHERE k.account_id = $1 AND k.tenant_id = $2`, accountID, id)
	case store.ChangeRole:
		// The keys holding the role now (a deleted role's keys were each
		// changed on the feed when it was taken from them).
		return s.lookupMany(ctx, dataKeyQuery+` WHERE k.account_id = $1 AND EXISTS (SELECT 1 FROM key_roles h
			WHERE h.account_id = k.account_id AND h.key_id = k.id AND h.role_id = $2)`, accountID, id)
	case store.ChangeDenial:
		// A denial changes no key record: the reader applies it to its
		// denials (LookupDenial).
		return nil, nil
	}
	return nil, fmt.Errorf("postgres: keys of a %q: not an app or a tenant", kind)
}

// dataPlaneCompile is how keys are compiled for the data plane: sharing
// compiled scopes with every other key of the store (s.scopes), so that
// the keys a miss loads one at a time share them as a bulk load's do.
func (s *Store) dataPlaneCompile() authz.CompileOptions {
	opts := s.opts.Compile
	opts.Scopes = &s.scopes
	return opts
}

// lookupMany compiles every key a data-plane query returns. Keys of one
// parent share compiled scopes, as in LoadAll.
func (s *Store) lookupMany(ctx context.Context, sql string, args ...any) ([]*authz.Key, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: look up keys: %w", err)
	}
	defer rows.Close()
	var out []*authz.Key
	for rows.Next() {
		k, err := s.scanCompiled(rows, s.dataPlaneCompile(), &s.roles)
		if err != nil {
			return nil, fmt.Errorf("postgres: look up keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: look up keys: %w", err)
	}
	return out, nil
}

// FeedHead is the highest change-feed seq committed (an index-only read).
func (s *Store) FeedHead(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM key_changes`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("postgres: read the feed head: %w", err)
	}
	return seq, nil
}

func (s *Store) lookup(ctx context.Context, sql string, args ...any) (*authz.Key, error) {
	k, err := s.scanCompiled(s.pool.QueryRow(ctx, sql, args...), s.dataPlaneCompile(), &s.roles)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, authz.ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: look up key: %w", err)
	}
	return k, nil
}

// LoadAll streams every key, compiled, to fn from one REPEATABLE READ
// snapshot, and returns the highest change-feed seq that snapshot holds:
// every change after it comes from ChangesSince(seq). Rows are read and
// compiled one at a time; only fn decides what stays in memory. An error
// from fn stops the load and is returned.
func (s *Store) LoadAll(ctx context.Context, fn func(*authz.Key) error) (seq int64, err error) {
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			// The first statement takes the snapshot both queries read.
			if err := tx.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM key_changes`).Scan(&seq); err != nil {
				return fmt.Errorf("postgres: load keys: %w", err)
			}
			rows, err := tx.Query(ctx, dataKeyQuery)
			if err != nil {
				return fmt.Errorf("postgres: load keys: %w", err)
			}
			defer rows.Close()
			// Keys of a bulk load share compiled scopes: most keys have one
			// of a few scopes, and a million copies would dominate memory.
			opts := s.dataPlaneCompile()
			for rows.Next() {
				k, err := s.scanCompiled(rows, opts, &s.roles)
				if err != nil {
					return fmt.Errorf("postgres: load keys: %w", err)
				}
				if err := fn(k); err != nil {
					return err
				}
			}
			if err := rows.Err(); err != nil {
				return fmt.Errorf("postgres: load keys: %w", err)
			}
			return nil
		})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// RevocationsSince returns up to limit key and denial changes with seq >
// after that may revoke, in seq order: what a replica applies ahead of a
// backlog (see cache.Cache's catch-up). The primary key's range from
// after serves it; the rows a bulk leaves behind are skipped in the scan.
func (s *Store) RevocationsSince(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, account_id, kind, object_id, old_hashes, revokes, at
		FROM key_changes WHERE seq > $1 AND revokes AND kind IN ('key', 'denial')
		ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: read revocations: %w", err)
	}
	defer rows.Close()
	var out []store.Change
	for rows.Next() {
		var (
			seq                   int64
			account, kind, object string
			hashes                []string
			revokes               bool
			at                    *time.Time
		)
		if err := rows.Scan(&seq, &account, &kind, &object, &hashes, &revokes, &at); err != nil {
			return nil, fmt.Errorf("postgres: read revocations: %w", err)
		}
		c, err := changeOf(seq, account, kind, object, hashes, revokes, at)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read revocations: %w", err)
	}
	return out, nil
}

// changeOf is a key_changes row as a store.Change.
func changeOf(seq int64, account, kind, object string, hashes []string, revokes bool, at *time.Time) (store.Change, error) {
	c := store.Change{Seq: seq, AccountID: account, Kind: store.ChangeKind(kind), ID: object, Revokes: revokes}
	if at != nil {
		c.At = *at
	}
	for _, h := range hashes {
		_, d, err := apikey.ParseHash(h)
		if err != nil {
			return store.Change{}, fmt.Errorf("postgres: change %d: old hash: %w", seq, err)
		}
		c.OldDigest = append(c.OldDigest, d)
	}
	return c, nil
}

// ChangesSince returns up to limit changes with seq > after, in seq order.
// When pruning has removed changes after `after`, it returns
// ErrChangesPruned: the caller must LoadAll again.
func (s *Store) ChangesSince(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	if limit <= 0 {
		limit = 1000
	}
	// One statement, one snapshot: the pruning mark and the rows agree.
	rows, err := s.pool.Query(ctx, `SELECT coalesce((SELECT through_seq FROM key_changes_pruned), 0),
			c.seq, c.account_id, c.kind, c.object_id, c.old_hashes, c.revokes, c.at
		FROM (VALUES (1)) AS one (x)
		LEFT JOIN LATERAL (
			SELECT seq, account_id, kind, object_id, old_hashes, revokes, at FROM key_changes
			WHERE seq > $1 ORDER BY seq LIMIT $2) c ON true
		ORDER BY c.seq`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: read changes: %w", err)
	}
	defer rows.Close()
	var out []store.Change
	for rows.Next() {
		var (
			pruned                int64
			seq                   *int64
			account, kind, object *string
			hashes                []string
			revokes               *bool
			at                    *time.Time
		)
		if err := rows.Scan(&pruned, &seq, &account, &kind, &object, &hashes, &revokes, &at); err != nil {
			return nil, fmt.Errorf("postgres: read changes: %w", err)
		}
		if after < pruned {
			return nil, ErrChangesPruned
		}
		if seq == nil {
			continue // no changes: the LEFT JOIN's empty row
		}
		c, err := changeOf(*seq, *account, *kind, *object, hashes, *revokes, at)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read changes: %w", err)
	}
	return out, nil
}

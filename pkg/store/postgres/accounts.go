package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// CreateAccount creates an account and audits it ("account.create").
func (s *Store) CreateAccount(ctx context.Context, actor store.Actor, a store.Account) (store.Account, error) {
	var out store.Account
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO accounts (id, name, created_at)
			VALUES (coalesce(nullif($1, ''), gen_random_uuid()::text), $2, $3)
			RETURNING id, name, created_at`, a.ID, a.Name, s.now()).Scan(&out.ID, &out.Name, &out.CreatedAt)
		if err != nil {
			return mapError(err, subject{ID: a.ID, Name: a.Name, AccountID: a.ID})
		}
		out.CreatedAt = out.CreatedAt.UTC()
		return s.audit(ctx, tx, actor, out.ID, "account.create", "account", out.ID, nil,
			&store.AccountAudit{ID: out.ID, Name: out.Name, CreatedAt: out.CreatedAt})
	})
	return out, err
}

// GetAccount reads an account.
func (s *Store) GetAccount(ctx context.Context, id string) (store.Account, error) {
	var a store.Account
	err := s.reads().QueryRow(ctx, `SELECT id, name, created_at FROM accounts WHERE id = $1`, id).
		Scan(&a.ID, &a.Name, &a.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, notFound("account %q not found", id)
	}
	if err != nil {
		return a, fmt.Errorf("postgres: read account: %w", err)
	}
	a.CreatedAt = a.CreatedAt.UTC()
	return a, nil
}

// BootstrapActor is the actor Bootstrap's audit events name.
var BootstrapActor = store.Actor{KeyName: "bootstrap"}

// Bootstrap creates the account (unless it exists; an empty accountID
// creates one with a generated id) and an account key named keyName with
// the given hash and scope "account-api" (the whole Account API), in one
// transaction audited with actor "bootstrap". A key of that name in the
// account already: store.ErrAlreadyExists.
func (s *Store) Bootstrap(ctx context.Context, accountID, accountName, keyName, hash string) (keyID string, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var created time.Time
		err := tx.QueryRow(ctx, `INSERT INTO accounts (id, name, created_at)
			VALUES (coalesce(nullif($1, ''), gen_random_uuid()::text), $2, $3)
			ON CONFLICT (id) DO NOTHING
			RETURNING id, created_at`, accountID, accountName, s.now()).Scan(&accountID, &created)
		switch {
		case err == nil:
			if err := s.audit(ctx, tx, BootstrapActor, accountID, "account.create", "account", accountID, nil,
				&store.AccountAudit{ID: accountID, Name: accountName, CreatedAt: created.UTC()}); err != nil {
				return err
			}
		case errors.Is(err, pgx.ErrNoRows): // the account exists
		default:
			return mapError(err, subject{ID: accountID, Name: accountName, AccountID: accountID})
		}
		k, err := s.createKey(ctx, tx, BootstrapActor, store.Key{
			Spec: authz.KeySpec{
				AccountID: accountID,
				Name:      keyName,
				Type:      authz.KeyTypeAccount,
				Hash:      hash,
				Scope:     authz.AccountAPIService,
				Active:    true,
			},
			Origin: store.OriginGenerated,
		})
		keyID = k.Spec.ID
		return err
	})
	if err != nil {
		return "", err
	}
	return keyID, nil
}

// audit writes one audit event in tx. before and after are marshalled to
// JSON; nil stays SQL NULL.
func (s *Store) audit(ctx context.Context, tx pgx.Tx, actor store.Actor, accountID, action, objectType, objectID string, before, after any) error {
	return s.auditMany(ctx, tx, actor, accountID, action, objectType, []string{objectID}, []any{before}, []any{after})
}

// auditMany writes one audit event per object of ids, with the befores and
// afters of the same index, in one statement and in that order.
func (s *Store) auditMany(ctx context.Context, tx pgx.Tx, actor store.Actor, accountID, action, objectType string, ids []string, before, after []any) error {
	bs, as := make([]*string, len(ids)), make([]*string, len(ids))
	for i := range ids {
		var err error
		if bs[i], err = auditJSON(before[i]); err != nil {
			return err
		}
		if as[i], err = auditJSON(after[i]); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO audit_events (account_id, at, actor_key_id, actor_key_name,
			action, object_type, object_id, before, after)
		SELECT $1, $2, $3, $4, $5, $6, e.id, e.before::jsonb, e.after::jsonb
		FROM unnest($7::text[], $8::text[], $9::text[]) WITH ORDINALITY AS e(id, before, after, n)
		ORDER BY e.n`,
		accountID, s.now(), actor.KeyID, actor.KeyName, action, objectType, ids, bs, as)
	if err != nil {
		return fmt.Errorf("postgres: write audit events: %w", err)
	}
	return nil
}

// auditJSON marshals v, or returns nil (SQL NULL) for a nil value.
func auditJSON(v any) (*string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case *store.KeyAudit:
		if x == nil {
			return nil, nil
		}
	case *store.ParentAudit:
		if x == nil {
			return nil, nil
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("postgres: audit event: %w", err)
	}
	s := string(b)
	return &s, nil
}

// RecordDenied writes an audit event with outcome denied: a call the
// Account API refused. It is its own transaction: nothing else was written.
func (s *Store) RecordDenied(ctx context.Context, actor store.Actor, accountID string, e store.DeniedEvent) error {
	b, err := auditJSON(e.Before)
	if err != nil {
		return err
	}
	a, err := auditJSON(e.After)
	if err != nil {
		return err
	}
	_, err = s.reads().Exec(ctx, `INSERT INTO audit_events (account_id, at, actor_key_id, actor_key_name,
			action, object_type, object_id, before, after, outcome, reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, 'denied', $10)`,
		accountID, s.now(), actor.KeyID, actor.KeyName, e.Action, e.ObjectType, e.ObjectID, b, a, e.Reason)
	if err != nil {
		return fmt.Errorf("postgres: write audit event: %w", err)
	}
	return nil
}

// ListAuditEvents lists an account's audit events that pass f, newest
// first in (at, id) order. Only the filters set become conditions, so
// that each query is an index range scan of migration 0005's indexes
// (a generic plan of "$n = ” OR col = $n" could not use them).
func (s *Store) ListAuditEvents(ctx context.Context, accountID string, f store.AuditFilter, p store.Page) ([]store.AuditEvent, string, error) {
	size, after, err := store.ReadPage(p)
	if err != nil {
		return nil, "", err
	}
	var pos *auditPosition
	if after != nil {
		if after.Seq <= 0 {
			return nil, "", invalid("page_token: not a token this list returned")
		}
		pos = &auditPosition{at: after.CreatedAtTime(), id: after.Seq}
		if after.CreatedAt == 0 {
			// A token of the id-ordered listing before migration 0005:
			// the position of the event it names.
			err := s.reads().QueryRow(ctx, `SELECT at FROM audit_events WHERE account_id = $1 AND id = $2`,
				accountID, after.Seq).Scan(&pos.at)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil, "", invalid("page_token: not a token this list returned")
			} else if err != nil {
				return nil, "", fmt.Errorf("postgres: list audit events: %w", err)
			}
		}
	}
	sql, args := auditQuery(accountID, f, pos, size+1)
	rows, err := s.reads().Query(ctx, sql, args...)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list audit events: %w", err)
	}
	defer rows.Close()
	var evs []store.AuditEvent
	for rows.Next() {
		var e store.AuditEvent
		var b, a []byte
		if err := rows.Scan(&e.ID, &e.AccountID, &e.At, &e.Actor.KeyID, &e.Actor.KeyName,
			&e.Action, &e.ObjectType, &e.ObjectID, &b, &a, &e.Outcome, &e.Reason); err != nil {
			return nil, "", fmt.Errorf("postgres: list audit events: %w", err)
		}
		e.At = e.At.UTC()
		if b != nil {
			e.Before = json.RawMessage(b)
		}
		if a != nil {
			e.After = json.RawMessage(a)
		}
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("postgres: list audit events: %w", err)
	}
	var next string
	if len(evs) > size {
		evs = evs[:size]
		next = store.AuditToken(evs[size-1])
	}
	return evs, next, nil
}

// auditPosition is where a page of the audit log starts after.
type auditPosition struct {
	at time.Time
	id int64
}

// auditQuery is the SELECT of one page of limit events of the account
// that pass f, after pos (nil: from the newest).
func auditQuery(accountID string, f store.AuditFilter, pos *auditPosition, limit int) (string, []any) {
	args := []any{accountID}
	where := []string{"account_id = $1"}
	cond := func(sql string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(sql, "$?", fmt.Sprintf("$%d", len(args))))
	}
	if pos != nil {
		args = append(args, pos.at, pos.id)
		where = append(where, fmt.Sprintf("(at, id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	if f.KeyID != "" {
		cond("object_type = 'key' AND object_id = $?", f.KeyID)
	}
	if f.ActorKeyID != "" {
		cond("actor_key_id = $?", f.ActorKeyID)
	}
	if f.Action != "" {
		cond("action = $?", f.Action)
	}
	if f.ActionGroup != "" {
		cond("split_part(action, '.', 1) = $?", f.ActionGroup)
	}
	switch f.Outcome {
	case "":
	case store.OutcomeDenied:
		where = append(where, "outcome = 'denied'") // the partial index's predicate
	default:
		cond("outcome = $?", f.Outcome)
	}
	if !f.Since.IsZero() {
		cond("at >= $?", f.Since)
	}
	if !f.Until.IsZero() {
		cond("at < $?", f.Until)
	}
	args = append(args, limit)
	return `SELECT id, account_id, at, actor_key_id, actor_key_name,
			action, object_type, object_id, before, after, outcome, reason
		FROM audit_events
		WHERE ` + strings.Join(where, " AND ") + `
		ORDER BY at DESC, id DESC LIMIT $` + strconv.Itoa(len(args)), args
}

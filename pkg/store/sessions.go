package store

import (
	"context"
	"time"
)

// Session is a console session (SPEC §15) as stored: the account key it
// was opened with, by id, and the SHA-256 of the session's secret, never
// the secret itself (the browser's cookie holds it), so that a copy of
// the table opens no session.
type Session struct {
	ID         string
	SecretHash []byte
	AccountID  string
	KeyID      string
	CreatedAt  time.Time
	LastSeenAt time.Time
}

// Sessions keeps console sessions where every replica finds them.
type Sessions interface {
	// CreateSession stores a new session and deletes those created before
	// staleBefore or idle since idleBefore (any replica sweeps).
	CreateSession(ctx context.Context, s Session, staleBefore, idleBefore time.Time) error
	// GetSession returns a session by id; ErrNotFound when there is none.
	GetSession(ctx context.Context, id string) (Session, error)
	// TouchSession records a request of the session at at.
	TouchSession(ctx context.Context, id string, at time.Time) error
	// DeleteSession ends a session; ending one that is gone is no error.
	DeleteSession(ctx context.Context, id string) error
}

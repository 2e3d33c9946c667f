// Package memsessions keeps console sessions (store.Sessions, SPEC §15) in
// memory, for serve with a keys file: there is no database to share them
// through, so a session lives on the replica that opened it and ends with
// the process.
//
// Like PostgreSQL's table it holds a session's id, account and key id
// and the SHA-256 of its secret, never the secret. It is bounded: at most
// Max sessions; creating one more ends the session seen least recently,
// so that a flood of sign-ins cannot grow it without end (each sign-in
// already needs a valid account key). Sessions past their lifetime or
// idle time are swept at every CreateSession, as PostgreSQL's are.
package memsessions

import (
	"container/list"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/keygate/keygate/pkg/store"
)

// DefaultMax is the bound of New(0).
const DefaultMax = 10_000

// Sessions is the in-memory store.Sessions. The zero value is not usable:
// call New.
type Sessions struct {
	max int
	mu  sync.Mutex
	// byID indexes both lists, each of *entry: seen runs from the session
	// seen least recently, created from the oldest. The console's clock
	// moves forward, so they are in LastSeenAt and CreatedAt order, and a
	// sweep stops at the first session it keeps.
	byID    map[string]*entry
	seen    *list.List
	created *list.List
}

type entry struct {
	s             store.Session
	seen, created *list.Element
}

var _ store.Sessions = (*Sessions)(nil)

// New keeps at most max sessions (DefaultMax when max <= 0).
func New(max int) *Sessions {
	if max <= 0 {
		max = DefaultMax
	}
	return &Sessions{max: max, byID: map[string]*entry{}, seen: list.New(), created: list.New()}
}

// CreateSession stores s after deleting the sessions created before
// staleBefore or idle since idleBefore, and, when max are still held, the
// one seen least recently. An id in use is store.ErrAlreadyExists.
func (m *Sessions) CreateSession(_ context.Context, s store.Session, staleBefore, idleBefore time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for e := m.created.Front(); e != nil && e.Value.(*entry).s.CreatedAt.Before(staleBefore); e = m.created.Front() {
		m.remove(e.Value.(*entry))
	}
	for e := m.seen.Front(); e != nil && e.Value.(*entry).s.LastSeenAt.Before(idleBefore); e = m.seen.Front() {
		m.remove(e.Value.(*entry))
	}
	if _, ok := m.byID[s.ID]; ok {
		return fmt.Errorf("session: %w", store.ErrAlreadyExists)
	}
	for len(m.byID) >= m.max {
		m.remove(m.seen.Front().Value.(*entry))
	}
	s.SecretHash = slices.Clone(s.SecretHash)
	e := &entry{s: s}
	e.seen, e.created = m.seen.PushBack(e), m.created.PushBack(e)
	m.byID[s.ID] = e
	return nil
}

func (m *Sessions) remove(e *entry) {
	delete(m.byID, e.s.ID)
	m.seen.Remove(e.seen)
	m.created.Remove(e.created)
}

// GetSession returns a copy of a session; store.ErrNotFound when there is
// none (never created, ended, swept or evicted).
func (m *Sessions) GetSession(_ context.Context, id string) (store.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.byID[id]
	if !ok {
		return store.Session{}, fmt.Errorf("session: %w", store.ErrNotFound)
	}
	s := e.s
	s.SecretHash = slices.Clone(s.SecretHash)
	return s, nil
}

// TouchSession records a request of the session at at (never moving it
// back): it becomes the one seen most recently. A session that is gone is
// no error.
func (m *Sessions) TouchSession(_ context.Context, id string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.byID[id]; ok && at.After(e.s.LastSeenAt) {
		e.s.LastSeenAt = at
		m.seen.MoveToBack(e.seen)
	}
	return nil
}

// DeleteSession ends a session; ending one that is gone is no error.
func (m *Sessions) DeleteSession(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.byID[id]; ok {
		m.remove(e)
	}
	return nil
}

// Len is the number of sessions held.
func (m *Sessions) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byID)
}

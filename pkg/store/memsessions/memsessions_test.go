package memsessions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/store"
)

var t0 = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

// Lifetimes as the console passes them (SPEC §15).
const (
	idle = 30 * time.Minute
	life = 12 * time.Hour
)

func session(id string, at time.Time) store.Session {
	return store.Session{ID: id, SecretHash: []byte("hash-" + id), AccountID: "acct", KeyID: "k-" + id, CreatedAt: at, LastSeenAt: at}
}

// create stores a session at now, sweeping as the console does.
func create(t *testing.T, m *Sessions, s store.Session, now time.Time) {
	t.Helper()
	if err := m.CreateSession(context.Background(), s, now.Add(-life), now.Add(-idle)); err != nil {
		t.Fatal(err)
	}
}

func has(m *Sessions, id string) bool {
	_, err := m.GetSession(context.Background(), id)
	return err == nil
}

func TestSessions(t *testing.T) {
	ctx := context.Background()
	m := New(0)
	if m.max != DefaultMax {
		t.Errorf("New(0) keeps %d, want %d", m.max, DefaultMax)
	}
	s := session("a", t0)
	create(t, m, s, t0)
	s.SecretHash[0] = 'X' // the caller's slice is not kept
	got, err := m.GetSession(ctx, "a")
	if err != nil || got.ID != "a" || got.AccountID != "acct" || got.KeyID != "k-a" || !bytes.Equal(got.SecretHash, []byte("hash-a")) ||
		!got.CreatedAt.Equal(t0) || !got.LastSeenAt.Equal(t0) {
		t.Fatalf("GetSession = %+v, %v", got, err)
	}
	got.SecretHash[0] = 'Y' // nor the one returned
	if again, _ := m.GetSession(ctx, "a"); !bytes.Equal(again.SecretHash, []byte("hash-a")) {
		t.Error("a read's secret hash is shared with the store")
	}
	if err := m.CreateSession(ctx, session("a", t0), t0.Add(-life), t0.Add(-idle)); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("same id again: %v", err)
	}

	if err := m.TouchSession(ctx, "a", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := m.TouchSession(ctx, "a", t0); err != nil { // never back
		t.Fatal(err)
	}
	if got, _ := m.GetSession(ctx, "a"); !got.LastSeenAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("last seen %v, want %v", got.LastSeenAt, t0.Add(time.Minute))
	}
	if err := m.TouchSession(ctx, "gone", t0); err != nil {
		t.Errorf("touching a session that is gone: %v", err)
	}
	if err := m.DeleteSession(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.GetSession(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
	if err := m.DeleteSession(ctx, "a"); err != nil {
		t.Errorf("deleting again: %v", err)
	}
}

// TestSweep: a sign-in deletes the sessions past 12 hours or idle for 30
// minutes, and no other.
func TestSweep(t *testing.T) {
	m := New(10)
	create(t, m, session("old", t0), t0)
	create(t, m, session("idle", t0.Add(2*time.Hour)), t0.Add(2*time.Hour))
	create(t, m, session("busy", t0.Add(2*time.Hour)), t0.Add(2*time.Hour))
	now := t0.Add(life + time.Minute)
	// "old" was busy all along, but it is older than 12 hours.
	_ = m.TouchSession(context.Background(), "old", now.Add(-time.Minute))
	_ = m.TouchSession(context.Background(), "busy", now.Add(-idle+time.Second))
	create(t, m, session("new", now), now)
	for id, want := range map[string]bool{"old": false, "idle": false, "busy": true, "new": true} {
		if has(m, id) != want {
			t.Errorf("session %s kept: %v, want %v", id, !want, want)
		}
	}
	if m.Len() != 2 {
		t.Errorf("%d sessions, want 2", m.Len())
	}
}

// TestBound: past the bound a sign-in ends the session seen least
// recently; a flood of sign-ins keeps the store at its bound.
func TestBound(t *testing.T) {
	ctx := context.Background()
	m := New(3)
	for i, id := range []string{"a", "b", "c"} {
		create(t, m, session(id, t0.Add(time.Duration(i)*time.Second)), t0.Add(time.Duration(i)*time.Second))
	}
	_ = m.TouchSession(ctx, "a", t0.Add(5*time.Second)) // b is now the least recently seen
	create(t, m, session("d", t0.Add(6*time.Second)), t0.Add(6*time.Second))
	for id, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if has(m, id) != want {
			t.Errorf("session %s kept: %v, want %v", id, !want, want)
		}
	}

	flood := New(DefaultMax)
	for i := range 3 * DefaultMax {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		create(t, flood, session(fmt.Sprint(i), at), at)
	}
	if flood.Len() != DefaultMax || flood.seen.Len() != DefaultMax || flood.created.Len() != DefaultMax {
		t.Errorf("after a flood: %d sessions (%d, %d in the lists), want %d", flood.Len(), flood.seen.Len(), flood.created.Len(), DefaultMax)
	}
	if !has(flood, fmt.Sprint(3*DefaultMax-1)) || has(flood, "0") {
		t.Error("the flood did not keep the newest sessions")
	}
}

func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	m := New(50)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				id := fmt.Sprintf("%d-%d", g, i)
				at := t0.Add(time.Duration(i) * time.Millisecond)
				if err := m.CreateSession(ctx, session(id, at), at.Add(-life), at.Add(-idle)); err != nil {
					t.Error(err)
					return
				}
				_ = m.TouchSession(ctx, id, at.Add(time.Millisecond))
				_, _ = m.GetSession(ctx, id)
				if i%3 == 0 {
					_ = m.DeleteSession(ctx, id)
				}
			}
		})
	}
	wg.Wait()
	if m.Len() > 50 || m.Len() != m.seen.Len() || m.Len() != m.created.Len() {
		t.Errorf("%d sessions, %d and %d in the lists; at most 50", m.Len(), m.seen.Len(), m.created.Len())
	}
}

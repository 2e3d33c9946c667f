package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// Channel is the NOTIFY channel the change-feed triggers signal, with
	// the highest new seq as payload.
	Channel = "keygate_changes"
	// ListenApplicationName is the application_name of Listen's
	// connection, to find it in pg_stat_activity.
	ListenApplicationName = "keygate-listen"

	listenMinBackoff = 100 * time.Millisecond
	// listenMaxBackoff is short on purpose: the reconnect after an outage is
	// what triggers the catch-up that denies keys revoked meanwhile, and
	// SPEC wants that within a second of the database returning. One
	// connection attempt per replica every half second costs nothing.
	listenMaxBackoff = 500 * time.Millisecond
	// listenHealthEvery is how long Listen waits for a notification before
	// it pings the server, so that a silently dead connection (no RST, no
	// keepalive yet) is noticed in seconds, not minutes.
	listenHealthEvery = 15 * time.Second
	listenPingTimeout = 5 * time.Second
)

// Listen holds a dedicated connection (not from the pool) that LISTENs on
// Channel, and calls notify for every notification. When the connection
// fails it calls onState(false), reconnects with exponential backoff
// (100 ms doubling to 5 s) until ctx is done, and on success calls
// onState(true) and notify once, so the caller catches up with
// ChangesSince. It returns nil once ctx is done, with its connection
// closed and no goroutine left. notify and onState must not block; either
// may be nil.
func (s *Store) Listen(ctx context.Context, notify func(), onState func(connected bool)) error {
	if notify == nil {
		notify = func() {}
	}
	if onState == nil {
		onState = func(bool) {}
	}
	backoff := listenMinBackoff
	connected, reported := false, false
	setState := func(up bool) {
		if up != connected || !reported {
			connected, reported = up, true
			onState(up)
		}
	}
	for ctx.Err() == nil {
		conn, err := s.listenConn(ctx)
		if err == nil {
			backoff = listenMinBackoff
			setState(true)
			notify()
			err = s.waitNotifications(ctx, conn, notify)
			closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = conn.Close(closeCtx)
			cancel()
		}
		if ctx.Err() != nil {
			break
		}
		setState(false)
		s.log.Warn("change feed listener: connection lost, reconnecting", "error", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff = min(backoff*2, listenMaxBackoff)
	}
	return nil
}

// listenConn connects and subscribes.
func (s *Store) listenConn(ctx context.Context) (*pgx.Conn, error) {
	cfg := s.pool.Config().ConnConfig.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = ListenApplicationName
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > 10*time.Second {
		cfg.ConnectTimeout = 10 * time.Second
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = conn.Close(closeCtx)
		cancel()
		return nil, err
	}
	return conn, nil
}

// waitNotifications returns when ctx is done or the connection fails.
func (s *Store) waitNotifications(ctx context.Context, conn *pgx.Conn, notify func()) error {
	every := s.listenHealthEvery
	if every <= 0 {
		every = listenHealthEvery
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, every)
		_, err := conn.WaitForNotification(wctx)
		timedOut := wctx.Err() != nil
		cancel()
		switch {
		case err == nil:
			notify()
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case !timedOut || conn.IsClosed():
			return err
		}
		// Quiet for a while: make sure the server is still there.
		pctx, cancel := context.WithTimeout(ctx, listenPingTimeout)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return err
		}
	}
}

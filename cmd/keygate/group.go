package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
)

// server is what a listener group runs: a gRPC or an HTTP server.
type server interface {
	// Serve serves lis until the server is stopped.
	Serve(lis net.Listener) error
	// Shutdown stops taking connections and waits for the requests in
	// flight, until ctx is done.
	Shutdown(ctx context.Context) error
	// Close stops at once, cancelling what is in flight.
	Close() error
}

// grpcServer adapts a *grpc.Server to server.
type grpcServer struct{ *grpc.Server }

func (s grpcServer) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s grpcServer) Close() error { s.Stop(); return nil }

// httpServer adapts an *http.Server to server: Serve's ErrServerClosed is
// how it ends when stopped, not an error.
type httpServer struct{ *http.Server }

func (s httpServer) Serve(lis net.Listener) error {
	if err := s.Server.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// listenerGroup runs serve's listeners together: they open all or none,
// serve until the first fails or the context ends, and stop together —
// the serving ones gracefully within a timeout, then the ones marked last
// (the admin listener, whose /readyz and /metrics stay up while the others
// drain).
type listenerGroup struct {
	log     *slog.Logger
	entries []*groupEntry
}

type groupEntry struct {
	name string // for logs and errors: the flag is <name>-addr
	addr string
	// listen opens the listener (net.Listen when nil).
	listen func(addr string) (net.Listener, error)
	srv    server
	last   bool
	lis    net.Listener
}

// add registers a listener; it is opened by open.
func (g *listenerGroup) add(name, addr string, srv server, listen func(string) (net.Listener, error)) {
	g.entries = append(g.entries, &groupEntry{name: name, addr: addr, srv: srv, listen: listen})
}

// addLast is add for a listener stopped after the others.
func (g *listenerGroup) addLast(name, addr string, srv server, listen func(string) (net.Listener, error)) {
	g.add(name, addr, srv, listen)
	g.entries[len(g.entries)-1].last = true
}

// open opens every listener, or none: on an error the ones opened are
// closed and the error names the flag of the one that failed.
func (g *listenerGroup) open() error {
	for i, e := range g.entries {
		listen := e.listen
		if listen == nil {
			listen = func(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
		}
		lis, err := listen(e.addr)
		if err != nil {
			for _, prev := range g.entries[:i] {
				prev.lis.Close()
				prev.lis = nil
			}
			return fmt.Errorf("%s-addr: %w", e.name, err)
		}
		e.lis = lis
	}
	return nil
}

// start serves every listener and logs its address ("listening", with
// the listener's name: tests and operators read it). The channel carries
// the first listener that fails; the servers keep running, for stop.
func (g *listenerGroup) start() <-chan error {
	errc := make(chan error, len(g.entries))
	for _, e := range g.entries {
		go func() {
			if err := e.srv.Serve(e.lis); err != nil {
				errc <- fmt.Errorf("%s listener: %w", e.name, err)
			}
		}()
		g.log.Info("listening", "listener", e.name, "addr", e.lis.Addr().String())
	}
	return errc
}

// stop shuts every server down: the others together, each finishing what
// is in flight within timeout and then cancelled, then the last ones
// (with a second to answer what they are answering).
func (g *listenerGroup) stop(timeout time.Duration) {
	g.stopAll(false, timeout)
	g.stopAll(true, time.Second)
}

func (g *listenerGroup) stopAll(last bool, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, e := range g.entries {
		if e.last != last || e.lis == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.srv.Shutdown(ctx); err != nil {
				g.log.Warn("shutdown timeout: cancelling what is in flight", "listener", e.name)
				_ = e.srv.Close()
			}
		}()
	}
	wg.Wait()
}

package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestListenerGroupOpensAllOrNone: a listener that cannot open closes the
// ones already opened, and the error names its flag.
func TestListenerGroupOpensAllOrNone(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	g := &listenerGroup{log: slog.New(slog.DiscardHandler)}
	g.add("first", "127.0.0.1:0", httpServer{&http.Server{}}, nil)
	g.add("second", taken.Addr().String(), httpServer{&http.Server{}}, nil)
	err = g.open()
	if err == nil || !strings.HasPrefix(err.Error(), "second-addr: ") {
		t.Fatalf("open = %v, want an error naming second-addr", err)
	}
	if g.entries[0].lis != nil {
		t.Fatal("the first listener was left open")
	}
}

// TestListenerGroupDrains: stop lets a request in flight finish, then the
// listener no longer accepts; the last listener is stopped after the
// others, so it still answers while they drain.
func TestListenerGroupDrains(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "done")
	})
	g := &listenerGroup{log: slog.New(slog.DiscardHandler)}
	g.add("slow", "127.0.0.1:0", httpServer{&http.Server{Handler: slow}}, nil)
	g.addLast("admin", "127.0.0.1:0", httpServer{&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	})}}, nil)
	if err := g.open(); err != nil {
		t.Fatal(err)
	}
	failed := g.start()
	slowURL := "http://" + g.entries[0].lis.Addr().String()
	adminURL := "http://" + g.entries[1].lis.Addr().String()

	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(slowURL)
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	stopped := make(chan struct{})
	go func() { g.stop(10 * time.Second); close(stopped) }()
	// While the slow listener drains, the last one still answers.
	time.Sleep(50 * time.Millisecond)
	if resp, err := http.Get(adminURL); err != nil {
		t.Fatalf("admin while draining: %v", err)
	} else {
		resp.Body.Close()
	}
	close(release)
	if b := <-got; b != "done" {
		t.Fatalf("request in flight got %q, want it finished", b)
	}
	<-stopped
	if _, err := http.Get(slowURL); err == nil {
		t.Fatal("the stopped listener still accepts")
	}
	select {
	case err := <-failed:
		t.Fatalf("a listener reported %v on a graceful stop", err)
	default:
	}
}

// TestListenerGroupTimeout: what does not finish within the timeout is
// cancelled, and stop returns.
func TestListenerGroupTimeout(t *testing.T) {
	started := make(chan struct{})
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	})
	g := &listenerGroup{log: slog.New(slog.DiscardHandler)}
	g.add("hang", "127.0.0.1:0", httpServer{&http.Server{Handler: hang}}, nil)
	if err := g.open(); err != nil {
		t.Fatal(err)
	}
	g.start()
	go func() {
		if resp, err := http.Get("http://" + g.entries[0].lis.Addr().String()); err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	done := make(chan struct{})
	go func() { g.stop(100 * time.Millisecond); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return after its timeout")
	}
}

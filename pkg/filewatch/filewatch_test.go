package filewatch

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// deadline bounds every wait for an event; it is generous so that a loaded
// machine running -race does not fail the tests, and it is never a timing
// assertion.
const deadline = 5 * time.Second

// quiet is how long a test listens for calls that must not come.
const quiet = 300 * time.Millisecond

type recorder struct {
	n  atomic.Int64
	ch chan struct{}
}

func (r *recorder) onChange() {
	r.n.Add(1)
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

func (r *recorder) wait(t *testing.T) {
	t.Helper()
	select {
	case <-r.ch:
	case <-time.After(deadline):
		t.Fatalf("onChange not called within %v", deadline)
	}
}

// watch starts a watcher on path and stops it when the test ends.
func watch(t *testing.T, path string) *recorder {
	t.Helper()
	w, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{ch: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, r.onChange)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := w.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestChanges(t *testing.T) {
	tests := []struct {
		name   string
		absent bool // the file does not exist when the watch starts
		change func(t *testing.T, dir, path string)
	}{
		{"write in place", false, func(t *testing.T, dir, path string) {
			write(t, path, "v2")
		}},
		{"rename over", false, func(t *testing.T, dir, path string) {
			tmp := filepath.Join(dir, ".keys.yaml.tmp")
			write(t, tmp, "v2")
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}},
		{"remove and recreate", false, func(t *testing.T, dir, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			write(t, path, "v2")
		}},
		{"remove", false, func(t *testing.T, dir, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"created after the watch started", true, func(t *testing.T, dir, path string) {
			write(t, path, "v2")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "keys.yaml")
			if !tt.absent {
				write(t, path, "v1")
			}
			r := watch(t, path)
			tt.change(t, dir, path)
			r.wait(t)
		})
	}
}

// TestConfigMapSwap replays how the kubelet updates a ConfigMap volume: the
// file is a symlink through `..data`, and only `..data` is replaced.
func TestConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	mustDir := func(name, content string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o700); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, name, "keys.yaml"), content)
	}
	mustLink := func(target, name string) {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	mustDir("..2026_01_01_00_00_00.1", "v1")
	mustLink("..2026_01_01_00_00_00.1", "..data")
	mustLink("..data/keys.yaml", "keys.yaml")
	path := filepath.Join(dir, "keys.yaml")

	r := watch(t, path)
	mustDir("..2026_01_01_00_01_00.2", "v2")
	mustLink("..2026_01_01_00_01_00.2", "..data_tmp")
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..2026_01_01_00_00_00.1")); err != nil {
		t.Fatal(err)
	}
	r.wait(t)
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "v2" {
		t.Fatalf("after the swap the file reads %q, %v; want v2", got, err)
	}
}

// TestSymlinkSwap covers a file that is itself a symlink, replaced
// atomically to point at a new target.
func TestSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "v1.yaml"), "v1")
	write(t, filepath.Join(dir, "v2.yaml"), "v2")
	path := filepath.Join(dir, "keys.yaml")
	if err := os.Symlink("v1.yaml", path); err != nil {
		t.Fatal(err)
	}
	r := watch(t, path)
	if err := os.Symlink("v2.yaml", filepath.Join(dir, "keys.yaml.new")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "keys.yaml.new"), path); err != nil {
		t.Fatal(err)
	}
	r.wait(t)
}

func TestIgnoresOtherFilesAndChmod(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.yaml")
	write(t, path, "v1")
	r := watch(t, path)
	write(t, filepath.Join(dir, "keys.yaml.bak"), "x")
	write(t, filepath.Join(dir, "routes.yaml"), "x")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(quiet)
	if n := r.n.Load(); n != 0 {
		t.Fatalf("onChange called %d times for unrelated events, want 0", n)
	}
}

func TestDebounce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.yaml")
	write(t, path, "v0")
	r := watch(t, path)
	for i := range 10 {
		write(t, path, "v"+string(rune('0'+i)))
	}
	r.wait(t)
	time.Sleep(quiet)
	// One call is expected; a scheduler pause in the middle of the burst may
	// split it, but never into anything close to ten.
	if n := r.n.Load(); n > 3 {
		t.Fatalf("a burst of 10 writes gave %d calls, want far fewer", n)
	}
}

func TestMaxDelay(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.yaml")
	write(t, path, "v0")
	w, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.delay, w.maxDelay = 200*time.Millisecond, 50*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, func() {
			select {
			case calls <- struct{}{}:
			default:
			}
		})
	}()
	defer func() { cancel(); <-done }()
	// Writes closer together than delay would postpone the call forever
	// without the bound.
	stop := time.After(deadline)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-calls:
			return
		case <-stop:
			t.Fatal("a steady stream of writes held the call back past the deadline")
		case <-tick.C:
			write(t, path, time.Now().String())
		}
	}
}

func TestRunReturnsOnCancel(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.yaml")
	write(t, path, "v1")
	w, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, func() {})
	}()
	write(t, path, "v2") // leave a pending debounce behind
	cancel()
	select {
	case <-done:
	case <-time.After(deadline):
		t.Fatal("Run did not return after cancel")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	end := time.Now().Add(deadline)
	for runtime.NumGoroutine() > before {
		if time.Now().After(end) {
			t.Fatalf("%d goroutines left, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunReturnsOnClose(t *testing.T) {
	w, err := New(filepath.Join(t.TempDir(), "keys.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(context.Background(), func() {})
	}()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(deadline):
		t.Fatal("Run did not return after Close")
	}
}

func TestNewMissingDirectory(t *testing.T) {
	_, err := New(filepath.Join(t.TempDir(), "missing", "keys.yaml"))
	if err == nil {
		t.Fatal("New on a missing directory: no error")
	}
}

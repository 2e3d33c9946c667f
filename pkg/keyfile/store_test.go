package keyfile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/logbuf"
)

// deadline bounds every wait for the watcher; it is not a timing assertion.
const deadline = 5 * time.Second

func newLogger() (*slog.Logger, *logbuf.Buffer) {
	b := &logbuf.Buffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// keysFile is a valid file with app keys for the given secrets.
func keysFile(ns ...int) string {
	var b strings.Builder
	b.WriteString("apps: [{id: billing, name: Billing}]\nkeys:\n")
	for _, n := range ns {
		fmt.Fprintf(&b, "  - {id: k-%d, name: key-%d, type: app, app: billing, hash: %q}\n", n, n, hash(n))
	}
	return b.String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T, content string) (*Store, string, *logbuf.Buffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.yaml")
	writeFile(t, path, content)
	logger, logs := newLogger()
	s, err := Open(path, testOpts, logger)
	if err != nil {
		t.Fatal(err)
	}
	return s, path, logs
}

func has(s *Store, n int) bool {
	k, err := s.LookupKey(context.Background(), plain.Sum(secret(n)))
	return err == nil && k != nil && k.Spec.ID == fmt.Sprintf("k-%d", n)
}

func TestLookupKey(t *testing.T) {
	s, _, _ := open(t, keysFile(1, 2))
	tests := []struct {
		name   string
		digest apikey.Digest
		wantID string
		err    error
	}{
		{"found", plain.Sum(secret(1)), "k-1", nil},
		{"found second", plain.Sum(secret(2)), "k-2", nil},
		{"unknown secret", plain.Sum(secret(3)), "", authz.ErrKeyNotFound},
		{"right secret, other algorithm", peppered.Sum(secret(1)), "", authz.ErrKeyNotFound},
		{"zero digest", apikey.Digest{}, "", authz.ErrKeyNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := s.LookupKey(context.Background(), tt.digest)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if tt.err != nil {
				if k != nil {
					t.Errorf("a key came back with the error")
				}
				return
			}
			if k.Spec.ID != tt.wantID {
				t.Errorf("id %q, want %q", k.Spec.ID, tt.wantID)
			}
		})
	}
	if s.Len() != 2 {
		t.Errorf("Len %d, want 2", s.Len())
	}
}

func TestLookupKeyAllocs(t *testing.T) {
	s, _, _ := open(t, keysFile(1, 2, 3))
	ctx := context.Background()
	found, missing := plain.Sum(secret(2)), plain.Sum(secret(9))
	if n := testing.AllocsPerRun(1000, func() {
		_, _ = s.LookupKey(ctx, found)
		_, _ = s.LookupKey(ctx, missing)
	}); n != 0 {
		t.Errorf("LookupKey allocates %v times per call pair, want 0", n)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "keys: [{id: k-1}]\n")
	tests := []struct {
		name, path, want string
	}{
		{"missing file", filepath.Join(dir, "missing.yaml"), "read key file: open " + filepath.Join(dir, "missing.yaml") + ": no such file or directory"},
		{"invalid file", bad, bad + `:1: keys[0] (id "k-1"): name: required`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(tt.path, testOpts, nil)
			if err == nil {
				t.Fatalf("no error; %d keys", s.Len())
			}
			if first, _, _ := strings.Cut(err.Error(), "\n"); first != tt.want {
				t.Errorf("error\n got %s\nwant %s", first, tt.want)
			}
		})
	}
}

func TestOpenLogs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.yaml")
	writeFile(t, path, strings.Replace(keysFile(1), "type: app,", "type: app, scope: sms-api,", 1))
	logger, logs := newLogger()
	opts := testOpts
	opts.HasService = func(string) bool { return false }
	if _, err := Open(path, opts, logger); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`level=WARN msg="key file warning" file=` + path + ` warning="` + path + `:3: keys[0] (id \"k-1\"): scope: service \"sms-api\" is not declared"`,
		`level=INFO msg="key file loaded" file=` + path + ` keys=1 apps=1 tenants=0 roles=0 denials=0 account=default`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks\n%s\ngot:\n%s", want, logs)
		}
	}
}

func TestReload(t *testing.T) {
	t.Run("good to bad keeps the last good keys", func(t *testing.T) {
		s, path, logs := open(t, keysFile(1))
		writeFile(t, path, keysFile(1, 2)+"  - {id: k-3, name: key-3, type: service, app: billing, hash: \""+hash(3)+"\"}\n")
		err := s.Reload()
		if err == nil {
			t.Fatal("Reload of a bad file: no error")
		}
		if !has(s, 1) || has(s, 2) || s.Len() != 1 {
			t.Errorf("after a failed reload: k-1 %v, k-2 %v, Len %d; want the old set", has(s, 1), has(s, 2), s.Len())
		}
		want := `level=WARN msg="key file not reloaded; still serving the last good keys" file=` + path +
			` keys=1 error="` + path + `:5: keys[2] (id \"k-3\"): tenant: required for service keys"`
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks\n%s\ngot:\n%s", want, logs)
		}
	})
	t.Run("good to missing keeps the last good keys", func(t *testing.T) {
		s, path, logs := open(t, keysFile(1))
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := s.Reload(); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Reload of a removed file: %v", err)
		}
		if !has(s, 1) {
			t.Error("the key was dropped")
		}
		if !strings.Contains(logs.String(), "level=WARN") {
			t.Errorf("no warning logged:\n%s", logs)
		}
	})
	t.Run("good to good picks up a new key", func(t *testing.T) {
		s, path, logs := open(t, keysFile(1))
		writeFile(t, path, keysFile(2, 3))
		if err := s.Reload(); err != nil {
			t.Fatal(err)
		}
		if has(s, 1) || !has(s, 2) || !has(s, 3) || s.Len() != 2 {
			t.Errorf("after reload: k-1 %v, k-2 %v, k-3 %v, Len %d", has(s, 1), has(s, 2), has(s, 3), s.Len())
		}
		if !strings.Contains(logs.String(), `msg="key file loaded" file=`+path+` keys=2`) {
			t.Errorf("no info line with the new count:\n%s", logs)
		}
	})
	// A file emptied or cut short (a ConfigMap half written, `> keys.yaml`)
	// must not deny every client: the last good keys stay, the refusal is
	// logged and returned (so serve counts it as a failed reload).
	for name, content := range map[string]string{
		"empty":                 "",
		"comments only":         "# emptied\n",
		"truncated before keys": "apps: [{id: billing, name: Billing}]\n",
		"keys left empty":       "apps: [{id: billing, name: Billing}]\nkeys:\n",
	} {
		t.Run("good to "+name+" keeps the last good keys", func(t *testing.T) {
			s, path, logs := open(t, keysFile(1, 2))
			writeFile(t, path, content)
			if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "no keys list") {
				t.Fatalf("Reload to nothing: %v", err)
			}
			if !has(s, 1) || !has(s, 2) || s.Len() != 2 {
				t.Errorf("after a refused reload: Len %d, want the 2 last good keys", s.Len())
			}
			if !strings.Contains(logs.String(), "level=WARN msg=\"key file not reloaded; still serving the last good keys\"") ||
				!strings.Contains(logs.String(), "write `keys: []` to serve no keys") {
				t.Errorf("refusal not logged with its reason:\n%s", logs)
			}
		})
	}
	t.Run("good to an explicit keys: [] serves no keys", func(t *testing.T) {
		s, path, _ := open(t, keysFile(1))
		writeFile(t, path, "keys: []\n")
		if err := s.Reload(); err != nil {
			t.Fatal(err)
		}
		if has(s, 1) || s.Len() != 0 {
			t.Errorf("after keys: []: Len %d, want 0", s.Len())
		}
	})
	t.Run("bad then fixed", func(t *testing.T) {
		s, path, _ := open(t, keysFile(1))
		writeFile(t, path, "keys: [")
		if err := s.Reload(); err == nil {
			t.Fatal("no error")
		}
		writeFile(t, path, keysFile(1, 2))
		if err := s.Reload(); err != nil || !has(s, 2) {
			t.Fatalf("fixed file: err %v, k-2 %v", err, has(s, 2))
		}
	})
	t.Run("unchanged content is not reloaded", func(t *testing.T) {
		s, _, logs := open(t, keysFile(1))
		before := s.Set()
		if err := s.Reload(); err != nil {
			t.Fatal(err)
		}
		if s.Set() != before {
			t.Error("the set was replaced by an identical one")
		}
		if n := strings.Count(logs.String(), "key file loaded"); n != 1 {
			t.Errorf("%d load lines, want 1", n)
		}
	})
}

// TestReloadRace looks keys up while the file is reloaded; run with -race.
func TestReloadRace(t *testing.T) {
	s, path, _ := open(t, keysFile(1))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if !has(s, 1) {
					t.Error("k-1 missing during reloads")
					return
				}
			}
		})
	}
	for i := 2; i < 20; i++ {
		writeFile(t, path, keysFile(1, i))
		if err := s.Reload(); err != nil {
			t.Error(err)
		}
	}
	cancel()
	wg.Wait()
}

func TestWatch(t *testing.T) {
	s, path, logs := open(t, keysFile(1))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch: %v", err)
			}
		case <-time.After(deadline):
			t.Error("Watch did not return after cancel")
		}
	}()

	waitFor := func(what string, ok func() bool) {
		t.Helper()
		end := time.Now().Add(deadline)
		for !ok() {
			if time.Now().After(end) {
				t.Fatalf("%s: not seen within %v; log:\n%s", what, deadline, logs)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// An editor's or GitOps sync's atomic replace.
	tmp := filepath.Join(filepath.Dir(path), ".keys.yaml.tmp")
	writeFile(t, tmp, keysFile(1, 2))
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitFor("k-2 after rename", func() bool { return has(s, 2) })

	// A broken write in place is refused; the keys stay.
	writeFile(t, path, "keys: [")
	waitFor("the reload warning", func() bool { return strings.Contains(logs.String(), "still serving the last good keys") })
	if !has(s, 1) || !has(s, 2) {
		t.Fatal("a bad file dropped keys")
	}

	writeFile(t, path, keysFile(3))
	waitFor("k-3 after a write in place", func() bool { return has(s, 3) && !has(s, 1) })
}

func TestWatchMissingDirectory(t *testing.T) {
	s, path, _ := open(t, keysFile(1))
	s.path = filepath.Join(filepath.Dir(path), "gone", "keys.yaml")
	if err := s.Watch(context.Background()); err == nil {
		t.Fatal("Watch on a missing directory: no error")
	}
}

func BenchmarkLookupKey(b *testing.B) {
	ns := make([]int, 1000)
	for i := range ns {
		ns[i] = i + 1
	}
	path := filepath.Join(b.TempDir(), "keys.yaml")
	if err := os.WriteFile(path, []byte(keysFile(ns...)), 0o600); err != nil {
		b.Fatal(err)
	}
	s, err := Open(path, testOpts, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	found, missing := plain.Sum(secret(500)), plain.Sum(secret(5000))
	b.Run("found", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.LookupKey(ctx, found); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("not found", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.LookupKey(ctx, missing); err == nil {
				b.Fatal("found")
			}
		}
	})
}

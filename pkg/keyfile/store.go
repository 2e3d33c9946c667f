package keyfile

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/filewatch"
)

// Store serves the keys of one file and swaps in a new Set when the file
// changes. Lookups never wait for a reload.
type Store struct {
	path   string
	opts   Options
	logger *slog.Logger
	set    atomic.Pointer[Set]
	// denials index the served file's denials for the engine (row 9);
	// each swap replaces them with the new file's.
	denials authz.DenialIndex

	// mu serialises reloads, so that a slow parse of an older version of
	// the file can never replace a newer one.
	mu sync.Mutex
	// loaded is the SHA-256 of the file content being served (guarded by
	// mu): a ConfigMap swap or a `touch` that leaves the content as it was
	// is not worth a recompile and a log line.
	loaded [sha256.Size]byte
}

var _ authz.KeyStore = (*Store)(nil)

// Open loads the file. An error here means there are no keys to serve at
// all, so the caller should refuse to start. A nil logger discards.
func Open(path string, opts Options, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{path: path, opts: opts, logger: logger}
	data, err := os.ReadFile(path)
	set, err := s.parse(data, err)
	if err != nil {
		return nil, err
	}
	s.swap(data, set)
	return s, nil
}

// modTime is when the file was last changed: read right after its
// content, so that a Set carries the time of the content it holds; now
// when the file cannot be stated (it was just read).
func (s *Store) modTime() time.Time {
	if fi, err := os.Stat(s.path); err == nil {
		return fi.ModTime().UTC()
	}
	return time.Now().UTC()
}

// parse compiles what read returned and logs its warnings.
func (s *Store) parse(data []byte, readErr error) (*Set, error) {
	if readErr != nil {
		return nil, fmt.Errorf("read key file: %w", readErr)
	}
	set, warnings, err := Parse(data, s.path, s.opts)
	for _, w := range warnings {
		s.logger.Warn("key file warning", "file", s.path, "warning", w)
	}
	return set, err
}

func (s *Store) swap(data []byte, set *Set) {
	set.modified = s.modTime()
	s.loaded = sha256.Sum256(data)
	s.set.Store(set)
	s.denials.Replace(set.denials)
	s.logger.Info("key file loaded", "file", s.path, "keys", set.Len(),
		"apps", len(set.apps), "tenants", len(set.tenants), "roles", len(set.roles), "denials", len(set.denials),
		"account", set.account)
}

// Reload rereads the file. On any error the keys loaded last stay in
// service: a typo pushed to a GitOps repository must not lock every client
// out. The error is logged and returned.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, err := os.ReadFile(s.path)
	if err == nil && sha256.Sum256(data) == s.loaded {
		s.logger.Debug("key file unchanged", "file", s.path)
		return nil
	}
	set, err := s.parse(data, err)
	if err != nil {
		s.logger.Warn("key file not reloaded; still serving the last good keys",
			"file", s.path, "keys", s.Len(), "error", err)
		return err
	}
	s.swap(data, set)
	return nil
}

// LookupKey finds a key by the digest of its secret. It does not allocate.
func (s *Store) LookupKey(_ context.Context, d apikey.Digest) (*authz.Key, error) {
	if k, ok := s.set.Load().byHash[d]; ok {
		return k, nil
	}
	return nil, authz.ErrKeyNotFound
}

// Denials is the index of the served file's service access denials, for
// authz.Engine.Denials; it follows every reload.
func (s *Store) Denials() *authz.DenialIndex { return &s.denials }

// Len is the number of keys being served.
func (s *Store) Len() int { return s.set.Load().Len() }

// Set is the set of keys being served.
func (s *Store) Set() *Set { return s.set.Load() }

// Watch reloads the file whenever it changes, until ctx is done. It fails
// only if the file's directory cannot be watched.
func (s *Store) Watch(ctx context.Context) error {
	w, err := filewatch.New(s.path)
	if err != nil {
		return err
	}
	defer w.Close()
	// The file may have changed between Open and the start of the watch.
	_ = s.Reload()
	w.Run(ctx, func() { _ = s.Reload() })
	return nil
}

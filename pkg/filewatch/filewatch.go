// Package filewatch tells a caller when one file has changed, however it was
// replaced: written in place, renamed over by an editor or `mv`, removed and
// recreated, or swapped through a Kubernetes ConfigMap's `..data` symlink.
package filewatch

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

const (
	// defaultDelay coalesces an editor's burst of events (rename, create,
	// write, chmod) into one reload.
	defaultDelay = 50 * time.Millisecond
	// defaultMaxDelay bounds how long a steady stream of events can hold a
	// reload back, so a file that is written continuously is still reread.
	defaultMaxDelay = time.Second
	// configMapData is the symlink Kubernetes atomically swaps when a
	// ConfigMap or Secret volume is updated; the file itself is a symlink
	// through it and sees no event of its own.
	configMapData = "..data"
)

// Watcher watches one file through its parent directory.
type Watcher struct {
	base     string
	fs       *fsnotify.Watcher
	delay    time.Duration
	maxDelay time.Duration
}

// New starts watching the directory that holds path. The file need not exist
// yet; the directory must.
func New(path string) (*Watcher, error) {
	dir, base := filepath.Split(filepath.Clean(path))
	if dir == "" {
		dir = "."
	}
	fs, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	// The directory, not the file: a watch on the file would follow the old
	// inode and go silent once the file is renamed over or recreated.
	if err := fs.Add(dir); err != nil {
		_ = fs.Close()
		return nil, fmt.Errorf("watch directory %s: %w", dir, err)
	}
	return &Watcher{base: base, fs: fs, delay: defaultDelay, maxDelay: defaultMaxDelay}, nil
}

// Run calls onChange, one call at a time, after the file may have changed.
// It returns when ctx is done or the watcher is closed; a change still
// waiting for its debounce delay is then dropped.
func (w *Watcher) Run(ctx context.Context, onChange func()) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var first time.Time // start of the pending burst; zero when none
	schedule := func() {
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		wait := w.delay
		if rest := w.maxDelay - now.Sub(first); rest < wait {
			wait = max(rest, 0)
		}
		timer.Reset(wait)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			if w.relevant(ev) {
				schedule()
			}
		case _, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			// An error (typically an event queue overflow) means events may
			// have been lost: reread rather than risk serving stale keys.
			schedule()
		case <-timer.C:
			first = time.Time{}
			if ctx.Err() != nil {
				return
			}
			onChange()
		}
	}
}

func (w *Watcher) relevant(ev fsnotify.Event) bool {
	name := filepath.Base(ev.Name)
	if name == configMapData {
		return true
	}
	// Chmod alone (touch, chmod) leaves the content as it was.
	return name == w.base && ev.Op&^fsnotify.Chmod != 0
}

// Close stops watching; a running Run returns.
func (w *Watcher) Close() error { return w.fs.Close() }

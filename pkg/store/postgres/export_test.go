package postgres

import (
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/authz"
)

// SetListenHealthEvery shortens how long Listen waits before pinging.
func SetListenHealthEvery(s *Store, d time.Duration) { s.listenHealthEvery = d }

// SetCompileHook runs h before each data-plane compile until the test ends.
func SetCompileHook(t *testing.T, h func(authz.KeySpec)) {
	compileHook.Store(&h)
	t.Cleanup(func() { compileHook.Store(nil) })
}

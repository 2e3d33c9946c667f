package postgres

import "time"

// SetListenHealthEvery shortens how long Listen waits before pinging.
func SetListenHealthEvery(s *Store, d time.Duration) { s.listenHealthEvery = d }

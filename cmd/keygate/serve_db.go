package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/keygate/keygate/pkg/metrics"
)

// openDatabase serves keys from PostgreSQL (being wired).
func (c *serveCmd) openDatabase(ctx context.Context, l *loaded, m *metrics.Metrics, log *slog.Logger) (*keySource, error) {
	return nil, errors.New("database mode is not available in this build")
}

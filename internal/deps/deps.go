// Package deps pins modules other packages are about to use (removed once they do).
package deps

import (
	_ "github.com/dgraph-io/ristretto/v2"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "golang.org/x/sync/singleflight"
	_ "google.golang.org/grpc/reflection"
)

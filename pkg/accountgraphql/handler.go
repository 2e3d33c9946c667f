// Package accountgraphql serves the account service (pkg/account) as the
// Account API over GraphQL at /graphql (SPEC §14).
package accountgraphql

import (
	"log/slog"
	"net/http"

	"github.com/keygate/keygate/pkg/account"
)

// Options are the limits of the GraphQL handler.
type Options struct {
	MaxBodyBytes  int64
	MaxDepth      int
	MaxComplexity int
	Logger        *slog.Logger
}

// NewHandler returns the /graphql handler over svc.
func NewHandler(svc *account.Service, opts Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"errors":[{"message":"the GraphQL Account API is being built on this branch","extensions":{"code":"UNAVAILABLE"}}]}`))
	})
}

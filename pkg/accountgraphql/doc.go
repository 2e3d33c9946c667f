// Package accountgraphql serves the account service (pkg/account) as the
// Account API over GraphQL at /graphql (SPEC §14).
package accountgraphql

//go:generate go run github.com/99designs/gqlgen@v0.17.98 generate --config gqlgen.yml

package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/accountgraphql"
	"github.com/keygate/keygate/pkg/console"
)

// webFlags configure the HTTP listener of the Account API over GraphQL
// (SPEC §14) and the console (§15). It serves the account service: over
// PostgreSQL, or read-only over a keys file (serve_file.go).
type webFlags struct {
	ConsoleAddr           string `name:"console-addr" env:"KEYGATE_CONSOLE_ADDR" default:"127.0.0.1:9194" help:"HTTP listener for the Account API over GraphQL (/graphql) and the console; with --keys-file both are read-only (sign in with an account key of the file; edit the file to change keys); empty turns it off."`
	ConsoleMaxConnections int    `name:"console-max-connections" env:"KEYGATE_CONSOLE_MAX_CONNECTIONS" default:"256" help:"Connections the console listener serves at once; further ones wait to be accepted."`
	GraphQLMaxBodyBytes   int64  `name:"graphql-max-body-bytes" env:"KEYGATE_GRAPHQL_MAX_BODY_BYTES" default:"1048576" help:"Largest /graphql request body (413 beyond), and the largest query in a GET's URL."`
	GraphQLMaxDepth       int    `name:"graphql-max-depth" env:"KEYGATE_GRAPHQL_MAX_DEPTH" default:"10" help:"Deepest selection a /graphql document may nest."`
	GraphQLMaxComplexity  int    `name:"graphql-max-complexity" env:"KEYGATE_GRAPHQL_MAX_COMPLEXITY" default:"20000" help:"Largest complexity a /graphql operation may have: one per field, a list's fields times the page size asked (first, default 100); 20000 is a page of 500 keys with every field."`
}

// webMux is the console listener's mux: the Account API over GraphQL at
// /graphql. The console adds its pages to the same mux with one line,
// mux.Handle("/", …); anything else is 404.
func webMux(svc *account.Service, f webFlags, log *slog.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/graphql", accountgraphql.NewHandler(svc, accountgraphql.Options{
		MaxBodyBytes: f.GraphQLMaxBodyBytes, MaxDepth: f.GraphQLMaxDepth, MaxComplexity: f.GraphQLMaxComplexity, Logger: log,
	}))
	return mux
}

// consoleHandler is the console (pkg/console) over the account service,
// its sessions in the database (in memory with a keys file); cookies are
// Secure when the listener serves TLS.
func consoleHandler(src *keySource, secure bool, log *slog.Logger) (http.Handler, error) {
	return console.New(console.Options{Service: src.accountSvc, Sessions: src.sessions, Secure: secure, Logger: log})
}

// addWeb adds the console listener to the group when it runs: with a
// --console-addr. With a keys file it is read-only, which the log says.
func (c *serveCmd) addWeb(group *listenerGroup, src *keySource, tlsOn *serveTLS, log *slog.Logger) {
	switch {
	case c.ConsoleAddr == "":
		log.Info("console and GraphQL Account API off (--console-addr is empty)")
	default:
		if src.accountSvc.ReadOnly() != nil {
			log.Info("console and GraphQL Account API read-only: keygate serves a keys file; sign in with an account key of the file, and edit the file to change anything", "file", c.KeysFile)
		}
		mux := webMux(src.accountSvc, c.webFlags, log)
		ch, err := consoleHandler(src, tlsOn.on("console"), log)
		if err != nil {
			// The templates are embedded and parsed at start: a broken one
			// is a build error that tests catch; never serve half a console.
			log.Error("console off: its pages did not load", "error", err)
		} else {
			mux.Handle("/", ch)
		}
		srv := c.httpLimits.server(mux)
		group.add("console", c.ConsoleAddr, httpServer{srv}, tlsOn.listen("console", limitedListen(c.ConsoleMaxConnections)))
	}
}

// validate refuses limits that are not positive: none can be switched off.
func (f webFlags) validate() error {
	var errs []error
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"console-max-connections", int64(f.ConsoleMaxConnections)}, {"graphql-max-body-bytes", f.GraphQLMaxBodyBytes},
		{"graphql-max-depth", int64(f.GraphQLMaxDepth)}, {"graphql-max-complexity", int64(f.GraphQLMaxComplexity)},
	} {
		if n.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: %d must be positive", n.name, n.v))
		}
	}
	return errors.Join(errs...)
}

package main

import (
	"log/slog"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/keyfile"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/filestore"
	"github.com/keygate/keygate/pkg/store/memsessions"
)

// fileAccount is the account service the console listener serves with a
// keys file: read-only, over the file's current contents (filestore:
// every change is refused, naming the file to edit), its callers
// authenticated by the data plane's decision over the file's keys, and
// the console's sessions in this process's memory (memsessions, bounded).
func (c *serveCmd) fileAccount(keys *keyfile.Store, l *loaded, log *slog.Logger) (*account.Service, store.Sessions) {
	engine := &authz.Engine{Keys: keys, Routes: account.AccountRouter(), Hasher: l.hasher}
	svc := account.NewService(filestore.New(keys, c.KeysFile), engine, l.hasher, c.accountOptions(l, log))
	return svc, memsessions.New(memsessions.DefaultMax)
}

// accountOptions are the account service's settings from serve's flags.
func (c *serveCmd) accountOptions(l *loaded, log *slog.Logger) account.Options {
	return account.Options{Compile: l.keysOpts.Compile, Logger: log,
		Routes:         l.router, // the table serve reloads: scopes are checked against the current one
		ReplicaTimeout: c.ReplicaTimeout,
		RateLimits:     account.RateLimits{MutationsPerSecond: c.AccountMutationsPerSecond, ReadsPerSecond: c.AccountReadsPerSecond}}
}

package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/extauthz"
	"github.com/keygate/keygate/pkg/graphql"
	"github.com/keygate/keygate/pkg/keyfile"
	"github.com/keygate/keygate/pkg/route"
)

// loaded is the configuration a server decides from.
type loaded struct {
	// graphql parses the bodies of GraphQL routes; one for the process, so
	// its cache of recent documents survives routes reloads.
	graphql  *graphql.Parser
	hasher   *apikey.Hasher
	cfg      extauthz.Config
	router   *route.Router
	keysOpts keyfile.Options
}

// load reads and checks the settings and the routes file, reporting every
// problem at once; the keys file is checked against them by the caller.
// Warnings go to warn.
func load(routesFile string, req requestFlags, hf hashFlags, warn func(string)) (*loaded, error) {
	var errs []error
	l := &loaded{cfg: req.config()}
	if err := l.cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	h, err := hf.hasher()
	if err != nil {
		errs = append(errs, err)
	}
	l.hasher = h
	l.graphql = graphql.NewParser()
	table, warnings, err := loadRoutes(routesFile, l.graphql)
	if err != nil {
		errs = append(errs, err)
	}
	for _, w := range warnings {
		warn(w)
	}
	if len(errs) > 0 {
		// Keys are checked against the routes and the hasher: without them
		// their errors would only be noise.
		return nil, errors.Join(errs...)
	}
	l.router = route.NewRouter(table)
	l.keysOpts = l.keyfileOptions()
	return l, nil
}

// loadRoutes reads a routes file and gives its table the GraphQL parser,
// so that a table never serves GraphQL routes without one.
func loadRoutes(path string, gql *graphql.Parser) (*route.Table, []string, error) {
	table, warnings, err := route.LoadFile(path)
	if err == nil {
		table.SetOperationParser(gql)
	}
	return table, warnings, err
}

func (l *loaded) keyfileOptions() keyfile.Options {
	return keyfile.Options{
		Algorithm: l.hasher.Algorithm(),
		Compile:   authzCompileOptions(l.cfg),
		HasService: func(name string) bool {
			if name == authz.AccountAPIService {
				return true
			}
			_, ok := l.router.Current().Service(name)
			return ok
		},
	}
}

type checkConfigCmd struct {
	fileFlags
	databaseURLFlags // check the stored keys instead of a keys file, as serve would load them
	requestFlags
	hashFlags
}

// Run validates the routes file and the keys (the keys file, or the keys
// stored in the database) and prints a summary, or every error.
func (c *checkConfigCmd) Run(e *env) error {
	if err := c.resolve(); err != nil {
		return err
	}
	switch {
	case c.KeysFile != "" && c.DatabaseURL != "":
		return errBothKeySources
	case c.KeysFile == "" && c.DatabaseURL == "":
		return errNoKeySource
	}
	warn := func(w string) { fmt.Fprintln(e.stderr, "warning:", w) }
	l, err := load(c.RoutesFile, c.requestFlags, c.hashFlags, warn)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return errors.New("configuration is invalid")
	}
	if c.DatabaseURL != "" {
		return c.checkDatabase(e, l)
	}
	return c.checkKeysFile(e, l, warn)
}

func (c *checkConfigCmd) checkKeysFile(e *env, l *loaded, warn func(string)) error {
	data, err := os.ReadFile(c.KeysFile)
	if err != nil {
		return fmt.Errorf("keys-file: %w", err)
	}
	set, warnings, err := keyfile.Parse(data, c.KeysFile, l.keysOpts)
	for _, w := range warnings {
		warn(w)
	}
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return errors.New("configuration is invalid")
	}
	keys := strconv.Itoa(set.Len()) + " keys"
	if n, m := len(set.Roles()), len(set.Denials()); n+m > 0 {
		keys += fmt.Sprintf(", %d roles, %d denials", n, m)
	}
	c.printSummary(e, l, c.KeysFile, keys)
	return nil
}

// printSummary prints the one line that says all is well, naming where the
// keys came from.
func (c *checkConfigCmd) printSummary(e *env, l *loaded, keysFrom string, keys string) {
	fmt.Fprintf(e.stdout, "ok: %s: %d services; %s: %s (hash %s); key header %s; xff-trusted-hops %d\n",
		c.RoutesFile, len(l.router.Current().ServiceNames()), keysFrom, keys, l.hasher.Algorithm(),
		l.cfg.KeyHeader, l.cfg.XFFTrustedHops)
}

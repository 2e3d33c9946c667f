package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/keygate/keygate/pkg/accountcli"
	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/extauthz"
)

// cli is keygate's command line. Every flag has a KEYGATE_* environment
// equivalent, so a Deployment can configure it without arguments.
type cli struct {
	Serve       serveCmd       `cmd:"" help:"Serve Envoy ext_authz Check requests."`
	Keygen      keygenCmd      `cmd:"" help:"Generate a new key secret: prints the secret on line 1 and its stored hash form on line 2."`
	Hash        hashCmd        `cmd:"" help:"Read one secret from stdin (prompting without echo on a terminal) and print its stored hash form."`
	CheckConfig checkConfigCmd `cmd:"" name:"check-config" help:"Validate the routes file and the keys (a keys file, or with --database-url the stored keys); exit non-zero listing every error."`
	Explain     explainCmd     `cmd:"" help:"Show step by step how serve would decide one request (secret on stdin, or --key-id)."`
	Migrate     migrateCmd     `cmd:"" help:"Apply the embedded PostgreSQL schema migrations (idempotent)."`
	Bootstrap   bootstrapCmd   `cmd:"" help:"Create an account and its first account key directly in the database; prints the secret on the last line."`
	Accounts    accountsCmd    `cmd:"" help:"Operator commands on accounts, directly in the database (accounts limits)."`
	ImportFile  importFileCmd  `cmd:"" name:"import-file" help:"Copy a keys file's apps, tenants, roles, denials and keys (hashes as they are: nothing is reissued) into an existing account, in one transaction; --dry-run lists what it would do."`
	ExportFile  exportFileCmd  `cmd:"" name:"export-file" help:"Write an account's apps, tenants, roles, denials and keys as a keys file (hashes only), for serve --keys-file or import-file."`
	accountcli.Commands
	Completion completionCmd `cmd:"" help:"Print a shell completion script to source: bash, zsh or fish."`
	Version    versionCmd    `cmd:"" help:"Print the version, commit and Go version."`
	VersionFlg versionFlag   `name:"version" help:"Print the version, commit and Go version, and exit."`
}

// env is what every command gets: where to write and what to read.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// acct is the same streams as accountcli sees them, so that commands
	// here share its terminal handling (secret prompts).
	acct *accountcli.Env
}

// hashFlags select how secrets are hashed.
type hashFlags struct {
	PepperFile string `name:"pepper-file" env:"KEYGATE_PEPPER_FILE" type:"path" help:"File holding a server-side pepper: secrets are then stored as hmac-sha256 instead of sha256."`
}

func (h hashFlags) hasher() (*apikey.Hasher, error) {
	if h.PepperFile == "" {
		return apikey.NewHasher(nil), nil
	}
	b, err := os.ReadFile(h.PepperFile)
	if err != nil {
		return nil, fmt.Errorf("pepper-file: %w", err)
	}
	pepper := []byte(strings.TrimRight(string(b), "\r\n"))
	if len(pepper) < 16 {
		return nil, fmt.Errorf("pepper-file %s: the pepper must be at least 16 bytes", h.PepperFile)
	}
	return apikey.NewHasher(pepper), nil
}

// fileFlags name the configuration files. The keys file is optional: in
// database mode the keys come from PostgreSQL.
type fileFlags struct {
	KeysFile   string `name:"keys-file" env:"KEYGATE_KEYS_FILE" type:"path" help:"YAML keys file (hashes only); serve reloads it when it changes."`
	RoutesFile string `name:"routes-file" env:"KEYGATE_ROUTES_FILE" required:"" type:"path" help:"YAML routes file mapping requests to services; serve reloads it when it changes."`
}

// requestFlags shape how requests are read and answered.
type requestFlags struct {
	KeyHeader        string `name:"key-header" env:"KEYGATE_KEY_HEADER" default:"x-api-key" help:"Header carrying the API key."`
	KeyQueryParam    string `name:"key-query-param" env:"KEYGATE_KEY_QUERY_PARAM" help:"Query parameter that may carry the key (off unless set)."`
	XFFTrustedHops   int    `name:"xff-trusted-hops" env:"KEYGATE_XFF_TRUSTED_HOPS" default:"0" help:"Trusted proxies appending to x-forwarded-for; 0 = the client is Envoy's direct peer."`
	HeaderKeyID      string `name:"header-key-id" env:"KEYGATE_HEADER_KEY_ID" default:"x-keygate-key-id" help:"Identity header with the key id."`
	HeaderKeyName    string `name:"header-key-name" env:"KEYGATE_HEADER_KEY_NAME" default:"x-keygate-key-name" help:"Identity header with the key name."`
	HeaderAppID      string `name:"header-app-id" env:"KEYGATE_HEADER_APP_ID" default:"x-keygate-app-id" help:"Identity header with the app id."`
	HeaderTenantID   string `name:"header-tenant-id" env:"KEYGATE_HEADER_TENANT_ID" default:"x-keygate-tenant-id" help:"Identity header with the tenant id."`
	HeaderAccountID  string `name:"header-account-id" env:"KEYGATE_HEADER_ACCOUNT_ID" default:"x-keygate-account-id" help:"Identity header with the account id."`
	GenericKeyErrors bool   `name:"generic-key-errors" env:"KEYGATE_GENERIC_KEY_ERRORS" help:"Answer every key failure with one generic message instead of its reason code."`
}

func (r requestFlags) config() extauthz.Config {
	return extauthz.Config{
		KeyHeader:      r.KeyHeader,
		KeyQueryParam:  r.KeyQueryParam,
		XFFTrustedHops: r.XFFTrustedHops,
		Identity: extauthz.IdentityHeaders{
			KeyID: r.HeaderKeyID, KeyName: r.HeaderKeyName, AppID: r.HeaderAppID,
			TenantID: r.HeaderTenantID, AccountID: r.HeaderAccountID,
		},
		GenericKeyErrors: r.GenericKeyErrors,
	}.WithDefaults()
}

// logFlags configure log/slog.
type logFlags struct {
	LogLevel  string `name:"log-level" env:"KEYGATE_LOG_LEVEL" default:"info" enum:"debug,info,warn,error" help:"Log level: debug, info, warn, error."`
	LogFormat string `name:"log-format" env:"KEYGATE_LOG_FORMAT" default:"json" enum:"json,text" help:"Log format: json or text."`
}

func (l logFlags) logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(l.LogLevel))
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationsAsText}
	if l.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// durationsAsText writes every duration as Go spells it ("1.5s", "250ms")
// in both formats: the JSON handler would otherwise write nanoseconds,
// so the same field would read 500000000 in one format and 500ms in the
// other, and beside durations logged as strings.
func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// run parses args and runs one command; main is a one-liner around it so
// tests can call it with their own streams and a cancellable context.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var c cli
	exited := false
	parser, err := kong.New(&c,
		kong.Name("keygate"),
		kong.Description("keygate: API-key authorization for Envoy ext_authz."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(int) { exited = true }),
		kong.UsageOnError(),
		// Every duration flag takes days too (7d, 1d12h).
		kong.TypeMapper(reflect.TypeFor[time.Duration](), accountcli.DurationMapper()),
	)
	if err != nil {
		return err
	}
	kctx, err := parser.Parse(args)
	if exited {
		return nil // --help printed usage
	}
	if err != nil {
		return err
	}
	acct := &accountcli.Env{Ctx: ctx, Stdout: stdout, Stderr: stderr, Stdin: stdin}
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, acct: acct}
	return kctx.Run(e, acct)
}

// Package accountcli is keygate's command line client of the Account API:
// `keygate apps|tenants|keys|audit …`. It holds kong command structs that
// the keygate binary embeds:
//
//	type cli struct {
//		…
//		accountcli.Commands
//	}
//	…
//	kctx.Run(&accountcli.Env{Ctx: ctx, Stdout: stdout, Stderr: stderr, Stdin: stdin})
//
// Every command takes --account-addr (KEYGATE_ACCOUNT_ADDR), --account-key
// (KEYGATE_ACCOUNT_KEY; prefer the environment variable, a flag shows in
// process lists and shell history) and -o table|json. Beyond loopback the
// key travels only over TLS (https:// addresses, --tls, --ca-file,
// --cert-file/--key-file for mTLS) unless --insecure: transport.go. Tables are aligned
// text; JSON is protojson with the proto field names, one object or an
// array. Secrets (keys generate, keys regenerate) are printed once, to
// stdout only: in table mode alone on the last line, in JSON mode as
// private_key.
package accountcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/accountgrpc"
	"github.com/keygate/keygate/pkg/secretfile"
)

// Env is what every command gets from the binary.
type Env struct {
	Ctx    context.Context
	Stdout io.Writer
	Stderr io.Writer
	// Stdin is where `keys import` reads the secret; nil means os.Stdin.
	Stdin io.Reader
	// IsTerminal reports whether Stdin is a terminal a person can answer
	// a confirmation on; nil asks golang.org/x/term about Stdin.
	IsTerminal func() bool
	// ReadPassword reads one line from the terminal without echo; nil
	// asks golang.org/x/term to read it from Stdin.
	ReadPassword func() ([]byte, error)
}

// Commands are the Account API client commands, to embed in keygate's CLI.
type Commands struct {
	Apps       AppsCmd       `cmd:"" help:"Manage apps (applications whose APIs keygate protects)."`
	Tenants    TenantsCmd    `cmd:"" help:"Manage tenants (customers of an app)."`
	Keys       KeysCmd       `cmd:"" help:"Manage API keys: generate, import, list, get, update, regenerate, delete."`
	Roles      RolesCmd      `cmd:"" help:"Manage roles: named scopes that keys hold (SBS service access roles)."`
	Denials    DenialsCmd    `cmd:"" help:"Manage service access denials: block one tenant of one app from a service or operation."`
	Audit      AuditCmd      `cmd:"" help:"List the account's audit events, newest first, with what changed; filter by key, actor, action, outcome and time."`
	Replicas   ReplicasCmd   `cmd:"" help:"List the serving replicas (database mode): live or not, version, the change they have applied, their lag."`
	SyncStatus SyncStatusCmd `cmd:"" name:"sync-status" help:"How many live replicas have applied a change (--change N, as a change printed it) or a key's last change (--key KEY)."`
	Usage      UsageCmd      `cmd:"" help:"Show the account's usage: decisions per period by tenant, app, key, service, operation or outcome, with a sparkline per row."`
}

// ConnFlags say where the Account API is and which key calls it; every
// command that calls it embeds them (one declaration, one meaning per
// environment variable).
type ConnFlags struct {
	AccountAddr    string `name:"account-addr" env:"KEYGATE_ACCOUNT_ADDR" default:"127.0.0.1:9192" help:"Account API address to call: host:port, https://host:port (TLS) or http://host:port."`
	AccountKey     string `name:"account-key" env:"KEYGATE_ACCOUNT_KEY" help:"Account key to call the API with. Prefer the environment variable or --account-key-file: a flag shows in process lists and shell history."`
	AccountKeyFile string `name:"account-key-file" env:"KEYGATE_ACCOUNT_KEY_FILE" help:"File holding the account key; one trailing newline is dropped. Excludes --account-key."`
	TransportFlags        // TLS, mTLS and the cleartext refusal (transport.go)
}

// ClientFlags select the Account API and the output format; every command
// has them.
type ClientFlags struct {
	ConnFlags
	Output  string   `name:"output" short:"o" default:"table" enum:"table,json" help:"Output format: table or json."`
	Timeout Duration `name:"timeout" default:"30s" placeholder:"DURATION" help:"Deadline of each call (Go units or days: 30s, 2m)."`
}

// client is a connection to the Account API with the caller's key.
type client struct {
	api  accountv1.AccountServiceClient
	conn *grpc.ClientConn
	addr string // --account-addr, for messages
	key  string
	out  printer
	env  *Env
	tm   time.Duration
}

// AccountKey returns the account key given directly (--account-key,
// KEYGATE_ACCOUNT_KEY) or as a file (--account-key-file,
// KEYGATE_ACCOUNT_KEY_FILE), refusing both; "" when neither is given.
func AccountKey(value, path string) (string, error) {
	return secretfile.Source{
		Direct: "--account-key (KEYGATE_ACCOUNT_KEY)", File: "--account-key-file (KEYGATE_ACCOUNT_KEY_FILE)",
		Value: value, Path: path,
	}.Get()
}

func (f *ClientFlags) dial(e *Env) (*client, error) {
	key, err := AccountKey(f.AccountKey, f.AccountKeyFile)
	if err != nil {
		return nil, err
	}
	if key == "" {
		return nil, errors.New("no account key: set KEYGATE_ACCOUNT_KEY or KEYGATE_ACCOUNT_KEY_FILE (or --account-key-file)")
	}
	conn, err := f.Dial(f.AccountAddr)
	if err != nil {
		return nil, err
	}
	return &client{
		api:  accountv1.NewAccountServiceClient(conn),
		conn: conn,
		addr: f.AccountAddr,
		key:  key,
		out:  printer{w: e.Stdout, json: f.Output == "json"},
		env:  e,
		tm:   f.Timeout.D(),
	}, nil
}

// ctx is a call context: the deadline and the key in the metadata.
func (c *client) ctx() (context.Context, context.CancelFunc) {
	ctx := c.env.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	var cancel context.CancelFunc = func() {}
	if c.tm > 0 {
		ctx, cancel = context.WithTimeout(ctx, c.tm)
	}
	return metadata.AppendToOutgoingContext(ctx, accountgrpc.KeyHeader, c.key), cancel
}

func (c *client) close() { c.conn.Close() }

// DefaultAccountAddr is where serve's Account API listens by default
// (--account-listen-addr), and where the CLI calls it (--account-addr).
const DefaultAccountAddr = "127.0.0.1:9192"

// CallError turns the status of an Account API call to addr into
// "Code: message" (the message names the field for InvalidArgument); it
// never includes the key. Unimplemented means the server at addr has no
// Account API at all, most often the authz port given by mistake: say so
// rather than print a bare code. The status stays readable
// (status.FromError) for commands that act on its details.
func CallError(addr string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := fmt.Sprintf("%s: %s", st.Code(), st.Message())
	switch {
	case st.Code() == codes.Unimplemented:
		msg = fmt.Sprintf("the server at %s does not serve the Account API (is this the authz port? the Account API listens on --account-listen-addr, default %s)", addr, DefaultAccountAddr)
	case st.Code() == codes.Unavailable && strings.HasPrefix(st.Message(), "store_unavailable"):
		msg = "the Account API's database is unavailable (store_unavailable); retry later"
	case st.Code() == codes.Unavailable:
		msg += " (is keygate's Account API listening at --account-addr?)"
	}
	return &statusError{st: st, msg: msg}
}

// statusError is a call's error as the CLI prints it, keeping its status.
type statusError struct {
	st  *status.Status
	msg string
}

func (e *statusError) Error() string { return e.msg }

// GRPCStatus lets status.FromError read the call's status.
func (e *statusError) GRPCStatus() *status.Status { return e.st }

// run dials, runs fn and closes.
func run(f *ClientFlags, e *Env, fn func(c *client) error) error {
	c, err := f.dial(e)
	if err != nil {
		return err
	}
	defer c.close()
	return fn(c)
}

// call runs one RPC with a call context and maps its error.
func call[Req, Resp any](c *client, rpc func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	ctx, cancel := c.ctx()
	defer cancel()
	resp, err := rpc(ctx, req)
	if err != nil {
		var zero Resp
		return zero, CallError(c.addr, err)
	}
	printChange(c, resp)
	return resp, nil
}

// pageFlags page a list.
type pageFlags struct {
	PageSize  int32  `name:"page-size" default:"100" help:"Items per page (at most 1000)."`
	PageToken string `name:"page-token" help:"Page to show: a previous listing's next page token."`
	All       bool   `name:"all" help:"Follow every page."`
}

// pages calls fetch with each page token until the last page (or once,
// without --all) and tells on stderr how to get the next page.
func (p *pageFlags) pages(c *client, fetch func(token string) (next string, err error)) error {
	token := p.PageToken
	for {
		next, err := fetch(token)
		if err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		if !p.All {
			fmt.Fprintf(c.env.Stderr, "more results: --page-token %s (or --all)\n", next)
			return nil
		}
		token = next
	}
}

// parseHeaders reads name=value flags into response headers.
func parseHeaders(flag string, vals []string, disabled bool) ([]*accountv1.ResponseHeader, error) {
	var out []*accountv1.ResponseHeader
	for _, v := range vals {
		name, value, ok := strings.Cut(v, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--%s: want name=value, got %q", flag, v)
		}
		out = append(out, &accountv1.ResponseHeader{Name: name, Value: value, Disabled: disabled})
	}
	return out, nil
}

func stdin(e *Env) io.Reader {
	if e.Stdin != nil {
		return e.Stdin
	}
	return os.Stdin
}

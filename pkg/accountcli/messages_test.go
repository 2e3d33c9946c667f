package accountcli_test

import (
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/keygate/keygate/pkg/accountcli"
	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
)

// A secret with a space is refused by naming the space, its byte offset and
// the characters allowed, never quoting the secret.
func TestImportSecretWithSpace(t *testing.T) {
	s := setup(t)
	secret := "legacy secret-0123456789"
	r := cli(t, s, secret+"\n", "keys", "import", "--type", "app", "--app", "billing")
	wantErr(t, r, "InvalidArgument: private_key: malformed key: contains a space at byte 6; "+apikey.AllowedBytes)
	if strings.Contains(r.err.Error()+r.stdout+r.stderr, "secret-0123") {
		t.Fatal("the refused secret was echoed")
	}
}

// --ip-filter takes one filter: a comma-separated value is a list written
// as one flag, refused before the call with the way to write it.
func TestIPFilterCommaList(t *testing.T) {
	s := setup(t)
	want := `--ip-filter "10.0.0.0/8,10.1.0.0/16": give one address or CIDR per --ip-filter flag (repeat the flag); ` + authz.IPFilterForms
	wantErr(t, cli(t, s, "", "keys", "generate", "--type", "app", "--app", "billing", "--ip-filter", "10.0.0.0/8,10.1.0.0/16"), want)
	ok(t, cli(t, s, "", "keys", "generate", "--type", "app", "--app", "billing", "--id", "k1"))
	wantErr(t, cli(t, s, "", "keys", "update", "k1", "--ip-filter", "10.0.0.0/8,10.1.0.0/16"), want)
	// Repeating the flag is the way; any other bad value is named, with
	// the accepted forms, by the server.
	ok(t, cli(t, s, "", "keys", "update", "k1", "--ip-filter", "10.0.0.0/8", "--ip-filter", "10.1.0.0/16"))
	wantErr(t, cli(t, s, "", "keys", "update", "k1", "--ip-filter", "10.0.0.0/nope"),
		`InvalidArgument: ip_filters: [0] "10.0.0.0/nope": `, authz.IPFilterForms)
}

// A gRPC server without the Account API (the authz port, say) answers
// Unimplemented: the CLI says which server that is and where the Account
// API listens.
func TestServerWithoutAccountAPI(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	addr := lis.Addr().String()
	t.Setenv("KEYGATE_ACCOUNT_ADDR", addr)
	t.Setenv("KEYGATE_ACCOUNT_KEY", "kg_aak_not-checked-here-0123456789")
	wantErr(t, runCLI(t, "", "keys", "list"),
		"the server at "+addr+" does not serve the Account API (is this the authz port? the Account API listens on --account-listen-addr, default "+accountcli.DefaultAccountAddr+")")
}

package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/tlsfiles/tlstest"
)

// tlsFixture is a CA with a server and a client certificate, another CA
// with a client certificate of its own, and the server's files on disk.
type tlsFixture struct {
	ca, other        *tlstest.CA
	server           *tlstest.Leaf
	client, intruder *tlstest.Leaf
	files            tlstest.Files
}

func newTLSFixture(t testing.TB) *tlsFixture {
	t.Helper()
	f := &tlsFixture{ca: tlstest.NewCA(t, "keygate-test-ca"), other: tlstest.NewCA(t, "other-ca")}
	f.server = f.ca.Server(t, "keygate")
	f.client = f.ca.Client(t, "envoy")
	f.intruder = f.other.Client(t, "intruder")
	f.files = tlstest.WriteFiles(t, t.TempDir(), f.server, f.ca)
	return f
}

// mtlsArgs serve every listener with mTLS from the fixture's files.
func (f *tlsFixture) mtlsArgs() []string {
	return []string{"--tls-cert-file", f.files.Cert, "--tls-key-file", f.files.Key, "--tls-client-ca-file", f.files.CA}
}

// dialTLS is dial over TLS with cfg; connections are made on first use.
func dialTLS(t testing.TB, addr string, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// httpsGet is one GET over a new TLS connection with cfg.
func httpsGet(url string, cfg *tls.Config) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// waitReadyTLS is waitReady for an admin listener serving TLS.
func waitReadyTLS(t testing.TB, s *server, cfg *tls.Config) {
	t.Helper()
	eventually(t, "/readyz over TLS", func() bool {
		code, _, err := httpsGet("https://"+s.adminAddr+"/readyz", cfg)
		return err == nil && code == 200
	})
}

// TestTLSEveryListener serves each listener with mTLS from one set of
// files: a client with a good certificate is answered, one without a
// certificate or with another CA's is refused, and no listener speaks
// cleartext.
func TestTLSEveryListener(t *testing.T) {
	f := newTLSFixture(t)
	env := newDBEnv(t)
	srv := startServe(t, []string{"authz", "admin", "account", "http", "console"}, append([]string{"--database-url", env.url,
		"--routes-file", env.routesFile, "--http-authz-addr", "127.0.0.1:0"}, f.mtlsArgs()...)...)
	good := tlstest.ClientConfig(t, f.ca, f.client)
	waitReadyTLS(t, srv, good)
	httpAddr := listenerAddr(t, srv, "http")

	ctx := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	listeners := []struct {
		name  string
		probe func(cfg *tls.Config) error // nil when answered
	}{
		{"authz", func(cfg *tls.Config) error {
			// A key the database does not hold: answered with a deny.
			resp, err := authv3.NewAuthorizationClient(dialTLS(t, srv.authzAddr, cfg)).Check(ctx(), checkReq("GET", "/email/inbox", "kg_sak_nope", nil))
			if err == nil && resp.GetDeniedResponse() == nil {
				return fmt.Errorf("not a deny: %v", resp)
			}
			return err
		}},
		{"http-authz", func(cfg *tls.Config) error {
			code, _, err := httpsGet("https://"+httpAddr+"/email/inbox", cfg)
			if err == nil && code != http.StatusUnauthorized {
				return fmt.Errorf("status %d, want 401", code)
			}
			return err
		}},
		{"account", func(cfg *tls.Config) error {
			api := accountv1.NewAccountServiceClient(dialTLS(t, srv.accountAddr, cfg))
			_, err := api.ListApps(metadata.AppendToOutgoingContext(ctx(), "x-api-key", env.accountKey), &accountv1.ListAppsRequest{})
			return err
		}},
		{"console", func(cfg *tls.Config) error {
			// /graphql without a key: answered 401 over TLS.
			code, _, err := httpsGet("https://"+srv.consoleAddr+"/graphql?query=%7Bapps%7Bnodes%7Bid%7D%7D%7D", cfg)
			if err == nil && code != http.StatusUnauthorized {
				return fmt.Errorf("status %d, want 401", code)
			}
			return err
		}},
		{"admin", func(cfg *tls.Config) error {
			code, _, err := httpsGet("https://"+srv.adminAddr+"/readyz", cfg)
			if err == nil && code != 200 {
				return fmt.Errorf("status %d", code)
			}
			return err
		}},
	}
	clients := []struct {
		name    string
		cfg     *tls.Config
		refused bool
	}{
		{"good certificate", good, false},
		{"no certificate", tlstest.ClientConfig(t, f.ca, nil), true},
		{"another CA's certificate", tlstest.ClientConfig(t, f.ca, f.intruder), true},
	}
	for _, l := range listeners {
		for _, c := range clients {
			t.Run(l.name+"/"+c.name, func(t *testing.T) {
				err := l.probe(c.cfg)
				if c.refused != (err != nil) {
					t.Fatalf("refused %v (%v), want refused %v", err != nil, err, c.refused)
				}
			})
		}
	}
	t.Run("no cleartext", func(t *testing.T) {
		for _, addr := range []string{srv.adminAddr, httpAddr, srv.consoleAddr} {
			if code, _, err := httpsGet("http://"+addr+"/readyz", nil); err == nil && code < 400 {
				t.Errorf("%s answered cleartext HTTP with %d", addr, code)
			}
		}
		if err := listeners[0].probe(nil); err == nil {
			t.Error("authz answered without TLS")
		}
	})
	// Identities are logged per connection: subject and SANs, never a key.
	logs := srv.Logs()
	if !strings.Contains(logs, `"msg":"tls client connected"`) || !strings.Contains(logs, "spiffe://keygate.test/envoy") ||
		!strings.Contains(logs, "CN=envoy") {
		t.Errorf("no client identity in the logs:\n%s", logs)
	}
	if strings.Contains(logs, "PRIVATE KEY") || strings.Contains(logs, "intruder") {
		t.Errorf("logs show a key or a refused client as connected:\n%s", logs)
	}
}

// TestTLSStartupErrors: files that cannot be used stop serve at start,
// with an error naming the flags.
func TestTLSStartupErrors(t *testing.T) {
	f := newTLSFixture(t)
	dir := t.TempDir()
	keysFile, routesFile := filepath.Join(dir, "keys.yaml"), filepath.Join(dir, "routes.yaml")
	writeFile(t, keysFile, keysYAML())
	writeFile(t, routesFile, routesYAML)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"cert without key", []string{"--tls-cert-file", f.files.Cert}, "--tls-cert-file is set without --tls-key-file"},
		{"listener key without cert", []string{"--admin-tls-key-file", f.files.Key}, "--admin-tls-key-file is set without --admin-tls-cert-file"},
		{"missing file", []string{"--authz-tls-cert-file", filepath.Join(dir, "absent.crt"), "--authz-tls-key-file", f.files.Key},
			"tls authz listener: certificate file: open"},
		{"client CA not PEM", []string{"--tls-cert-file", f.files.Cert, "--tls-key-file", f.files.Key, "--tls-client-ca-file", keysFile},
			"no PEM CERTIFICATE block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cliRun(t, "", append([]string{"serve", "--keys-file", keysFile, "--routes-file", routesFile,
				"--authz-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("serve: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// TestTLSRotationUnderLoad swaps the authz listener's certificate the way
// the kubelet updates a Secret volume while one client checks without
// pause over one connection and another opens a connection per check: no
// check fails, new handshakes see the new certificate within 2 s, and a
// broken replacement keeps the last good pair and says why on /readyz.
func TestTLSRotationUnderLoad(t *testing.T) {
	ca := tlstest.NewCA(t, "keygate-test-ca")
	first, client := ca.Server(t, "keygate-first"), ca.Client(t, "envoy")
	secretDir := t.TempDir()
	volume := func(l *tlstest.Leaf, key []byte) map[string]string {
		return tlstest.SecretVolume(t, secretDir, map[string][]byte{"tls.crt": l.CertPEM, "tls.key": key, "ca.crt": ca.PEM})
	}
	paths := volume(first, first.KeyPEM)

	dir := t.TempDir()
	svc, svcHash := newKey(t, "service")
	keysFile, routesFile := filepath.Join(dir, "keys.yaml"), filepath.Join(dir, "routes.yaml")
	writeFile(t, keysFile, keysYAML(keyEntry{id: "k-svc", typ: "service", hash: svcHash}))
	writeFile(t, routesFile, routesYAML)
	srv := startServer(t, keysFile, routesFile, "--authz-tls-cert-file", paths["tls.crt"], "--authz-tls-key-file", paths["tls.key"],
		"--authz-tls-client-ca-file", paths["ca.crt"])
	cfg := tlstest.ClientConfig(t, ca, client)
	req := checkReq("GET", "/email/inbox", svc, nil)

	// served is the certificate a new handshake gets.
	served := func() *x509.Certificate {
		conn, err := tls.Dial("tcp", srv.authzAddr, cfg)
		if err != nil {
			t.Errorf("handshake: %v", err)
			return nil
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0]
	}
	if got := served(); got == nil || !got.Equal(first.Cert) {
		t.Fatal("not serving the first certificate")
	}

	var checks, failures atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	check := func(c authv3.AuthorizationClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := c.Check(ctx, req)
		if err == nil && resp.GetOkResponse() == nil {
			err = fmt.Errorf("not allowed: %v", resp)
		}
		checks.Add(1)
		if err != nil {
			failures.Add(1)
			firstFailure.CompareAndSwap(nil, err.Error())
		}
	}
	// untilStopped runs f without pause until the load stops.
	untilStopped := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					f()
				}
			}
		}()
	}
	persistent := authv3.NewAuthorizationClient(dialTLS(t, srv.authzAddr, cfg))
	untilStopped(func() { check(persistent) }) // one connection
	untilStopped(func() {                      // a new connection (and handshake) per check
		conn, err := grpc.NewClient(srv.authzAddr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			failures.Add(1)
			return
		}
		check(authv3.NewAuthorizationClient(conn))
		conn.Close()
	})
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()

	// seenWithin polls new handshakes until want is served.
	seenWithin := func(want *tlstest.Leaf, bound time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			if got := served(); got != nil && got.Equal(want.Cert) {
				return time.Since(start)
			}
			if time.Since(start) > bound {
				t.Fatalf("new handshakes did not see %s within %v", want.Cert.Subject, bound)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	before := checks.Load()
	second := ca.Server(t, "keygate-second")
	volume(second, second.KeyPEM)
	took := seenWithin(second, 2*time.Second)
	t.Logf("new certificate served %v after the swap", took.Round(time.Millisecond))

	// A broken replacement: a certificate with another certificate's key.
	broken := ca.Server(t, "keygate-broken")
	volume(broken, second.KeyPEM)
	eventually(t, "/readyz naming the refused files", func() bool {
		code, body := httpGet(t, "http://"+srv.adminAddr+"/readyz")
		return code == 200 && strings.Contains(body, "tls authz:") && strings.Contains(body, "does not match")
	})
	if got := served(); got == nil || !got.Equal(second.Cert) {
		t.Fatal("a broken replacement replaced the good pair")
	}
	if _, body := httpGet(t, "http://"+srv.adminAddr+"/metrics"); !strings.Contains(body, `keygate_tls_reload_errors_total{listener="authz"} 1`) {
		t.Errorf("no reload error counted:\n%s", grepLines(body, "keygate_tls"))
	}
	// Fixed files serve again and clear the detail.
	third := ca.Server(t, "keygate-third")
	volume(third, third.KeyPEM)
	seenWithin(third, 2*time.Second)
	during := checks.Load() - before
	eventually(t, "/readyz clear", func() bool {
		_, body := httpGet(t, "http://"+srv.adminAddr+"/readyz")
		return !strings.Contains(body, "tls authz")
	})
	// Let the load run on the new pair a moment, over both kinds of
	// connection, before stopping it.
	for at := checks.Load(); checks.Load() < at+50; {
		time.Sleep(10 * time.Millisecond)
	}
	stopLoad()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d checks failed during rotation; first: %v", n, checks.Load(), firstFailure.Load())
	}
	if during < 20 {
		t.Fatalf("only %d checks ran during the rotations", during)
	}
	t.Logf("%d checks, none failed", checks.Load())
	if logs := srv.Logs(); strings.Contains(logs, "PRIVATE KEY") {
		t.Error("a private key in the logs")
	}
}

// grepLines keeps the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestTLSCLI: the CLI calls an Account API that requires client
// certificates with --ca-file, --cert-file and --key-file (flags or
// environment), and refuses before dialing to send an account key in
// cleartext to an address that is not loopback.
func TestTLSCLI(t *testing.T) {
	f := newTLSFixture(t)
	clientFiles := tlstest.WriteFiles(t, t.TempDir(), f.client, f.ca)
	env := newDBEnv(t)
	srv := env.serve(t, "--account-tls-cert-file", f.files.Cert, "--account-tls-key-file", f.files.Key,
		"--account-tls-client-ca-file", f.files.CA)
	waitReady(t, srv) // the admin listener stays cleartext: only the Account API serves TLS
	key := "KEYGATE_ACCOUNT_KEY=" + env.accountKey

	_, err := cliRunEnv(t, []string{key}, "", "apps", "create", "--id", "billing", "--name", "Billing",
		"--account-addr", "https://"+srv.accountAddr, "--ca-file", clientFiles.CA,
		"--cert-file", clientFiles.Cert, "--key-file", clientFiles.Key)
	if err != nil {
		t.Fatalf("apps create over mTLS: %v", err)
	}
	out, err := cliRunEnv(t, []string{key, "KEYGATE_ACCOUNT_ADDR=" + srv.accountAddr, "KEYGATE_CLIENT_TLS=true",
		"KEYGATE_CLIENT_CA_FILE=" + clientFiles.CA, "KEYGATE_CLIENT_CERT_FILE=" + clientFiles.Cert,
		"KEYGATE_CLIENT_KEY_FILE=" + clientFiles.Key}, "", "apps", "list")
	if err != nil || !strings.Contains(out, "billing") {
		t.Fatalf("apps list with the environment: %v\n%s", err, out)
	}
	// Without a client certificate the Account API refuses the call, and
	// without TLS it does not answer at all.
	for _, args := range [][]string{
		{"--account-addr", "https://" + srv.accountAddr, "--ca-file", clientFiles.CA},
		{"--account-addr", srv.accountAddr},
	} {
		if _, err := cliRunEnv(t, []string{key}, "", append([]string{"apps", "list", "--timeout", "5s"}, args...)...); err == nil {
			t.Errorf("apps list %v succeeded", args)
		}
	}

	// Cleartext to a non-loopback address: refused at once, saying how to
	// fix it. 10.255.255.1 does not answer, so a dial would hang for the
	// whole timeout.
	start := time.Now()
	_, err = cliRunEnv(t, []string{key}, "", "apps", "list", "--account-addr", "10.255.255.1:9192", "--timeout", "20s")
	if err == nil || !strings.Contains(err.Error(), "refusing to send the account key in cleartext") ||
		!strings.Contains(err.Error(), "--insecure") || !strings.Contains(err.Error(), "https://") {
		t.Fatalf("cleartext to 10.255.255.1: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the refusal took %v: it must come before dialing", took)
	}
	if strings.Contains(err.Error(), env.accountKey) {
		t.Fatal("the refusal shows the account key")
	}
}

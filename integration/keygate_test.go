package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// binaries are built once per test run: with -race for behaviour tests,
// without for measurements (the race detector multiplies time and memory).
var binaries sync.Map // race bool → *builtBinary

type builtBinary struct {
	once sync.Once
	path string
	err  error
}

// keygateBinary builds cmd/keygate with -race once per test run.
func keygateBinary(t testing.TB) string { return buildKeygate(t, true) }

func buildKeygate(t testing.TB, race bool) string {
	t.Helper()
	v, _ := binaries.LoadOrStore(race, &builtBinary{})
	b := v.(*builtBinary)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "keygate-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "keygate")
		args := []string{"build", "-o", b.path}
		if race {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "../cmd/keygate")...).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// cleanEnv is the test's environment without keygate's own settings, so
// that what a test passes as flags is all the server sees (DATABASE_URL
// would otherwise switch it to database mode).
func cleanEnv() []string {
	// The race binary otherwise pauses a second at every exit.
	env := []string{"GORACE=atexit_sleep_ms=0"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KEYGATE_") || strings.HasPrefix(kv, "DATABASE_URL=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// cliRun runs a keygate subcommand and returns stdout.
func cliRun(t testing.TB, stdin string, args ...string) (string, error) {
	t.Helper()
	return cliRunEnv(t, nil, stdin, args...)
}

// cliRunEnv is cliRun with extra environment variables.
func cliRunEnv(t testing.TB, env []string, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(keygateBinary(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%v: %s", err, stderr.String())
	}
	return stdout.String(), err
}

// newKey makes a secret and its hash form with the real CLI.
func newKey(t testing.TB, typ string) (secret, hash string) {
	t.Helper()
	out, err := cliRun(t, "", "keygen", "--type", typ)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("keygen printed %d lines, want 2", len(lines))
	}
	return lines[0], lines[1]
}

// server is a running `keygate serve` and what it logged.
type server struct {
	cmd         *exec.Cmd
	authzAddr   string
	adminAddr   string
	accountAddr string // database mode only
	consoleAddr string // /graphql and the console (read-only with a keys file)
	mu          sync.Mutex
	logs        strings.Builder
	done        chan error
}

func (s *server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// startServer runs keygate serve with a keys file on 127.0.0.1:0 and waits
// for its listeners.
func startServer(t testing.TB, keysFile, routesFile string, extra ...string) *server {
	t.Helper()
	return startServe(t, []string{"authz", "admin"}, append([]string{"--keys-file", keysFile, "--routes-file", routesFile}, extra...)...)
}

// startServe runs `keygate serve args…` with every listener on 127.0.0.1:0
// and waits until the named listeners report their addresses.
func startServe(t testing.TB, listeners []string, args ...string) *server {
	t.Helper()
	return startServeBinary(t, keygateBinary(t), listeners, args...)
}

// startServeBinary is startServe with a given keygate binary.
func startServeBinary(t testing.TB, bin string, listeners []string, args ...string) *server {
	t.Helper()
	// The Account API's rate limits are lifted: tests drive it faster
	// than a person would (TestAccountRateLimits sets them back; a later
	// flag wins).
	args = append([]string{"serve", "--authz-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--account-listen-addr", "127.0.0.1:0", "--console-addr", "127.0.0.1:0", "--log-level", "debug", "--log-format", "json",
		"--account-mutations-per-second", "1e6", "--account-reads-per-second", "1e6"}, args...)
	s := &server{cmd: exec.Command(bin, args...), done: make(chan error, 1)}
	s.cmd.Env = cleanEnv()
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		got := map[string]string{}
		sent := false
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.logs.WriteString(line + "\n")
			s.mu.Unlock()
			var rec struct{ Msg, Listener, Addr string }
			if sent || json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "listening" {
				continue
			}
			got[rec.Listener] = rec.Addr
			all := true
			for _, l := range listeners {
				all = all && got[l] != ""
			}
			if all {
				addrs <- got
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
		}
	})
	select {
	case a := <-addrs:
		s.authzAddr, s.adminAddr, s.accountAddr, s.consoleAddr = a["authz"], a["admin"], a["account"], a["console"]
	case err := <-s.done:
		t.Fatalf("keygate exited before listening: %v\n%s", err, s.Logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("keygate did not start listening\n%s", s.Logs())
	}
	return s
}

func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// checkReq is a CheckRequest as Envoy builds it for an HTTP request.
func checkReq(method, path, key string, extra map[string]string) *authv3.CheckRequest {
	h := map[string]string{":method": method, ":path": path, ":authority": "api.example.com"}
	if key != "" {
		h["x-api-key"] = key
	}
	for k, v := range extra {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Host: "api.example.com", Headers: h, Protocol: "HTTP/1.1",
		}},
	}}
}

// outcome is what a test asserts about a CheckResponse.
type outcome struct {
	status int    // HTTP status Envoy would send: 200 on allow
	reason string // deny reason code
}

func call(t testing.TB, c authv3.AuthorizationClient, req *authv3.CheckRequest) (outcome, *authv3.CheckResponse) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Check(ctx, req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if d := resp.GetDeniedResponse(); d != nil {
		var body struct{ Reason string }
		if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil {
			t.Fatalf("deny body %q: %v", d.GetBody(), err)
		}
		return outcome{int(d.GetStatus().GetCode()), body.Reason}, resp
	}
	if resp.GetOkResponse() == nil {
		t.Fatalf("neither ok nor denied: %v", resp)
	}
	return outcome{status: 200}, resp
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func httpGet(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	// Replace by rename, as editors and ConfigMap updates do.
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

const routesYAML = `services:
  - name: email-api
    key_types: [service]
    routes:
      - {path: /email/inbox, methods: [GET], kind: query, operation: listEmails}
      - {path: /email/send, methods: [POST], kind: mutation, operation: sendEmail}
      - {path: "/email/{id}", methods: [DELETE], kind: mutation, operation: deleteEmail}
  - name: users-api
    key_types: [app]
    grpc_services: [users.v1.UserService]
`

type keyEntry struct {
	id, typ, hash, extra string
}

func keysYAML(keys ...keyEntry) string {
	var b strings.Builder
	b.WriteString("apps: [{id: billing, name: Billing}]\ntenants: [{id: acme, name: ACME Corp}]\n")
	if len(keys) == 0 {
		// `keys:` with nothing after it is refused as a truncated file.
		b.WriteString("keys: []\n")
		return b.String()
	}
	b.WriteString("keys:\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "  - id: %s\n    name: %s-name\n    type: %s\n    hash: %q\n", k.id, k.id, k.typ, k.hash)
		switch k.typ {
		case "service":
			b.WriteString("    app: billing\n    tenant: acme\n")
		case "app":
			b.WriteString("    app: billing\n")
		}
		if k.extra != "" {
			b.WriteString(k.extra)
		}
	}
	return b.String()
}

package integration

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 13 points 9 and 10, sent as an attacker without a key would send
// them to the real `keygate serve`: the HTTP listeners hold neither
// connections nor bodies beyond their limits (SPEC §16), and --pprof never
// serves the command line.

// bypassRoutesYAML has REST routes and a GraphQL route with a small body
// limit.
const bypassRoutesYAML = `services:
  - name: email-api
    key_types: [service]
    routes:
      - {path: /email/inbox, methods: [GET], kind: query, operation: listEmails}
      - {path: /email/send, methods: [POST], kind: mutation, operation: sendEmail}
  - name: graph-api
    key_types: [service]
    routes:
      - {path: /graphql, methods: [POST], protocol: graphql, max_body_bytes: 4096}
`

// httpModeServer starts keygate serve with the HTTP authz listener on the
// bypass routes and one service key (empty scope: every operation).
func httpModeServer(t *testing.T, extra ...string) (srv *server, httpAddr, key string) {
	t.Helper()
	dir := t.TempDir()
	secret, hash := newKey(t, "service")
	keysFile, routesFile := filepath.Join(dir, "keys.yaml"), filepath.Join(dir, "routes.yaml")
	writeFile(t, keysFile, keysYAML(keyEntry{id: "k-svc", typ: "service", hash: hash}))
	writeFile(t, routesFile, bypassRoutesYAML)
	srv = startServe(t, []string{"authz", "admin", "http"}, append([]string{"--keys-file", keysFile,
		"--routes-file", routesFile, "--http-authz-addr", "127.0.0.1:0"}, extra...)...)
	return srv, listenerAddr(t, srv, "http"), secret
}

// rawConn is a TCP connection to a listener, for requests that no HTTP
// client would send.
type rawConn struct {
	t *testing.T
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, Conn: c, r: bufio.NewReader(c)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		c.t.Fatal(err)
	}
}

// response reads the next response, waiting at most wait; resp is set
// when its head arrived, even if its body could not be read.
func (c *rawConn) response(wait time.Duration) (*http.Response, string, error) {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// silentFor reports whether nothing arrives on c for d.
func (c *rawConn) silentFor(d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := c.r.Peek(1)
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// closedByServer reports whether the server closes c (EOF or reset, no
// data) within wait.
func (c *rawConn) closedByServer(wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	b, err := c.r.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	if err == nil {
		c.t.Fatalf("the server sent %q on a connection it should close", b)
	}
	return true
}

func getInbox(key string) string {
	return "GET /email/inbox HTTP/1.1\r\nHost: api.example.com\r\nX-Api-Key: " + key + "\r\n\r\n"
}

// TestHTTPListenersCapConnections: the (N+1)-th connection to the HTTP
// authz listener, or to the admin listener, is not served while N idle
// connections without a key are open, and is once one of them closes.
func TestHTTPListenersCapConnections(t *testing.T) {
	// Long read timeouts: the idle connections must outlive the test, so
	// that only the limit can hold the next one back.
	srv, httpAddr, key := httpModeServer(t, "--http-authz-max-connections", "2", "--admin-max-connections", "1",
		"--http-read-header-timeout", "60s", "--http-read-timeout", "60s")

	for _, l := range []struct {
		name, addr, request string
		limit               int
	}{
		{"http authz", httpAddr, getInbox(key), 2},
		{"admin", srv.adminAddr, "GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n", 1},
	} {
		t.Run(l.name, func(t *testing.T) {
			var idle []*rawConn
			for range l.limit {
				idle = append(idle, dialRaw(t, l.addr))
			}
			// A served connection proves the idle ones were accepted first.
			next := dialRaw(t, l.addr)
			next.send(l.request)
			if !next.silentFor(time.Second) {
				t.Fatalf("connection %d was served while %d idle connections are open", l.limit+1, l.limit)
			}
			idle[0].Close()
			resp, _, err := next.response(10 * time.Second)
			if err != nil {
				t.Fatalf("connection %d not served once an idle one closed: %v", l.limit+1, err)
			}
			if resp.StatusCode != 200 {
				t.Fatalf("got %d", resp.StatusCode)
			}
		})
	}
}

// TestHTTPListenersCloseIdleConnections: a connection that never sends a
// request, and a keep-alive connection after its request, are closed by
// the server once the timeouts set by flag pass.
func TestHTTPListenersCloseIdleConnections(t *testing.T) {
	srv, httpAddr, key := httpModeServer(t, "--http-read-header-timeout", "1s", "--http-idle-timeout", "1s")
	for name, addr := range map[string]string{"http authz": httpAddr, "admin": srv.adminAddr} {
		t.Run(name+": silent connection", func(t *testing.T) {
			c := dialRaw(t, addr)
			if !c.closedByServer(15 * time.Second) {
				t.Fatal("a connection that sent nothing is still open")
			}
		})
	}
	t.Run("keep-alive connection after a request", func(t *testing.T) {
		c := dialRaw(t, httpAddr)
		c.send(getInbox(key))
		resp, body, err := c.response(10 * time.Second)
		if err != nil || resp.StatusCode != 200 || resp.Close {
			t.Fatalf("first request: %v %v %q", resp, err, body)
		}
		if !c.closedByServer(15 * time.Second) {
			t.Fatal("an idle keep-alive connection is still open")
		}
	})
	t.Run("headers over the limit", func(t *testing.T) {
		_, httpAddr, key := httpModeServer(t, "--http-max-header-bytes", "4096")
		c := dialRaw(t, httpAddr)
		c.send("GET /email/inbox HTTP/1.1\r\nHost: api.example.com\r\nX-Api-Key: " + key +
			"\r\nX-Padding: " + strings.Repeat("p", 16<<10) + "\r\n\r\n")
		// The server resets the connection after the answer's head: the
		// rest of the oversized headers is never read.
		resp, _, err := c.response(10 * time.Second)
		if resp == nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("got %v, %v; want 431", resp, err)
		}
	})
}

// TestHTTPModeReadsBodiesOnlyForGraphQL: a route that reads no body
// answers without waiting for one; a GraphQL route refuses a
// Content-Length over its limit before reading, and still reads a body
// within it.
func TestHTTPModeReadsBodiesOnlyForGraphQL(t *testing.T) {
	// A server that waited for a body would wait a minute.
	_, httpAddr, key := httpModeServer(t, "--http-read-timeout", "60s")
	const wait = 15 * time.Second

	t.Run("1 MiB announced on a REST route, a few bytes sent", func(t *testing.T) {
		c := dialRaw(t, httpAddr)
		c.send("POST /email/send HTTP/1.1\r\nHost: api.example.com\r\nX-Api-Key: " + key +
			"\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n{\"to\":")
		resp, body, err := c.response(wait)
		if err != nil {
			t.Fatalf("no answer without the body: %v", err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("got %d %s", resp.StatusCode, body)
		}
	})
	t.Run("the same without a key", func(t *testing.T) {
		c := dialRaw(t, httpAddr)
		c.send("POST /email/send HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 1048576\r\n\r\nabc")
		resp, body, err := c.response(wait)
		if err != nil {
			t.Fatalf("no answer without the body: %v", err)
		}
		if resp.StatusCode != 401 || !strings.Contains(body, "missing_key") {
			t.Fatalf("got %d %s", resp.StatusCode, body)
		}
	})
	t.Run("GraphQL Content-Length over the route's limit", func(t *testing.T) {
		c := dialRaw(t, httpAddr)
		c.send("POST /graphql HTTP/1.1\r\nHost: api.example.com\r\nX-Api-Key: " + key +
			"\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n")
		resp, body, err := c.response(wait)
		if err != nil {
			t.Fatalf("no answer before the body: %v", err)
		}
		var deny struct{ Error, Reason string }
		_ = json.Unmarshal([]byte(body), &deny)
		if resp.StatusCode != 400 || deny.Reason != "invalid_graphql" || !strings.Contains(deny.Error, "limit of 4096 bytes") {
			t.Fatalf("got %d %s", resp.StatusCode, body)
		}
		if !c.closedByServer(wait) {
			t.Fatal("the connection stays open with its body unread")
		}
	})
	t.Run("GraphQL body within the limit is read", func(t *testing.T) {
		query := `{"query":"{ listEmails { id } }"}`
		c := dialRaw(t, httpAddr)
		c.send(fmt.Sprintf("POST /graphql HTTP/1.1\r\nHost: api.example.com\r\nX-Api-Key: %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", key, len(query), query))
		resp, body, err := c.response(wait)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("got %v %v %s", resp, err, body)
		}
	})
	t.Run("GraphQL chunked body over the limit", func(t *testing.T) {
		chunk := strings.Repeat(" ", 5000)
		c := dialRaw(t, httpAddr)
		c.send(fmt.Sprintf("POST /graphql HTTP/1.1\r\nHost: api.example.com\r\nX-Api-Key: %s\r\n"+
			"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", key, len(chunk), chunk))
		resp, body, err := c.response(wait)
		if err != nil || resp.StatusCode != 400 || !strings.Contains(body, "invalid_graphql") {
			t.Fatalf("got %v %v %s", resp, err, body)
		}
	})
}

// TestPprofNeverServesCmdline: --pprof serves profiles on the admin
// listener but /debug/pprof/cmdline, which would print the command line
// (a --database-url password), answers 404.
func TestPprofNeverServesCmdline(t *testing.T) {
	// A write timeout shorter than the profile: pprof extends its own.
	srv, _, _ := httpModeServer(t, "--pprof", "--http-write-timeout", "1s")
	admin := "http://" + srv.adminAddr
	for _, path := range []string{"/debug/pprof/cmdline", "/debug/pprof/cmdline?debug=1", "/debug/pprof/cmdline/"} {
		if code, body := httpGet(t, admin+path); code != 404 || strings.Contains(body, "--keys-file") {
			t.Errorf("%s: %d %q", path, code, body)
		}
	}
	code, index := httpGet(t, admin+"/debug/pprof/")
	if code != 200 || strings.Contains(index, "cmdline") || !strings.Contains(index, "goroutine") {
		t.Errorf("index: %d\n%s", code, index)
	}
	for _, path := range []string{"/debug/pprof/heap", "/debug/pprof/goroutine?debug=1", "/debug/pprof/symbol",
		"/debug/pprof/profile?seconds=2"} {
		if code, _ := httpGet(t, admin+path); code != 200 {
			t.Errorf("%s: %d", path, code)
		}
	}
	if code, _ := httpGet(t, admin+"/metrics"); code != 200 {
		t.Errorf("/metrics: %d", code)
	}

	off, _, _ := httpModeServer(t)
	if code, _ := httpGet(t, "http://"+off.adminAddr+"/debug/pprof/"); code != 404 {
		t.Errorf("without --pprof: /debug/pprof/ answers %d", code)
	}
}

package main

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
)

func TestHTTPLimitsCannotBeSwitchedOff(t *testing.T) {
	_, _, err := runCLI(t, "", "serve", "--keys-file", "../../examples/keys.yaml", "--routes-file", "../../examples/routes.yaml",
		"--authz-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--http-idle-timeout", "0s", "--http-read-timeout=-1s", "--http-max-header-bytes", "0", "--admin-max-connections", "0")
	if err == nil {
		t.Fatal("serve accepted limits of 0")
	}
	for _, want := range []string{"http-idle-timeout: 0s must be positive", "http-read-timeout: -1s must be positive",
		"http-max-header-bytes: 0 must be positive", "admin-max-connections: 0 must be positive"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestHTTPLimitsDefaults(t *testing.T) {
	var c cli
	parseInto(t, &c, "serve", "--routes-file", "r.yaml")
	l := c.Serve.httpLimits
	if err := l.validate(); err != nil {
		t.Fatal(err)
	}
	s := l.server(nil)
	if s.ReadHeaderTimeout != 5*time.Second || s.ReadTimeout != 10*time.Second || s.WriteTimeout != 10*time.Second ||
		s.IdleTimeout != 60*time.Second || s.MaxHeaderBytes != 64<<10 {
		t.Fatalf("server limits %+v", s)
	}
	if l.HTTPAuthzMaxConnections != 4096 || l.AdminMaxConnections != 64 {
		t.Fatalf("connection limits %d, %d", l.HTTPAuthzMaxConnections, l.AdminMaxConnections)
	}
}

func TestListenLimited(t *testing.T) {
	lis, err := listenLimited("127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dialed := func() net.Conn {
		c, err := net.Dial("tcp", lis.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dialed()
	first := <-accepted
	dialed()
	select {
	case <-accepted:
		t.Fatal("a second connection was accepted while the first is open")
	case <-time.After(200 * time.Millisecond):
	}
	first.Close()
	if c := <-accepted; c == nil {
		t.Fatal("the second connection was not accepted once the first closed")
	} else {
		c.Close()
	}
}

// parseInto parses args into c as run does, without running the command.
func parseInto(t *testing.T, c *cli, args ...string) {
	t.Helper()
	p, err := kong.New(c, kong.Name("keygate"), kong.Exit(func(int) { t.Fatal("kong exited") }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Parse(args); err != nil {
		t.Fatal(err)
	}
}

// TestAccountListenAddr: serve listens for the Account API at
// --account-listen-addr; the old --account-addr and KEYGATE_ACCOUNT_ADDR
// (the CLI's dial address) still set it, with a warning, unless the new
// setting is given.
func TestAccountListenAddr(t *testing.T) {
	for _, tc := range []struct {
		name            string
		flags           databaseFlags
		newEnv, oldEnv  string
		want            string
		wantDeprecation bool
	}{
		{"default", databaseFlags{AccountListenAddr: defaultAccountListenAddr}, "", "", defaultAccountListenAddr, false},
		{"new flag", databaseFlags{AccountListenAddr: ":9000"}, "", "", ":9000", false},
		{"old flag", databaseFlags{AccountListenAddr: defaultAccountListenAddr, AccountAddr: ":9001"}, "", "", ":9001", true},
		{"old variable", databaseFlags{AccountListenAddr: defaultAccountListenAddr}, "", ":9002", ":9002", true},
		{"new flag wins over the old variable", databaseFlags{AccountListenAddr: ":9000"}, "", ":9002", ":9000", false},
		{"new variable set to the default wins", databaseFlags{AccountListenAddr: defaultAccountListenAddr}, defaultAccountListenAddr, ":9002", defaultAccountListenAddr, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KEYGATE_ACCOUNT_LISTEN_ADDR", tc.newEnv)
			t.Setenv("KEYGATE_ACCOUNT_ADDR", tc.oldEnv)
			var logs strings.Builder
			got := tc.flags.accountListenAddr(slog.New(slog.NewTextHandler(&logs, nil)))
			if got != tc.want || strings.Contains(logs.String(), "deprecated") != tc.wantDeprecation {
				t.Fatalf("got %q, logs %q; want %q, deprecation warning %v", got, logs.String(), tc.want, tc.wantDeprecation)
			}
		})
	}
}

// TestWithDetail: a standing detail joins whatever readiness says.
func TestWithDetail(t *testing.T) {
	for _, tc := range []struct {
		ok         bool
		detail     string
		wantDetail string
	}{
		{true, "", "no pepper"},
		{true, "ok", "no pepper"},
		{true, "database unreachable", "database unreachable; no pepper"},
		{false, "warming", "warming; no pepper"},
	} {
		ok, d := withDetail(func() (bool, string) { return tc.ok, tc.detail }, "no pepper")()
		if ok != tc.ok || d != tc.wantDetail {
			t.Errorf("(%v, %q) → (%v, %q), want (%v, %q)", tc.ok, tc.detail, ok, d, tc.ok, tc.wantDetail)
		}
	}
}

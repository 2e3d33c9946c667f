package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// throwawayPG is a PostgreSQL cluster of one test's own, created with
// initdb in a temporary directory and listening on a random loopback port,
// so that a test may stop and start it (the shared server of DATABASE_URL
// must never be stopped). It has two roles: postgres (the superuser, for
// the test) and keygate (what keygate connects as), so that pg_hba.conf can
// keep keygate out while the test works on the database.
type throwawayPG struct {
	bin  string // directory of initdb, pg_ctl, postgres
	dir  string // owned by the server's OS user
	data string
	port int
	// asUser is the OS user the server runs as ("" = the current one):
	// PostgreSQL refuses to run as root.
	asUser string
}

// The database keygate uses on a throwaway cluster, and its role.
const (
	throwawayDB   = "keygate"
	throwawayRole = "keygate"
)

// pgBinDir finds the PostgreSQL server binaries: KEYGATE_PG_BINDIR, the
// newest /usr/lib/postgresql/*/bin, or initdb on PATH.
func pgBinDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("KEYGATE_PG_BINDIR"); d != "" {
		return d
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	t.Fatal("these tests start a PostgreSQL cluster of their own and need its server binaries " +
		"(initdb, pg_ctl): install PostgreSQL 15 or later or set KEYGATE_PG_BINDIR")
	return ""
}

func pgMajor(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// startThrowawayPG creates, starts and (in t.Cleanup) stops and removes a
// cluster, with keygate's database created, migrated and owned by the
// keygate role.
func startThrowawayPG(t testing.TB) *throwawayPG {
	t.Helper()
	p := &throwawayPG{bin: pgBinDir(t), port: freePort(t)}
	dir, err := os.MkdirTemp("", "keygate-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p.dir, p.data = dir, filepath.Join(dir, "data")
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, the throwaway cluster needs the postgres OS user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		p.asUser = "postgres"
	}
	if out, err := p.run("initdb", "-D", p.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
		"--locale=C", "--no-sync", "--no-instructions"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p.writeHBA(t, false)
	// The port was free a moment ago; if someone took it since, try another.
	if err := p.tryStart(); err != nil {
		p.port = freePort(t)
		p.start(t)
	}
	t.Cleanup(func() { p.stop(t, "fast") })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := p.connect(t, "postgres")
	defer conn.Close(ctx)
	for _, sql := range []string{
		"CREATE ROLE " + throwawayRole + " LOGIN",
		"CREATE DATABASE " + throwawayDB + " OWNER " + throwawayRole,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if out, err := cliRun(t, "", "migrate", "--database-url", p.url(throwawayRole, throwawayDB)); err != nil {
		t.Fatalf("keygate migrate: %v\n%s", err, out)
	}
	return p
}

// freePort is a loopback TCP port nobody listened on a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// run runs one of the server binaries as the server's OS user.
func (p *throwawayPG) run(name string, args ...string) (string, error) {
	bin := filepath.Join(p.bin, name)
	var cmd *exec.Cmd
	if p.asUser != "" {
		cmd = exec.Command("runuser", append([]string{"-u", p.asUser, "--", bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	cmd.Dir = p.dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// start starts the server and waits until it accepts connections.
func (p *throwawayPG) start(t testing.TB) {
	t.Helper()
	if err := p.tryStart(); err != nil {
		t.Fatal(err)
	}
}

func (p *throwawayPG) tryStart() error {
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c fsync=off "+
		"-c synchronous_commit=off -c full_page_writes=off -c max_connections=60", p.port, p.dir)
	if out, err := p.run("pg_ctl", "-D", p.data, "-l", filepath.Join(p.dir, "server.log"), "-w", "-t", "60",
		"-o", opts, "start"); err != nil {
		return fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, p.serverLog())
	}
	return nil
}

// stop stops the server (mode fast or immediate); stopping a stopped
// server is a no-op.
func (p *throwawayPG) stop(t testing.TB, mode string) {
	t.Helper()
	if out, err := p.run("pg_ctl", "-D", p.data, "-m", mode, "-w", "-t", "60", "stop"); err != nil &&
		!strings.Contains(out, "Is server running?") {
		t.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
}

func (p *throwawayPG) serverLog() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "server.log"))
	return string(b)
}

// writeHBA writes pg_hba.conf: trust on loopback, and with blockKeygate a
// reject for the keygate role first. The server reads it at start and on
// reload (see reload).
func (p *throwawayPG) writeHBA(t testing.TB, blockKeygate bool) {
	t.Helper()
	var b strings.Builder
	b.WriteString("local all all trust\n")
	if blockKeygate {
		fmt.Fprintf(&b, "host all %s 127.0.0.1/32 reject\n", throwawayRole)
	}
	b.WriteString("host all all 127.0.0.1/32 trust\n")
	path := filepath.Join(p.data, "pg_hba.conf")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if p.asUser != "" {
		u, _ := user.Lookup(p.asUser)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
}

// url is a connection URL for role to database over loopback TCP.
func (p *throwawayPG) url(role, database string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", role, p.port, database)
}

// connect opens a superuser connection to database, named keygate-test in
// pg_stat_activity.
func (p *throwawayPG) connect(t testing.TB, database string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(p.url("postgres", database))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = "keygate-test"
	cfg.ConnectTimeout = 10 * time.Second
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("connect to the throwaway cluster: %v", err)
	}
	return conn
}

// newThrowawayEnv is newDBEnv on a throwaway cluster: keygate's database
// migrated, an account bootstrapped with the real CLI, a routes file.
func newThrowawayEnv(t testing.TB) (*throwawayPG, *dbEnv) {
	t.Helper()
	p := startThrowawayPG(t)
	return p, bootstrapEnv(t, p.url(throwawayRole, throwawayDB))
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go supports (sysconf(_SC_CLK_TCK) needs cgo).
const clockTicks = 100

// process is a server the harness started, pinned to one CPU with taskset
// (taskset execs the server, so the PID is the server's).
type process struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan error
	// start is when the process was started, for time-to-ready.
	start time.Time
}

// startPinned runs bin with args on cpu, its stdout and stderr appended to
// logPath, in an environment without keygate's own settings (plus env).
func startPinned(name, cpu, logPath, bin string, env []string, args ...string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("taskset", append([]string{"-c", cpu, bin}, args...)...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Killed with the harness, so that an interrupted run leaves no server.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &process{name: name, cmd: cmd, log: logf, done: make(chan error, 1), start: time.Now()}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.done <- cmd.Wait() }()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports an error if the process has already stopped.
func (p *process) exited() error {
	select {
	case err := <-p.done:
		p.done <- err
		return fmt.Errorf("%s exited: %v (log: %s)", p.name, err, p.log.Name())
	default:
		return nil
	}
}

// stop sends SIGTERM and waits, killing after a grace period.
func (p *process) stop() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.log.Close()
}

// cpuTicks is the process's utime+stime so far, in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields after it start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc/PID/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return u + s, nil
}

func ticksToDuration(t int64) time.Duration { return time.Duration(t) * time.Second / clockTicks }

// rssBytes is the process's resident set size (VmRSS).
func rssBytes(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}

// freeAddr returns a loopback address with a port free at the time of the
// call.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// cleanEnv is the environment without keygate's settings, so that the
// flags the harness passes are all a server sees.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KEYGATE_") || strings.HasPrefix(kv, "DATABASE_URL=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// httpGet returns the status and body of a GET.
func httpGet(ctx context.Context, url string) (int, []byte, error) {
	return httpGetWith(ctx, httpClient, url)
}

// httpGetFor is httpGet of a request the server takes d to answer (a
// profile or trace of d): it may take d and httpClient's timeout more.
func httpGetFor(ctx context.Context, url string, d time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, d+httpClient.Timeout)
	defer cancel()
	return httpGetWith(ctx, http.DefaultClient, url)
}

func httpGetWith(ctx context.Context, c *http.Client, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// waitReady polls url until it answers 200, the process exits, or timeout.
func waitReady(ctx context.Context, p *process, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := p.exited(); err != nil {
			return err
		}
		if code, _, err := httpGet(ctx, url); err == nil && code == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready at %s after %v (log: %s)", p.name, url, timeout, p.log.Name())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// metricsSnapshot is every sample of a Prometheus text exposition, keyed by
// series (name and labels as written).
type metricsSnapshot map[string]float64

func scrape(ctx context.Context, url string) (metricsSnapshot, error) {
	code, body, err := httpGet(ctx, url)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d", url, code)
	}
	m := metricsSnapshot{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] += v
	}
	return m, nil
}

// sum adds the samples whose series name is name (any labels) and whose
// labels contain every one of the given label matchers (`reason="x"`).
func (m metricsSnapshot) sum(name string, labels ...string) (float64, bool) {
	var total float64
	found := false
	for series, v := range m {
		n, lbl, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(lbl, l)
		}
		if ok {
			total += v
			found = true
		}
	}
	return total, found
}

// delta is after-before for one metric, and whether both had it.
func delta(before, after metricsSnapshot, name string, labels ...string) (float64, bool) {
	a, ok1 := after.sum(name, labels...)
	b, ok2 := before.sum(name, labels...)
	return a - b, ok1 && ok2
}

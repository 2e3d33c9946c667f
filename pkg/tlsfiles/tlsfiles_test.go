package tlsfiles

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/logbuf"
	"github.com/keygate/keygate/pkg/tlsfiles/tlstest"
)

// exchange runs one handshake between a server using cfg and a client
// using client, over a pipe, then one byte from server to client (in TLS
// 1.3 a client learns that its certificate was refused only when it
// reads). It returns the certificate the client saw and the first error
// of either side.
func exchange(t *testing.T, cfg, client *tls.Config) (*x509.Certificate, error) {
	t.Helper()
	c1, c2 := tcpPair(t)
	deadline := time.Now().Add(5 * time.Second)
	_ = c1.SetDeadline(deadline)
	_ = c2.SetDeadline(deadline)
	srvErr := make(chan error, 1)
	go func() {
		s := tls.Server(c1, cfg)
		err := s.Handshake()
		if err == nil {
			_, err = s.Write([]byte{1})
		}
		if err != nil {
			c1.Close()
		}
		srvErr <- err
	}()
	cl := tls.Client(c2, client)
	err := cl.Handshake()
	if err == nil {
		_, err = cl.Read(make([]byte, 1))
	}
	if err != nil {
		c2.Close() // the server may still wait for a hello
	}
	if serr := <-srvErr; serr != nil {
		return nil, serr
	}
	if err != nil {
		return nil, err
	}
	return cl.ConnectionState().PeerCertificates[0], nil
}

// tcpPair is a connected pair of loopback TCP connections (net.Pipe has
// no buffer, and a TLS alert written to it can deadlock the handshake).
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := lis.Accept()
		accepted <- c
	}()
	c2, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c1 := <-accepted
	if c1 == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c1.Close(); c2.Close() })
	return c1, c2
}

type fixture struct {
	ca, other   *tlstest.CA
	server      *tlstest.Leaf
	client      *tlstest.Leaf
	otherClient *tlstest.Leaf
}

func newFixture(t *testing.T) *fixture {
	ca, other := tlstest.NewCA(t, "ca"), tlstest.NewCA(t, "other-ca")
	return &fixture{ca: ca, other: other, server: ca.Server(t, "keygate"),
		client: ca.Client(t, "envoy"), otherClient: other.Client(t, "intruder")}
}

func TestHandshakes(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	plain := tlstest.WriteFiles(t, filepath.Join(dir), f.server, nil)
	mdir := filepath.Join(dir, "m")
	if err := os.Mkdir(mdir, 0o700); err != nil {
		t.Fatal(err)
	}
	mtls := tlstest.WriteFiles(t, mdir, f.server, f.ca)
	withCert := func(l *tlstest.Leaf) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return tlstest.ClientConfig(t, f.ca, l).GetClientCertificate
	}
	tests := []struct {
		name    string
		files   Files
		client  *tls.Config
		wantErr string
	}{
		{"tls: a client without a certificate", Files{Cert: plain.Cert, Key: plain.Key}, &tls.Config{}, ""},
		{"mtls: a good client certificate", Files{Cert: mtls.Cert, Key: mtls.Key, ClientCA: mtls.CA},
			&tls.Config{GetClientCertificate: withCert(f.client)}, ""},
		{"mtls: no client certificate", Files{Cert: mtls.Cert, Key: mtls.Key, ClientCA: mtls.CA},
			&tls.Config{}, "client didn't provide a certificate"},
		{"mtls: a certificate from another CA", Files{Cert: mtls.Cert, Key: mtls.Key, ClientCA: mtls.CA},
			&tls.Config{GetClientCertificate: withCert(f.otherClient)}, "unknown authority"},
		{"tls 1.1 refused", Files{Cert: plain.Cert, Key: plain.Key},
			&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, "unsupported versions"},
		{"a CBC suite refused", Files{Cert: plain.Cert, Key: plain.Key},
			&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}},
			"no cipher suite"},
		{"tls 1.2 with an AEAD suite", Files{Cert: plain.Cert, Key: plain.Key},
			&tls.Config{MaxVersion: tls.VersionTLS12}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Load(tt.files, Options{Name: "test"})
			if err != nil {
				t.Fatal(err)
			}
			client := tt.client.Clone()
			client.RootCAs = f.ca.Pool()
			client.ServerName = "localhost"
			got, err := exchange(t, s.ServerConfig(), client)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one with %q", err, tt.wantErr)
			case err == nil && !got.Equal(f.server.Cert):
				t.Fatalf("served %s, want %s", got.Subject, f.server.Cert.Subject)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	good := tlstest.WriteFiles(t, dir, f.server, f.ca)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	otherKey := write("other.key", f.client.KeyPEM)
	garbage := write("garbage", []byte("not pem"))
	keyAsCA := write("key-as-ca", f.server.KeyPEM)
	tests := []struct {
		name  string
		files Files
		want  string
	}{
		{"no key", Files{Cert: good.Cert}, "both required"},
		{"missing cert", Files{Cert: filepath.Join(dir, "absent"), Key: good.Key}, "certificate file: open"},
		{"key of another certificate", Files{Cert: good.Cert, Key: otherKey}, "does not match"},
		{"cert not PEM", Files{Cert: garbage, Key: good.Key}, "failed to find any PEM data"},
		{"CA not PEM", Files{Cert: good.Cert, Key: good.Key, ClientCA: garbage}, "no PEM CERTIFICATE block"},
		{"a key in the CA bundle", Files{Cert: good.Cert, Key: good.Key, ClientCA: keyAsCA}, `"PRIVATE KEY", not a CERTIFICATE`},
		{"expired", Files{Cert: good.Cert, Key: good.Key}, "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{Name: "test"}
			if tt.name == "expired" {
				opts.Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
			}
			_, err := Load(tt.files, opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one with %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY-----") || bytes.Contains([]byte(err.Error()), f.server.KeyPEM[30:60]) {
				t.Fatalf("error quotes a key: %v", err)
			}
		})
	}
}

// served is the certificate a fresh handshake with s gets.
func served(t *testing.T, s *Source, f *fixture, ca *tlstest.CA) *x509.Certificate {
	t.Helper()
	c, err := exchange(t, s.ServerConfig(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost",
		Certificates: []tls.Certificate{f.client.TLS(t)}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestReload(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		// layout writes the first files and returns them, and a function
		// that replaces them with a pair.
		layout func(t *testing.T, dir string) (Files, func(l *tlstest.Leaf, keyPEM []byte))
	}{
		{"files renamed over", func(t *testing.T, dir string) (Files, func(*tlstest.Leaf, []byte)) {
			w := tlstest.WriteFiles(t, dir, f.server, f.ca)
			return Files{Cert: w.Cert, Key: w.Key, ClientCA: w.CA}, func(l *tlstest.Leaf, key []byte) {
				tlstest.WriteAtomic(t, w.Key, key)
				tlstest.WriteAtomic(t, w.Cert, l.CertPEM)
			}
		}},
		{"kubernetes ..data symlink swap", func(t *testing.T, dir string) (Files, func(*tlstest.Leaf, []byte)) {
			p := tlstest.SecretVolume(t, dir, map[string][]byte{"tls.crt": f.server.CertPEM, "tls.key": f.server.KeyPEM, "ca.crt": f.ca.PEM})
			return Files{Cert: p["tls.crt"], Key: p["tls.key"], ClientCA: p["ca.crt"]}, func(l *tlstest.Leaf, key []byte) {
				tlstest.SecretVolume(t, dir, map[string][]byte{"tls.crt": l.CertPEM, "tls.key": key, "ca.crt": f.ca.PEM})
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, replace := tt.layout(t, t.TempDir())
			var logs logbuf.Buffer
			var mu sync.Mutex
			var outcomes []error
			s, err := Load(files, Options{Name: "authz", Logger: slog.New(slog.NewTextHandler(&logs, nil)),
				OnReload: func(err error) { mu.Lock(); outcomes = append(outcomes, err); mu.Unlock() }})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); s.Run(ctx) }()
			defer func() { cancel(); <-done }()

			// A connection opened before the rotation keeps working after.
			c1, c2 := tcpPair(t)
			srv := tls.Server(c1, s.ServerConfig())
			cl := tls.Client(c2, &tls.Config{RootCAs: f.ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{f.client.TLS(t)}})
			go func() {
				_ = srv.Handshake()
				_, _ = srv.Write([]byte("a"))
				_, _ = srv.Read(make([]byte, 1))
				_, _ = srv.Write([]byte("b"))
			}()
			if _, err := cl.Read(make([]byte, 1)); err != nil {
				t.Fatal(err)
			}

			next := f.ca.Server(t, "keygate-next")
			replace(next, next.KeyPEM)
			waitFor(t, "the new certificate", func() bool { return served(t, s, f, f.ca).Equal(next.Cert) })
			if _, err := cl.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if _, err := cl.Read(make([]byte, 1)); err != nil {
				t.Fatalf("the open connection broke on rotation: %v", err)
			}
			if d := s.Detail(); d != "" {
				t.Fatalf("detail %q after a good rotation", d)
			}

			// A broken replacement (a key of another certificate) is refused:
			// the last good pair serves, and Detail says why.
			replace(f.ca.Server(t, "broken"), f.client.KeyPEM)
			waitFor(t, "the refusal", func() bool { return strings.Contains(s.Detail(), "does not match") })
			if got := served(t, s, f, f.ca); !got.Equal(next.Cert) {
				t.Fatalf("serving %s after a broken replacement", got.Subject)
			}
			if !strings.Contains(logs.String(), "reload refused") || strings.Contains(logs.String(), "PRIVATE KEY") {
				t.Fatalf("logs:\n%s", logs.String())
			}
			// Fixed files clear the detail.
			last := f.ca.Server(t, "keygate-last")
			replace(last, last.KeyPEM)
			waitFor(t, "the fixed certificate", func() bool { return served(t, s, f, f.ca).Equal(last.Cert) })
			if d := s.Detail(); d != "" {
				t.Fatalf("detail %q after the files were fixed", d)
			}
			mu.Lock()
			defer mu.Unlock()
			var failed int
			for _, err := range outcomes {
				if err != nil {
					failed++
				}
			}
			if failed == 0 || len(outcomes) < 3 {
				t.Fatalf("reload outcomes %v: want the good, broken and fixed files reported", outcomes)
			}
		})
	}
}

func TestClientCARotation(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	w := tlstest.WriteFiles(t, dir, f.server, f.ca)
	s, err := Load(Files{Cert: w.Cert, Key: w.Key, ClientCA: w.CA}, Options{Name: "authz"})
	if err != nil {
		t.Fatal(err)
	}
	client := func(l *tlstest.Leaf) *tls.Config {
		return &tls.Config{RootCAs: f.ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{l.TLS(t)}}
	}
	if _, err := exchange(t, s.ServerConfig(), client(f.otherClient)); err == nil {
		t.Fatal("another CA's client accepted")
	}
	// Trusting both CAs, as during a CA rollover.
	tlstest.WriteAtomic(t, w.CA, append(append([]byte{}, f.ca.PEM...), f.other.PEM...))
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, l := range []*tlstest.Leaf{f.client, f.otherClient} {
		if _, err := exchange(t, s.ServerConfig(), client(l)); err != nil {
			t.Fatalf("%s refused after the bundle gained its CA: %v", l.Cert.Subject, err)
		}
	}
}

func TestIdentityOf(t *testing.T) {
	f := newFixture(t)
	id := IdentityOf(f.client.Cert)
	if id.Subject != "CN=envoy,O=keygate tests" {
		t.Errorf("subject %q", id.Subject)
	}
	want := []string{"localhost", "envoy", "spiffe://keygate.test/envoy", "127.0.0.1", "::1"}
	if strings.Join(id.SANs, " ") != strings.Join(want, " ") {
		t.Errorf("SANs %q, want %q", id.SANs, want)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen within 5s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func FuzzParseCertificates(f *testing.F) {
	ca := tlstest.NewCA(f, "fuzz")
	f.Add(ca.PEM)
	f.Add(append(append([]byte{}, ca.PEM...), ca.PEM...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCertificates(data)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificates")
		}
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error not one line: %q", err)
			}
		}
	})
}

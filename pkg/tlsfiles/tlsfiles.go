// Package tlsfiles serves a listener's TLS from PEM files that may change
// while it runs: a certificate and its private key, and optionally a
// bundle of client CAs that makes client certificates required (mTLS).
//
// The files are read at Load, and again whenever one of them changes
// (Run, through pkg/filewatch, so a Kubernetes Secret's ..data symlink
// swap counts). Every handshake takes the pair of that moment
// (tls.Config.GetConfigForClient): new connections see a new certificate,
// open ones keep the session they negotiated. A replacement that does not
// load — unreadable, not PEM, a key that does not match, a certificate
// already expired — is refused and the last good pair keeps serving; the
// reason is logged, counted and reported by Status for /readyz.
//
// Errors and logs name files and say what is wrong with them; they never
// carry a file's content (a private key must not end up in a log).
package tlsfiles

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/pkg/filewatch"
)

// Files name a listener's PEM files. Cert and Key go together; ClientCA
// is optional and, when set, makes client certificates required.
type Files struct {
	Cert     string
	Key      string
	ClientCA string
}

// Enabled reports whether the files ask for TLS at all.
func (f Files) Enabled() bool { return f.Cert != "" || f.Key != "" || f.ClientCA != "" }

// Options tune a Source.
type Options struct {
	// Name is the listener's name, in logs, errors and Status.
	Name string
	// NextProtos are the ALPN protocols offered: "h2" for gRPC (grpc-go
	// clients insist on it), "http/1.1" for the HTTP listeners.
	NextProtos []string
	// Logger gets reloads, refused replacements and client identities;
	// nil discards them.
	Logger *slog.Logger
	// OnReload, when set, is told the outcome of every reload that found
	// changed files (nil: the new files serve).
	OnReload func(err error)
	// Now is the clock expiry is checked against; nil is time.Now.
	Now func() time.Time
}

// CipherSuites are the TLS 1.2 suites offered: ECDHE key exchange (forward
// secrecy) with an AEAD only. TLS 1.3 suites are Go's, which are all
// strong and not configurable.
var CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Source holds a listener's current certificate pair and client CAs.
type Source struct {
	files Files
	opts  Options
	log   *slog.Logger

	mu      sync.Mutex // serializes reloads
	current atomic.Pointer[state]
	failure atomic.Pointer[string] // why the last reload was refused; nil when it was not
}

// state is one loaded set of files, with the tls.Config built from it once
// so that a handshake costs no configuration work.
type state struct {
	config   *tls.Config
	notAfter time.Time
	digest   [sha256.Size]byte // of the files' bytes: unchanged files are not reloaded
}

// Load reads the files and returns a Source serving them; it fails when
// they do not make a usable pair, naming the file and the reason.
func Load(files Files, opts Options) (*Source, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{files: files, opts: opts, log: log.With("listener", opts.Name)}
	st, err := s.read()
	if err != nil {
		return nil, err
	}
	s.current.Store(st)
	return s, nil
}

// ServerConfig is the listener's tls.Config: it hands each handshake the
// configuration of the files loaded last.
func (s *Source) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: s.opts.NextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.current.Load().config, nil
		},
	}
}

// NotAfter is when the certificate serving now expires.
func (s *Source) NotAfter() time.Time { return s.current.Load().notAfter }

// Detail says what an operator should know for /readyz: that a broken
// replacement was refused (and why) while the last good pair serves, or
// that the certificate expired; "" when neither. It never makes the
// replica unready: the old pair still serves, and a broken Secret must
// not take every replica out of its load balancer at once.
func (s *Source) Detail() string {
	if f := s.failure.Load(); f != nil {
		return fmt.Sprintf("tls %s: %s; serving the last good certificate (expires %s)",
			s.opts.Name, *f, s.NotAfter().UTC().Format(time.RFC3339))
	}
	if na := s.NotAfter(); s.opts.Now().After(na) {
		return fmt.Sprintf("tls %s: the certificate expired at %s", s.opts.Name, na.UTC().Format(time.RFC3339))
	}
	return ""
}

// Reload rereads the files. When they changed and load, new handshakes
// use them; when they do not load, the last good pair stays and the error
// says why. Unchanged files are a no-op (several watched files signal one
// Secret update).
func (s *Source) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.read()
	if err == nil && st.digest == s.current.Load().digest {
		s.failure.Store(nil)
		return nil
	}
	if err != nil {
		if prev := s.failure.Load(); prev != nil && *prev == err.Error() {
			return err // the same broken files signalled again: said already
		}
		msg := err.Error()
		s.failure.Store(&msg)
		s.log.Error("tls files reload refused; keeping the last good certificate", "error", msg,
			"not_after", s.NotAfter().UTC().Format(time.RFC3339))
	} else {
		s.current.Store(st)
		s.failure.Store(nil)
		s.log.Info("tls files reloaded", "cert_file", s.files.Cert, "client_ca_file", s.files.ClientCA,
			"not_after", st.notAfter.UTC().Format(time.RFC3339))
	}
	if s.opts.OnReload != nil {
		s.opts.OnReload(err)
	}
	return err
}

// Run reloads the files whenever one of them changes, until ctx is done.
// Each file's directory is watched (once), so a file replaced by a rename
// or a Kubernetes ..data swap is seen.
func (s *Source) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, path := range s.watched() {
		w, err := filewatch.New(path)
		if err != nil {
			s.log.Warn("cannot watch tls file; it will not be reloaded", "file", path, "error", err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Close()
			w.Run(ctx, func() { _ = s.Reload() })
		}()
	}
	wg.Wait()
}

// watched are the files to watch, one per directory and name.
func (s *Source) watched() []string {
	var out []string
	for _, p := range []string{s.files.Cert, s.files.Key, s.files.ClientCA} {
		if p != "" && !contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// read loads the files into a state, or says which one is wrong.
func (s *Source) read() (*state, error) {
	f := s.files
	switch {
	case f.Cert == "" || f.Key == "":
		return nil, errors.New("a certificate file and a key file are both required")
	}
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return nil, fmt.Errorf("certificate file: %w", err)
	}
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// X509KeyPair's errors name the problem (no PEM data, a key that
		// does not match) and never quote the key.
		return nil, fmt.Errorf("certificate %s and key %s: %w", f.Cert, f.Key, err)
	}
	leaf := pair.Leaf
	if now := s.opts.Now(); now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("certificate %s expired at %s", f.Cert, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	h := sha256.New()
	h.Write(certPEM)
	h.Write([]byte{0})
	h.Write(keyPEM)
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: CipherSuites,
		Certificates: []tls.Certificate{pair},
		NextProtos:   s.opts.NextProtos,
	}
	if f.ClientCA != "" {
		caPEM, err := os.ReadFile(f.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("client CA file: %w", err)
		}
		cas, err := ParseCertificates(caPEM)
		if err != nil {
			return nil, fmt.Errorf("client CA file %s: %w", f.ClientCA, err)
		}
		pool := x509.NewCertPool()
		for _, c := range cas {
			pool.AddCert(c)
		}
		h.Write([]byte{0})
		h.Write(caPEM)
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.VerifyConnection = s.logIdentity
	}
	st := &state{config: cfg, notAfter: leaf.NotAfter}
	h.Sum(st.digest[:0])
	return st, nil
}

// logIdentity logs who connected once the client's certificate verified:
// one line per connection, not per request (Envoy keeps its connections).
func (s *Source) logIdentity(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) > 0 {
		id := IdentityOf(cs.PeerCertificates[0])
		s.log.Info("tls client connected", "subject", id.Subject, "sans", id.SANs)
	}
	return nil
}

// Identity is what a client certificate says about its holder: nothing in
// it is secret.
type Identity struct {
	Subject string
	SANs    []string
}

// IdentityOf reads a certificate's subject and subject alternative names
// (DNS names, URIs such as SPIFFE ids, e-mail addresses, IP addresses).
func IdentityOf(c *x509.Certificate) Identity {
	id := Identity{Subject: c.Subject.String()}
	id.SANs = append(id.SANs, c.DNSNames...)
	for _, u := range c.URIs {
		id.SANs = append(id.SANs, u.String())
	}
	id.SANs = append(id.SANs, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		id.SANs = append(id.SANs, ip.String())
	}
	return id
}

// ParseCertificates reads every CERTIFICATE block of a PEM bundle. Other
// blocks are an error (a private key in a CA bundle is a mistake worth
// stopping for), and so is a bundle without certificates; the error names
// the block by its position and type, never its content.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := data
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %q, not a CERTIFICATE", n, redactType(block.Type))
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	if len(bytes.TrimSpace(rest)) > 0 && bytes.Contains(rest, []byte("-----BEGIN")) {
		return nil, fmt.Errorf("PEM block %d does not decode", len(out)+1)
	}
	return out, nil
}

// redactType keeps a PEM block type printable and short: it is read from
// the file, and an error must stay one readable line.
func redactType(t string) string {
	if len(t) > 40 {
		t = t[:40]
	}
	return strings.ToValidUTF8(strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, t), "?")
}

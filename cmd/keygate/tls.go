package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/keygate/keygate/pkg/admin"
	"github.com/keygate/keygate/pkg/metrics"
	"github.com/keygate/keygate/pkg/telemetry"
	"github.com/keygate/keygate/pkg/tlsfiles"
)

// tlsFlags serve every listener over TLS from PEM files (SPEC §16): one
// pair (and client CA bundle) for all, and per-listener overrides whose
// prefix is the listener's address flag (--authz-addr → --authz-tls-…,
// --http-authz-addr → --http-authz-tls-…, --account-listen-addr →
// --account-tls-…, --console-addr → --console-tls-…, --admin-addr →
// --admin-tls-…).
type tlsFlags struct {
	TLSCertFile     string `name:"tls-cert-file" env:"KEYGATE_TLS_CERT_FILE" type:"path" group:"TLS" help:"PEM certificate (chain) every listener serves TLS with; reloaded when it changes. Needs --tls-key-file."`
	TLSKeyFile      string `name:"tls-key-file" env:"KEYGATE_TLS_KEY_FILE" type:"path" group:"TLS" help:"PEM private key of --tls-cert-file."`
	TLSClientCAFile string `name:"tls-client-ca-file" env:"KEYGATE_TLS_CLIENT_CA_FILE" type:"path" group:"TLS" help:"PEM bundle of CAs; every TLS listener then requires a client certificate signed by one (mTLS). Reloaded when it changes."`

	AuthzTLSCertFile     string `name:"authz-tls-cert-file" env:"KEYGATE_AUTHZ_TLS_CERT_FILE" type:"path" group:"TLS" help:"--tls-cert-file for the gRPC authz listener only."`
	AuthzTLSKeyFile      string `name:"authz-tls-key-file" env:"KEYGATE_AUTHZ_TLS_KEY_FILE" type:"path" group:"TLS" help:"--tls-key-file for the gRPC authz listener only."`
	AuthzTLSClientCAFile string `name:"authz-tls-client-ca-file" env:"KEYGATE_AUTHZ_TLS_CLIENT_CA_FILE" type:"path" group:"TLS" help:"--tls-client-ca-file for the gRPC authz listener only."`

	HTTPAuthzTLSCertFile     string `name:"http-authz-tls-cert-file" env:"KEYGATE_HTTP_AUTHZ_TLS_CERT_FILE" type:"path" group:"TLS" help:"--tls-cert-file for the HTTP authz listener only."`
	HTTPAuthzTLSKeyFile      string `name:"http-authz-tls-key-file" env:"KEYGATE_HTTP_AUTHZ_TLS_KEY_FILE" type:"path" group:"TLS" help:"--tls-key-file for the HTTP authz listener only."`
	HTTPAuthzTLSClientCAFile string `name:"http-authz-tls-client-ca-file" env:"KEYGATE_HTTP_AUTHZ_TLS_CLIENT_CA_FILE" type:"path" group:"TLS" help:"--tls-client-ca-file for the HTTP authz listener only."`

	AccountTLSCertFile     string `name:"account-tls-cert-file" env:"KEYGATE_ACCOUNT_TLS_CERT_FILE" type:"path" group:"TLS" help:"--tls-cert-file for the Account API listener only."`
	AccountTLSKeyFile      string `name:"account-tls-key-file" env:"KEYGATE_ACCOUNT_TLS_KEY_FILE" type:"path" group:"TLS" help:"--tls-key-file for the Account API listener only."`
	AccountTLSClientCAFile string `name:"account-tls-client-ca-file" env:"KEYGATE_ACCOUNT_TLS_CLIENT_CA_FILE" type:"path" group:"TLS" help:"--tls-client-ca-file for the Account API listener only."`

	ConsoleTLSCertFile     string `name:"console-tls-cert-file" env:"KEYGATE_CONSOLE_TLS_CERT_FILE" type:"path" group:"TLS" help:"--tls-cert-file for the console listener (GraphQL Account API and console) only."`
	ConsoleTLSKeyFile      string `name:"console-tls-key-file" env:"KEYGATE_CONSOLE_TLS_KEY_FILE" type:"path" group:"TLS" help:"--tls-key-file for the console listener only."`
	ConsoleTLSClientCAFile string `name:"console-tls-client-ca-file" env:"KEYGATE_CONSOLE_TLS_CLIENT_CA_FILE" type:"path" group:"TLS" help:"--tls-client-ca-file for the console listener only."`

	AdminTLSCertFile     string `name:"admin-tls-cert-file" env:"KEYGATE_ADMIN_TLS_CERT_FILE" type:"path" group:"TLS" help:"--tls-cert-file for the admin listener only."`
	AdminTLSKeyFile      string `name:"admin-tls-key-file" env:"KEYGATE_ADMIN_TLS_KEY_FILE" type:"path" group:"TLS" help:"--tls-key-file for the admin listener only."`
	AdminTLSClientCAFile string `name:"admin-tls-client-ca-file" env:"KEYGATE_ADMIN_TLS_CLIENT_CA_FILE" type:"path" group:"TLS" help:"--tls-client-ca-file for the admin listener only."`
}

// The listeners that can serve TLS, by the prefix of their flags, with
// the ALPN protocols each speaks.
var tlsListeners = []struct {
	name  string
	alpn  []string
	files func(f *tlsFlags) (cert, key, ca string)
}{
	{"authz", []string{"h2"}, func(f *tlsFlags) (string, string, string) {
		return f.AuthzTLSCertFile, f.AuthzTLSKeyFile, f.AuthzTLSClientCAFile
	}},
	{"http-authz", []string{"http/1.1"}, func(f *tlsFlags) (string, string, string) {
		return f.HTTPAuthzTLSCertFile, f.HTTPAuthzTLSKeyFile, f.HTTPAuthzTLSClientCAFile
	}},
	{"account", []string{"h2"}, func(f *tlsFlags) (string, string, string) {
		return f.AccountTLSCertFile, f.AccountTLSKeyFile, f.AccountTLSClientCAFile
	}},
	{"console", []string{"http/1.1"}, func(f *tlsFlags) (string, string, string) {
		return f.ConsoleTLSCertFile, f.ConsoleTLSKeyFile, f.ConsoleTLSClientCAFile
	}},
	{"admin", []string{"http/1.1"}, func(f *tlsFlags) (string, string, string) {
		return f.AdminTLSCertFile, f.AdminTLSKeyFile, f.AdminTLSClientCAFile
	}},
}

// files resolves one listener's files: its own pair when either of its
// pair flags is given, else the common pair; its own client CA bundle, else
// the common one. A half pair, or a client CA without a certificate, is an
// error naming the flags.
func (f *tlsFlags) files(listener string, cert, key, ca string) (tlsfiles.Files, error) {
	certFlag, keyFlag := "--"+listener+"-tls-cert-file", "--"+listener+"-tls-key-file"
	if cert == "" && key == "" {
		cert, key = f.TLSCertFile, f.TLSKeyFile
		certFlag, keyFlag = "--tls-cert-file", "--tls-key-file"
	}
	caFlag := "--" + listener + "-tls-client-ca-file"
	if ca == "" {
		ca, caFlag = f.TLSClientCAFile, "--tls-client-ca-file"
	}
	switch {
	case cert != "" && key == "":
		return tlsfiles.Files{}, fmt.Errorf("%s is set without %s: a certificate needs its private key, give both", certFlag, keyFlag)
	case key != "" && cert == "":
		return tlsfiles.Files{}, fmt.Errorf("%s is set without %s: a private key needs its certificate, give both", keyFlag, certFlag)
	case ca != "" && cert == "":
		return tlsfiles.Files{}, fmt.Errorf("%s needs the %s listener to serve TLS: give %s and %s (or --tls-cert-file and --tls-key-file)",
			caFlag, listener, certFlag, keyFlag)
	}
	return tlsfiles.Files{Cert: cert, Key: key, ClientCA: ca}, nil
}

// serveTLS holds the TLS sources of the listeners that serve TLS.
type serveTLS struct {
	sources map[string]*tlsfiles.Source
}

// open loads the files of every listener that runs (active), reporting
// every problem at once: a file that cannot be read at start stops serve.
// Flags that pair badly are errors even for a listener that is off.
func (f *tlsFlags) open(log *slog.Logger, m *metrics.Metrics, active func(listener string) bool) (*serveTLS, error) {
	s := &serveTLS{sources: map[string]*tlsfiles.Source{}}
	var errs []error
	for _, l := range tlsListeners {
		cert, key, ca := l.files(f)
		files, err := f.files(l.name, cert, key, ca)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !files.Enabled() || !active(l.name) {
			continue
		}
		var failed func()
		src, err := tlsfiles.Load(files, tlsfiles.Options{
			Name: l.name, NextProtos: l.alpn, Logger: log,
			OnReload: func(err error) {
				if err != nil && failed != nil {
					failed()
				}
			},
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("tls %s listener: %w", l.name, err))
			continue
		}
		failed, err = m.ObserveTLS(l.name, src.NotAfter)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.sources[l.name] = src
		log.Info("tls on", "listener", l.name, "cert_file", files.Cert, "client_ca_file", files.ClientCA,
			"client_certificates", files.ClientCA != "", "not_after", src.NotAfter().UTC())
	}
	return s, errors.Join(errs...)
}

// grpcOptions are the server options of a gRPC listener: TLS credentials
// when it serves TLS, none otherwise, and with client certificates the
// caller's identity on each call's span (after tr's server span).
func (s *serveTLS) grpcOptions(listener string, tr *telemetry.Tracing) []grpc.ServerOption {
	src, ok := s.sources[listener]
	if !ok {
		return nil
	}
	return append([]grpc.ServerOption{grpc.Creds(credentials.NewTLS(src.ServerConfig()))}, tr.GRPCIdentityOptions()...)
}

// listen wraps an HTTP listener's listen function with TLS when it serves
// TLS (the handshake then runs in the server's connection goroutine,
// bounded by its read timeouts).
// on reports whether the listener serves TLS.
func (s *serveTLS) on(listener string) bool {
	_, ok := s.sources[listener]
	return ok
}

func (s *serveTLS) listen(listener string, inner func(string) (net.Listener, error)) func(string) (net.Listener, error) {
	src, ok := s.sources[listener]
	if !ok {
		return inner
	}
	return func(addr string) (net.Listener, error) {
		lis, err := inner(addr)
		if err != nil {
			return nil, err
		}
		return tls.NewListener(lis, src.ServerConfig()), nil
	}
}

// loops reload each listener's files when they change.
func (s *serveTLS) loops() []func(context.Context) {
	var out []func(context.Context)
	for _, src := range s.sources {
		out = append(out, src.Run)
	}
	return out
}

// readiness adds the TLS details (a refused replacement, an expired
// certificate) to r's report without changing whether it is ready.
func (s *serveTLS) readiness(r admin.Readiness) admin.Readiness {
	if len(s.sources) == 0 {
		return r
	}
	return func() (bool, string) {
		ok, detail := r()
		for _, l := range tlsListeners {
			src, on := s.sources[l.name]
			if !on {
				continue
			}
			if d := src.Detail(); d != "" {
				if detail == "" || detail == "ok" {
					detail = d
				} else {
					detail += "; " + d
				}
			}
		}
		return ok, detail
	}
}

package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/keygate/keygate/pkg/tlsfiles/tlstest"
)

// tlsSetup holds the files of a -tls run, made from one throwaway CA: the
// servers' pair (the floor and keygate serve the same certificate, with
// the same settings: pkg/tlsfiles) and the client's, which ghz,
// bench/client and the harness present, as Envoy would (mTLS).
type tlsSetup struct {
	ca, cert, key, clientCert, clientKey string
	creds                                credentials.TransportCredentials
}

// genTB lets tlstest, written for tests, report to a program: Fatal
// records the error and ends the goroutine making certificates.
type genTB struct{ err error }

func (*genTB) Helper() {}
func (g *genTB) Fatal(args ...any) {
	g.err = errors.New(fmt.Sprint(args...))
	runtime.Goexit()
}

// writeTLS makes the CA and both pairs into dir.
func writeTLS(dir string) (*tlsSetup, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	g := &genTB{}
	var server, client tlstest.Files
	done := make(chan struct{})
	go func() {
		defer close(done)
		ca := tlstest.NewCA(g, "bench-ca")
		server = tlstest.WriteFiles(g, dir, ca.Server(g, "keygate"), ca)
		cdir := filepath.Join(dir, "client")
		if err := os.MkdirAll(cdir, 0o700); err != nil {
			g.Fatal(err)
		}
		client = tlstest.WriteFiles(g, cdir, ca.Client(g, "envoy"), nil)
	}()
	<-done
	if g.err != nil {
		return nil, fmt.Errorf("tls: %w", g.err)
	}
	s := &tlsSetup{ca: server.CA, cert: server.Cert, key: server.Key, clientCert: client.Cert, clientKey: client.Key}
	pair, err := tls.LoadX509KeyPair(s.clientCert, s.clientKey)
	if err != nil {
		return nil, err
	}
	pem, err := os.ReadFile(s.ca)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	s.creds = credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
	return s, nil
}

// serverArgs are the flags that make a server (the floor, keygate's authz
// listener with prefix "authz-") serve mTLS with the setup's files; none
// without -tls.
func (s *tlsSetup) serverArgs(prefix string) []string {
	if s == nil {
		return nil
	}
	return []string{"--" + prefix + "tls-cert-file", s.cert, "--" + prefix + "tls-key-file", s.key,
		"--" + prefix + "tls-client-ca-file", s.ca}
}

// transport is how the harness itself dials the servers.
func (s *tlsSetup) transport() credentials.TransportCredentials {
	if s == nil {
		return insecure.NewCredentials()
	}
	return s.creds
}

// ghzArgs replace ghz's --insecure.
func (s *tlsSetup) ghzArgs() []string {
	if s == nil {
		return []string{"--insecure"}
	}
	return []string{"--cacert", s.ca, "--cert", s.clientCert, "--key", s.clientKey}
}

// clientArgs are bench/client's TLS flags.
func (s *tlsSetup) clientArgs() []string {
	if s == nil {
		return nil
	}
	return []string{"-ca", s.ca, "-cert", s.clientCert, "-key", s.clientKey}
}

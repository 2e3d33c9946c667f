package accountcli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/keygate/keygate/pkg/accountgrpc"
	"github.com/keygate/keygate/pkg/tlsfiles"
)

// TransportFlags say how the Account API is reached: over TLS (with a
// client certificate for mTLS) or, to loopback or when told --insecure, in
// cleartext. An account key controls a whole account: it is not sent in
// cleartext across a network by default (SPEC §16).
type TransportFlags struct {
	CAFile   string `name:"ca-file" env:"KEYGATE_CLIENT_CA_FILE" type:"path" help:"PEM bundle of the CAs the Account API's certificate is checked against (default: the system's); implies TLS."`
	CertFile string `name:"cert-file" env:"KEYGATE_CLIENT_CERT_FILE" type:"path" help:"PEM client certificate for an Account API that requires one (mTLS); implies TLS and needs --key-file."`
	KeyFile  string `name:"key-file" env:"KEYGATE_CLIENT_KEY_FILE" type:"path" help:"PEM private key of --cert-file."`
	TLS      bool   `name:"tls" env:"KEYGATE_CLIENT_TLS" help:"Call the Account API over TLS (so does an https:// --account-addr, --ca-file or --cert-file)."`
	Insecure bool   `name:"insecure" env:"KEYGATE_CLIENT_INSECURE" help:"Allow sending the account key in cleartext to an address that is not loopback (anyone on the path can read it)."`
}

// Dial connects to the Account API at addr (host:port, https://host:port
// or http://host:port) as the flags say, refusing before any connection
// to send a key in cleartext beyond loopback unless --insecure.
func (f TransportFlags) Dial(addr string) (*grpc.ClientConn, error) {
	target, useTLS, err := f.target(addr)
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if useTLS {
		cfg, err := f.tlsConfig()
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(cfg)
	}
	// A list answer may take the server's whole send bound, a little
	// above gRPC's default 4 MiB receive limit.
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(accountgrpc.MaxSendMsgSize)))
	if err != nil {
		return nil, fmt.Errorf("account-addr %q: %w", addr, err)
	}
	return conn, nil
}

// target reads addr: the host:port to dial, and whether over TLS.
func (f TransportFlags) target(addr string) (string, bool, error) {
	if addr == "" {
		return "", false, errors.New("account-addr: required")
	}
	implied := f.TLS || f.CAFile != "" || f.CertFile != "" || f.KeyFile != ""
	useTLS := implied
	hostport := addr
	switch scheme, rest, ok := strings.Cut(addr, "://"); {
	case !ok:
	case scheme == "https":
		hostport, useTLS = strings.TrimSuffix(rest, "/"), true
		if _, _, err := net.SplitHostPort(hostport); err != nil {
			hostport = net.JoinHostPort(hostport, "443")
		}
	case scheme == "http":
		if implied {
			return "", false, fmt.Errorf("account-addr %q says cleartext (http://) but --tls, --ca-file or --cert-file ask for TLS: use https://", addr)
		}
		hostport = strings.TrimSuffix(rest, "/")
	default:
		return "", false, fmt.Errorf("account-addr %q: the scheme must be https:// or http://, or none (host:port)", addr)
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", false, fmt.Errorf("account-addr %q: %w", addr, err)
	}
	if !useTLS && !f.Insecure && !isLoopback(host) {
		return "", false, fmt.Errorf("refusing to send the account key in cleartext to %s: call the Account API over TLS "+
			"(--account-addr https://%s, or --tls; --ca-file for a private CA), or pass --insecure (KEYGATE_CLIENT_INSECURE=true) "+
			"if the network path is protected otherwise", hostport, hostport)
	}
	return hostport, useTLS, nil
}

// isLoopback reports whether host is this machine by its name alone: no
// lookup, so the refusal comes before anything goes on the network.
func isLoopback(host string) bool {
	if host == "" || strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tlsConfig is the client side: TLS 1.2 or later, the server checked
// against --ca-file (or the system's roots), and --cert-file/--key-file
// presented when given.
func (f TransportFlags) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		data, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca-file: %w", err)
		}
		cas, err := tlsfiles.ParseCertificates(data)
		if err != nil {
			return nil, fmt.Errorf("ca-file %s: %w", f.CAFile, err)
		}
		cfg.RootCAs = x509.NewCertPool()
		for _, c := range cas {
			cfg.RootCAs.AddCert(c)
		}
	}
	switch {
	case f.CertFile != "" && f.KeyFile == "":
		return nil, errors.New("--cert-file is set without --key-file: a client certificate needs its private key, give both")
	case f.KeyFile != "" && f.CertFile == "":
		return nil, errors.New("--key-file is set without --cert-file: a private key needs its certificate, give both")
	case f.CertFile != "":
		pair, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert-file %s and --key-file %s: %w", f.CertFile, f.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Package tlstest makes throwaway certificate authorities and certificates
// for tests (ECDSA P-256, valid for a day, 127.0.0.1 and localhost), and
// writes them as PEM files the way a Secret volume would hold them.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// TB is the part of testing.TB these helpers use, so that a program (the
// load harness) can make certificates too.
type TB interface {
	Helper()
	Fatal(args ...any)
}

// CA is a certificate authority that signs leaves.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
	PEM  []byte
}

// Leaf is a certificate signed by a CA, with its key, in PEM.
type Leaf struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
}

// NewCA makes a self-signed CA named name.
func NewCA(t TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := template(t, name)
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	c, certPEM := create(t, tmpl, tmpl, key, key)
	return &CA{Cert: c, key: key, PEM: certPEM}
}

// template is a certificate named name, valid from an hour ago for a day.
func template(t TB, name string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"keygate tests"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
}

// create signs tmpl (for key's public half) with parent and signer, and
// returns it parsed and in PEM.
func create(t TB, tmpl, parent *x509.Certificate, key, signer *ecdsa.PrivateKey) (*x509.Certificate, []byte) {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// Server signs a server certificate for 127.0.0.1, ::1 and localhost.
func (ca *CA) Server(t TB, name string) *Leaf {
	return ca.sign(t, name, nil, x509.ExtKeyUsageServerAuth)
}

// Client signs a client certificate with a SPIFFE-style URI SAN.
func (ca *CA) Client(t TB, name string) *Leaf {
	u, _ := url.Parse("spiffe://keygate.test/" + name)
	return ca.sign(t, name, []*url.URL{u}, x509.ExtKeyUsageClientAuth)
}

func (ca *CA) sign(t TB, name string, uris []*url.URL, usage x509.ExtKeyUsage) *Leaf {
	t.Helper()
	key := newKey(t)
	tmpl := template(t, name)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	tmpl.DNSNames = []string{"localhost", name}
	tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	tmpl.URIs = uris
	c, certPEM := create(t, tmpl, ca.Cert, key, ca.key)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &Leaf{
		Cert:    c,
		CertPEM: certPEM,
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}
}

// TLS is the leaf as a certificate for a tls.Config.
func (l *Leaf) TLS(t TB) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(l.CertPEM, l.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Pool is a pool holding only ca.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Files are the paths WriteFiles wrote.
type Files struct{ Cert, Key, CA string }

// WriteFiles writes the leaf (tls.crt, tls.key) and ca (ca.crt) into dir,
// each replaced by a rename so that a watcher never reads half a file.
func WriteFiles(t TB, dir string, l *Leaf, ca *CA) Files {
	t.Helper()
	f := Files{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key"), CA: filepath.Join(dir, "ca.crt")}
	WriteAtomic(t, f.Key, l.KeyPEM)
	WriteAtomic(t, f.Cert, l.CertPEM)
	if ca != nil {
		WriteAtomic(t, f.CA, ca.PEM)
	}
	return f
}

// WriteAtomic replaces path with data through a temporary file and a
// rename.
func WriteAtomic(t TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// SecretVolume lays files out as Kubernetes mounts a Secret: each name a
// symlink through ..data to a timestamped directory. Calling it again
// swaps ..data atomically to a new directory, as the kubelet does on an
// update. It returns the paths of the names (dir/name).
func SecretVolume(t TB, dir string, files map[string][]byte) map[string]string {
	t.Helper()
	gen := filepath.Join(dir, "..data_"+time.Now().Format("20060102_150405.000000000"))
	if err := os.Mkdir(gen, 0o700); err != nil {
		t.Fatal(err)
	}
	paths := map[string]string{}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(gen, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
		paths[name] = link
	}
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(gen), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	return paths
}

func newKey(t TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(t TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ClientConfig is a client's tls.Config trusting roots and presenting l
// (nil: no certificate). The certificate is sent whatever CAs the server
// asks for: a Go client would otherwise keep one from another CA to
// itself, and a test of its refusal would test nothing.
func ClientConfig(t TB, roots *CA, l *Leaf) *tls.Config {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots.Pool(), MinVersion: tls.VersionTLS12}
	if l != nil {
		c := l.TLS(t)
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	}
	return cfg
}

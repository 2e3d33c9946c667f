package envoy_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

// TestMTLSToKeygate: envoy-mtls.yaml calls keygate over TLS 1.2 or later
// with ALPN h2 (keygate's gRPC listener requires it), checks keygate's
// certificate and name, and presents a client certificate; both come by
// file-based SDS whose files are the ones in mtls/, watched for a Secret's
// updates.
func TestMTLSToKeygate(t *testing.T) {
	p := loadFrontProxy(t, "envoy-mtls.yaml")
	p.checkAuthz(t)
	c := p.clusters[p.authz.GetGrpcService().GetEnvoyGrpc().GetClusterName()]
	ts := c.GetTransportSocket()
	if ts.GetName() != "envoy.transport_sockets.tls" {
		t.Fatalf("cluster %s: transport socket %q, want envoy.transport_sockets.tls", c.GetName(), ts.GetName())
	}
	up := unpack[*tlsv3.UpstreamTlsContext](t, ts.GetTypedConfig())
	common := up.GetCommonTlsContext()
	if v := common.GetTlsParams().GetTlsMinimumProtocolVersion(); v < tlsv3.TlsParameters_TLSv1_2 {
		t.Errorf("tls_minimum_protocol_version %v, want TLSv1_2 or later", v)
	}
	if !slices.Contains(common.GetAlpnProtocols(), "h2") {
		t.Errorf("alpn_protocols %v: keygate's gRPC listener needs h2", common.GetAlpnProtocols())
	}
	if up.GetSni() == "" {
		t.Error("no sni: keygate's certificate name is not asked for")
	}

	certs := common.GetTlsCertificateSdsSecretConfigs()
	if len(certs) != 1 {
		t.Fatalf("%d client certificate SDS configs, want 1", len(certs))
	}
	secret := sdsSecret(t, certs[0])
	tc := secret.GetTlsCertificate()
	if tc.GetCertificateChain().GetFilename() == "" || tc.GetPrivateKey().GetFilename() == "" {
		t.Errorf("secret %s: the client certificate and key must be files (a mounted Secret)", secret.GetName())
	}
	checkWatched(t, secret.GetName(), tc.GetWatchedDirectory().GetPath(), tc.GetCertificateChain().GetFilename(), tc.GetPrivateKey().GetFilename())

	vc := common.GetValidationContextSdsSecretConfig()
	if vc == nil {
		t.Fatal("no validation context: keygate's certificate would not be checked")
	}
	secret = sdsSecret(t, vc)
	v := secret.GetValidationContext()
	if v.GetTrustedCa().GetFilename() == "" {
		t.Errorf("secret %s: no trusted_ca file", secret.GetName())
	}
	if len(v.GetMatchTypedSubjectAltNames()) == 0 {
		t.Errorf("secret %s: any certificate of the CA would pass for keygate's: match its name", secret.GetName())
	}
	for _, m := range v.GetMatchTypedSubjectAltNames() {
		if m.GetMatcher().GetExact() != up.GetSni() {
			t.Errorf("secret %s: SAN matcher %q differs from the sni %q", secret.GetName(), m.GetMatcher().GetExact(), up.GetSni())
		}
	}
	checkWatched(t, secret.GetName(), v.GetWatchedDirectory().GetPath(), v.GetTrustedCa().GetFilename())
}

// sdsSecret loads the file-based SDS resource cfg names: its path is where
// the file of mtls/ with the same name is mounted.
func sdsSecret(t *testing.T, cfg *tlsv3.SdsSecretConfig) *tlsv3.Secret {
	t.Helper()
	pcs := cfg.GetSdsConfig().GetPathConfigSource()
	if pcs == nil {
		t.Fatalf("SDS %s: not file based (path_config_source)", cfg.GetName())
	}
	if pcs.GetWatchedDirectory().GetPath() == "" {
		t.Errorf("SDS %s: no watched_directory: a Secret's ..data swap would go unseen", cfg.GetName())
	}
	raw, err := os.ReadFile(filepath.Join("mtls", filepath.Base(pcs.GetPath())))
	if err != nil {
		t.Fatalf("SDS %s: %v", cfg.GetName(), err)
	}
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var resp discoveryv3.DiscoveryResponse
	if err := protojson.Unmarshal(js, &resp); err != nil {
		t.Fatalf("%s: not a DiscoveryResponse: %v", pcs.GetPath(), err)
	}
	if err := errors.Join(validateDeep(&resp, pcs.GetPath())...); err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.GetResources() {
		s := unpack[*tlsv3.Secret](t, r)
		if s.GetName() == cfg.GetName() {
			return s
		}
	}
	t.Fatalf("%s holds no secret %q", pcs.GetPath(), cfg.GetName())
	return nil
}

// checkWatched: the files are in the watched directory.
func checkWatched(t *testing.T, secret, dir string, files ...string) {
	t.Helper()
	if dir == "" {
		t.Errorf("secret %s: no watched_directory", secret)
		return
	}
	for _, f := range files {
		if !strings.HasPrefix(f, strings.TrimSuffix(dir, "/")+"/") {
			t.Errorf("secret %s: %s is not in the watched directory %s", secret, f, dir)
		}
	}
}

package accountcli

import (
	"strings"
	"testing"
)

func TestTransportTarget(t *testing.T) {
	tests := []struct {
		name    string
		flags   TransportFlags
		addr    string
		want    string
		wantTLS bool
		wantErr string
	}{
		{"loopback cleartext", TransportFlags{}, "127.0.0.1:9192", "127.0.0.1:9192", false, ""},
		{"localhost cleartext", TransportFlags{}, "localhost:9192", "localhost:9192", false, ""},
		{"ipv6 loopback cleartext", TransportFlags{}, "[::1]:9192", "[::1]:9192", false, ""},
		{"http:// to loopback", TransportFlags{}, "http://127.0.0.1:9192", "127.0.0.1:9192", false, ""},
		{"https://", TransportFlags{}, "https://keygate.example:9192", "keygate.example:9192", true, ""},
		{"https:// without a port", TransportFlags{}, "https://keygate.example", "keygate.example:443", true, ""},
		{"--tls", TransportFlags{TLS: true}, "10.0.0.1:9192", "10.0.0.1:9192", true, ""},
		{"--ca-file implies TLS", TransportFlags{CAFile: "ca.pem"}, "keygate:9192", "keygate:9192", true, ""},
		{"cleartext beyond loopback", TransportFlags{}, "10.255.255.1:9192", "", false,
			"refusing to send the account key in cleartext to 10.255.255.1:9192"},
		{"a name is not loopback", TransportFlags{}, "keygate.svc:9192", "", false, "--insecure"},
		{"http:// beyond loopback", TransportFlags{}, "http://10.255.255.1:9192", "", false, "refusing"},
		{"--insecure", TransportFlags{Insecure: true}, "10.255.255.1:9192", "10.255.255.1:9192", false, ""},
		{"http:// with --tls", TransportFlags{TLS: true}, "http://10.0.0.1:9192", "", false, "use https://"},
		{"unknown scheme", TransportFlags{}, "grpc://10.0.0.1:9192", "", false, "scheme must be"},
		{"no port", TransportFlags{}, "10.0.0.1", "", false, "missing port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, useTLS, err := tt.flags.target(tt.addr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want || useTLS != tt.wantTLS {
				t.Fatalf("got %q tls=%v err=%v, want %q tls=%v", got, useTLS, err, tt.want, tt.wantTLS)
			}
		})
	}
}

func TestTransportHalfPair(t *testing.T) {
	for _, f := range []TransportFlags{{CertFile: "c.pem"}, {KeyFile: "k.pem"}} {
		_, err := f.Dial("127.0.0.1:9192")
		if err == nil || !strings.Contains(err.Error(), "--cert-file") || !strings.Contains(err.Error(), "--key-file") {
			t.Errorf("%+v: %v", f, err)
		}
	}
}

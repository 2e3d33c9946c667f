package main

import (
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/tlsfiles"
)

func TestTLSFlagsResolve(t *testing.T) {
	tests := []struct {
		name    string
		flags   tlsFlags
		want    map[string]tlsfiles.Files // by listener; absent: no TLS
		wantErr []string
	}{
		{"off", tlsFlags{}, nil, nil},
		{"one pair for all", tlsFlags{TLSCertFile: "c", TLSKeyFile: "k"}, map[string]tlsfiles.Files{
			"authz": {Cert: "c", Key: "k"}, "http-authz": {Cert: "c", Key: "k"}, "account": {Cert: "c", Key: "k"}, "admin": {Cert: "c", Key: "k"},
			"console": {Cert: "c", Key: "k"},
		}, nil},
		{"overrides", tlsFlags{TLSCertFile: "c", TLSKeyFile: "k", TLSClientCAFile: "ca",
			AdminTLSCertFile: "ac", AdminTLSKeyFile: "ak", AccountTLSClientCAFile: "operators",
			ConsoleTLSCertFile: "wc", ConsoleTLSKeyFile: "wk"}, map[string]tlsfiles.Files{
			"authz": {Cert: "c", Key: "k", ClientCA: "ca"}, "http-authz": {Cert: "c", Key: "k", ClientCA: "ca"},
			"account": {Cert: "c", Key: "k", ClientCA: "operators"}, "admin": {Cert: "ac", Key: "ak", ClientCA: "ca"},
			"console": {Cert: "wc", Key: "wk", ClientCA: "ca"},
		}, nil},
		{"only one listener", tlsFlags{AuthzTLSCertFile: "c", AuthzTLSKeyFile: "k", AuthzTLSClientCAFile: "ca"},
			map[string]tlsfiles.Files{"authz": {Cert: "c", Key: "k", ClientCA: "ca"}}, nil},
		{"cert without key", tlsFlags{TLSCertFile: "c"}, nil,
			[]string{"--tls-cert-file is set without --tls-key-file"}},
		{"key without cert", tlsFlags{AdminTLSKeyFile: "k"}, nil,
			[]string{"--admin-tls-key-file is set without --admin-tls-cert-file"}},
		{"client CA without a certificate", tlsFlags{AccountTLSClientCAFile: "ca"}, nil,
			[]string{"--account-tls-client-ca-file needs the account listener to serve TLS"}},
		{"console key without cert", tlsFlags{ConsoleTLSKeyFile: "k"}, nil,
			[]string{"--console-tls-key-file is set without --console-tls-cert-file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]tlsfiles.Files{}
			var errs []string
			for _, l := range tlsListeners {
				cert, key, ca := l.files(&tt.flags)
				files, err := tt.flags.files(l.name, cert, key, ca)
				if err != nil {
					errs = append(errs, err.Error())
				} else if files.Enabled() {
					got[l.name] = files
				}
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(strings.Join(errs, "\n"), want) {
					t.Errorf("errors %q lack %q", errs, want)
				}
			}
			if len(tt.wantErr) == 0 && len(errs) > 0 {
				t.Fatalf("errors %q", errs)
			}
			if len(tt.wantErr) == 0 && len(got) != len(tt.want) {
				t.Fatalf("TLS on %v, want %v", got, tt.want)
			}
			for name, w := range tt.want {
				if got[name] != w {
					t.Errorf("%s: %+v, want %+v", name, got[name], w)
				}
			}
		})
	}
}

package telemetry_test

import (
	"bytes"
	"log/slog"
	"maps"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/telemetry"
)

func TestRedactHeaders(t *testing.T) {
	const secret = "kg_sak_0123456789abcdefghijklmnopqrstuv"
	in := map[string]string{
		":path":               "/email/read",
		":authority":          "api.example.com",
		"content-type":        "application/json",
		"x-api-key":           secret,
		"authorization":       "Bearer " + secret,
		"Proxy-Authorization": "Basic " + secret,
		"cookie":              "session=" + secret,
		"x-custom-key":        secret, // the configured key header
		"x-auth-token":        secret,
		"x-client-secret":     secret,
		"traceparent":         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	orig := maps.Clone(in)
	got := telemetry.RedactHeaders(in, "X-Custom-Key")
	if !maps.Equal(in, orig) {
		t.Error("RedactHeaders modified its argument")
	}
	for k, v := range got {
		if strings.Contains(v, secret) {
			t.Errorf("%s keeps the secret: %q", k, v)
		}
	}
	for _, k := range []string{"x-api-key", "authorization", "Proxy-Authorization", "cookie", "x-custom-key", "x-auth-token", "x-client-secret"} {
		if got[k] != telemetry.Redacted {
			t.Errorf("%s = %q, want %q", k, got[k], telemetry.Redacted)
		}
	}
	for _, k := range []string{":path", ":authority", "content-type", "traceparent"} {
		if got[k] != in[k] {
			t.Errorf("%s = %q, want it kept (%q)", k, got[k], in[k])
		}
	}
	if len(got) != len(in) {
		t.Errorf("%d headers, want %d (names kept)", len(got), len(in))
	}
}

func TestLogHeaders(t *testing.T) {
	const secret = "my-very-secret-custom-key-value"
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("request", "headers", telemetry.LogHeaders{
		Headers:   map[string]string{"x-tenant-key": secret, "x-api-key": secret, "accept": "text/plain"},
		KeyHeader: "x-tenant-key",
	})
	out := buf.String()
	if strings.Contains(out, secret) {
		t.Errorf("log line keeps the secret: %s", out)
	}
	for _, want := range []string{`"accept":"text/plain"`, `"x-api-key":"[redacted]"`, `"x-tenant-key":"[redacted]"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log line lacks %s: %s", want, out)
		}
	}
}

func TestRedactPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/email/read", "/email/read"},
		{"/email/read?api_key=s3cret&page=2", "/email/read?api_key=[redacted]&page=2"},
		{"/x?page=2&api_key=s3cret#frag", "/x?page=2&api_key=[redacted]#frag"},
		{"/x?api%5Fkey=s3cret", "/x?api%5Fkey=[redacted]"},
		{"/x?api_key=a&api_key=b", "/x?api_key=[redacted]&api_key=[redacted]"},
		{"/x?%zz=s3cret", "/x?[redacted]"},
	} {
		if got := telemetry.RedactPath(tc.in, "api_key"); got != tc.want {
			t.Errorf("RedactPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

package extauthz

import (
	"net/http"
	"testing"
)

// BenchmarkForgedScan is the cost, per allowed request, of looking for
// forged identity headers among a typical request's dozen headers, in each
// decoding: keygate's wire form (what `keygate serve` decodes; the decoder
// notes whether any name holds "_", so a clean request costs one test),
// protobuf-go's headers map (in-process Check), and the HTTP mode's
// http.Header (a map: every name is looked at).
func BenchmarkForgedScan(b *testing.B) {
	names := []string{":authority", ":method", ":path", ":scheme", "user-agent", "accept", "accept-encoding",
		"x-request-id", "x-forwarded-for", "x-forwarded-proto", "content-type", "x-api-key"}
	protected := newProtectedNames(Config{}.WithDefaults().protectedHeaders())
	w := &wireRequest{}
	m := map[string]string{}
	hd := http.Header{}
	for _, n := range names {
		w.headers = append(w.headers, wireHeader{key: n, value: "v"})
		m[n] = "v"
		hd[http.CanonicalHeaderKey(n)] = []string{"v"}
	}
	b.Run("wire", func(b *testing.B) {
		hs := headerSource{w: w}
		b.ReportAllocs()
		for b.Loop() {
			if hs.forgedNames(&protected) != nil {
				b.Fatal("found one")
			}
		}
	})
	b.Run("map", func(b *testing.B) {
		hs := headerSource{m: m}
		b.ReportAllocs()
		for b.Loop() {
			if hs.forgedNames(&protected) != nil {
				b.Fatal("found one")
			}
		}
	})
	b.Run("http", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if forgedHTTPNames(hd, &protected) != nil {
				b.Fatal("found one")
			}
		}
	})
}

package apikey

import "testing"

// Allocation counts are deterministic, unlike timings, so the hot path's
// zero-allocation promise is asserted here rather than read off benchmarks.
func TestZeroAllocs(t *testing.T) {
	gen := mustGenerate(t, KindApp)
	sha := NewHasher(nil)
	mac := NewHasher([]byte("pepper"))
	tests := []struct {
		name   string
		pooled bool
		f      func()
	}{
		{"Validate generated", false, func() { _ = Validate(gen) }},
		{"Validate custom", false, func() { _ = Validate("legacy-secret-0123456789") }},
		{"Sum SHA-256", false, func() { _ = sha.Sum(gen) }},
		{"Sum HMAC-SHA256", true, func() { _ = mac.Sum(gen) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.pooled && raceEnabled {
				t.Skip("sync.Pool drops items under the race detector")
			}
			if n := testing.AllocsPerRun(1000, tt.f); n != 0 {
				t.Fatalf("%v allocs/op, want 0", n)
			}
		})
	}
}

func BenchmarkValidateGenerated(b *testing.B) {
	s := mustGenerate(b, KindService)
	b.ReportAllocs()
	for b.Loop() {
		if Validate(s) != nil {
			b.Fatal("generated key refused")
		}
	}
}

func BenchmarkValidateCustom(b *testing.B) {
	s := "legacy-secret-0123456789abcdef"
	b.ReportAllocs()
	for b.Loop() {
		if Validate(s) != nil {
			b.Fatal("custom key refused")
		}
	}
}

func BenchmarkSumSHA256(b *testing.B) {
	s := mustGenerate(b, KindService)
	h := NewHasher(nil)
	b.ReportAllocs()
	for b.Loop() {
		_ = h.Sum(s)
	}
}

func BenchmarkSumHMAC(b *testing.B) {
	s := mustGenerate(b, KindService)
	h := NewHasher([]byte("a server-side pepper of 32 bytes"))
	b.ReportAllocs()
	for b.Loop() {
		_ = h.Sum(s)
	}
}

func BenchmarkSumHMACParallel(b *testing.B) {
	s := mustGenerate(b, KindService)
	h := NewHasher([]byte("a server-side pepper of 32 bytes"))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = h.Sum(s)
		}
	})
}

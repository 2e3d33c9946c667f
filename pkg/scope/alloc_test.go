package scope

import "testing"

// A realistic scope for a tenant key: two services, a prefix and a deny.
const benchScope = "email-api:query:* email-api:mutation:send* authorization-api:query !email-api:mutation:sendBulk*"

// Allows runs on every request; allocation counts are deterministic, so its
// zero-allocation promise is asserted rather than read off benchmarks.
func TestAllowsZeroAllocs(t *testing.T) {
	sc := mustParse(t, benchScope)
	probes := []probe{
		{"email-api", "mutation", "sendEmail", true},
		{"email-api", "mutation", "sendBulkEmail", false},
		{"authorization-api", "mutation", "grantRole", false},
		{"other-api", "query", "x", false},
	}
	for _, p := range probes {
		t.Run(p.service+":"+p.kind+":"+p.operation, func(t *testing.T) {
			if n := testing.AllocsPerRun(1000, func() {
				if sc.Allows(p.service, p.kind, p.operation) != p.want {
					t.Fatal("wrong decision")
				}
			}); n != 0 {
				t.Fatalf("%v allocs/op, want 0", n)
			}
		})
	}
}

func BenchmarkAllows(b *testing.B) {
	sc := mustParse(b, benchScope)
	b.ReportAllocs()
	for b.Loop() {
		// The common case walks the deny list and most of the allow list.
		if !sc.Allows("authorization-api", "query", "listRoles") {
			b.Fatal("refused")
		}
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(benchScope); err != nil {
			b.Fatal(err)
		}
	}
}

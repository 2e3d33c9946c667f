package extauthz

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/mem"

	"github.com/keygate/keygate/pkg/authz"
)

func wireOf(s string) func([]byte) []byte {
	return func(b []byte) []byte { return append(b, s...) }
}

// TestAllowSlabsResolveOnlyWhatWasKept: a reference resolves to the entry
// it was given for, for that target only, in its own server's slabs only,
// and not once its slab has left the ring; the bytes handed out before
// are never written again.
func TestAllowSlabsResolveOnlyWhatWasKept(t *testing.T) {
	a := newAllowSlabs(2*4096, 4096) // a ring of two slabs of 4 KiB
	other := newAllowSlabs(2*4096, 4096)
	read := authz.Target{Service: "email-api", Kind: "query", Operation: "listEmails"}
	send := authz.Target{Service: "email-api", Kind: "mutation", Operation: "sendEmail"}

	w1, r1, ok := a.keep(&read, wireOf("allow of key 1"))
	if !ok || string(w1) != "allow of key 1" {
		t.Fatalf("keep: %q %v", w1, ok)
	}
	if cap(w1)-len(w1) < slabSlack {
		t.Errorf("an entry's slice has %d bytes of capacity past it, want at least %d", cap(w1)-len(w1), slabSlack)
	}
	if got, ok := a.lookup(r1, &read); !ok || string(got) != "allow of key 1" {
		t.Fatalf("lookup: %q %v", got, ok)
	}
	for name, tc := range map[string]struct {
		s   *allowSlabs
		ref uint64
		t   authz.Target
	}{
		"another target":            {a, r1, send},
		"another operation's name":  {a, r1, authz.Target{Service: "email-api", Kind: "query", Operation: "listEmail"}},
		"a service named like both": {a, r1, authz.Target{Service: "email-apiquery", Kind: "", Operation: "listEmails"}},
		"another server's slabs":    {other, r1, read},
		"no reference":              {a, 0, read},
		"an offset past the entry":  {a, r1 + 1, read},
	} {
		if got, ok := tc.s.lookup(tc.ref, &tc.t); ok {
			t.Errorf("%s: resolved to %q", name, got)
		}
	}

	// Fill the ring: the first slab leaves it when the third begins.
	kept := []string{"allow of key 1"}
	refs := []uint64{r1}
	wires := [][]byte{w1}
	for i := 2; a.seq < 3; i++ {
		s := fmt.Sprintf("allow of key %d %s", i, strings.Repeat("x", 300))
		w, r, ok := a.keep(&read, wireOf(s))
		if !ok {
			t.Fatal("not kept")
		}
		kept, refs, wires = append(kept, s), append(refs, r), append(wires, w)
	}
	for i, r := range refs {
		got, ok := a.lookup(r, &read)
		inFirst := r>>refOffsetBits&refSeqMask == 1
		switch {
		case inFirst && ok:
			t.Errorf("key %d: its slab left the ring, yet it resolved to %q", i+1, got)
		case !inFirst && (!ok || string(got) != kept[i]):
			t.Errorf("key %d: resolved to %q, %v; want %q", i+1, got, ok, kept[i])
		}
		if string(wires[i]) != kept[i] {
			t.Errorf("key %d: the bytes handed out changed to %q", i+1, wires[i])
		}
	}

	// Three slabs begun, two in the ring: one retired.
	st := (&Server{allows: a}).KeptAllowStats()
	if want := (KeptAllowStats{Bytes: 2 * (4096 + slabSlack), Budget: 2 * 4096, Kept: uint64(len(kept)), Retired: 1}); st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}

	// Larger than a slab: not kept, the encoding returned for the request.
	big := strings.Repeat("y", 5000)
	if w, r, ok := a.keep(&read, wireOf(big)); ok || r != 0 || string(w) != big {
		t.Errorf("an allow larger than a slab: kept %v, ref %d", ok, r)
	}
}

// TestAllowSlabsWithoutNumbers: a server past the last slab-set number
// keeps nothing and resolves nothing, and still answers.
func TestAllowSlabsWithoutNumbers(t *testing.T) {
	a := newAllowSlabs(4096, 4096)
	a.id = 0
	tg := authz.Target{Service: "s", Kind: "query", Operation: "o"}
	w, r, ok := a.keep(&tg, wireOf("allow"))
	if ok || r != 0 || string(w) != "allow" {
		t.Fatalf("kept without a number: %v %d %q", ok, r, w)
	}
	if _, ok := a.lookup(0, &tg); ok {
		t.Fatal("resolved a zero reference")
	}
}

// TestAllowSlabsConcurrent: keys keeping and resolving at once, slabs
// leaving the ring meanwhile, under -race: every resolution is the key's
// own allow.
func TestAllowSlabsConcurrent(t *testing.T) {
	a := newAllowSlabs(3*8192, 8192)
	tg := authz.Target{Service: "s", Kind: "query", Operation: "o"}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ref uint64
			want := []byte(fmt.Sprintf("allow of key %d %s", g, strings.Repeat("z", 100*g)))
			for range 3000 {
				if got, ok := a.lookup(ref, &tg); ok {
					if !bytes.Equal(got, want) {
						t.Errorf("key %d resolved to %q", g, got)
						return
					}
					continue
				}
				_, ref, _ = a.keep(&tg, wireOf(string(want)))
				// Other keys' allows, filling the slabs.
				a.keep(&tg, wireOf(strings.Repeat("o", 500)))
			}
		}()
	}
	wg.Wait()
}

// FuzzAllowSlabs: whatever the target's strings and the allow's bytes, an
// entry resolves to its bytes for its target and for no other.
func FuzzAllowSlabs(f *testing.F) {
	f.Add("email-api", "query", "listEmails", []byte("allow"), "email-api", "query", "listEmail")
	f.Add("", "", "", []byte{}, "a", "", "")
	f.Add("ab", "c", "", []byte{0, 1}, "a", "bc", "")
	a := newAllowSlabs(1<<16, 1<<14)
	f.Fuzz(func(t *testing.T, service, kind, op string, wire []byte, s2, k2, o2 string) {
		tg := authz.Target{Service: service, Kind: kind, Operation: op}
		got, ref, ok := a.keep(&tg, func(b []byte) []byte { return append(b, wire...) })
		if !bytes.Equal(got, wire) {
			t.Fatalf("keep returned %q, want %q", got, wire)
		}
		if !ok {
			return // too large for a slab
		}
		if r, ok := a.lookup(ref, &tg); !ok || !bytes.Equal(r, wire) {
			t.Fatalf("lookup: %q %v, want %q", r, ok, wire)
		}
		other := authz.Target{Service: s2, Kind: k2, Operation: o2}
		if s2 != service || k2 != kind || o2 != op {
			if r, ok := a.lookup(ref, &other); ok {
				t.Fatalf("resolved for another target %+v: %q", other, r)
			}
		}
	})
}

// TestOutgoingMarshalledTwice: a reply marshalled a second time gets a
// copy, so that the outgoing goes back to its pool once, after the first
// buffer's last Free.
func TestOutgoingMarshalledTwice(t *testing.T) {
	a := newAllowSlabs(4096, 4096)
	tg := authz.Target{Service: "s", Kind: "query", Operation: "o"}
	wire, _, ok := a.keep(&tg, wireOf("the allow"))
	if !ok {
		t.Fatal("not kept")
	}
	o := sendable(wire)
	first, second := o.bufs(), o.bufs()
	if string(first.Materialize()) != "the allow" || string(second.Materialize()) != "the allow" {
		t.Fatalf("sent %q and %q", first.Materialize(), second.Materialize())
	}
	if _, isCopy := second[0].(mem.SliceBuffer); !isCopy {
		t.Fatal("the second marshalling shares the outgoing's buffer")
	}
	second.Free()
	if o.b == nil {
		t.Fatal("the copy's Free brought the outgoing back")
	}
	first.Free()
	if o.b != nil || o.one[0] != nil {
		t.Fatal("the last Free did not bring the outgoing back")
	}
}

package extauthz

import (
	"encoding/binary"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"google.golang.org/grpc/mem"

	"github.com/keygate/keygate/pkg/authz"
)

// Where the gRPC path keeps each key's last allow in its wire form.
//
// An allow is a function of the key and of the (service, kind, operation)
// called, and a key mostly calls the same operation again, so it is
// encoded once and kept. Kept as an object of the key's own (as it was
// until 2026-12-07) it cost the collector two objects and their pointers
// for every key that had allowed a request: in a round robin over
// 100,000 keys most of the marking a cycle, and on one CPU the length of
// the collector's mark phases is the round robin's tail (see
// docs/performance.md). So the allows are appended to large byte slabs
// that hold no pointers, and a key keeps only a number (authz.Key's
// AdapterRef): which server's slabs, which slab, where in it. The
// collector marks a slab once, whatever the number of allows in it.
//
// Slabs are appended to and never written again where they hold an
// entry, so a slice over an entry stays valid for as long as gRPC sends
// it. They form a ring bounded by Config.KeptAllowBytes: when the newest
// is full the next one takes the oldest's place, and the keys whose
// allows were there encode theirs again on their next request (a
// reference names its slab's sequence number, which the slab in its place
// no longer has). The retired slab is the collector's once the last send
// over it is done.
//
// A reference read from a key can only resolve to an entry that key
// wrote: the server's id, the slab's sequence number and the offset are
// all in it, and an entry is never overwritten. The entry also names the
// target it was encoded for, compared on every use.

const (
	// slabBytes is a slab's room for entries. Offsets have refOffsetBits.
	slabBytes = 1 << 20
	// slabSlack is room past a slab's entries that no entry uses: a slice
	// over an entry then has more capacity than gRPC's pooling threshold
	// (1 KiB), so that mem.NewBuffer takes it as a pooled buffer and
	// allocates nothing (below the threshold it would box the slice).
	slabSlack = 2 << 10
	// entryHeader is an entry's lengths: service, kind and operation
	// (uint16 each) and the wire form (uint32).
	entryHeader = 10

	refOffsetBits = 20
	refSeqBits    = 28
	refServerBits = 64 - refOffsetBits - refSeqBits
	refOffsetMask = 1<<refOffsetBits - 1
	refSeqMask    = 1<<refSeqBits - 1

	// defaultKeptAllowBytes is Config.KeptAllowBytes's default: room for
	// about 140,000 allows of the usual size (400–500 bytes).
	defaultKeptAllowBytes = 64 << 20
)

// slabIDs numbers the servers' slab sets: a key's reference names its
// server's, so that a key checked by two servers never resolves one's
// reference in the other's slabs. 0 is never given; past the last number a
// server keeps no allows (it encodes each, correctly and slower).
var slabIDs atomic.Uint64 // never wraps: a number is never given twice

// allowSlabs are one server's kept allows.
type allowSlabs struct {
	id       uint64 // 0: none kept
	slabSize int    // slabBytes; smaller in tests
	ring     []atomic.Pointer[slab]

	mu   sync.Mutex
	cur  *slab
	used int    // bytes of cur's entries
	seq  uint64 // cur's sequence number, from 1

	// scratch are buffers to encode an allow into before it is copied
	// into a slab, so that encoding holds no lock and leaves no garbage.
	scratch sync.Pool

	// kept counts the allows appended; a ring too small for the keys in
	// use shows as kept growing with the requests.
	kept atomic.Uint64
}

// KeptAllowStats are what the gRPC path's kept allows hold (metrics).
type KeptAllowStats struct {
	// Bytes are the slabs in the ring, Budget their bound
	// (Config.KeptAllowBytes, rounded down to whole slabs).
	Bytes, Budget int64
	// Kept counts allows encoded and kept (a key's first allow, a new
	// operation, a key whose slab left the ring); Retired counts slabs
	// that left the ring.
	Kept, Retired uint64
}

// KeptAllowStats returns the server's kept allows' figures.
func (s *Server) KeptAllowStats() KeptAllowStats {
	a := s.allows
	a.mu.Lock()
	seq := a.seq
	a.mu.Unlock()
	n := uint64(len(a.ring))
	return KeptAllowStats{
		Bytes:   int64(min(seq, n)) * int64(a.slabSize+slabSlack),
		Budget:  int64(n) * int64(a.slabSize),
		Kept:    a.kept.Load(),
		Retired: seq - min(seq, n),
	}
}

type slab struct {
	seq  uint64
	data []byte // slabSize+slabSlack bytes, never resliced
	// used is how many bytes of data entries take, set once an entry is
	// written: lookup reads no further.
	used atomic.Int64
}

// newAllowSlabs returns the slabs of a server that may keep up to budget
// bytes of allows (at least one slab), in slabs of slabSize bytes.
func newAllowSlabs(budget int64, slabSize int) *allowSlabs {
	if slabSize <= 0 || slabSize > 1<<refOffsetBits {
		panic("extauthz: a slab's offsets must fit a reference")
	}
	n := max(1, budget/int64(slabSize))
	a := &allowSlabs{slabSize: slabSize, ring: make([]atomic.Pointer[slab], n)}
	if id := slabIDs.Add(1); id < 1<<refServerBits {
		a.id = id
	}
	return a
}

// lookup returns the wire form of the allow ref names when it was encoded
// for t. ref is a key's AdapterRef.
func (a *allowSlabs) lookup(ref uint64, t *authz.Target) ([]byte, bool) {
	if ref>>(refOffsetBits+refSeqBits) != a.id || a.id == 0 {
		return nil, false
	}
	seq := ref >> refOffsetBits & refSeqMask
	s := a.ring[seq%uint64(len(a.ring))].Load()
	if s == nil || s.seq != seq {
		return nil, false // retired: encoded again
	}
	off := int(ref & refOffsetMask)
	if int64(off+entryHeader) > s.used.Load() {
		return nil, false // not a reference keep gave: never panic on one
	}
	e := s.data[off:]
	ls, lk, lo := int(binary.LittleEndian.Uint16(e)), int(binary.LittleEndian.Uint16(e[2:])), int(binary.LittleEndian.Uint16(e[4:]))
	lw := int(binary.LittleEndian.Uint32(e[6:]))
	if int64(off+entryHeader+ls+lk+lo+lw) > s.used.Load() {
		return nil, false
	}
	e = e[entryHeader:]
	if string(e[:ls]) != t.Service || string(e[ls:ls+lk]) != t.Kind || string(e[ls+lk:ls+lk+lo]) != t.Operation {
		return nil, false
	}
	e = e[ls+lk+lo:]
	return e[:lw], true
}

// keep encodes k's allow for t with encode and keeps it, returning its
// wire form and the reference to store with k. ok is false when it is not
// kept (too large for a slab, or no numbers left): wire is then the
// encoding alone, the caller's for this request.
func (a *allowSlabs) keep(t *authz.Target, encode func([]byte) []byte) (wire []byte, ref uint64, ok bool) {
	buf, _ := a.scratch.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	b := encode((*buf)[:0])
	defer func() {
		*buf = b
		a.scratch.Put(buf)
	}()
	n := entryHeader + len(t.Service) + len(t.Kind) + len(t.Operation) + len(b)
	if a.id == 0 || n > a.slabSize || max(len(t.Service), len(t.Kind), len(t.Operation)) > math.MaxUint16 {
		return append([]byte(nil), b...), 0, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur == nil || a.used+n > a.slabSize {
		if a.seq == refSeqMask {
			return append([]byte(nil), b...), 0, false
		}
		a.seq++
		a.cur = &slab{seq: a.seq, data: make([]byte, a.slabSize+slabSlack)}
		a.used = 0
		// The oldest slab leaves the ring here; its keys miss and encode
		// their allows again.
		a.ring[a.seq%uint64(len(a.ring))].Store(a.cur)
	}
	off := a.used
	e := a.cur.data[off : off+n]
	binary.LittleEndian.PutUint16(e, uint16(len(t.Service)))
	binary.LittleEndian.PutUint16(e[2:], uint16(len(t.Kind)))
	binary.LittleEndian.PutUint16(e[4:], uint16(len(t.Operation)))
	binary.LittleEndian.PutUint32(e[6:], uint32(len(b)))
	p := entryHeader
	p += copy(e[p:], t.Service)
	p += copy(e[p:], t.Kind)
	p += copy(e[p:], t.Operation)
	copy(e[p:], b)
	a.used += n
	a.cur.used.Store(int64(a.used))
	a.kept.Add(1)
	return e[p:n], a.id<<(refOffsetBits+refSeqBits) | a.seq<<refOffsetBits | uint64(off), true
}

// outgoing is one response over a kept allow's bytes, for gRPC to send:
// the codec hands gRPC a mem.Buffer over the bytes (sendable), whose pool
// is outgoingPool, so that gRPC's last Free of it brings the outgoing
// back for the next request. No allocation a request, and gRPC holds
// the slab's bytes alive until it has sent them.
type outgoing struct {
	// b must be the first field: outgoingPool.Put gets &b back and
	// recovers the outgoing from it.
	b   []byte
	one [1]mem.Buffer
}

var outgoings = sync.Pool{New: func() any { return new(outgoing) }}

// sendable returns an outgoing over wire, a kept allow's bytes in a slab.
func sendable(wire []byte) *outgoing {
	o := outgoings.Get().(*outgoing)
	// wire's capacity runs to its slab's end, at least slabSlack past
	// it: gRPC then treats the buffer as pooled. Nothing writes to it.
	o.b = wire
	return o
}

// bufs is the buffer slice gRPC sends. It is o's until gRPC frees it.
// gRPC marshals a reply once; were it asked again, a second buffer over
// o would bring o back to its pool twice (and two requests could then
// share it), so a second call gets a copy of its own instead.
func (o *outgoing) bufs() mem.BufferSlice {
	if o.one[0] != nil {
		return mem.BufferSlice{mem.SliceBuffer(append([]byte(nil), o.b...))}
	}
	o.one[0] = mem.NewBuffer(&o.b, outgoingPool{})
	return o.one[:]
}

// outgoingPool is the mem.BufferPool of outgoing buffers: gRPC's last
// Free of a buffer calls Put with the outgoing's &b.
type outgoingPool struct{}

func (outgoingPool) Get(n int) *[]byte {
	b := make([]byte, n) // never asked by gRPC of a buffer's own pool
	return &b
}

func (outgoingPool) Put(p *[]byte) {
	o := (*outgoing)(unsafe.Pointer(p)) // b is outgoing's first field
	o.b = nil
	o.one[0] = nil
	outgoings.Put(o)
}

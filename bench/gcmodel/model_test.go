// Package gcmodel measures what the Go collector pays a cycle for a key
// record, by how records are held, on a model of keygate's record (288
// bytes, its pointer words first, an id and a name of its own, an owner
// and an access shared by every key): the figures that decide whether a
// record store the collector does not trace is worth its constraints
// (docs/performance.md, "Run of 2026-12-07, late night"). Run pinned to
// one CPU, as the load harness runs keygate:
//
//	taskset -c 1 go test -run NONE -bench . -benchtime 10x ./bench/gcmodel
//
// gc-ns/key is the collector's CPU a cycle (runtime.GC, all its work)
// over the records held.
package gcmodel

//lint:file-ignore U1000 the records' fields stand for the layout the collector reads; the code sets only some

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

// records is how many each benchmark holds: the round robin's database.
const records = 300_000

// shared stands for a record's owner and access, one for all keys.
type shared struct{ account, app string }

// record is keygate's record as the collector sees it (authz.Key since
// 2e5eb58): 96 bytes that may hold pointers, then scalars.
type record struct {
	extra    *int
	usageOps [2]*int
	adapter  any
	id, name string
	owner    *shared
	access   *shared
	group    string
	scalars  [184]byte
}

// flatRecord is the same record holding no pointer: its id and name
// inside, its owner and access named by number.
type flatRecord struct {
	owner, access  uint32
	idLen, nameLen uint8
	text           [64]byte
	scalars        [214]byte
}

// blockLen is how many records a block holds.
const blockLen = 1024

func gcCPU() float64 {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return s[0].Value.Float64()
}

// measure runs full collections with what the caller holds live.
func measure(b *testing.B) {
	runtime.GC()
	start := gcCPU()
	for b.Loop() {
		runtime.GC()
	}
	b.ReportMetric((gcCPU()-start)*1e9/float64(b.N)/records, "gc-ns/key")
}

func id(i int) string { return fmt.Sprintf("seed-default-%09d", i) }

// newRecords allocates records one by one, each with its own id and name,
// as the warm load compiles them.
func newRecords() []*record {
	s := &shared{"default", "seed-app"}
	out := make([]*record, records)
	for i := range out {
		out[i] = &record{id: id(i), name: id(i), owner: s, access: s}
	}
	return out
}

// Records reached through a map of pointers keyed by a random hash, as
// ristretto's index holds keygate's.
func BenchmarkRecordsByMapOfPointers(b *testing.B) {
	index := make(map[uint64]*record, records)
	for _, r := range newRecords() {
		index[rand.Uint64()] = r
	}
	measure(b)
	runtime.KeepAlive(index)
}

// Records reached through a slice, in the order they were allocated.
func BenchmarkRecordsBySliceInOrder(b *testing.B) {
	s := newRecords()
	measure(b)
	runtime.KeepAlive(s)
}

// Records reached through a slice in random order.
func BenchmarkRecordsBySliceShuffled(b *testing.B) {
	s := newRecords()
	rand.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	measure(b)
	runtime.KeepAlive(s)
}

// Records in blocks of blockLen, still holding their strings and shared
// parts: blocks alone do not take the records out of the collector's way.
func BenchmarkRecordsInBlocksWithPointers(b *testing.B) {
	s := &shared{"default", "seed-app"}
	var blocks []*[blockLen]record
	for i := range records {
		if i%blockLen == 0 {
			blocks = append(blocks, new([blockLen]record))
		}
		blocks[i/blockLen][i%blockLen] = record{id: id(i), name: id(i), owner: s, access: s}
	}
	measure(b)
	runtime.KeepAlive(blocks)
}

// Records that hold no pointer, in blocks, indexed by number from a map
// that holds none either: the collector marks each block and the map and
// reads neither.
func BenchmarkRecordsInFlatBlocks(b *testing.B) {
	var blocks []*[blockLen]flatRecord
	index := make(map[uint64]uint32, records)
	for i := range records {
		if i%blockLen == 0 {
			blocks = append(blocks, new([blockLen]flatRecord))
		}
		r := &blocks[i/blockLen][i%blockLen]
		r.idLen = uint8(copy(r.text[:], id(i)))
		r.nameLen = uint8(copy(r.text[r.idLen:], id(i)))
		index[rand.Uint64()] = uint32(i)
	}
	measure(b)
	runtime.KeepAlive(index)
	runtime.KeepAlive(blocks)
}

// item stands for ristretto's store item: its value is a slot number, and
// its expiry a time.Time (whose location pointer is nil).
type item struct {
	key, conflict, slot uint64
	expiration          time.Time
}

// Records held in a slice in allocation order, reached from the index by
// slot number: ristretto's map still scanned, but holding no pointer to a
// record.
func BenchmarkRecordsBySlotNumber(b *testing.B) {
	s := newRecords()
	index := make(map[uint64]item, records)
	for i := range s {
		index[rand.Uint64()] = item{slot: uint64(i)}
	}
	measure(b)
	runtime.KeepAlive(index)
	runtime.KeepAlive(s)
}

// Records reached through a map of ristretto-like items holding pointers.
func BenchmarkRecordsByMapOfItems(b *testing.B) {
	type pitem struct {
		key, conflict uint64
		value         *record
		expiration    time.Time
	}
	index := make(map[uint64]pitem, records)
	for _, r := range newRecords() {
		index[rand.Uint64()] = pitem{value: r}
	}
	measure(b)
	runtime.KeepAlive(index)
}

package postgres

import (
	"cmp"
	"runtime"
	"slices"

	"github.com/keygate/keygate/pkg/yield"
)

// Rows a flush upserts are sent in one order that every replica shares,
// so that replicas adding to the same rows lock them in the same order
// and cannot deadlock. Any order they all share will do: sorting by a hash
// of each row, computed once, and comparing the rows' strings only when
// two hashes are equal, is many times cheaper than comparing the strings
// (100,000 rows a flush in a round robin over 100,000 keys: 0.4 s of a
// replica's CPU every 10 s sorted by their strings). The hash is FNV-1a,
// fixed, so that replicas (and versions) agree on it.

// rowOrder returns the indexes 0..n-1 sorted by hash, then by compare.
// Rows that compare equal are next to each other.
//
// The flush runs beside the requests a replica serves, often on one CPU:
// Go preempts a goroutine that runs on only after 10 ms, so one sort of
// 100,000 rows would hold requests back that long, more than once
// (BenchmarkQuotaFlushSync100k/flush-stall). So the rows are first
// placed in buckets by their hash's top bits, in one pass, and each
// bucket is sorted on its own, the flush yielding between them: the same
// order, in slices of well under a millisecond.
func rowOrder(n int, hash func(i int) uint64, compare func(a, b int) int) []int32 {
	hashes := make([]uint64, n)
	var starts [orderBuckets + 1]int
	for i := range n {
		hashes[i] = hash(i)
		starts[bucketOf(hashes[i])+1]++
		yield.Every(i, 1024)
	}
	for b := 1; b <= orderBuckets; b++ {
		starts[b] += starts[b-1]
	}
	order := make([]int32, n)
	next := starts
	for i := range n {
		b := bucketOf(hashes[i])
		order[next[b]] = int32(i)
		next[b]++
	}
	byHash := func(a, b int32) int {
		if c := cmp.Compare(hashes[a], hashes[b]); c != 0 {
			return c
		}
		return compare(int(a), int(b))
	}
	for b := range orderBuckets {
		if bucket := order[starts[b]:starts[b+1]]; len(bucket) > 1 {
			slices.SortFunc(bucket, byHash)
			if len(bucket) > 64 {
				runtime.Gosched()
			}
		}
	}
	return order
}

// orderBuckets is how many buckets rowOrder sorts apart: 100,000 rows
// make buckets of about 400, each sorted in tens of microseconds.
const orderBuckets = 256

func bucketOf(h uint64) int { return int(h >> 56) }

const (
	fnvOffset uint64 = 14695981039346656037
	fnvPrime  uint64 = 1099511628211
)

// fnvString adds s to the FNV-1a hash h, then a NUL, so that ("ab", "c")
// and ("a", "bc") hash apart.
func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return h * fnvPrime // ^ 0
}

// fnvUint64 adds v to the FNV-1a hash h, byte by byte.
func fnvUint64(h, v uint64) uint64 {
	for range 8 {
		h = (h ^ (v & 0xff)) * fnvPrime
		v >>= 8
	}
	return h
}

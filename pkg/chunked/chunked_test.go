package chunked

import (
	"testing"
)

func TestListKeepsOrderAcrossChunks(t *testing.T) {
	for _, n := range []int{0, 1, chunkLen - 1, chunkLen, chunkLen + 1, 3*chunkLen + 7} {
		var l List[int]
		for i := range n {
			l.Append(i * 3)
		}
		if l.Len() != n {
			t.Fatalf("n=%d: Len %d", n, l.Len())
		}
		for i := range n {
			if got := *l.At(i); got != i*3 {
				t.Fatalf("n=%d: At(%d) = %d", n, i, got)
			}
		}
		seen := 0
		for i, v := range l.All() {
			if i != seen || *v != i*3 {
				t.Fatalf("n=%d: All yielded %d, %d at %d", n, i, *v, seen)
			}
			seen++
		}
		if seen != n {
			t.Fatalf("n=%d: All yielded %d", n, seen)
		}
		// Full chunks after the first: no chunk beyond the first is
		// ever reallocated, and none is longer than chunkLen.
		for k, c := range l.chunks {
			if len(c) > chunkLen || (k > 0 && cap(c) != chunkLen) {
				t.Fatalf("n=%d: chunk %d len %d cap %d", n, k, len(c), cap(c))
			}
		}
	}
}

func TestAtChangesInPlace(t *testing.T) {
	l := Of(1, 2, 3)
	*l.At(1) += 10
	if *l.At(1) != 12 || l.Len() != 3 {
		t.Fatalf("At(1) = %d, Len %d", *l.At(1), l.Len())
	}
}

func TestNilListIsEmpty(t *testing.T) {
	var l *List[string]
	if l.Len() != 0 {
		t.Fatal("nil list has items")
	}
	for range l.All() {
		t.Fatal("nil list yielded")
	}
}

func TestAtOutOfRangePanics(t *testing.T) {
	l := Of("a")
	for _, i := range []int{-1, 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("At(%d) did not panic", i)
				}
			}()
			l.At(i)
		}()
	}
}

// A long list allocates full chunks, never one array of its whole length.
func TestLongListAllocatesChunks(t *testing.T) {
	allocs := testing.AllocsPerRun(3, func() {
		var l List[[18]uint64] // 144 bytes, a usage row's size
		for i := range 10 * chunkLen {
			l.Append([18]uint64{uint64(i)})
		}
	})
	// The first chunk's growth (about a dozen doublings to chunkLen),
	// nine full chunks, the chunk directory's growth.
	if allocs > 40 {
		t.Errorf("%v allocations for ten chunks", allocs)
	}
}

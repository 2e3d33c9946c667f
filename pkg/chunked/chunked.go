// Package chunked holds a long list in chunks of a fixed length instead of
// one array, so that building it allocates a piece at a time.
//
// Why: a usage flush builds lists of 100,000 rows beside the requests,
// often on one CPU. Built as one array (14 MB of usage rows), the
// allocation came while the collector was marking, and the runtime made
// the flush pay its share of the marking for the whole array at once: a
// mark assist of 34 ms in one stretch, every request in flight waiting
// for it (docs/performance.md, "Run of 2026-12-07, night"). A chunk's
// share is paid when the chunk is made, between the flush's yields.
package chunked

import "iter"

// chunkLen is how many items a full chunk holds: 2,048 usage rows of 144
// bytes are a 288 KiB chunk.
const chunkLen = 2048

// List is a list of T in chunks. The first chunk grows as a slice does
// (a short list allocates no more than a slice would); the next ones are
// made full length. The zero List is empty and ready; a nil *List is empty.
type List[T any] struct {
	chunks [][]T
	n      int
}

// Of returns a list of vs (tests, small batches).
func Of[T any](vs ...T) *List[T] {
	l := new(List[T])
	for _, v := range vs {
		l.Append(v)
	}
	return l
}

// Append adds v at the end.
func (l *List[T]) Append(v T) {
	if len(l.chunks) == 0 || len(l.chunks[len(l.chunks)-1]) == chunkLen {
		var c []T
		if len(l.chunks) > 0 {
			c = make([]T, 0, chunkLen)
		}
		l.chunks = append(l.chunks, c)
	}
	last := &l.chunks[len(l.chunks)-1]
	*last = append(*last, v)
	l.n++
}

// Len is the number of items.
func (l *List[T]) Len() int {
	if l == nil {
		return 0
	}
	return l.n
}

// At is the i-th item, to read or change in place; it panics when i is
// out of range, as indexing a slice does.
func (l *List[T]) At(i int) *T {
	if i < 0 || i >= l.Len() {
		panic("chunked: index out of range")
	}
	return &l.chunks[i/chunkLen][i%chunkLen]
}

// All yields each index and item in order.
func (l *List[T]) All() iter.Seq2[int, *T] {
	return func(yield func(int, *T) bool) {
		if l == nil {
			return
		}
		i := 0
		for _, c := range l.chunks {
			for j := range c {
				if !yield(i, &c[j]) {
					return
				}
				i++
			}
		}
	}
}

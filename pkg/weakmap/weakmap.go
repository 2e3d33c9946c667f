// Package weakmap shares immutable values by key for as long as something
// else holds them: an entry holds its value through a weak pointer and
// leaves once the value is collected. A long-lived Map can therefore
// share, say, a compiled scope between every cached key that has it,
// across bulk loads and single lookups, without keeping alive one that no
// key uses any more (its size follows the values in use, whatever keys an
// account creates and deletes).
package weakmap

import (
	"runtime"
	"sync"
	"weak"
)

// Map is safe for concurrent use. The zero value is an empty map.
type Map[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]weak.Pointer[V]
}

// Load returns the value held under k, or nil.
func (m *Map[K, V]) Load(k K) *V {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m[k].Value()
}

// LoadOrMake returns the value held under k; without one it stores and
// returns what build returns (an error stores nothing). build runs
// outside the map's lock, so that one slow build (a scope of an
// account's making) holds up no other key; when two callers build the
// same key at once, the first stored wins and both return it.
func (m *Map[K, V]) LoadOrMake(k K, build func() (*V, error)) (*V, error) {
	if v := m.Load(k); v != nil {
		return v, nil
	}
	v, err := build()
	if err != nil || v == nil {
		return v, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur := m.m[k].Value(); cur != nil {
		return cur, nil
	}
	if m.m == nil {
		m.m = map[K]weak.Pointer[V]{}
	}
	wp := weak.Make(v)
	m.m[k] = wp
	runtime.AddCleanup(v, m.forget, entry[K, V]{k, wp})
	return v, nil
}

// entry names a map entry for its cleanup: the key and the weak pointer
// stored (never the value, which the cleanup must not keep alive).
type entry[K comparable, V any] struct {
	k  K
	wp weak.Pointer[V]
}

// forget removes e once its value is collected, unless the key already
// holds a newer value.
func (m *Map[K, V]) forget(e entry[K, V]) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m[e.k] == e.wp {
		delete(m.m, e.k)
	}
}

// Len is the number of entries, collected values not yet forgotten
// included.
func (m *Map[K, V]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.m)
}

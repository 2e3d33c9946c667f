// fakeSource's injected faults for the cache's tests: calls that fail,
// calls held until released, and the logs of the calls made.

package cache

import (
	"errors"
	"slices"
	"sync"

	"github.com/keygate/keygate/pkg/apikey"
)

// failForever makes every LookupKeysOfParent call fail until failParents(0):
// Run kicks its catch-up twice at start (once itself, once when Listen
// connects), so a single failure may be retried at once, before a test
// looks at the state the failure left.
const failForever = 1 << 30

// failParents makes the next n LookupKeysOfParent calls fail.
func (f *fakeSource) failParents(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.parentFails = n
}

// calls returns how many batched lookups by id and by parent were made.
func (f *fakeSource) calls() (byID, byParent int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byIDBatches, len(f.parentCalls)
}

func (f *fakeSource) setLookupErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookupErr = err
}

func (f *fakeSource) failChanges(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changesFails = n
}

func (f *fakeSource) failByID(id string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byIDFails[id] = n
}

// hold makes the next LookupKey calls wait until the returned release is
// called; entered receives the digest of each held call. unhold stops
// holding new calls (the held ones stay held until release).
func (f *fakeSource) hold() (entered <-chan apikey.Digest, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	gate := make(chan struct{})
	ch := make(chan apikey.Digest, 100)
	f.gate, f.entered = gate, ch
	var once sync.Once
	return ch, func() { once.Do(func() { close(gate) }) }
}

func (f *fakeSource) unhold() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate, f.entered = nil, nil
}

// callOrder is the batched lookups made, in order.
func (f *fakeSource) callOrder() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.order)
}

func (f *fakeSource) byIDLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.byIDCalls)
}

var errDown = errors.New("fake: connection refused")

func (f *fakeSource) failDenials(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.denialFails = n
}

func (f *fakeSource) denialLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.denialCalls)
}

// holdByID makes LookupKeysByID calls wait, before reading, until
// release is called: a slow read of a page of changed keys. entered
// receives the number of keys of each.
func (f *fakeSource) holdByID() (entered <-chan int, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	gate, in := make(chan struct{}), make(chan int, 100)
	f.byIDGate, f.byIDIn = gate, in
	var once sync.Once
	return in, func() { once.Do(func() { close(gate) }) }
}

// holdParents makes LookupKeysOfParent calls wait, after reading, until
// release is called; entered receives the parent id of each.
func (f *fakeSource) holdParents() (entered <-chan string, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	gate, in := make(chan struct{}), make(chan string, 100)
	f.parentGate, f.parentIn = gate, in
	var once sync.Once
	return in, func() { once.Do(func() { close(gate) }) }
}

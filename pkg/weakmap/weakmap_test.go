package weakmap

import (
	"errors"
	"runtime"
	"testing"
	"time"
)

type value struct{ text string }

func TestSharesWhileHeld(t *testing.T) {
	var m Map[string, value]
	makes := 0
	mk := func() (*value, error) { makes++; return &value{"a"}, nil }
	a, _ := m.LoadOrMake("a", mk)
	b, _ := m.LoadOrMake("a", mk)
	if a != b || makes != 1 {
		t.Fatalf("two values (%p, %p) or %d makes for one key held", a, b, makes)
	}
	if m.Load("a") != a || m.Load("b") != nil {
		t.Error("Load does not answer what is held")
	}
	runtime.KeepAlive(a)
}

func TestForgetsWhatNobodyHolds(t *testing.T) {
	var m Map[string, value]
	for i := range 100 {
		v, _ := m.LoadOrMake(string(rune('a'+i%26))+string(rune(i)), func() (*value, error) { return &value{"x"}, nil })
		_ = v
	}
	deadline := time.Now().Add(5 * time.Second)
	for m.Len() > 0 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if n := m.Len(); n != 0 {
		t.Fatalf("%d entries left after their values were collected", n)
	}
	// A key whose value was collected gets a new one.
	makes := 0
	if _, err := m.LoadOrMake("k", func() (*value, error) { makes++; return &value{"y"}, nil }); err != nil || makes != 1 {
		t.Fatalf("LoadOrMake after collection: %v, %d makes", err, makes)
	}
}

func TestErrorStoresNothing(t *testing.T) {
	var m Map[string, value]
	bad := errors.New("bad")
	if _, err := m.LoadOrMake("k", func() (*value, error) { return nil, bad }); !errors.Is(err, bad) {
		t.Fatalf("error %v, want %v", err, bad)
	}
	if m.Len() != 0 {
		t.Error("a failed make left an entry")
	}
}

// TestConcurrentMakersShareOne: callers building the same key at once
// all get the one value stored first.
func TestConcurrentMakersShareOne(t *testing.T) {
	var m Map[string, value]
	got := make(chan *value, 8)
	for range 8 {
		go func() {
			v, _ := m.LoadOrMake("k", func() (*value, error) { return &value{"k"}, nil })
			got <- v
		}()
	}
	first := <-got
	for range 7 {
		if v := <-got; v != first {
			t.Fatalf("two values for one key: %p and %p", first, v)
		}
	}
	runtime.KeepAlive(first)
}

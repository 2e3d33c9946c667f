package cache

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestKeyUsedRecordsOncePerMinute(t *testing.T) {
	clock := newFakeClock()
	k1, k2 := newKey(t, "k1", "s1"), newKey(t, "k2", "s2")
	c := newCache(t, newFakeSource(), Options{Now: clock.Now})
	t0 := clock.Now() // 12:00:00

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				c.KeyUsed(k1, t0.Add(time.Duration(g*1000+i)*time.Millisecond))
			}
		})
	}
	wg.Wait()
	c.KeyUsed(k2, t0.Add(30*time.Second))
	c.KeyUsed(nil, t0) // ignored

	w := &fakeWriter{}
	if err := c.FlushUsage(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	got := w.written()
	if len(got) != 1 || len(got[0]) != 2 {
		t.Fatalf("batches %v, want one batch of two keys", got)
	}
	if at := got[0]["k1"]; at.Before(t0) || at.Sub(t0) >= time.Minute {
		t.Errorf("k1 last used %v, want within the first minute", at)
	}

	// Same minute again: nothing new. Next minute: recorded again.
	c.KeyUsed(k1, t0.Add(59*time.Second))
	if n := c.Stats().UsagePending; n != 0 {
		t.Fatalf("%d pending after a second use in the same minute, want 0", n)
	}
	c.KeyUsed(k1, t0.Add(61*time.Second))
	c.KeyUsed(k1, t0.Add(62*time.Second))
	if n := c.Stats().UsagePending; n != 1 {
		t.Fatalf("%d pending in the next minute, want 1", n)
	}
	if err := c.FlushUsage(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	if got := w.written(); len(got) != 2 || !got[1]["k1"].Equal(t0.Add(61*time.Second)) {
		t.Fatalf("second batch %v, want k1 at 12:01:01", got)
	}
	if st := c.Stats(); st.UsageFlushed != 3 {
		t.Errorf("%d flushed, want 3", st.UsageFlushed)
	}
}

func TestKeyUsedIsBounded(t *testing.T) {
	clock := newFakeClock()
	c := newCache(t, newFakeSource(), Options{Now: clock.Now, MaxPendingUsage: 3})
	for i := range 5 {
		c.KeyUsed(newKey(t, fmt.Sprintf("k%d", i), "s"), clock.Now())
	}
	if st := c.Stats(); st.UsagePending != 3 || st.UsageDropped != 2 {
		t.Fatalf("stats %+v, want 3 pending, 2 dropped", st)
	}
}

func TestFlushRetriesAfterAWriteError(t *testing.T) {
	clock := newFakeClock()
	k1, k2 := newKey(t, "k1", "s1"), newKey(t, "k2", "s2")
	c := newCache(t, newFakeSource(), Options{Now: clock.Now})
	t0 := clock.Now()
	c.KeyUsed(k1, t0)
	w := &fakeWriter{fails: 1}
	if err := c.FlushUsage(context.Background(), w); err == nil {
		t.Fatal("flush: no error from a failing writer")
	}
	// Used again meanwhile, in a later minute: the later time wins.
	c.KeyUsed(k1, t0.Add(2*time.Minute))
	c.KeyUsed(k2, t0.Add(2*time.Minute))
	if err := c.FlushUsage(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	got := w.written()
	if len(got) != 1 || len(got[0]) != 2 || !got[0]["k1"].Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("batches %v, want k1 (later time) and k2 in one batch", got)
	}
	if st := c.Stats(); st.UsageWriteErrors != 1 || st.UsagePending != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestRunUsageFlusher(t *testing.T) {
	k1, k2 := newKey(t, "k1", "s1"), newKey(t, "k2", "s2")
	c := newCache(t, newFakeSource(), Options{})
	w := &fakeWriter{fails: 1}
	start := func(every time.Duration) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.RunUsageFlusher(ctx, w, every) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}

	// Every tick: the first write fails, a later tick writes the batch.
	stop := start(time.Millisecond)
	c.KeyUsed(k1, time.Now())
	eventually(t, "k1 written", func() bool { return len(w.written()) == 1 })
	stop()
	if got := w.written()[0]; len(got) != 1 {
		t.Fatalf("batch %v, want k1", got)
	}

	// At shutdown, once more, whatever the interval.
	stop = start(time.Hour)
	c.KeyUsed(k2, time.Now())
	stop()
	if got := w.written(); len(got) != 2 || len(got[1]) != 1 {
		t.Fatalf("batches %v, want k2 written at shutdown", got)
	}
}

func TestUsageOncePerMinutePerRecord(t *testing.T) {
	clock := newFakeClock()
	k1 := newKey(t, "k1", "s1")
	c := newCache(t, newFakeSource(), Options{Now: clock.Now})
	w := &fakeWriter{}
	c.KeyUsed(k1, clock.Now())
	c.KeyUsed(k1, clock.Now().Add(time.Second))
	_ = c.FlushUsage(context.Background(), w)
	c.KeyUsed(k1, clock.Now().Add(2*time.Second)) // same minute: not again
	_ = c.FlushUsage(context.Background(), w)
	if got := w.written(); len(got) != 1 {
		t.Fatalf("batches %v, want one for the first minute", got)
	}
	clock.Advance(time.Minute)
	c.KeyUsed(k1, clock.Now())
	_ = c.FlushUsage(context.Background(), w)
	if got := w.written(); len(got) != 2 {
		t.Fatalf("batches %v, want another for the next minute", got)
	}
}

// TestKeyUsedOneEntryPerKey: a key used in two minutes between flushes
// holds one entry, with the later time, and the place a record remembers
// from an earlier list never lands its use in another key's entry.
func TestKeyUsedOneEntryPerKey(t *testing.T) {
	clock := newFakeClock()
	k1, k2 := newKey(t, "k1", "s1"), newKey(t, "k2", "s2")
	c := newCache(t, newFakeSource(), Options{Now: clock.Now, MaxPendingUsage: 2})
	t0 := clock.Now()
	c.KeyUsed(k1, t0)
	c.KeyUsed(k2, t0)
	c.KeyUsed(k1, t0.Add(61*time.Second))
	if st := c.Stats(); st.UsagePending != 2 || st.UsageDropped != 0 {
		t.Fatalf("stats %+v, want 2 pending, none dropped (k1 twice is one entry)", st)
	}
	w := &fakeWriter{}
	if err := c.FlushUsage(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	if got := w.written()[0]; len(got) != 2 || !got["k1"].Equal(t0.Add(61*time.Second)) || !got["k2"].Equal(t0) {
		t.Fatalf("batch %v, want k1 at 12:01:01 and k2 at 12:00:00", got)
	}
	// k2 first now: it takes the first entry, which k1 held last time.
	c.KeyUsed(k2, t0.Add(130*time.Second))
	c.KeyUsed(k1, t0.Add(125*time.Second))
	if err := c.FlushUsage(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	if got := w.written()[1]; len(got) != 2 || !got["k1"].Equal(t0.Add(125*time.Second)) || !got["k2"].Equal(t0.Add(130*time.Second)) {
		t.Fatalf("batch %v, want k1 at 12:02:05 and k2 at 12:02:10", got)
	}
}

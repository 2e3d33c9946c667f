package telemetry_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/extauthz"
	"github.com/keygate/keygate/pkg/telemetry"
)

type lags struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *lags) ObservePropagationLag(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.d = append(l.d, d)
}

func (l *lags) take() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.d
	l.d = nil
	return d
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestPropagationLag drives the wrapper the way the cache does: a
// ChangesSince(after) call means every change up to after is applied.
func TestPropagationLag(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := newSource()
	cfg := extauthz.Config{}.WithDefaults()
	put := func(id string) {
		k, _ := newKey(t, cfg, id, "")
		src.put(k)
	}
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	rec := &lags{}
	fs := telemetry.ObserveChangeFeed(src, rec, clk.now)
	notified := make(chan struct{}, 16)
	go func() { _ = fs.Listen(ctx, func() { notified <- struct{}{} }, func(bool) {}) }()
	notify := func() {
		src.notify <- struct{}{}
		<-notified
	}
	since := func(after int64, limit int) []int64 {
		t.Helper()
		cs, err := fs.ChangesSince(ctx, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []int64
		for _, c := range cs {
			seqs = append(seqs, c.Seq)
		}
		return seqs
	}
	expect := func(want ...time.Duration) {
		t.Helper()
		if got := rec.take(); !slices.Equal(got, want) {
			t.Errorf("lags %v, want %v", got, want)
		}
	}

	// Found by a poll, without a notification: not measured.
	put("k1")
	if got := since(0, 10); !slices.Equal(got, []int64{1}) {
		t.Fatalf("changes %v", got)
	}
	clk.advance(time.Second)
	since(1, 10)
	expect()

	// Notified, read 10 ms later, applied 5 ms after that.
	put("k2")
	notify()
	clk.advance(10 * time.Millisecond)
	since(1, 10)
	clk.advance(5 * time.Millisecond)
	expect() // not applied yet
	since(2, 10)
	expect(15 * time.Millisecond)

	// Applying fails; the retry reads the change again; measured once,
	// when it is finally applied.
	put("k3")
	notify()
	since(2, 10)
	clk.advance(100 * time.Millisecond)
	since(2, 10) // the retry: 3 is not applied
	expect()
	clk.advance(time.Millisecond)
	since(3, 10)
	expect(101 * time.Millisecond)

	// One notification, three changes read in pages of two: all carry it.
	put("k4")
	put("k5")
	put("k6")
	notify()
	since(3, 2)
	clk.advance(2 * time.Millisecond)
	since(5, 2)
	expect(2*time.Millisecond, 2*time.Millisecond)
	clk.advance(3 * time.Millisecond)
	since(6, 2)
	expect(5 * time.Millisecond)
}

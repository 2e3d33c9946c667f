package authz

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestQuotaIndexCollisions holds the quota table's hashed index to exact
// lookups when subjects share a hash: each keeps a cell of its own, counts
// apart, is found again, and is dropped at its period's end.
func TestQuotaIndexCollisions(t *testing.T) {
	q := NewQuotas()
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	subjects := []QuotaSubject{
		{AccountID: "acme", ID: "k1", Period: QuotaPeriodDay},
		{AccountID: "acme", ID: "k2", Period: QuotaPeriodDay},
		{AccountID: "acme", Tenant: true, ID: "k1", Period: QuotaPeriodMonth},
		{AccountID: "other", ID: "k1", Period: QuotaPeriodDay},
	}
	const h = 42 // every subject under one hash: three collide with the first
	cells := map[QuotaSubject]QuotaCell{}
	for _, s := range subjects {
		c := q.cellHashed(s, h, now.Unix())
		if c.Subject() != s {
			t.Fatalf("cell of %v counts %v", s, c.Subject())
		}
		for _, other := range cells {
			if other == c {
				t.Fatalf("%v shares a cell with %v", s, other.Subject())
			}
		}
		cells[s] = c
	}
	if q.Len() != len(subjects) {
		t.Fatalf("Len = %d, want %d", q.Len(), len(subjects))
	}
	for i, s := range subjects {
		if c := q.cellHashed(s, h, now.Unix()); c != cells[s] {
			t.Fatalf("%v: found another cell the second time", s)
		}
		for range i + 1 {
			if !cells[s].admit(100, now.Unix()) {
				t.Fatalf("%v: refused under its limit", s)
			}
		}
	}
	for i, s := range subjects {
		if got := cells[s].used(); got != int64(i+1) {
			t.Errorf("%v: used %d, want %d (counts of one subject reached another)", s, got, i+1)
		}
	}
	// The first subject's day ends: it and the other day quotas are
	// dropped, the tenant's month stays, under the shared hash or not.
	if n := q.DropEnded(now.Add(24 * time.Hour)); n != 3 {
		t.Fatalf("DropEnded dropped %d, want 3", n)
	}
	tenant := subjects[2]
	if c := q.cellHashed(tenant, h, now.Unix()); c != cells[tenant] {
		t.Fatal("the tenant's cell was lost when the colliding cells were dropped")
	}
	if c := q.cellHashed(subjects[1], h, now.Unix()); c == cells[subjects[1]] || c.used() != 0 {
		t.Fatal("a dropped subject found its old cell")
	}
}

// TestQuotaSubjectHash: subjects that differ in any field hash apart under
// one seed (the index's collisions are then chance only), and a table's
// seed is its own.
func TestQuotaSubjectHash(t *testing.T) {
	q := NewQuotas()
	base := QuotaSubject{AccountID: "acme", ID: "k1", Period: QuotaPeriodDay}
	seen := map[uint64]QuotaSubject{q.subjectHash(base): base}
	for _, s := range []QuotaSubject{
		{AccountID: "acme", ID: "k1", Period: QuotaPeriodMonth},
		{AccountID: "acme", Tenant: true, ID: "k1", Period: QuotaPeriodDay},
		{AccountID: "acmek", ID: "1", Period: QuotaPeriodDay},
		{AccountID: "acm", ID: "ek1", Period: QuotaPeriodDay},
		{AccountID: "other", ID: "k1", Period: QuotaPeriodDay},
	} {
		h := q.subjectHash(s)
		if prev, dup := seen[h]; dup {
			t.Errorf("%v and %v hash alike", s, prev)
		}
		seen[h] = s
	}
	// The same subject in strings of its own: hashed by content.
	same := QuotaSubject{AccountID: strings.Clone(base.AccountID), ID: strings.Clone(base.ID), Period: base.Period}
	if q.subjectHash(same) != q.subjectHash(base) {
		t.Error("one subject in two copies hashes apart")
	}
	if NewQuotas().subjectHash(base) == q.subjectHash(base) {
		t.Error("two tables hash alike: the seed is not the table's")
	}
}

// TestQuotaSlotReuse holds the table's numbered slots to their subjects: a
// dropped cell's slot is handed out again only after the next DropEnded,
// and then a record's memo and a handle of the old cell no longer reach
// it — the old subject gets a cell of its own, the new one's counts stay
// its own.
func TestQuotaSlotReuse(t *testing.T) {
	q := NewQuotas()
	day := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	key := func(id string) *Key {
		return &Key{Spec: KeyInfo{ID: id, KeyOwner: &KeyOwner{AccountID: "acme"},
			Quota: Quota{Requests: 100, Period: QuotaPeriodDay}}, hasQuota: true}
	}
	a, b := key("a"), key("b")
	admit := func(k *Key, at time.Time) {
		t.Helper()
		if ok, _ := q.Admit(k, at); !ok {
			t.Fatalf("%s refused under its quota", k.Spec.ID)
		}
	}
	admit(a, day)
	cells, _ := q.KeyCells(a, day)
	old := cells[0]
	next := day.AddDate(0, 0, 1)
	if n := q.DropEnded(next); n != 1 {
		t.Fatalf("dropped %d, want a's ended cell", n)
	}
	if old.Subject() != (QuotaSubject{}) {
		t.Errorf("a dropped cell still names %v", old.Subject())
	}
	// Not handed out before the next DropEnded: b gets a new slot.
	admit(b, next)
	if got, _ := q.KeyCells(b, next); got[0].i == old.i {
		t.Fatal("a slot was handed out again within the interval it was dropped in")
	}
	// The next call frees a's old slot (b's cell lives on): c gets it, and
	// a, whose memo names that slot, gets a cell of its own.
	if n := q.DropEnded(next); n != 0 {
		t.Fatalf("dropped %d live cells", n)
	}
	c := key("c")
	admit(c, next)
	cc, _ := q.KeyCells(c, next)
	if cc[0].i != old.i {
		t.Fatalf("c got slot %d, want a's old slot %d", cc[0].i, old.i)
	}
	admit(a, next)
	ac, _ := q.KeyCells(a, next)
	if ac[0] == cc[0] {
		t.Fatal("a and c count in one cell")
	}
	if got := cc[0].used(); got != 1 {
		t.Errorf("c used %d, want 1: another record's stale memo counted in its slot", got)
	}
	if got := ac[0].used(); got != 1 {
		t.Errorf("a used %d, want 1 in its new cell", got)
	}
	if s := ac[0].Subject(); s.ID != "a" {
		t.Errorf("a's cell names %v", s)
	}
	if s := cc[0].Subject(); s.ID != "c" {
		t.Errorf("c's cell names %v", s)
	}
	later := next
	// A handle of the dropped cell changes nothing of the slot's new subject.
	start, _ := QuotaPeriodDay.Bounds(later)
	for _, h := range []QuotaCell{old, cells[0]} {
		h.SetTotal(start, 1000, later)
		h.Flushed(start, 5, later)
		if got := h.Expect(start, 1); got != QuotaTotalUnwanted {
			t.Errorf("a dropped cell expects %d, want unwanted", got)
		}
	}
	for _, h := range []QuotaCell{ac[0], cc[0]} {
		if got := h.used(); got != 1 {
			t.Errorf("%v used %d after a dropped handle's writes, want 1", h.Subject(), got)
		}
	}
}

// TestQuotaSlotsConcurrent: admissions of keys whose cells are being made
// (chunks added as they go) beside the sync side's drops and lookups count
// exactly, each key in its own cell (run with -race: the slots are read
// without the table's lock).
func TestQuotaSlotsConcurrent(t *testing.T) {
	q := NewQuotas()
	q.TrackUnknown()
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	const workers, perWorker, rounds = 4, 1500, 3
	keys := make([][]*Key, workers)
	for w := range keys {
		for i := range perWorker {
			id := strconv.Itoa(w) + "-" + strconv.Itoa(i)
			keys[w] = append(keys[w], &Key{Spec: KeyInfo{ID: id, KeyOwner: &KeyOwner{AccountID: "acme", TenantID: "t", TenantQuota: 1e9},
				Quota: Quota{Requests: 100, Period: QuotaPeriodDay}}, hasQuota: true})
		}
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	go func() { // the sync side: nothing has ended, so nothing is dropped
		for {
			select {
			case <-done:
				return
			default:
			}
			q.DropEnded(now)
			q.Unknown(now)
		}
	}()
	for w := range workers {
		wg.Go(func() {
			for range rounds {
				for _, k := range keys[w] {
					if ok, _ := q.Admit(k, now); !ok {
						t.Errorf("%s refused", k.Spec.ID)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(done)
	if got, want := q.Len(), workers*perWorker+1; got != want {
		t.Fatalf("%d cells, want %d", got, want)
	}
	for _, ks := range keys {
		for _, k := range ks {
			cells, n := q.KeyCells(k, now)
			if n != 2 || cells[1].used() != rounds || cells[1].Subject().ID != k.Spec.ID {
				t.Fatalf("%s: %d cells, own used %d naming %v, want 2, %d, itself", k.Spec.ID, n, cells[1].used(), cells[1].Subject(), rounds)
			}
		}
	}
	tenant, _ := q.KeyCells(keys[0][0], now)
	if got := tenant[0].used(); got != workers*perWorker*rounds {
		t.Errorf("tenant used %d, want %d", got, workers*perWorker*rounds)
	}
}

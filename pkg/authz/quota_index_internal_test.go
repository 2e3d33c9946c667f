package authz

import (
	"strings"
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
	cells := map[QuotaSubject]*QuotaCell{}
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

package authz

import (
	"testing"
	"time"
)

// TestUsageSlotTag: a combination's tag names it again, at the edges of
// each field; an hour a slot cannot hold is refused.
func TestUsageSlotTag(t *testing.T) {
	for _, c := range []struct {
		op      uint32
		outcome Reason
		hour    int64
	}{
		{0, OK, 0},
		{MaxUsageOperations - 1, numReasons - 1, 1<<slotHourBits - 1},
		{7, QuotaExceeded, time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC).Unix() / 3600},
	} {
		tag, ok := usageSlotTag(c.op, c.outcome, c.hour)
		if !ok {
			t.Fatalf("%+v refused", c)
		}
		if tag>>(64-slotCountBits) != 0 {
			t.Errorf("%+v: tag %#x reaches into the count's bits", c, tag)
		}
		if op, outcome, hour := untag(tag); op != c.op || outcome != c.outcome || hour != c.hour {
			t.Errorf("%+v: untagged as %d %d %d", c, op, outcome, hour)
		}
	}
	for _, hour := range []int64{-1, 1 << slotHourBits} {
		if _, ok := usageSlotTag(0, OK, hour); ok {
			t.Errorf("hour %d taken", hour)
		}
	}
}

// TestUsageSlotFull: a slot at its count's limit, or tagged for another
// combination with counts, leaves the decision to the shard's map, and
// the drain hands over both.
func TestUsageSlotFull(t *testing.T) {
	u := NewUsageCounter(0)
	k := &Key{Spec: KeyInfo{ID: "k", KeyOwner: &KeyOwner{AccountID: "a"}}}
	rd := Target{Service: "email-api", Operation: "listEmails"}
	at := time.Date(2026, 12, 7, 6, 30, 0, 0, time.UTC)
	u.Count(k, &rd, OK, at) // tags the slot
	slot := &k.usage[0]
	if slot.Load()&slotCountMask != 1 {
		slot = &k.usage[1]
	}
	slot.Add(slotCountMask - 2) // one short of the limit
	u.Count(k, &rd, OK, at)     // the last the slot holds
	u.Count(k, &rd, OK, at)     // the map's
	u.Count(k, &rd, OK, at.Add(time.Hour))
	got := map[int64]uint64{}
	u.Drain(func(c UsageCell, n uint64) {
		if c.Key != k || c.Service != rd.Service || c.Operation != rd.Operation || c.Outcome != OK {
			t.Errorf("drained %+v", c)
		}
		got[c.Hour] += n
	}, func(c UsageOverflowCell, n uint64) { t.Errorf("overflow %+v %d", c, n) })
	hour := at.Unix() / 3600
	if got[hour] != slotCountMask+1 || got[hour+1] != 1 || len(got) != 2 {
		t.Errorf("drained %v, want %d in hour %d and 1 in the next", got, slotCountMask+1, hour)
	}
	if slot.Load()&slotCountMask != 0 || !k.usageListed.CompareAndSwap(false, false) {
		t.Errorf("after the drain: slot %#x, listed %v", slot.Load(), k.usageListed.Load())
	}
	// Emptied, the slot is re-tagged by the next hour's decision.
	u.Count(k, &rd, OK, at.Add(time.Hour))
	if op, outcome, h := untag(slot.Load() >> slotCountBits); slot.Load()&slotCountMask != 1 || h != hour+1 || op == 0 || outcome != OK {
		t.Errorf("slot %#x after the next hour's decision", slot.Load())
	}
}

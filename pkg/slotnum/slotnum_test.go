package slotnum

import "testing"

func TestNumbers(t *testing.T) {
	n := From(1)
	for _, step := range []struct {
		give      []uint32 // given back before the take
		want      uint32
		wantFresh bool
		inUse     int // after the take
	}{
		{nil, 1, true, 1},
		{nil, 2, true, 2},
		{nil, 3, true, 3},
		{[]uint32{1, 3}, 3, false, 2}, // the last given back first
		{nil, 1, false, 3},
		{nil, 4, true, 4}, // none left to reuse: a new one
	} {
		n.Give(step.give...)
		got, fresh := n.Take()
		if got != step.want || fresh != step.wantFresh || n.InUse() != step.inUse {
			t.Fatalf("after giving back %v: Take() = %d, %v with %d in use; want %d, %v with %d",
				step.give, got, fresh, n.InUse(), step.want, step.wantFresh, step.inUse)
		}
	}
}

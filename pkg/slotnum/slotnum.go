// Package slotnum hands out the numbers of a table's slots, for tables
// that only grow and reuse the slots given back (the quota cells' table,
// the cache's record slots): a number given back is handed out again, the
// last one given back first, before a number never handed out, so that the
// table grows only when every slot it has is in use. Not safe for
// concurrent use: the table's own lock guards it.
package slotnum

// Numbers are a table's slot numbers, from its first one up.
type Numbers struct {
	first, next uint32 // next: the lowest number never handed out
	free        []uint32
}

// From returns the numbers of a table whose first slot is first (a table
// may keep slot 0 for "none").
func From(first uint32) Numbers { return Numbers{first: first, next: first} }

// Take hands out a number. fresh reports one never handed out before: the
// table may have to grow to hold it.
func (n *Numbers) Take() (num uint32, fresh bool) {
	if l := len(n.free); l > 0 {
		num = n.free[l-1]
		n.free = n.free[:l-1]
		return num, false
	}
	num = n.next
	n.next++
	return num, true
}

// Give hands nums back, to be handed out again.
func (n *Numbers) Give(nums ...uint32) { n.free = append(n.free, nums...) }

// InUse is how many numbers are handed out and not given back.
func (n *Numbers) InUse() int { return int(n.next-n.first) - len(n.free) }

package store

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// KeySort is a column the keys list can be sorted by.
type KeySort string

// The keys list's sort columns. Every order ends with the key's id, so
// that it is total and pages (keyset pagination on the sort column and
// the id) never skip or repeat a key.
const (
	// SortCreated is creation order (the default: oldest first).
	SortCreated KeySort = "created"
	// SortName is the name, letters compared without case (lower(name)
	// in byte order: COLLATE "C").
	SortName KeySort = "name"
	// SortExpires is the expiry, keys that never expire after every
	// other (an expiry of infinity).
	SortExpires KeySort = "expires"
	// SortLastUsed is the last use, then creation; keys never used come
	// before every used key (the oldest use), so after them in
	// descending order.
	SortLastUsed KeySort = "last_used"
)

// KeySorts lists the sort columns, in the order documentation gives them.
var KeySorts = []KeySort{SortCreated, SortName, SortExpires, SortLastUsed}

// KeyOrder is the order ListKeys returns keys in: a column, ascending
// unless Desc. The zero KeyOrder is creation order, oldest first.
type KeyOrder struct {
	By   KeySort
	Desc bool
}

// String is the order as the APIs write it: the column, "-" first when
// descending ("created", "-last_used").
func (o KeyOrder) String() string {
	by := cmp.Or(o.By, SortCreated)
	if o.Desc {
		return "-" + string(by)
	}
	return string(by)
}

// IsDefault reports whether o is creation order, oldest first.
func (o KeyOrder) IsDefault() bool { return cmp.Or(o.By, SortCreated) == SortCreated && !o.Desc }

// ParseKeyOrder reads an order as String writes it; "" is the default.
func ParseKeyOrder(s string) (KeyOrder, error) {
	var o KeyOrder
	rest, desc := strings.CutPrefix(s, "-")
	o.Desc = desc
	switch KeySort(rest) {
	case "":
		if desc {
			return KeyOrder{}, errBadOrder
		}
	case SortCreated, SortName, SortExpires, SortLastUsed:
		o.By = KeySort(rest)
	default:
		return KeyOrder{}, errBadOrder
	}
	if o.By == SortCreated {
		o.By = ""
	}
	return o, nil
}

const errBadOrder = invalidError(`order_by: give created, name, expires or last_used, with "-" first for descending ("-created": newest first)`)

// Valid reports whether o names a known column.
func (o KeyOrder) Valid() bool {
	switch o.By {
	case "", SortCreated, SortName, SortExpires, SortLastUsed:
		return true
	}
	return false
}

// KeyToken is the page token after key k of a list in order o: the key's
// sort value and id, and the order (none for the default, so that tokens
// of lists in creation order are as they always were).
func KeyToken(k Key, o KeyOrder) string {
	t := PageToken{ID: k.Spec.ID}
	if !o.IsDefault() {
		t.Order = o.String()
	}
	switch o.By {
	case SortName:
		t.Name = k.Spec.Name
	case SortExpires:
		t.At, t.Null = microsOrNull(k.Spec.ExpiresAt)
	case SortLastUsed:
		t.At, t.Null = microsOrNull(k.LastUsedAt)
		t.CreatedAt = k.CreatedAt.UnixMicro() // then creation order
	default:
		t.CreatedAt = k.CreatedAt.UnixMicro()
	}
	return t.String()
}

func microsOrNull(t time.Time) (int64, bool) {
	if t.IsZero() {
		return 0, true
	}
	return t.UnixMicro(), false
}

// ReadKeyPage is ReadPage for a keys list in order o: a token of a list
// in another order is ErrInvalid, saying so.
func ReadKeyPage(p Page, o KeyOrder) (int, *PageToken, error) {
	size, after, err := ReadPage(p)
	if err != nil || after == nil {
		return size, after, err
	}
	want := ""
	if !o.IsDefault() {
		want = o.String()
	}
	if after.Order != want {
		was := cmp.Or(after.Order, SortCreated.String())
		return 0, nil, invalidError("page_token: the token is of the list sorted by " + was + ", not by " + o.String() +
			": a token continues the order it came from; start from the first page to change the order")
	}
	return size, after, nil
}

// String is the column's name.
func (s KeySort) String() string { return string(s) }

// AtTime is a token's sort time (expires, last used).
func (t *PageToken) AtTime() time.Time { return time.UnixMicro(t.At).UTC() }

// CompareKeys compares a and b in order o (ascending: Desc reverses
// the result), the id breaking ties: the order of every store's ListKeys.
func CompareKeys(a, b Key, o KeyOrder) int {
	var c int
	switch o.By {
	case SortName:
		c = strings.Compare(strings.ToLower(a.Spec.Name), strings.ToLower(b.Spec.Name))
	case SortExpires:
		c = compareNullLast(a.Spec.ExpiresAt, b.Spec.ExpiresAt)
	case SortLastUsed:
		// Never used (zero) first; then creation order.
		c = cmp.Or(a.LastUsedAt.Compare(b.LastUsedAt), a.CreatedAt.Compare(b.CreatedAt))
	default:
		c = a.CreatedAt.Compare(b.CreatedAt)
	}
	c = cmp.Or(c, strings.Compare(a.Spec.ID, b.Spec.ID))
	if o.Desc {
		return -c
	}
	return c
}

// CompareKeyToken compares key k with the position of token t in order
// o, as CompareKeys would compare k with the key t was made after.
func CompareKeyToken(k Key, t *PageToken, o KeyOrder) int {
	var at Key
	at.Spec.ID = t.ID
	switch o.By {
	case SortName:
		at.Spec.Name = t.Name
	case SortExpires:
		if !t.Null {
			at.Spec.ExpiresAt = t.AtTime()
		}
	case SortLastUsed:
		if !t.Null {
			at.LastUsedAt = t.AtTime()
		}
		at.CreatedAt = t.CreatedAtTime()
	default:
		at.CreatedAt = t.CreatedAtTime()
	}
	return CompareKeys(k, at, o)
}

// compareNullLast compares times with the zero time after every other.
func compareNullLast(a, b time.Time) int {
	switch {
	case a.IsZero() && b.IsZero():
		return 0
	case a.IsZero():
		return 1
	case b.IsZero():
		return -1
	}
	return a.Compare(b)
}

// SortKeyPage is the page of size keys of all after token after (nil: the
// first page) in order o, sorted here as ListKeys sorts, and the next
// page's token: for stores (or lists) that hold every matching key.
// all is sorted in place.
func SortKeyPage(all []Key, o KeyOrder, after *PageToken, size int) ([]Key, string) {
	slices.SortFunc(all, func(a, b Key) int { return CompareKeys(a, b, o) })
	var out []Key
	for _, k := range all {
		if after == nil || CompareKeyToken(k, after, o) > 0 {
			out = append(out, k)
		}
	}
	if len(out) > size {
		out = out[:size]
		return out, KeyToken(out[size-1], o)
	}
	return out, ""
}

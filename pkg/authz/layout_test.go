package authz

import (
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/keygate/keygate/pkg/apikey"
)

// lastPointerEnd is the end of the last word of t (at offset base) that
// holds a pointer, 0 if none: how far into a value of t the collector
// reads.
func lastPointerEnd(t reflect.Type, base uintptr) uintptr {
	switch t.Kind() {
	case reflect.Struct:
		var end uintptr
		for i := range t.NumField() {
			f := t.Field(i)
			end = max(end, lastPointerEnd(f.Type, base+f.Offset))
		}
		return end
	case reflect.Array:
		if t.Len() == 0 {
			return 0
		}
		return lastPointerEnd(t.Elem(), base+uintptr(t.Len()-1)*t.Elem().Size())
	case reflect.Pointer, reflect.UnsafePointer, reflect.Map, reflect.Chan, reflect.Func, reflect.Slice, reflect.String:
		return base + unsafe.Sizeof(uintptr(0)) // the data pointer is the first word
	case reflect.Interface:
		return base + 2*unsafe.Sizeof(uintptr(0))
	}
	return 0
}

// TestKeyLayout holds the record to the layout the collector's cost was
// measured with: every pointer in its first 96 bytes (the collector scans
// no further, the rest of the record is never read on a cycle), and the
// whole record in the 288-byte size class (a million records are 64 MB
// less than in the 352-byte class). A field that holds a pointer belongs
// before Spec's scalars or in keyExtra.
func TestKeyLayout(t *testing.T) {
	if end := lastPointerEnd(reflect.TypeFor[Key](), 0); end > 96 {
		t.Errorf("a Key's pointer words end at byte %d, want at most 96", end)
	}
	if n := unsafe.Sizeof(Key{}); n > 288 {
		t.Errorf("a Key is %d bytes, want at most 288", n)
	}
}

// TestPreviousOnlyWithExtra: HasPrevious is exported, so a record can be
// built with it set and no extra part (the previous digest's home): such
// a record matches its current digest only, and reports no previous
// digest, instead of failing on the missing part.
func TestPreviousOnlyWithExtra(t *testing.T) {
	k := &Key{Digest: apikey.Digest{1}, HasPrevious: true}
	k.Spec.previousValidUntil = unixTimeOf(time.Now().Add(time.Hour), false)
	if !k.Matches(apikey.Digest{1}, time.Now()) {
		t.Error("the current digest does not match")
	}
	if k.Matches(apikey.Digest{}, time.Now()) {
		t.Error("the zero digest matches a record without a previous one")
	}
	if d := k.PreviousDigest(); d != (apikey.Digest{}) {
		t.Errorf("PreviousDigest = %x, want zero", d)
	}
}

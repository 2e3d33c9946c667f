package account

import (
	"fmt"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/store"
)

// TestPageOf: a page stops before its records' estimated bytes pass
// MaxListBytes, with the token of its last record; it reads the store in
// chunks of listChunk; a page within the bound is the store's.
func TestPageOf(t *testing.T) {
	const n = 1000
	all := make([]store.App, n)
	for i := range all {
		all[i] = store.App{ID: fmt.Sprintf("a%04d", i), CreatedAt: time.UnixMicro(int64(i + 1)).UTC()}
	}
	for _, tc := range []struct {
		name      string
		size      int // each record's estimate
		pageSize  int
		wantItems int
		wantReads int
	}{
		{"small records, default page", 100, 0, store.DefaultPageSize, 1},
		{"small records, 1000", 100, 1000, 1000, 4},
		{"large records", 40 << 10, 1000, MaxListBytes / (40 << 10), 1},
		{"one record past the bound", MaxListBytes + 1, 10, 1, 1},
		{"exactly the bound", MaxListBytes / 4, 10, 4, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reads := 0
			list := func(p store.Page) ([]store.App, string, error) {
				reads++
				if p.Size > listChunk {
					t.Fatalf("read %d records at once, more than %d", p.Size, listChunk)
				}
				return pageFromSlice(all, p)
			}
			got, next, err := pageOf(PageInput{Size: tc.pageSize}, list, func(store.App) int { return tc.size },
				func(a store.App) string { return keysetToken(a.CreatedAt.UnixMicro(), a.ID) })
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.wantItems || reads != tc.wantReads {
				t.Fatalf("%d records in %d reads, want %d in %d", len(got), reads, tc.wantItems, tc.wantReads)
			}
			if len(got) == n {
				if next != "" {
					t.Fatalf("next token %q after the last record", next)
				}
				return
			}
			// The next page starts right after the last record answered.
			rest, _, err := pageFromSlice(all, store.Page{Size: 1, Token: next})
			if err != nil || len(rest) != 1 || rest[0].ID != all[len(got)].ID {
				t.Fatalf("next page starts at %v (%v), want %s", rest, err, all[len(got)].ID)
			}
		})
	}
}

// pageFromSlice is a store's keyset list over all, sorted.
func pageFromSlice(all []store.App, p store.Page) ([]store.App, string, error) {
	size, after, err := store.ReadPage(p)
	if err != nil {
		return nil, "", err
	}
	i := 0
	if after != nil {
		for i < len(all) && all[i].ID <= after.ID {
			i++
		}
	}
	out := all[i:min(i+size, len(all))]
	next := ""
	if i+size < len(all) {
		last := out[len(out)-1]
		next = keysetToken(last.CreatedAt.UnixMicro(), last.ID)
	}
	return out, next, nil
}

// TestSizeViolations: each size limit is ResourceExhausted naming its
// field; other problems stay InvalidArgument; a size wins over them.
func TestSizeViolations(t *testing.T) {
	long := func(n int) string { return string(make([]byte, n)) }
	for _, tc := range []struct {
		name  string
		check func(v *Violations)
		code  Code
		field string
	}{
		{"name", func(v *Violations) { v.checkName("name", fmt.Sprintf("%201s", "n"), true) }, ResourceExhausted, "name"},
		{"name of 200 bytes", func(v *Violations) { v.checkName("name", fmt.Sprintf("%200s", "n")[:199]+"n", true) }, InvalidArgument, "name"},
		{"description", func(v *Violations) { v.checkDescription("description", long(MaxDescriptionLen+1)) }, ResourceExhausted, "description"},
		{"group", func(v *Violations) { v.checkGroup("group", fmt.Sprintf("%201s", "g")) }, ResourceExhausted, "group"},
		{"scope bytes", func(v *Violations) { v.checkScope("scope", fmt.Sprintf("%4097s", "s")) }, ResourceExhausted, "scope"},
		{"scope patterns", func(v *Violations) {
			s := ""
			for range MaxScopePatterns + 1 {
				s += "a "
			}
			v.checkScope("scope", s)
		}, ResourceExhausted, "scope"},
		{"ip filters", func(v *Violations) { v.checkIPFilters("ip_filters", make([]string, MaxIPFilters+1)) }, ResourceExhausted, "ip_filters"},
		{"id stays invalid", func(v *Violations) { v.checkID("id", long(MaxIDLen+1), false) }, InvalidArgument, "id"},
		{"size wins", func(v *Violations) {
			v.checkID("id", "-x", false)
			v.checkDescription("description", long(MaxDescriptionLen+1))
		}, ResourceExhausted, "description"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v Violations
			tc.check(&v)
			e, ok := v.Err().(*Error)
			if !ok || e.Code != tc.code || e.Field != tc.field {
				t.Fatalf("error %#v, want %s on %s", v.Err(), tc.code, tc.field)
			}
		})
	}
}

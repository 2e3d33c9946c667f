package account

import (
	"github.com/keygate/keygate/pkg/store"
)

// MaxListBytes bounds a list answer (SPEC §10): records are added while
// their estimated encoded size stays within it, and a shorter page with a
// next page token is answered past it, so a client simply pages on. The
// gRPC adapter's send limit is set a little above it.
const MaxListBytes = 4 << 20

// listChunk is how many records a list reads from the store at a time:
// the records read but not answered (past MaxListBytes) are at most one
// chunk of the largest allowed shape (about 40 KiB each), whatever
// page_size asks.
const listChunk = 250

// Estimated encoded sizes. They do not depend on a transport: each is the
// bytes of a record's text fields plus a generous allowance per field for
// tags, lengths, numbers and times, so that a gRPC (protobuf) or GraphQL
// (JSON) answer of MaxListBytes of estimates stays about that size.
const (
	fieldOverhead  = 8   // a text field's tag, length and quoting
	recordOverhead = 512 // times, flags, enums, the list's framing
)

// keyBytes estimates a key record's encoded size.
func keyBytes(k store.Key) int {
	sp := &k.Spec
	n := recordOverhead + textBytes(sp.ID, sp.Name, sp.AccountID, sp.AppID, sp.AppName, sp.TenantID,
		sp.TenantName, sp.Scope, sp.Group, sp.Description, string(k.Origin))
	for _, f := range sp.IPFilters {
		n += textBytes(f)
	}
	for _, h := range sp.ResponseHeaders {
		n += textBytes(h.Name, h.Value) + fieldOverhead
	}
	n += textBytes(k.RoleIDs...)
	return n
}

// ownerBytes estimates an app's or a tenant's encoded size.
func ownerBytes(a store.App) int {
	return recordOverhead + textBytes(a.AccountID, a.ID, a.Name, a.Description)
}

// eventBytes estimates an audit event's encoded size. Before and after
// are JSON here but structures on the wire (google.protobuf.Struct),
// which take up to about twice their JSON text.
func eventBytes(e store.AuditEvent) int {
	return recordOverhead + textBytes(e.AccountID, e.Actor.KeyID, e.Actor.KeyName, e.Action, e.ObjectType, e.ObjectID, e.Outcome, e.Reason) +
		2*(len(e.Before)+len(e.After))
}

func textBytes(ss ...string) int {
	n := 0
	for _, s := range ss {
		n += len(s) + fieldOverhead
	}
	return n
}

// pageOf reads one page of a list for a caller's PageInput (already
// checked): up to its size, in chunks of listChunk, stopping before the
// records' estimated bytes would pass MaxListBytes. next is the store's
// token after the last record answered; token makes it for a record when
// the page stops early. A single record is always answered, however
// large: it is bounded by the size limits, far below MaxListBytes.
func pageOf[T any](p PageInput, list func(store.Page) ([]T, string, error), size func(T) int, token func(T) string) ([]T, string, error) {
	want := p.Size
	if want <= 0 {
		want = store.DefaultPageSize
	}
	var out []T
	total, tok := 0, p.Token
	for {
		items, next, err := list(store.Page{Size: min(want-len(out), listChunk), Token: tok})
		if err != nil {
			return nil, "", err
		}
		for _, it := range items {
			n := size(it)
			if len(out) > 0 && total+n > MaxListBytes {
				return out, token(out[len(out)-1]), nil
			}
			total += n
			out = append(out, it)
		}
		if next == "" || len(out) >= want {
			return out, next, nil
		}
		tok = next
	}
}

// keysetToken is the page token after a record of a list in (created_at,
// id) order: keys, apps, tenants.
func keysetToken(createdAtMicro int64, id string) string {
	return store.PageToken{CreatedAt: createdAtMicro, ID: id}.String()
}

func eventToken(e store.AuditEvent) string { return store.AuditToken(e) }

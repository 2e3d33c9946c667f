package postgres

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keygate/keygate/pkg/store"
)

// querier is what both a pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// pageToken is the keyset position after the last item of a page: the
// sort key of that item. Callers see it as opaque base64.
type pageToken struct {
	CreatedAt int64  `json:"t,omitempty"` // unix microseconds
	ID        string `json:"i,omitempty"`
	Seq       int64  `json:"n,omitempty"` // audit events
}

func (t *pageToken) createdAt() time.Time { return time.UnixMicro(t.CreatedAt).UTC() }

func writeToken(t pageToken) string {
	b, _ := json.Marshal(t) // cannot fail: plain fields
	return base64.RawURLEncoding.EncodeToString(b)
}

// readPage returns the page size and the position to start after (nil for
// the first page).
func readPage(p store.Page) (int, *pageToken, error) {
	size := p.Size
	switch {
	case size <= 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	if p.Token == "" {
		return size, nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(p.Token)
	var t pageToken
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || (t.ID == "" && t.Seq == 0) {
		return 0, nil, invalid("page_token: not a token this list returned")
	}
	return size, &t, nil
}

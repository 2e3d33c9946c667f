package store

import (
	"encoding/base64"
	"encoding/json"
	"time"
)

// Page sizes of every list: Size 0 is DefaultPageSize, larger than
// MaxPageSize is MaxPageSize.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// PageToken is the keyset position after the last item of a page: the
// sort key of that item (created_at and id, or an audit event's sequence).
// Callers see it as opaque base64; every store encodes it alike, so a
// token means the same whichever store issued it.
type PageToken struct {
	CreatedAt int64  `json:"t,omitempty"` // unix microseconds
	ID        string `json:"i,omitempty"`
	Seq       int64  `json:"n,omitempty"` // audit events
	// Keys listed in another order than creation (KeyToken): the order,
	// and the sort value of the last key: its name, or its expiry or last
	// use (At, unix microseconds; Null: none).
	Order string `json:"o,omitempty"`
	Name  string `json:"s,omitempty"`
	At    int64  `json:"a,omitempty"`
	Null  bool   `json:"z,omitempty"`
}

// CreatedAtTime is the token's created_at.
func (t *PageToken) CreatedAtTime() time.Time { return time.UnixMicro(t.CreatedAt).UTC() }

// String is the token as callers see it.
func (t PageToken) String() string {
	b, _ := json.Marshal(t) // cannot fail: plain fields
	return base64.RawURLEncoding.EncodeToString(b)
}

// ReadPage returns the page size and the position to start after (nil for
// the first page); a token no list returned is ErrInvalid.
func ReadPage(p Page) (int, *PageToken, error) {
	size := p.Size
	switch {
	case size <= 0:
		size = DefaultPageSize
	case size > MaxPageSize:
		size = MaxPageSize
	}
	if p.Token == "" {
		return size, nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(p.Token)
	var t PageToken
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || (t.ID == "" && t.Seq == 0) {
		return 0, nil, errBadToken
	}
	return size, &t, nil
}

// invalidError is an ErrInvalid with its own message.
type invalidError string

func (e invalidError) Error() string { return string(e) }
func (e invalidError) Unwrap() error { return ErrInvalid }

const errBadToken = invalidError("page_token: not a token this list returned")

package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5"
)

// arrayText builds the text form of a one-dimensional PostgreSQL array
// ({"a","b"}, {1,2}), which execArrays and queryArrays send as it is, in
// the text format, and the statement's cast ($1::text[], $2::bigint[], …)
// parses it. The flushes of usage counts, quota totals
// and last-used times send columns of 100,000 rows; pgx's binary encoding
// of a []string, []time.Time or []int64 boxes every element into an
// interface and looks up its encoder (one allocation and about 130 ns an
// element: 40% of a flush's CPU in the round robin's profile), where
// appending its text is a copy.
//
// Text elements are always quoted, with '\' and '"' escaped: array_in then
// takes any string as it is — commas, braces, spaces, the word NULL —
// and never reads one as a null (there are none in these columns).
type arrayText struct {
	b []byte
	n int
	// last is the last time appended, at b[lastAt:lastEnd]: a flush's
	// rows are mostly of one hour, and formatting is most of Time's cost.
	last            time.Time
	lastAt, lastEnd int
}

// newArrayText returns an empty array with room for n elements of about
// per bytes each.
func newArrayText(n, per int) *arrayText {
	a := &arrayText{b: make([]byte, 1, 2+n*(per+1))}
	a.b[0] = '{'
	return a
}

func (a *arrayText) sep() {
	if a.n > 0 {
		a.b = append(a.b, ',')
	}
	a.n++
}

// Text appends s, quoted.
func (a *arrayText) Text(s string) {
	a.sep()
	a.b = append(a.b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			a.b = append(a.b, s[start:i]...)
			a.b = append(a.b, '\\', c)
			start = i + 1
		}
	}
	a.b = append(a.b, s[start:]...)
	a.b = append(a.b, '"')
}

// Int appends v.
func (a *arrayText) Int(v int64) {
	a.sep()
	a.b = strconv.AppendInt(a.b, v, 10)
}

// Bool appends v as t or f.
func (a *arrayText) Bool(v bool) {
	a.sep()
	if v {
		a.b = append(a.b, 't')
	} else {
		a.b = append(a.b, 'f')
	}
}

// timeLayout is ISO 8601 in UTC, which timestamptz's input reads exactly
// (microseconds, PostgreSQL's precision).
const timeLayout = "2006-01-02T15:04:05.999999Z"

// Time appends t (in UTC, to the microsecond).
func (a *arrayText) Time(t time.Time) {
	a.sep()
	if a.lastEnd > 0 && t.Equal(a.last) {
		a.b = append(a.b, a.b[a.lastAt:a.lastEnd]...)
		return
	}
	a.lastAt = len(a.b)
	a.b = t.UTC().AppendFormat(a.b, timeLayout)
	a.last, a.lastEnd = t, len(a.b)
}

// Len is the number of elements appended.
func (a *arrayText) Len() int { return a.n }

// Bytes is the array's text form, valid until the next change to a
// (execArrays sends it before a is reset for the next chunk).
func (a *arrayText) Bytes() []byte {
	a.b = append(a.b, '}')
	return a.b
}

// Reset empties a for another array, keeping its buffer.
func (a *arrayText) Reset() {
	a.b = a.b[:1]
	a.n, a.lastAt, a.lastEnd = 0, 0, 0
}

// arrayColumns are a statement's array parameters in its order: one set
// serves every chunk of a flush, each chunk sent before the next is built.
type arrayColumns []*arrayText

// reset empties every column for the next chunk, keeping their buffers.
func (cs arrayColumns) reset() {
	for _, c := range cs {
		c.Reset()
	}
}

// params are the columns' text forms as statement parameters for
// execArrays and queryArrays, appended to dst[:0]; valid until the
// columns change.
func (cs arrayColumns) params(dst [][]byte) [][]byte {
	dst = dst[:0]
	for _, c := range cs {
		dst = append(dst, c.Bytes())
	}
	return dst
}

// execArrays runs sql on conn with params as its parameters, in the text
// format and as they are. pgx's Exec would first copy each into a buffer
// of its own (its encoder's), then into the message: a flush's columns are
// megabytes, and those copies were a third of what a flush allocated. The
// statement is prepared once a connection, as pgx's own Exec prepares it
// (named by its text: pgx's Exec of the same text would use it), so that
// PostgreSQL plans it once, not once a chunk; its parameters' types are
// the statement's casts ($1::text[], …).
func execArrays(ctx context.Context, conn *pgx.Conn, sql string, params ...[]byte) error {
	return queryArrays(ctx, conn, sql, nil, params...)
}

// queryArrays is execArrays for a statement that returns rows: row, when
// not nil, is called with each row's columns in the text format (valid
// during the call only).
func queryArrays(ctx context.Context, conn *pgx.Conn, sql string, row func([][]byte) error, params ...[]byte) error {
	sd, err := conn.Prepare(ctx, sql, sql)
	if err != nil {
		return err
	}
	rr := conn.PgConn().ExecPrepared(ctx, sd.Name, params, nil, nil)
	for row != nil && rr.NextRow() {
		if err := row(rr.Values()); err != nil {
			_, _ = rr.Close()
			return err
		}
	}
	_, err = rr.Close()
	return err
}

// textInt reads a bigint column in the text format.
func textInt(b []byte) (int64, error) {
	n, err := strconv.ParseInt(unsafe.String(unsafe.SliceData(b), len(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bigint column %q: %w", b, err)
	}
	return n, nil
}

// textInts reads a row of bigint columns in the text format into dst,
// one each, in order.
func textInts(row [][]byte, dst ...*int64) error {
	if len(row) != len(dst) {
		return fmt.Errorf("%d columns, want %d", len(row), len(dst))
	}
	for i, d := range dst {
		v, err := textInt(row[i])
		if err != nil {
			return err
		}
		*d = v
	}
	return nil
}

// textBool reads a boolean column in the text format (t or f).
func textBool(b []byte) (bool, error) {
	switch string(b) {
	case "t":
		return true, nil
	case "f":
		return false, nil
	}
	return false, fmt.Errorf("boolean column %q: want t or f", b)
}

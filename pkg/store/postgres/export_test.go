package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// SetListenHealthEvery shortens how long Listen waits before pinging.
func SetListenHealthEvery(s *Store, d time.Duration) { s.listenHealthEvery = d }

// MigrateURLUpTo applies the migrations up to version upTo only, to test a
// later one on a database that holds data.
func MigrateURLUpTo(ctx context.Context, url string, upTo int) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return err
	}
	return migrate(ctx, cfg, upTo)
}

// SetCompileHook runs h before each data-plane compile until the test ends.
func SetCompileHook(t *testing.T, h func(authz.KeySpec)) {
	compileHook.Store(&h)
	t.Cleanup(func() { compileHook.Store(nil) })
}

// Unavailable is unavailable: store.ErrUnavailable around a connection
// failure, other errors as they are.
func Unavailable(err error) error { return unavailable(err) }

// DataKeyRoles reads a key as the data plane does and returns the roles
// its record carries (keyRow.Roles), for the effective scope.
func DataKeyRoles(ctx context.Context, s *Store, accountID, id string) ([]store.KeyRole, error) {
	r, err := scanKey(s.pool.QueryRow(ctx, dataKeyQuery+` WHERE k.account_id = $1 AND k.id = $2`, accountID, id))
	return r.Roles, err
}

// AuditQuery is the SELECT ListAuditEvents runs for a page of limit
// events of f after (at, id) (id 0: the first page).
func AuditQuery(accountID string, f store.AuditFilter, at time.Time, id int64, limit int) (string, []any) {
	var pos *auditPosition
	if id != 0 {
		pos = &auditPosition{at: at, id: id}
	}
	return auditQuery(accountID, f, pos, limit)
}

// ListKeysSQL is ListKeys' statement for a page of size after the token
// (nil: the first page), for plan tests.
func ListKeysSQL(accountID string, f store.KeyFilter, after *store.PageToken, size int) (string, []any, error) {
	return listKeysSQL(accountID, f, after, size)
}

// SetFewMatches sets how many keys a search may match to be sorted in Go
// (0: never), until the test ends.
func SetFewMatches(t *testing.T, n int) {
	old := fewMatchesMax
	fewMatchesMax = n
	t.Cleanup(func() { fewMatchesMax = old })
}

// CountKeysSQL is CountKeys' statement.
func CountKeysSQL(accountID string, f store.KeyFilter) (string, []any, error) {
	return countKeysSQL(accountID, f)
}

// QueryUsageHourly is QueryUsage from the hourly rows alone, whatever the
// query, for comparing with the rollup's answers.
func QueryUsageHourly(ctx context.Context, s *Store, q store.UsageQuery) ([]store.UsageSeries, error) {
	return s.queryUsage(ctx, q, false)
}

// ArrayTextStrings are the texts FuzzArrayText starts from.
var ArrayTextStrings = arrayTextStrings

// ArrayText builds an array's text form as the flushes send it: kind
// "text", "int", "bool" or "time" per element of vals.
func ArrayText(vals []any) string {
	a := newArrayText(len(vals), 8)
	for _, v := range vals {
		switch v := v.(type) {
		case string:
			a.Text(v)
		case int64:
			a.Int(v)
		case bool:
			a.Bool(v)
		case time.Time:
			a.Time(v)
		}
	}
	return string(a.Bytes())
}

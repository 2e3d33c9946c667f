package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/keygate/keygate/pkg/metrics"
)

// PgxTracer is a pgx.QueryTracer (Query, QueryRow, Exec) that records
// keygate_store_query_duration_seconds and keygate_store_errors_total on m
// and, when tp is a real provider and ctx already holds a span (a Check,
// an Account API call), a client span per statement with the SQL text
// only: arguments are never read. Background statements without a parent
// (the change-feed catch-up and poll, the listener's pings) get metrics
// only, so they do not start a trace of their own every few seconds.
// Either argument may be nil. Install it with postgres.Options.Tracer.
func PgxTracer(tp trace.TracerProvider, m *metrics.Metrics) pgx.QueryTracer {
	t := &pgxTracer{m: m}
	if tp != nil {
		if _, off := tp.(noop.TracerProvider); !off {
			t.tracer = tp.Tracer(ScopeName)
		}
	}
	return t
}

type pgxTracer struct {
	tracer trace.Tracer // nil: no spans
	m      *metrics.Metrics
}

type queryKey struct{}

type queryState struct {
	start time.Time
	op    metrics.StoreOp
	span  trace.Span // nil when none was started
}

// Span attribute keys of the statement spans: the names the brief of this
// package asked for (db.system, db.statement), then the current stable
// database semantic conventions.
const (
	attrDBSystem     = attribute.Key("db.system")
	attrDBStatement  = attribute.Key("db.statement")
	attrDBSystemName = attribute.Key("db.system.name")
	attrDBQueryText  = attribute.Key("db.query.text")
	attrDBOperation  = attribute.Key("db.operation.name")
	attrDBNamespace  = attribute.Key("db.namespace")
	attrDBStatusCode = attribute.Key("db.response.status_code")
	attrServerAddr   = attribute.Key("server.address")
	attrServerPort   = attribute.Key("server.port")
	attrErrorType    = attribute.Key("error.type")
)

func (t *pgxTracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	st := &queryState{start: time.Now(), op: StatementOp(data.SQL)}
	if t.tracer != nil && trace.SpanContextFromContext(ctx).IsValid() {
		attrs := []attribute.KeyValue{
			attrDBSystem.String("postgresql"), attrDBSystemName.String("postgresql"),
			attrDBStatement.String(data.SQL), attrDBQueryText.String(data.SQL),
			attrDBOperation.String(strings.ToUpper(st.op.String())),
		}
		if conn != nil {
			if c := conn.Config(); c != nil {
				attrs = append(attrs, attrDBNamespace.String(c.Database), attrServerAddr.String(c.Host),
					attrServerPort.Int(int(c.Port)))
			}
		}
		ctx, st.span = t.tracer.Start(ctx, "postgresql "+strings.ToUpper(st.op.String()),
			trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	}
	return context.WithValue(ctx, queryKey{}, st)
}

func (t *pgxTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	st, _ := ctx.Value(queryKey{}).(*queryState)
	if st == nil {
		return
	}
	failed := data.Err != nil && !errors.Is(data.Err, pgx.ErrNoRows)
	if t.m != nil {
		t.m.ObserveStoreQuery(ctx, st.op, time.Since(st.start), failed)
	}
	if st.span == nil {
		return
	}
	if failed {
		// The error's text may quote values (a unique violation names
		// the duplicate): record only its SQLSTATE, or its Go type.
		errType := fmt.Sprintf("%T", data.Err)
		if pgErr, ok := errors.AsType[*pgconn.PgError](data.Err); ok {
			errType = pgErr.Code
			st.span.SetAttributes(attrDBStatusCode.String(pgErr.Code))
		} else if errors.Is(data.Err, context.Canceled) {
			errType = "context_canceled"
		} else if errors.Is(data.Err, context.DeadlineExceeded) {
			errType = "context_deadline_exceeded"
		}
		st.span.SetAttributes(attrErrorType.String(errType))
		st.span.SetStatus(codes.Error, errType)
	}
	st.span.End()
}

// StatementOp is the operation of a statement: its first keyword, as one
// of the bounded values of the operation label.
func StatementOp(sql string) metrics.StoreOp {
	s := strings.TrimLeft(sql, " \t\r\n(")
	for strings.HasPrefix(s, "--") { // comment lines (pgx's "-- ping")
		_, s, _ = strings.Cut(s, "\n")
		s = strings.TrimLeft(s, " \t\r\n(")
	}
	end := strings.IndexFunc(s, func(r rune) bool { return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') })
	if end >= 0 {
		s = s[:end]
	}
	switch {
	case strings.EqualFold(s, "select"):
		return metrics.OpSelect
	case strings.EqualFold(s, "insert"):
		return metrics.OpInsert
	case strings.EqualFold(s, "update"):
		return metrics.OpUpdate
	case strings.EqualFold(s, "delete"):
		return metrics.OpDelete
	case strings.EqualFold(s, "begin"), strings.EqualFold(s, "start"):
		return metrics.OpBegin
	case strings.EqualFold(s, "commit"), strings.EqualFold(s, "end"):
		return metrics.OpCommit
	case strings.EqualFold(s, "rollback"), strings.EqualFold(s, "abort"):
		return metrics.OpRollback
	case strings.EqualFold(s, "listen"):
		return metrics.OpListen
	}
	return metrics.OpOther
}

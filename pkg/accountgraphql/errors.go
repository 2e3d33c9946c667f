package accountgraphql

import (
	"context"
	"errors"
	"regexp"
	"strings"

	gql "github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/keygate/keygate/pkg/account"
)

// Codes are the extensions.code of the Account API's GraphQL errors: the
// names of the gRPC status codes the service's codes mirror, so that a
// client handles both transports alike.
var Codes = map[account.Code]string{
	account.Canceled: "CANCELLED", account.InvalidArgument: "INVALID_ARGUMENT",
	account.DeadlineExceeded: "DEADLINE_EXCEEDED", account.NotFound: "NOT_FOUND",
	account.AlreadyExists: "ALREADY_EXISTS", account.PermissionDenied: "PERMISSION_DENIED",
	account.ResourceExhausted: "RESOURCE_EXHAUSTED", account.FailedPrecondition: "FAILED_PRECONDITION",
	account.Internal: "INTERNAL", account.Unavailable: "UNAVAILABLE", account.Unauthenticated: "UNAUTHENTICATED",
}

// asAccountError is err as the service's error; anything else is an
// internal error (its text may carry detail the caller must not see).
func asAccountError(err error) *account.Error {
	var e *account.Error
	if errors.As(err, &e) {
		return e
	}
	return &account.Error{Code: account.Internal, Message: "internal error"}
}

// presentAccount words a service error for GraphQL: extensions.code, the
// field at fault (field, and violations for each field of an invalid
// input) named as the schema names it, the reason and retry-after when
// set. The service's messages never carry a secret.
func presentAccount(e *account.Error) *gqlerror.Error {
	code, ok := Codes[e.Code]
	if !ok {
		code = "INTERNAL"
	}
	ext := map[string]any{"code": code}
	msg := e.Message
	if e.Field != "" {
		f := fieldName(e.Field)
		ext["field"] = f
		if rest, ok := strings.CutPrefix(msg, e.Field+": "); ok {
			msg = f + ": " + rest
		}
	}
	if len(e.Violations) > 0 {
		vs := make([]map[string]string, len(e.Violations))
		parts := make([]string, len(e.Violations))
		for i, v := range e.Violations {
			f := fieldName(v.Field)
			vs[i] = map[string]string{"field": f, "description": v.Description}
			parts[i] = f + ": " + v.Description
		}
		ext["violations"] = vs
		msg = strings.Join(parts, "; ")
	}
	if e.Reason != "" {
		ext["reason"] = e.Reason
		for k, v := range e.Metadata {
			ext[k] = v
		}
	}
	if e.RetryAfter > 0 {
		ext["retryAfterSeconds"] = e.RetryAfter.Seconds()
	}
	return &gqlerror.Error{Message: msg, Extensions: ext}
}

// fieldName names a request field as the schema does: the service and the
// gRPC adapter name them as protobuf does (app_id, filter.expiring_before,
// rate_limit.unit); the schema in lowerCamelCase (appId,
// filter.expiringBefore, rateLimit.unit).
func fieldName(f string) string {
	switch f {
	case "page_size":
		return "first"
	case "page_token":
		return "after"
	}
	var b strings.Builder
	upper := false
	for _, r := range f {
		switch {
		case r == '_':
			upper = true
			continue
		case upper && 'a' <= r && r <= 'z':
			r -= 'a' - 'A'
		}
		upper = false
		b.WriteRune(r)
	}
	return b.String()
}

// presentError is gqlgen's error presenter: the service's errors as
// presentAccount words them, gqlgen's own (a document that does not
// parse or validate, a complexity over the limit) with a gRPC code name
// and gqlgen's code as the reason, anything else internal.
func (h *Handler) presentError(ctx context.Context, err error) *gqlerror.Error {
	var gerr *gqlerror.Error
	var e *account.Error
	switch {
	case errors.As(err, &e):
		out := presentAccount(e)
		if errors.As(err, &gerr) {
			out.Path, out.Locations = gerr.Path, gerr.Locations
		} else {
			out.Path = gql.GetPath(ctx)
		}
		return out
	case errors.As(err, &gerr):
		code, _ := gerr.Extensions["code"].(string)
		if _, ours := reverseCodes[code]; ours {
			return gerr
		}
		if gerr.Extensions == nil {
			gerr.Extensions = map[string]any{}
		}
		switch code {
		case "COMPLEXITY_LIMIT_EXCEEDED":
			gerr.Extensions["code"] = "RESOURCE_EXHAUSTED"
		case errcode.ParseFailed, errcode.ValidationFailed, "":
			gerr.Extensions["code"] = "INVALID_ARGUMENT"
		default:
			gerr.Extensions["code"] = "INVALID_ARGUMENT"
		}
		if code != "" {
			gerr.Extensions["reason"] = code
		}
		gerr.Message = redactValues(gerr.Message)
		if gerr.Err != nil && code == "" {
			// An error of gqlgen's execution that is not the caller's
			// input: logged, never shown.
			h.log.Error("account API over GraphQL: error", "err", gerr.Err)
			gerr.Message, gerr.Extensions["code"] = "internal error", "INTERNAL"
		}
		return gerr
	}
	h.log.Error("account API over GraphQL: error", "err", err)
	return &gqlerror.Error{Message: "internal error", Path: gql.GetPath(ctx), Extensions: map[string]any{"code": "INTERNAL"}}
}

// literalValues match the parts of GraphQL's validation and coercion
// messages that quote a value the request gave: the value may be a
// secret (importKey's privateKey written as a bare word or a list), and
// secrets never appear in an error.
var literalValues = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`(?s)(cannot represent [^:]*value): .*$`), "$1 (the value is not shown)"},
	{regexp.MustCompile(`(?s), found .*$`), ", found another value (not shown)."},
	{regexp.MustCompile(`(?s)^Value ".*" does not exist in`), "The value given does not exist in"},
	{regexp.MustCompile(`(?s)^.* is not a valid ([A-Za-z]+)$`), "the value given is not a valid $1"},
	{regexp.MustCompile(`(?s)(Unexpected [A-Za-z]+) ".*"`), "$1"},
}

func redactValues(msg string) string {
	for _, l := range literalValues {
		msg = l.re.ReplaceAllString(msg, l.with)
	}
	return msg
}

var reverseCodes = func() map[string]account.Code {
	m := map[string]account.Code{}
	for c, n := range Codes {
		m[n] = c
	}
	return m
}()

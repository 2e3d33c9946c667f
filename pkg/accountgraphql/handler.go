package accountgraphql

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	gql "github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/graphql"
	"github.com/keygate/keygate/pkg/store"
)

// KeyHeader is the HTTP header that carries the caller's account key, as
// the gRPC metadata does.
const KeyHeader = "x-api-key"

// Defaults of Options' limits.
const (
	DefaultMaxBodyBytes  = 1 << 20 // as the gRPC Account API's largest message
	DefaultMaxDepth      = 10
	DefaultMaxComplexity = 20000 // a page of 500 keys with every field
	// maxRootFields bounds the root fields of one document: each is one
	// operation, authorised and run on its own.
	maxRootFields = 50
)

// Options are the handler's limits; zero fields take the defaults.
type Options struct {
	// MaxBodyBytes bounds a POST body and a GET's query string: larger is
	// 413 before anything is parsed.
	MaxBodyBytes int64
	// MaxDepth bounds how deeply a document's selections nest (through
	// fragments), as the data plane counts it.
	MaxDepth int
	// MaxComplexity bounds an operation's complexity (gqlgen's count: one
	// per field, list fields times the page size asked).
	MaxComplexity int
	// Logger gets what the adapter alone sees (a panic, an audit event it
	// cannot convert); nil discards. Secrets never reach it.
	Logger *slog.Logger
}

type logger = *slog.Logger

// Handler serves the Account API over GraphQL: POST with a JSON body, or
// GET with the query in the URL (queries only).
type Handler struct {
	svc    *account.Service
	exec   *handler.Server
	parser *graphql.Parser
	opts   Options
	log    *slog.Logger
}

// NewHandler returns the /graphql handler over svc.
func NewHandler(svc *account.Service, opts Options) *Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultMaxDepth
	}
	if opts.MaxComplexity <= 0 {
		opts.MaxComplexity = DefaultMaxComplexity
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{svc: svc, parser: graphql.NewParser(), opts: opts, log: opts.Logger}
	srv := handler.New(NewExecutableSchema(config(&Resolver{svc: svc, log: opts.Logger})))
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(smallDocs{lru.New[*ast.QueryDocument](queryCacheSize)})
	// Introspection is served to every caller the handler lets through,
	// and it lets through only valid account keys.
	srv.Use(extension.Introspection{})
	srv.Use(extension.FixedComplexityLimit(opts.MaxComplexity))
	srv.AroundRootFields(h.authorizeField)
	srv.SetErrorPresenter(h.presentError)
	srv.SetRecoverFunc(func(ctx context.Context, v any) error {
		h.log.Error("account API over GraphQL: panic in a resolver", "panic", v)
		return &account.Error{Code: account.Internal, Message: "internal error"}
	})
	h.exec = srv
	return h
}

// config is the schema's configuration: the resolvers, and the
// complexity of the lists, which is their items' times the page size
// asked (the service's default page when none is).
func config(r *Resolver) Config {
	cfg := Config{Resolvers: r}
	list := func(child int, first *int64) int {
		n := int64(store.DefaultPageSize)
		if first != nil && *first > 0 {
			n = min(*first, store.MaxPageSize)
		}
		return 1 + child*int(n)
	}
	q := &cfg.Complexity.Query
	q.Apps = func(c int, first *int64, _ *string) int { return list(c, first) }
	q.Tenants = func(c int, first *int64, _ *string) int { return list(c, first) }
	q.Keys = func(c int, _ *KeyFilter, _ *KeyOrder, first *int64, _ *string) int { return list(c, first) }
	q.ServiceAccessRoles = func(c int, first *int64, _ *string) int { return list(c, first) }
	q.ServiceAccessDenials = func(c int, _, _ *string, first *int64, _ *string) int { return list(c, first) }
	q.AuditEvents = func(c int, _ *AuditEventFilter, first *int64, _ *string) int { return list(c, first) }
	return cfg
}

// The parsed documents kept: up to queryCacheSize, each of a query of at
// most maxCachedQuery bytes, so that the cache holds a few MiB at most
// whatever the body limit (scripts and consoles send small documents
// again and again; a large one is parsed each time).
const (
	queryCacheSize = 1000
	maxCachedQuery = 8 << 10
)

// smallDocs is gqlgen's query cache keeping only small documents.
type smallDocs struct {
	gql.Cache[*ast.QueryDocument]
}

func (c smallDocs) Add(ctx context.Context, query string, doc *ast.QueryDocument) {
	if len(query) <= maxCachedQuery {
		c.Cache.Add(ctx, query, doc)
	}
}

type ctxKey int

const (
	callerKey ctxKey = iota
	changeNumbersKey
	retryAfterKey
)

// retryAfter is the longest wait a rate-limited field of the request
// asked for, sent as the Retry-After header of its answer (as the gRPC
// API sends retry-after), for clients and proxies that back off by it.
type retryAfter struct {
	mu   sync.Mutex
	wait time.Duration
}

func (r *retryAfter) set(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.wait = max(r.wait, d)
}

func (r *retryAfter) get() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wait
}

// retryAfterWriter adds Retry-After to the answer's headers when a field
// was rate limited: gqlgen writes the answer after running every field.
type retryAfterWriter struct {
	http.ResponseWriter
	ra *retryAfter
}

func (w retryAfterWriter) WriteHeader(status int) {
	setRetryAfter(w.Header(), w.ra.get())
	w.ResponseWriter.WriteHeader(status)
}

func (w retryAfterWriter) Write(b []byte) (int, error) {
	setRetryAfter(w.Header(), w.ra.get())
	return w.ResponseWriter.Write(b)
}

func setRetryAfter(h http.Header, d time.Duration) {
	if d > 0 && h.Get("Retry-After") == "" {
		h.Set("Retry-After", strconv.FormatInt(max(int64(math.Ceil(d.Seconds())), 1), 10))
	}
}

// callerFrom is the caller ServeHTTP authenticated; the zero Caller,
// which the service refuses, without one.
func callerFrom(ctx context.Context) account.Caller {
	c, _ := ctx.Value(callerKey).(account.Caller)
	return c
}

// changeNumber is the change number the mutation field's store writes
// committed (SPEC §13); 0 when it wrote nothing.
func changeNumber(ctx context.Context) int64 {
	cn, _ := ctx.Value(changeNumbersKey).(*store.ChangeNumbers)
	seq, _ := cn.Get()
	return seq
}

// ServeHTTP reads the request as the data plane reads GraphQL (pkg/graphql:
// one operation, its root fields, the depth limit, whatever GraphQL
// servers may read differently refused), authenticates the account key,
// and runs the operation, each root field authorised on its own.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Answers may carry a secret (generate, regenerate): never cached.
	w.Header().Set("Cache-Control", "no-store")
	switch r.Method {
	case http.MethodGet, http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, "INVALID_ARGUMENT", "method "+r.Method+": send a query with GET or POST, a mutation with POST", "")
		return
	}
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	in := &authz.RouteInput{Host: r.Host, Method: r.Method, Path: r.URL.RequestURI(), ContentType: r.Header.Get("Content-Type"), Body: body}
	ops, detail, reason := h.parser.Operations(in, &graphql.Options{
		MaxBodyBytes: int(min(h.opts.MaxBodyBytes, math.MaxInt32)), MaxDepth: h.opts.MaxDepth, MaxRootFields: maxRootFields, MaxBatch: 1})
	if reason != authz.OK {
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", detail, "")
		return
	}
	kind := "query"
	for _, op := range ops {
		if op.Kind != "query" {
			kind = op.Kind
		}
	}
	switch {
	case kind == "subscription":
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "the Account API has no subscriptions: send a query or a mutation", "")
		return
	case kind == "mutation" && r.Method == http.MethodGet:
		// A link or an image must never change anything.
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "INVALID_ARGUMENT", "a mutation must be sent with POST, never GET", "")
		return
	}
	c, err := h.svc.AuthenticateRequest(r.Context(), account.Credentials{Keys: r.Header.Values(KeyHeader), ClientIP: clientIP(r)}, kind)
	if err != nil {
		h.refuse(w, err)
		return
	}
	ra := &retryAfter{}
	ctx := context.WithValue(context.WithValue(r.Context(), callerKey, c), retryAfterKey, ra)
	r2 := r.WithContext(ctx)
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	h.exec.ServeHTTP(retryAfterWriter{w, ra}, r2)
}

// readBody reads a POST body (a JSON document) within MaxBodyBytes,
// refusing a larger one by its Content-Length before reading it, and
// bounds a GET's query string alike.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	tooLarge := func(what string) {
		writeError(w, http.StatusRequestEntityTooLarge, "RESOURCE_EXHAUSTED",
			what+" is larger than "+strconv.FormatInt(h.opts.MaxBodyBytes, 10)+" bytes (--graphql-max-body-bytes)", "")
	}
	if r.Method == http.MethodGet {
		if int64(len(r.URL.RawQuery)) > h.opts.MaxBodyBytes {
			tooLarge("the query string")
			return nil, false
		}
		return nil, true
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "INVALID_ARGUMENT",
			"content-type must be application/json: POST {\"query\": …, \"variables\": …}", "")
		return nil, false
	}
	if r.ContentLength > h.opts.MaxBodyBytes {
		tooLarge("the request body")
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &mb):
		tooLarge("the request body")
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "reading the request body failed", "")
		return nil, false
	}
	return body, true
}

// refuse answers a request whose key was not accepted, with the HTTP
// status of the code (a rate limit with retry-after).
func (h *Handler) refuse(w http.ResponseWriter, err error) {
	e := asAccountError(err)
	status := map[account.Code]int{
		account.Unauthenticated: http.StatusUnauthorized, account.PermissionDenied: http.StatusForbidden,
		account.ResourceExhausted: http.StatusTooManyRequests, account.Unavailable: http.StatusServiceUnavailable,
		account.InvalidArgument: http.StatusBadRequest, account.Canceled: http.StatusRequestTimeout,
		account.DeadlineExceeded: http.StatusGatewayTimeout,
	}[e.Code]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	setRetryAfter(w.Header(), e.RetryAfter)
	if e.Code == account.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `ApiKey header="x-api-key"`)
	}
	writeJSON(w, status, map[string]any{"errors": []*gqlerror.Error{presentAccount(e)}})
}

// authorizeField authorises one root field as account-api:<kind>:<field>
// with the caller's scope, by the service's Authorize: a refused field is
// null with a PERMISSION_DENIED error, and the others are answered. Each
// admitted field counts against the key's rate limit, as a gRPC call does.
// Introspection fields need no scope: every caller here has a valid
// account key.
func (h *Handler) authorizeField(ctx context.Context, next gql.RootResolver) gql.Marshaler {
	fc := gql.GetRootFieldContext(ctx)
	name := fc.Field.Name
	if strings.HasPrefix(name, "__") {
		return next(ctx)
	}
	kind := string(gql.GetOperationContext(ctx).Operation.Operation) // query or mutation
	op, ok := account.OperationNamed(name)
	var err error
	switch {
	case !ok || op.Kind != kind:
		// The schema and the catalogue disagree: fail closed.
		h.log.Error("account API over GraphQL: root field not in the catalogue", "field", name, "kind", kind)
		err = &account.Error{Code: account.Internal, Message: "internal error"}
	default:
		err = h.svc.AuthorizeCall(callerFrom(ctx), op)
	}
	if err != nil {
		e := asAccountError(err)
		if ra, ok := ctx.Value(retryAfterKey).(*retryAfter); ok && e.RetryAfter > 0 {
			ra.set(e.RetryAfter)
		}
		gerr := presentAccount(e)
		gerr.Path = ast.Path{ast.PathName(fc.Field.Alias)}
		gerr.Locations = []gqlerror.Location{{Line: fc.Field.Position.Line, Column: fc.Field.Position.Column}}
		gql.AddError(ctx, gerr)
		return gql.Null
	}
	if kind == "mutation" {
		var cn *store.ChangeNumbers
		ctx, cn = store.WithChangeNumbers(ctx)
		ctx = context.WithValue(ctx, changeNumbersKey, cn)
	}
	return next(ctx)
}

// clientIP is the direct peer's address, which the key's IP filters are
// checked against (as on gRPC); the zero Addr fails closed for keys with
// filters.
func clientIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers a request refused before it ran, in GraphQL's error
// shape.
func writeError(w http.ResponseWriter, status int, code, message, field string) {
	ext := map[string]any{"code": code}
	if field != "" {
		ext["field"] = field
	}
	writeJSON(w, status, map[string]any{"errors": []*gqlerror.Error{{Message: message, Extensions: ext}}})
}

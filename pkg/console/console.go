// Package console is keygate's web console (SPEC §15): server-rendered
// pages over the account service, for people who manage apps, tenants and
// keys in a browser.
//
// It is an adapter like the gRPC and GraphQL ones: every page and action
// calls the same *account.Service methods with the session's Caller, and
// what a session may do is what its account key's effective scope allows,
// decided by that service (Authorize). Buttons for operations outside the
// scope are not rendered; the server refuses them anyway (the route table
// names each route's operation). Business rules live in the service; the
// console parses forms into its inputs and shows its errors beside the
// field they name.
//
// Pages work without JavaScript; the vendored htmx (static/) and the
// console's own script add live scope validation, a permission picker kept
// in step with the scope text field and a copy button. Everything is
// embedded in the binary.
package console

import (
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/store"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Session lifetimes (SPEC §15).
const (
	IdleTimeout = 30 * time.Minute
	MaxLifetime = 12 * time.Hour
)

// maxFormBytes bounds a form body: the largest form (a key with its
// scope, filters and headers) is far below it.
const maxFormBytes = 1 << 20

// Options configure a Handler.
type Options struct {
	// Service is the account service every page calls. Required.
	Service *account.Service
	// Sessions keeps the sessions (PostgreSQL: any replica serves any
	// session). Required.
	Sessions store.Sessions
	// Secure marks cookies Secure: set it when the listener serves TLS.
	Secure bool
	// Logger gets errors the pages do not show (never a secret); nil
	// discards.
	Logger *slog.Logger
	// Now is the clock of session lifetimes; nil means time.Now.
	Now func() time.Time
}

// Handler serves the console.
type Handler struct {
	svc      *account.Service
	sessions store.Sessions
	secure   bool
	log      *slog.Logger
	now      func() time.Time
	pages    *pages
	mux      http.Handler
}

// New builds the console: its templates are parsed here, so that a
// broken one fails start-up rather than a request.
func New(opts Options) (*Handler, error) {
	if opts.Service == nil || opts.Sessions == nil {
		return nil, errors.New("console: a Service and Sessions are required")
	}
	h := &Handler{svc: opts.Service, sessions: opts.Sessions, secure: opts.Secure, log: opts.Logger, now: opts.Now}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	var err error
	if h.pages, err = parsePages(); err != nil {
		return nil, err
	}
	mux, err := h.routes()
	if err != nil {
		return nil, err
	}
	// Browsers' cross-origin writes are refused before anything else
	// (Sec-Fetch-Site / Origin): the CSRF token is the second line.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, http.StatusForbidden, "This request came from another site and was refused.")
	}))
	h.mux = cop.Handler(mux)
	return h, nil
}

// ServeHTTP serves the console with its security headers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
	if h.secure {
		hd.Set("Strict-Transport-Security", "max-age=31536000")
	}
	h.mux.ServeHTTP(w, r)
}

// contentSecurityPolicy is the one policy of every answer: scripts,
// styles and images from the console alone, no inline script or style,
// no framing, forms posting only here.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// clientIP is the address an account key's IP filters are checked
// against: the peer (the console is not meant to sit behind a proxy).
func clientIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// fail answers an error page. Messages are the console's own or the
// service's, which never carry a secret.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.render(w, r, status, "error", &page{Title: http.StatusText(status), Error: msg})
}

// serviceError answers a service error that is not about a form field:
// its status class and its message (Internal's is generic: the service
// logged the detail).
func (h *Handler) serviceError(w http.ResponseWriter, r *http.Request, p *page, err error) {
	status, msg := statusOf(err)
	p.Error = msg
	h.render(w, r, status, "error", p)
}

// statusOf maps a service error to an HTTP status and a message to show.
func statusOf(err error) (int, string) {
	var ae *account.Error
	if !errors.As(err, &ae) {
		return http.StatusInternalServerError, "internal error"
	}
	if ae.Reason == account.ReasonReadOnly {
		return http.StatusConflict, readOnlyMessage(ae)
	}
	switch ae.Code {
	case account.InvalidArgument, account.FailedPrecondition, account.AlreadyExists:
		return http.StatusUnprocessableEntity, ae.Message
	case account.NotFound:
		return http.StatusNotFound, ae.Message
	case account.PermissionDenied:
		return http.StatusForbidden, ae.Message
	case account.Unauthenticated:
		return http.StatusUnauthorized, ae.Message
	case account.ResourceExhausted:
		return http.StatusTooManyRequests, ae.Message
	case account.Unavailable:
		return http.StatusServiceUnavailable, ae.Message
	case account.Canceled, account.DeadlineExceeded:
		return http.StatusServiceUnavailable, ae.Message
	}
	return http.StatusInternalServerError, fmt.Sprintf("internal error (%s)", ae.Code)
}

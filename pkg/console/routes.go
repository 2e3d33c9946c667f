package console

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"strconv"

	"github.com/keygate/keygate/pkg/account"
)

// route is one page or action: its method pattern, the Account API
// operation it needs (authorised before the handler runs; "" needs only a
// session, and a handler whose operation depends on the form authorises
// it itself), and its handler.
type route struct {
	pattern string
	op      string
	handle  func(http.ResponseWriter, *http.Request, *page)
}

// table is every route that needs a session. Writes are POSTs, each
// checked for the session's CSRF token.
func (h *Handler) table() []route {
	return []route{
		{"GET /{$}", "", h.overview},
		{"POST /signout", "", func(w http.ResponseWriter, r *http.Request, p *page) { h.signOut(w, r, p.session) }},

		{"GET /keys", "keys", h.keysList},
		{"GET /keys/new", "", h.keyNewForm},
		{"POST /keys", "", h.keyCreate}, // generate…AccessKey by the form's type
		{"POST /keys/scope-check", "", h.scopeCheck},
		{"GET /keys/bulk", "keys", h.keyBulkConfirm},
		{"POST /keys/bulk", "", h.keyBulk}, // updateKey or deleteKey by the form's action
		{"GET /keys/{id}", "key", h.keyPage},
		{"POST /keys/{id}", "updateKey", h.keyUpdate},
		{"POST /keys/{id}/active", "updateKey", h.keyActive},
		{"POST /keys/{id}/regenerate", "regenerateKey", h.keyRegenerate},
		{"POST /keys/{id}/delete", "deleteKey", h.keyDelete},

		{"GET /apps", "apps", h.owners(appKind).list},
		{"GET /apps/new", "createApp", h.owners(appKind).newForm},
		{"POST /apps", "createApp", h.owners(appKind).create},
		{"GET /apps/{id}", "app", h.owners(appKind).show},
		{"POST /apps/{id}", "updateApp", h.owners(appKind).update},
		{"GET /apps/{id}/delete", "deleteApp", h.owners(appKind).deleteForm},
		{"POST /apps/{id}/delete", "deleteApp", h.owners(appKind).delete},

		{"GET /tenants", "tenants", h.owners(tenantKind).list},
		{"GET /tenants/new", "createTenant", h.owners(tenantKind).newForm},
		{"POST /tenants", "createTenant", h.owners(tenantKind).create},
		{"GET /tenants/{id}", "tenant", h.owners(tenantKind).show},
		{"POST /tenants/{id}", "updateTenant", h.owners(tenantKind).update},
		{"GET /tenants/{id}/delete", "deleteTenant", h.owners(tenantKind).deleteForm},
		{"POST /tenants/{id}/delete", "deleteTenant", h.owners(tenantKind).delete},
		{"POST /tenants/{id}/denials", "createServiceAccessDenial", h.denialCreate},

		{"GET /roles", "serviceAccessRoles", h.rolesList},
		{"GET /roles/new", "createServiceAccessRole", h.roleNewForm},
		{"POST /roles", "createServiceAccessRole", h.roleCreate},
		{"GET /roles/{id}", "serviceAccessRole", h.rolePage},
		{"POST /roles/{id}", "updateServiceAccessRole", h.roleUpdate},
		{"GET /roles/{id}/delete", "deleteServiceAccessRole", h.roleDeleteForm},
		{"POST /roles/{id}/delete", "deleteServiceAccessRole", h.roleDelete},

		{"GET /denials", "serviceAccessDenials", h.denialsList},
		{"GET /denials/new", "createServiceAccessDenial", h.denialNew},
		{"GET /denials/{id}", "serviceAccessDenial", h.denialPage},
		{"POST /denials/{id}", "updateServiceAccessDenial", h.denialUpdate},
		{"POST /denials/{id}/delete", "deleteServiceAccessDenial", h.denialDelete},

		{"GET /account-keys", "keys", h.accountKeys},
		{"GET /audit", "auditEvents", h.audit},
		{"GET /replicas", "replicas", h.replicasPage},
	}
}

// routes builds the mux: the public routes (sign-in, static files) and
// the table's, each behind the session, CSRF and operation checks. Every
// operation the table names must be in the account catalogue.
func (h *Handler) routes() (*http.ServeMux, error) {
	mux := http.NewServeMux()
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	files := http.FileServerFS(static)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})))
	mux.HandleFunc("GET /signin", h.signInForm)
	mux.HandleFunc("POST /signin", func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		h.signIn(w, r)
	})
	for _, rt := range h.table() {
		if rt.op != "" {
			if _, ok := account.OperationNamed(rt.op); !ok {
				return nil, fmt.Errorf("console: route %q needs operation %q, which the account catalogue does not have", rt.pattern, rt.op)
			}
		}
		mux.Handle(rt.pattern, h.guard(rt))
	}
	return mux, nil
}

// guard runs a route behind its checks: a live session (else the sign-in
// page), the CSRF token on every POST, and the route's operation.
func (h *Handler) guard(rt route) http.Handler {
	op, _ := account.OperationNamed(rt.op)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ended, err := h.resume(w, r)
		if errors.Is(err, errNoSession) {
			to := "/signin"
			if ended != "" {
				to += "?ended=" + ended
			}
			if r.Header.Get("HX-Request") != "" {
				w.Header().Set("HX-Redirect", to)
			}
			http.Redirect(w, r, to, http.StatusSeeOther)
			return
		} else if err != nil {
			h.log.Error("console: resuming a session", "err", err)
			status, msg := statusOf(err)
			h.fail(w, r, status, msg)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				h.fail(w, r, http.StatusBadRequest, "The form could not be read: "+err.Error())
				return
			}
			if !checkCSRF(r, s) {
				h.fail(w, r, http.StatusForbidden, "This form is out of date or was not sent by the console (no valid CSRF token). Reload the page and try again.")
				return
			}
		}
		p := h.newPage(r, s)
		// The route's operation, counted against the key's rate limits as
		// an API call is; a route without one counts as a read (a page) or
		// a change (a post).
		switch {
		case rt.op != "":
			err = h.svc.AuthorizeCall(s.caller, op)
		case r.Method == http.MethodGet || r.Method == http.MethodHead:
			err = h.svc.CountCall(s.caller, "query")
		default:
			err = h.svc.CountCall(s.caller, "mutation")
		}
		if err != nil {
			var ae *account.Error
			if errors.As(err, &ae) && ae.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ae.RetryAfter.Seconds()))))
			}
			h.serviceError(w, r, p, err)
			return
		}
		rt.handle(w, r, p)
	})
}

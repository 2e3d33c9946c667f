package console

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/keygate/keygate/pkg/account"
)

// pageNames are the page templates; each defines "title" and "content"
// and is rendered inside layout.html with partials.html.
var pageNames = []string{
	"signin", "error", "overview",
	"keys", "key_new", "key", "secret", "key_bulk",
	"owners", "owner_new", "owner", "owner_delete",
	"roles", "role_new", "role", "role_delete", "denials", "denial",
	"account_keys", "audit", "replicas",
}

type pages struct {
	byName   map[string]*template.Template
	partials *template.Template
}

// fragment renders one named partial: htmx's answers.
func (ps *pages) fragment(w io.Writer, name string, data any) error {
	return ps.partials.ExecuteTemplate(w, name, data)
}

var funcs = template.FuncMap{
	"when":  when,
	"local": localTime,
	"short": func(s string, n int) string {
		if len(s) <= n {
			return s
		}
		return s[:n] + "…"
	},
	"join": strings.Join,
	// A key's own rate limit and quota (keylimits.go).
	"rateLimit": rateText,
	"keyQuota":  keyQuotaText,
	"dur":       func(d time.Duration) string { return d.Round(100 * time.Millisecond).String() },
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	},
}

// when is a time as pages show it.
func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// localTime is a time as a datetime-local input's value (UTC).
func localTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04")
}

func parsePages() (*pages, error) {
	ps := &pages{byName: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles,
			"templates/layout.html", "templates/partials.html", "templates/panels.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		ps.byName[name] = t
	}
	var err error
	if ps.partials, err = template.New("partials.html").Funcs(funcs).ParseFS(templateFiles, "templates/partials.html"); err != nil {
		return nil, fmt.Errorf("console: partials: %w", err)
	}
	return ps, nil
}

// page is what every template gets: the session's view (nil before
// sign-in), the CSRF token, messages and the page's own Data.
type page struct {
	Title  string
	Nav    string
	CSRF   string
	Who    string
	Notice string
	// Error is shown at the top; Errors by field name, beside the field.
	Error  string
	Errors map[string]string
	Data   any

	session *session
	h       *Handler
	noStore bool
}

func (h *Handler) newPage(r *http.Request, s *session) *page {
	return &page{CSRF: s.csrf, Who: s.caller.Actor.KeyName, session: s, h: h}
}

// Can reports whether the session's key may run the operation named:
// templates show a button only when it may (the route refuses it anyway).
func (p *page) Can(name string) bool {
	if p.session == nil {
		return false
	}
	op, ok := account.OperationNamed(name)
	return ok && p.h.svc.Authorize(p.session.caller, op) == nil
}

// Err is the message about a field, "" when none.
func (p *page) Err(field string) string { return p.Errors[field] }

// formError shows a service error on the form it answers: each violation
// beside the field it names (the part before any index: ip_filters[1] is
// ip_filters), all of them at the top too. It reports false for errors
// that are not about the form (the caller shows an error page).
func (p *page) formError(err error) bool {
	var ae *account.Error
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.Code {
	case account.InvalidArgument, account.AlreadyExists, account.FailedPrecondition,
		account.ResourceExhausted, account.PermissionDenied, account.NotFound:
	default:
		return false
	}
	p.Errors = map[string]string{}
	add := func(field, msg string) {
		f, _, _ := strings.Cut(field, "[")
		f, _, _ = strings.Cut(f, ".")
		if p.Errors[f] != "" {
			msg = p.Errors[f] + "; " + msg
		}
		p.Errors[f] = msg
	}
	for _, v := range ae.Violations {
		add(v.Field, v.Field+": "+v.Description)
	}
	if len(ae.Violations) == 0 && ae.Field != "" {
		add(ae.Field, ae.Message)
	}
	p.Error = ae.Message
	return true
}

// answered shows a service error that is not about the form (an error
// page) and reports true; an error about the form's fields is left on p
// for the handler to show with the form, and it reports false.
func (h *Handler) answered(w http.ResponseWriter, r *http.Request, p *page, err error) bool {
	if p.formError(err) {
		return false
	}
	h.serviceError(w, r, p, err)
	return true
}

// render writes a page. It is rendered into a buffer first, so that a
// template error is a 500 and never half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	t := h.pages.byName[name]
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", p); err != nil {
		h.log.Error("console: rendering a page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	if p.noStore {
		// The one-time secret: never kept by the browser or a proxy.
		hd.Set("Cache-Control", "no-store")
	} else {
		hd.Set("Cache-Control", "private, no-cache")
	}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

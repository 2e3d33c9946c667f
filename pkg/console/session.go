package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/store"
)

// cookieName is the session cookie: "<id>.<secret>", both random. The
// store keeps the id and the secret's SHA-256; the CSRF token is derived
// from the secret, so it needs no storage and dies with the session.
const cookieName = "keygate_session"

// csrfField and csrfHeader carry the CSRF token: a form field, or a header
// for htmx's requests.
const (
	csrfField  = "csrf"
	csrfHeader = "X-CSRF-Token"
)

// session is a resumed session of one request.
type session struct {
	id     string
	csrf   string
	caller account.Caller
}

var b64 = base64.RawURLEncoding

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b64.EncodeToString(b)
}

func secretHash(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// csrfToken is the session's CSRF token: an HMAC of a fixed label under
// the session secret, which only the session's cookie holder can know.
func csrfToken(secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("keygate console csrf"))
	return b64.EncodeToString(m.Sum(nil))
}

// readCookie splits the session cookie; ok is false when there is none or
// it is malformed.
func readCookie(r *http.Request) (id, secret string, ok bool) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return "", "", false
	}
	id, secret, ok = strings.Cut(c.Value, ".")
	return id, secret, ok && id != "" && secret != ""
}

func (h *Handler) setCookie(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteStrictMode,
	})
}

// Why a session ended, for the sign-in page (a fixed word in its URL,
// never anything of the session).
const (
	endedSignOut = "signout"
	endedExpired = "expired"
	endedKey     = "key"
)

var endedMessages = map[string]string{
	endedSignOut: "You are signed out.",
	endedExpired: "Your session ended (30 minutes idle, or 12 hours old). Sign in again.",
	endedKey:     "Your session ended: its account key is no longer valid (deactivated, expired, deleted or refused from this address).",
}

// errNoSession is a request without a live session.
var errNoSession = errors.New("no session")

// resume finds the request's session and its Caller, ending it when it
// is too old, idle for too long, or its key is refused. The key is
// re-checked on every request (account.Service.Resume).
func (h *Handler) resume(w http.ResponseWriter, r *http.Request) (*session, string, error) {
	id, secret, ok := readCookie(r)
	if !ok {
		return nil, "", errNoSession
	}
	ctx := r.Context()
	st, err := h.sessions.GetSession(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && subtle.ConstantTimeCompare(st.SecretHash, secretHash(secret)) != 1 {
		h.setCookie(w, "", -1)
		return nil, "", errNoSession
	} else if err != nil {
		return nil, "", err
	}
	now := h.now()
	if now.Sub(st.CreatedAt) >= MaxLifetime || now.Sub(st.LastSeenAt) >= IdleTimeout {
		h.end(w, r, id)
		return nil, endedExpired, errNoSession
	}
	c, err := h.svc.Resume(ctx, st.AccountID, st.KeyID, clientIP(r))
	if err != nil {
		var ae *account.Error
		if errors.As(err, &ae) && (ae.Code == account.Unauthenticated || ae.Code == account.PermissionDenied) {
			h.end(w, r, id)
			return nil, endedKey, errNoSession
		}
		return nil, "", err
	}
	if err := h.sessions.TouchSession(ctx, id, now); err != nil {
		return nil, "", err
	}
	return &session{id: id, csrf: csrfToken(secret), caller: c}, "", nil
}

// end deletes a session and its cookie.
func (h *Handler) end(w http.ResponseWriter, r *http.Request, id string) {
	if err := h.sessions.DeleteSession(r.Context(), id); err != nil {
		h.log.Warn("console: ending a session", "err", err)
	}
	h.setCookie(w, "", -1)
}

// checkCSRF compares the request's token with the session's.
func checkCSRF(r *http.Request, s *session) bool {
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue(csrfField)
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// signInForm shows the sign-in page; ended says why a session ended.
func (h *Handler) signInForm(w http.ResponseWriter, r *http.Request) {
	p := &page{Title: "Sign in", Notice: endedMessages[r.URL.Query().Get("ended")], h: h}
	if _, _, ok := readCookie(r); ok {
		if s, _, err := h.resume(w, r); err == nil && s != nil {
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
	}
	h.render(w, r, http.StatusOK, "signin", p)
}

// signIn opens a session with an account key's secret. The secret is read
// from the form body, checked, and forgotten: the session holds the key's
// id. A session cookie the browser still has is ended first (a new id and
// secret at every sign-in).
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimSpace(r.PostFormValue("key"))
	var keys []string
	if key != "" {
		keys = []string{key}
	}
	c, err := h.svc.OpenSession(r.Context(), account.Credentials{Keys: keys, ClientIP: clientIP(r)})
	if err != nil {
		status, msg := statusOf(err)
		h.render(w, r, status, "signin", &page{Title: "Sign in", Errors: map[string]string{"key": msg}, h: h})
		return
	}
	if old, _, ok := readCookie(r); ok {
		if err := h.sessions.DeleteSession(r.Context(), old); err != nil {
			h.log.Warn("console: ending the previous session", "err", err)
		}
	}
	id, secret := randomToken(16), randomToken(32)
	now := h.now()
	err = h.sessions.CreateSession(r.Context(), store.Session{
		ID: id, SecretHash: secretHash(secret), AccountID: c.AccountID, KeyID: c.Actor.KeyID,
		CreatedAt: now, LastSeenAt: now,
	}, now.Add(-MaxLifetime), now.Add(-IdleTimeout))
	if err != nil {
		h.log.Error("console: storing a session", "err", err)
		h.fail(w, r, http.StatusServiceUnavailable, "The session could not be stored; try again.")
		return
	}
	h.setCookie(w, id+"."+secret, 0)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// signOut ends the session.
func (h *Handler) signOut(w http.ResponseWriter, r *http.Request, s *session) {
	h.end(w, r, s.id)
	http.Redirect(w, r, "/signin?ended="+endedSignOut, http.StatusSeeOther)
}

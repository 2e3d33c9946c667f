package filestore_test

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
)

// service is the account service over f's store, as serve builds it with
// a keys file: authenticated by the data plane's decision over the file's
// keys.
func (f *fixture) service() *account.Service {
	engine := &authz.Engine{Keys: f.keys, Routes: account.AccountRouter(), Hasher: hasher}
	return account.NewService(f.s, engine, hasher, account.Options{})
}

var loopback = netip.MustParseAddr("127.0.0.1")

func code(err error) (account.Code, string) {
	var ae *account.Error
	if !errors.As(err, &ae) {
		return 0, ""
	}
	return ae.Code, ae.Reason
}

// TestService: over the file, the account service signs in with an
// account key of the file, reads, and refuses every change with
// FailedPrecondition read_only naming the file — at Authorize, and from
// the store for a call that skipped it.
func TestService(t *testing.T) {
	f := open(t, fileWith(
		serviceKey(t, 1, "shop", "acme", ""),
		accountKey(t, 2, `, scope: "account-api"`),
		accountKey(t, 3, `, scope: "account-api:query:*"`),
	))
	svc := f.service()
	ro := svc.ReadOnly()
	if ro == nil || ro.Code != account.FailedPrecondition || ro.Reason != account.ReasonReadOnly || ro.Metadata["file"] != f.path ||
		ro.Message != "read_only: keygate serves a keys file; edit "+f.path+" and it is reloaded" {
		t.Fatalf("ReadOnly() = %+v", ro)
	}

	admin, err := svc.OpenSession(f.ctx, account.Credentials{Keys: []string{secret(t, 2)}, ClientIP: loopback})
	if err != nil || admin.AccountID != "acct" || admin.Actor.KeyID != "k-02" {
		t.Fatalf("OpenSession(account key) = %+v, %v", admin, err)
	}
	if _, err := svc.OpenSession(f.ctx, account.Credentials{Keys: []string{secret(t, 1)}, ClientIP: loopback}); err == nil {
		t.Error("a service key opened a session")
	}
	for _, op := range account.Operations {
		err := svc.Authorize(admin, op)
		switch c, reason := code(err); {
		case op.Kind == "query" && err != nil:
			t.Errorf("%s: %v", op.Name, err)
		case op.Kind == "mutation" && (c != account.FailedPrecondition || reason != account.ReasonReadOnly):
			t.Errorf("%s: %v, want read_only", op.Name, err)
		}
	}
	// A key whose scope does not allow the change is refused for that.
	reader, err := svc.OpenSession(f.ctx, account.Credentials{Keys: []string{secret(t, 3)}, ClientIP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	createApp, _ := account.OperationNamed("createApp")
	if c, _ := code(svc.Authorize(reader, createApp)); c != account.PermissionDenied {
		t.Errorf("a query-only key's createApp: %v, want scope_denied", svc.Authorize(reader, createApp))
	}

	keys, next, err := svc.ListKeys(f.ctx, admin, account.KeyFilter{}, account.PageInput{Size: 2})
	if err != nil || len(keys) != 2 || next == "" || keys[0].Spec.ID != "k-01" {
		t.Errorf("ListKeys = %d keys, %q, %v", len(keys), next, err)
	}
	// The store refuses what Authorize would have: the same error.
	_, err = svc.CreateApp(f.ctx, admin, account.OwnerInput{ID: "new", Name: "New"})
	var ae *account.Error
	if !errors.As(err, &ae) || ae.Code != account.FailedPrecondition || ae.Reason != account.ReasonReadOnly || ae.Message != ro.Message {
		t.Errorf("CreateApp = %v, want %v", err, ro)
	}
	if _, err := svc.DeleteKey(f.ctx, admin, "k-01"); !errors.As(err, &ae) || ae.Reason != account.ReasonReadOnly {
		t.Errorf("DeleteKey = %v", err)
	}
	_, _, err = svc.ListAuditEvents(f.ctx, admin, account.AuditFilter{}, account.PageInput{})
	if c, _ := code(err); c != account.FailedPrecondition {
		t.Errorf("ListAuditEvents = %v, want FailedPrecondition", err)
	}
}

// TestSessionFollowsTheFile: a session's key deactivated (or removed) in
// the file ends it on the next request, and it cannot sign in again.
func TestSessionFollowsTheFile(t *testing.T) {
	f := open(t, fileWith(accountKey(t, 2, `, scope: "account-api"`), accountKey(t, 3, `, scope: "account-api:query:*"`)))
	svc := f.service()
	c, err := svc.OpenSession(f.ctx, account.Credentials{Keys: []string{secret(t, 2)}, ClientIP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Resume(f.ctx, c.AccountID, c.Actor.KeyID, loopback); err != nil {
		t.Fatalf("Resume: %v", err)
	}

	f.rewrite(fileWith(accountKey(t, 2, `, scope: "account-api", active: false`), accountKey(t, 3, `, scope: "account-api:query:*"`)))
	if _, err := svc.Resume(f.ctx, c.AccountID, c.Actor.KeyID, loopback); !isCode(err, account.Unauthenticated) {
		t.Errorf("Resume after deactivation: %v, want Unauthenticated", err)
	}
	if _, err := svc.OpenSession(f.ctx, account.Credentials{Keys: []string{secret(t, 2)}, ClientIP: loopback}); !isCode(err, account.Unauthenticated) {
		t.Errorf("OpenSession after deactivation: %v, want Unauthenticated", err)
	}

	// Narrowing the scope narrows the session at once.
	c3, err := svc.OpenSession(f.ctx, account.Credentials{Keys: []string{secret(t, 3)}, ClientIP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	f.rewrite(fileWith(accountKey(t, 3, `, scope: "account-api:query:keys"`)))
	c3, err = svc.Resume(f.ctx, c3.AccountID, c3.Actor.KeyID, loopback)
	if err != nil {
		t.Fatal(err)
	}
	var allowed []string
	for _, op := range account.Operations {
		if svc.Authorize(c3, op) == nil {
			allowed = append(allowed, op.Name)
		}
	}
	if !slices.Equal(allowed, []string{"keys"}) {
		t.Errorf("after narrowing, the session may run %v, want [keys]", allowed)
	}
	if _, err := svc.Resume(f.ctx, c.AccountID, "k-02", loopback); !isCode(err, account.Unauthenticated) {
		t.Errorf("Resume of a key removed from the file: %v, want Unauthenticated", err)
	}
}

func isCode(err error, want account.Code) bool {
	c, _ := code(err)
	return c == want
}

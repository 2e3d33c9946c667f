package integration

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/status"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// TestKeyIDsPerAccount is the key-id enumeration attempt of issue 15 item 5
// through a real server and PostgreSQL: account B may create a key id
// account A holds, and B's reads, updates and deletes of an id only A holds
// answer exactly as for an id nobody holds.
func TestKeyIDsPerAccount(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serve(t)
	waitReady(t, srv)
	a := env.client(t, srv)
	b := &accountClient{a.AccountServiceClient, bootstrapAccount(t, env.url, "acct-b")}
	// Written to the database after serve started: it reaches the
	// replica's cache through the change feed (unknown_key until then).
	eventually(t, "account b's key to reach the replica", func() bool {
		_, err := b.ListApps(b.ctx(t), &accountv1.ListAppsRequest{})
		return err == nil
	})
	for _, c := range []*accountClient{a, b} {
		if _, err := c.CreateApp(c.ctx(t), &accountv1.CreateAppRequest{Id: "billing", Name: "Billing"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*accountClient{a, b} {
		if _, err := c.GenerateAppAccessKey(c.ctx(t), &accountv1.GenerateAppAccessKeyRequest{Id: "read", AppId: "billing"}); err != nil {
			t.Fatalf("key id read in a second account: %v", err)
		}
	}
	if _, err := a.GenerateAppAccessKey(a.ctx(t), &accountv1.GenerateAppAccessKeyRequest{Id: "held", AppId: "billing"}); err != nil {
		t.Fatal(err)
	}
	probe := func() map[string]string {
		answers := map[string]string{}
		_, err := b.GetKey(b.ctx(t), &accountv1.GetKeyRequest{Id: "held"})
		answers["get"] = status.Convert(err).String()
		_, err = b.UpdateKey(b.ctx(t), &accountv1.UpdateKeyRequest{Id: "held", Description: new("mine now")})
		answers["update"] = status.Convert(err).String()
		_, err = b.DeleteKey(b.ctx(t), &accountv1.DeleteKeyRequest{Id: "held"})
		answers["delete"] = status.Convert(err).String()
		return answers
	}
	elsewhere := probe()
	if _, err := a.DeleteKey(a.ctx(t), &accountv1.DeleteKeyRequest{Id: "held"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(probe(), elsewhere); diff != "" {
		t.Errorf("answers about an id another account holds differ from an id nobody holds (-nobody +elsewhere):\n%s", diff)
	}
	t.Logf("answers: %v", elsewhere)
}

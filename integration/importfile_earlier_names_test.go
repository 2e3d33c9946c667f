package integration

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// TestImportFileEarlierOperationNames: import-file of a keys file whose
// account key and role scopes use the Account API's earlier operation
// names (SPEC §14: accepted on input) into a migrated database stores them
// with today's names, so that the key can call what it was written for;
// before the fix the scopes were stored verbatim after migration 0011 had
// run, and the key's ListApps was refused (audit 20 §1.1).
func TestImportFileEarlierOperationNames(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serve(t)
	waitReady(t, srv)
	secret, hash := quickKey(t, "account")
	file := filepath.Join(t.TempDir(), "keys.yaml")
	writeFile(t, file, "apps: [{id: billing, name: Billing}]\n"+
		"roles: [{id: r-tenants, name: tenant-readers, scope: \"account-api:query:listTenants\"}]\n"+
		"keys:\n  - {id: old-reader, name: old-reader, type: account, hash: \""+hash+"\", scope: \"account-api:query:listApps\", roles: [r-tenants]}\n")
	if out, err := importFile(t, env.url, "acct-test", file); err != nil {
		t.Fatalf("import-file: %v\n%s", err, out)
	}

	conn, err := pgx.Connect(context.Background(), env.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var keyScope, roleScope string
	if err := conn.QueryRow(context.Background(), `SELECT scope FROM keys WHERE id = 'old-reader'`).Scan(&keyScope); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(context.Background(), `SELECT scope FROM roles WHERE id = 'r-tenants'`).Scan(&roleScope); err != nil {
		t.Fatal(err)
	}
	if keyScope != "account-api:query:apps" || roleScope != "account-api:query:tenants" {
		t.Errorf("stored key scope %q, role scope %q; want the current names account-api:query:apps, account-api:query:tenants", keyScope, roleScope)
	}

	c := &accountClient{env.client(t, srv).AccountServiceClient, secret}
	eventually(t, "ListApps with the imported key", func() bool {
		_, err := c.ListApps(c.ctx(t), &accountv1.ListAppsRequest{})
		return err == nil
	})
	if _, err := c.ListTenants(c.ctx(t), &accountv1.ListTenantsRequest{}); err != nil {
		t.Errorf("ListTenants through the imported role: %v", err)
	}
	if _, err := c.GetApp(c.ctx(t), &accountv1.GetAppRequest{Id: "billing"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("GetApp, which neither scope allows: %v, want PermissionDenied", err)
	}
}

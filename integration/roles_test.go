package integration

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCLIRolesAndDenials: roles and service access denials through the
// real CLI, server and PostgreSQL (issue 18): a role created and given to
// a key, keys listed by role, the role's delete refused while held (with
// the count) and forced; a denial created, listed by tenant and app, and
// deleted.
func TestCLIRolesAndDenials(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serve(t)
	waitReady(t, srv)
	cli := cliAgainst(t, env, srv)
	must := func(args ...string) string {
		t.Helper()
		out, err := cli(args...)
		if err != nil {
			t.Fatalf("keygate %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	must("apps", "create", "--id", "billing", "--name", "Billing")
	must("tenants", "create", "--id", "acme", "--name", "ACME")
	out := must("roles", "create", "--id", "reader", "--name", "Reader", "--scope", "email-api:query:*")
	if !strings.Contains(out, "email-api:query:*") {
		t.Fatalf("roles create:\n%s", out)
	}
	if _, err := cli("roles", "create", "--name", "Empty", "--scope", " "); err == nil || !strings.Contains(err.Error(), "scope: required") {
		t.Fatalf("roles create with an empty scope: %v", err)
	}
	must("keys", "generate", "--type", "service", "--app", "billing", "--tenant", "acme", "--id", "k1", "--role", "reader")
	must("keys", "generate", "--type", "service", "--app", "billing", "--tenant", "acme", "--id", "k2")

	var keys []struct {
		ID      string   `json:"id"`
		RoleIDs []string `json:"role_ids"`
	}
	if err := json.Unmarshal([]byte(must("keys", "list", "--role", "reader", "-o", "json")), &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].ID != "k1" || len(keys[0].RoleIDs) != 1 || keys[0].RoleIDs[0] != "reader" {
		t.Fatalf("keys list --role reader: %+v", keys)
	}
	if out := must("keys", "get", "k1"); !strings.Contains(out, "ROLES") || !strings.Contains(out, "reader") {
		t.Fatalf("keys get k1:\n%s", out)
	}
	var roles []struct {
		ID    string `json:"id"`
		Scope string `json:"scope"`
	}
	if err := json.Unmarshal([]byte(must("roles", "list", "-o", "json")), &roles); err != nil {
		t.Fatal(err)
	}
	if len(roles) != 1 || roles[0].ID != "reader" {
		t.Fatalf("roles list: %+v", roles)
	}
	must("roles", "update", "reader", "--scope", "email-api:query:list")

	_, err := cli("roles", "delete", "reader")
	if err == nil || !strings.Contains(err.Error(), `FailedPrecondition: role "reader": 1 key holds it`) ||
		!strings.Contains(err.Error(), "keygate roles delete reader --force") {
		t.Fatalf("roles delete of a held role: %v", err)
	}
	_, err = cli("roles", "delete", "reader", "--force")
	if err == nil || !strings.Contains(err.Error(), "role reader is held by 1 key and stdin is not a terminal to confirm: add --yes") {
		t.Fatalf("roles delete --force off a terminal: %v", err)
	}
	if out := must("roles", "delete", "reader", "--force", "--yes"); strings.TrimSpace(out) != "deleted role reader" {
		t.Fatalf("roles delete --force --yes: %q", out)
	}
	if _, err := cli("roles", "get", "reader"); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("the deleted role: %v", err)
	}
	if out := must("keys", "get", "k1", "-o", "json"); strings.Contains(out, "reader") {
		t.Fatalf("k1 still holds the deleted role:\n%s", out)
	}

	// Denials.
	if _, err := cli("denials", "create", "--tenant", "acme", "--app", "billing", "--scope", "!email-api", "--reason", "r"); err == nil ||
		!strings.Contains(err.Error(), "deny patterns (!) are not allowed") {
		t.Fatalf("denials create with a deny pattern: %v", err)
	}
	if _, err := cli("denials", "create", "--tenant", "nope", "--app", "billing", "--scope", "email-api", "--reason", "r"); err == nil ||
		!strings.Contains(err.Error(), `tenant "nope" not found`) {
		t.Fatalf("denials create for an unknown tenant: %v", err)
	}
	out = must("denials", "create", "--id", "unpaid", "--tenant", "acme", "--app", "billing",
		"--scope", "email-api:mutation:send", "--reason", "invoice overdue")
	if !strings.Contains(out, "invoice overdue") {
		t.Fatalf("denials create:\n%s", out)
	}
	var denials []struct {
		ID     string `json:"id"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(must("denials", "list", "--tenant", "acme", "--app", "billing", "-o", "json")), &denials); err != nil {
		t.Fatal(err)
	}
	if len(denials) != 1 || denials[0].ID != "unpaid" || denials[0].Reason != "invoice overdue" {
		t.Fatalf("denials list: %+v", denials)
	}
	if out := must("denials", "list", "--app", "other"); strings.Contains(out, "unpaid") {
		t.Fatalf("denials list --app other:\n%s", out)
	}
	must("denials", "update", "unpaid", "--reason", "fraud")
	if out := must("denials", "get", "unpaid"); !strings.Contains(out, "fraud") {
		t.Fatalf("denials get:\n%s", out)
	}
	if out := must("denials", "delete", "unpaid"); strings.TrimSpace(out) != "deleted denial unpaid" {
		t.Fatalf("denials delete: %q", out)
	}

	// Every change is audited.
	var events []struct {
		Action string `json:"action"`
	}
	if err := json.Unmarshal([]byte(must("audit", "-o", "json")), &events); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range events {
		seen[e.Action] = true
	}
	for _, a := range []string{"role.create", "role.update", "role.delete", "denial.create", "denial.update", "denial.delete"} {
		if !seen[a] {
			t.Errorf("no %s audit event in %+v", a, events)
		}
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExplainShowsBothResolutions: explain prints what the request's host
// routes and its host-less routes each found, and whether they agree
// (SPEC §9: a request whose Host and path map to different operations is
// denied as unknown_route, whichever the client steered it to).
func TestExplainShowsBothResolutions(t *testing.T) {
	const readOnly = "kg_sak_ElM6AcWnVMJgkFDHOKdZSzx8ldu6AR4WwJ5o" // demo key from examples/keys.yaml
	routes := `services:
  - name: email-api
    key_types: [service]
    routes:
      - {path: /email/inbox, methods: [GET], kind: query, operation: listEmails}
      - {host: mail.example.com, path: /email/inbox, methods: [GET], kind: query, operation: listEmails}
      - {host: mail.example.com, path_prefix: /, kind: query, operation: any}
  - name: users-api
    key_types: [app]
    routes:
      - {path: /users, methods: [GET], kind: query, operation: listUsers}
`
	routesFile := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(routesFile, []byte(routes), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"explain", "--keys-file", "../../examples/keys.yaml", "--routes-file", routesFile}
	for _, tc := range []struct {
		name       string
		host, path string
		want       []string
		dontWant   string // "" for nothing
	}{
		{
			name: "host and path disagree", host: "MAIL.example.com.:443", path: "/users",
			want: []string{
				`by host MAIL.example.com.:443 services[0] (email-api): routes[2] (line 7): path_prefix "/" on host mail.example.com → service email-api, kind "query", operation "any"`,
				`host-less          services[1] (users-api): routes[0] (line 11): path "/users" → service users-api, kind "query", operation "listUsers"`,
				"the two disagree: denied as unknown_route",
				"FAIL unknown_route (403): the request's host and path map to different operations",
				`decision: DENY 403 {"error":"the request's host and path map to different operations","reason":"unknown_route"}`,
			},
			dontWant: "decision: ALLOW",
		},
		{
			name: "host and path agree", host: "mail.example.com", path: "/email/inbox",
			want: []string{
				`by host mail.example.com services[0] (email-api): routes[1] (line 6): path "/email/inbox" on host mail.example.com → service email-api, kind "query", operation "listEmails"`,
				`host-less          services[0] (email-api): routes[0] (line 5): path "/email/inbox" → service email-api, kind "query", operation "listEmails"`,
				"the two agree",
				"decision: ALLOW",
			},
			dontWant: "disagree",
		},
		{
			name: "only the host-less route", host: "localhost", path: "/email/inbox",
			want: []string{
				"by host localhost  no route matches",
				"only a host-less route matches: it decides",
				"decision: ALLOW",
			},
		},
		{
			name: "only the host route", host: "mail.example.com", path: "/webmail",
			want: []string{
				"host-less          no route matches",
				"only a host route matches: it decides",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := runCLI(t, readOnly+"\n", append(args, "--host", tc.host, "--path", tc.path)...)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.want {
				if !strings.Contains(out, want) {
					t.Errorf("explain output lacks %q:\n%s", want, out)
				}
			}
			if tc.dontWant != "" && strings.Contains(out, tc.dontWant) {
				t.Errorf("explain output has %q:\n%s", tc.dontWant, out)
			}
		})
	}
}

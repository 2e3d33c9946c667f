package admin_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/admin"
)

func TestPprofNeverServesTheCommandLine(t *testing.T) {
	mux := http.NewServeMux()
	if err := admin.RegisterPprof(mux); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(method, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/debug/pprof/cmdline", 404},
		{"POST", "/debug/pprof/cmdline", 404},
		{"GET", "/debug/pprof/cmdline?debug=1", 404},
		{"GET", "/debug/pprof/cmdline/", 404},
		{"GET", "/debug/pprof/nosuchprofile", 404},
		{"GET", "/debug/pprof/", 200},
		{"GET", "/debug/pprof/heap", 200},
		{"GET", "/debug/pprof/goroutine?debug=1", 200},
		{"GET", "/debug/pprof/allocs", 200},
		{"GET", "/debug/pprof/symbol", 200},
		{"POST", "/debug/pprof/symbol", 200},
		{"GET", "/debug/pprof/trace?seconds=0.05", 200},
	} {
		status, body := get(tc.method, tc.path)
		if status != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, status, tc.status)
		}
		if strings.Contains(body, "pprof.test") || strings.Contains(body, "-test.") {
			t.Errorf("%s %s: the answer holds the command line", tc.method, tc.path)
		}
	}
	if _, index := get("GET", "/debug/pprof/"); strings.Contains(index, "cmdline") || !strings.Contains(index, "heap") {
		t.Errorf("index:\n%s", index)
	}
}

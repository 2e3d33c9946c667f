package admin

import (
	"bytes"
	"html/template"
	"net/http"
	"net/http/pprof"
	runtimepprof "runtime/pprof"
	"slices"
)

// pprofIndex lists what RegisterPprof serves, with links.
const pprofIndex = `<!DOCTYPE html>
<html><head><title>keygate /debug/pprof/</title></head><body>
<h1>/debug/pprof/</h1>
<ul>{{range .}}<li><a href="{{.}}?debug=1">{{.}}</a></li>
{{end}}</ul>
<p>CPU profile: <a href="profile?seconds=5">profile</a> (seconds=N); execution trace: <a href="trace?seconds=1">trace</a> (seconds=N); symbol lookup: symbol.</p>
</body></html>
`

// RegisterPprof serves Go's profiles under /debug/pprof/ on mux: the index,
// profile, symbol, trace and every named runtime profile (heap, goroutine,
// allocs, block, mutex, threadcreate, …). Unlike net/http/pprof's own
// registration it never serves /debug/pprof/cmdline, which prints the
// process's command line, secrets given as flags included (SPEC §16): that
// path answers 404.
func RegisterPprof(mux *http.ServeMux) error {
	index, err := template.New("index").Parse(pprofIndex)
	if err != nil {
		return err
	}
	mux.HandleFunc("GET /debug/pprof/{$}", func(w http.ResponseWriter, _ *http.Request) {
		var names []string
		for _, p := range runtimepprof.Profiles() {
			names = append(names, p.Name())
		}
		slices.Sort(names)
		var b bytes.Buffer
		if err := index.Execute(&b, names); err != nil {
			http.Error(w, "cannot render the index", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(b.Bytes())
	})
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", http.NotFound)
	mux.HandleFunc("/debug/pprof/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if runtimepprof.Lookup(name) == nil {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		pprof.Handler(name).ServeHTTP(w, r)
	})
	return nil
}

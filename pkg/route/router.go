// Router: the Table being served, swapped atomically when the routes file
// is reloaded.

package route

import (
	"sync/atomic"

	"github.com/keygate/keygate/pkg/authz"
)

// Kinds is the current table's Kinds.
func (r *Router) Kinds(service string) ([]string, bool, bool) { return r.t.Load().Kinds(service) }

// Router holds the current Table and swaps it atomically on reload, so a
// request is always resolved against one whole table, old or new. The zero
// Router serves no table and routes nothing.
type Router struct {
	t atomic.Pointer[Table]
}

// NewRouter returns a Router serving t. A nil table routes nothing.
func NewRouter(t *Table) *Router {
	r := &Router{}
	r.t.Store(t)
	return r
}

// Swap makes t the table later requests are resolved against.
func (r *Router) Swap(t *Table) { r.t.Store(t) }

// Current returns the table being served.
func (r *Router) Current() *Table { return r.t.Load() }

// Resolve resolves in against the current table.
func (r *Router) Resolve(in *authz.RouteInput) (authz.Target, authz.Reason) {
	return r.t.Load().Resolve(in)
}

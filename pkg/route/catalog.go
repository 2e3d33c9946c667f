package route

import (
	"slices"

	"github.com/keygate/keygate/pkg/authz"
)

// ServiceInfo is one declared service as a scope editor needs it (the
// Account API's services operation): the key types it accepts, the
// accounts it is limited to, and what its routes name of kinds and
// operations.
type ServiceInfo struct {
	Name    string
	Accepts authz.KeyTypes
	// Accounts, when set, are the only accounts whose keys the service
	// accepts; nil is every account.
	Accounts []string
	// Kinds in file order.
	Kinds []KindInfo
	// AnyKind is set when a route of the service leaves the kind unknown
	// (any kind a scope names may then be called).
	AnyKind bool
}

// KindInfo is one kind of a service and the operations its routes name.
type KindInfo struct {
	Name       string
	Operations []string // file order
	// AnyOperation is set when the kind's operations are not all known
	// from the file: a route without an operation, a GraphQL route (its
	// operations are the fields a request selects) or a gRPC service (its
	// methods).
	AnyOperation bool
}

// catalog is what the routes name of one service's kinds and operations,
// gathered while the table is indexed.
type catalog struct {
	kinds []KindInfo
}

func (c *catalog) add(kind, operation string) {
	if kind == "" {
		return
	}
	i := slices.IndexFunc(c.kinds, func(k KindInfo) bool { return k.Name == kind })
	if i < 0 {
		c.kinds = append(c.kinds, KindInfo{Name: kind})
		i = len(c.kinds) - 1
	}
	switch k := &c.kinds[i]; {
	case operation == "":
		k.AnyOperation = true
	case !slices.Contains(k.Operations, operation):
		k.Operations = append(k.Operations, operation)
	}
}

// Services lists the declared services in file order with their kinds and
// operations. The slices are the caller's.
func (t *Table) Services() []ServiceInfo {
	if t == nil {
		return nil
	}
	out := make([]ServiceInfo, 0, len(t.names))
	for _, name := range t.names {
		s := t.services[name]
		info := ServiceInfo{Name: name, Accepts: s.accepts, Accounts: slices.Clone(s.accounts), AnyKind: s.anyKind}
		for _, k := range s.catalog.kinds {
			k.Operations = slices.Clone(k.Operations)
			info.Kinds = append(info.Kinds, k)
		}
		out = append(out, info)
	}
	return out
}

// Services is the current table's Services.
func (r *Router) Services() []ServiceInfo { return r.t.Load().Services() }

package account

import "github.com/keygate/keygate/pkg/authz"

// Operation is one operation of the Account API: its one name (what scopes
// and every transport call it, SPEC §14) and its kind, "query" for reads
// and "mutation" for changes. An account key's scope grants operations as
// account-api:<kind>:<name>.
type Operation struct {
	Name string
	Kind string
}

const (
	kindQuery    = "query"
	kindMutation = "mutation"
)

// Operations is the catalogue of the Account API: every operation any
// transport serves, authorised by Authorize under these names and kinds.
var Operations = []Operation{
	{"createApp", kindMutation}, {"app", kindQuery}, {"apps", kindQuery},
	{"updateApp", kindMutation}, {"deleteApp", kindMutation},
	{"createTenant", kindMutation}, {"tenant", kindQuery}, {"tenants", kindQuery},
	{"updateTenant", kindMutation}, {"deleteTenant", kindMutation},
	{"generateServiceAccessKey", kindMutation}, {"generateAppAccessKey", kindMutation},
	{"generateAccountAccessKey", kindMutation}, {"importKey", kindMutation},
	{"key", kindQuery}, {"keys", kindQuery}, {"updateKey", kindMutation},
	{"regenerateKey", kindMutation}, {"deleteKey", kindMutation}, {"updateKeys", kindMutation},
	{"auditEvents", kindQuery},
	{"createServiceAccessRole", kindMutation}, {"serviceAccessRole", kindQuery},
	{"serviceAccessRoles", kindQuery}, {"updateServiceAccessRole", kindMutation},
	{"deleteServiceAccessRole", kindMutation},
	{"createServiceAccessDenial", kindMutation}, {"serviceAccessDenial", kindQuery},
	{"serviceAccessDenials", kindQuery}, {"updateServiceAccessDenial", kindMutation},
	{"deleteServiceAccessDenial", kindMutation},
	{"syncStatus", kindQuery}, {"replicas", kindQuery},
	{"usage", kindQuery},
	{"services", kindQuery}, {"account", kindQuery},
}

// OperationNamed returns the catalogue's operation of that name.
func OperationNamed(name string) (Operation, bool) {
	for _, op := range Operations {
		if op.Name == name {
			return op, true
		}
	}
	return Operation{}, false
}

// AccountRouter is the authz.Router of the Account API's engine: it maps
// the context extensions Authenticate sets (service "account-api", kind,
// operation) to a target only account keys are accepted by, and
// everything else to unknown_route.
func AccountRouter() authz.Router { return accountRouter{} }

type accountRouter struct{}

var accountKeysOnly = authz.KeyTypes(0).With(authz.KeyTypeAccount)

func (accountRouter) Resolve(in *authz.RouteInput) (authz.Target, authz.Reason) {
	if in.Extensions.Service != authz.AccountAPIService {
		return authz.Target{}, authz.UnknownRoute
	}
	return authz.Target{
		Service:   authz.AccountAPIService,
		Kind:      in.Extensions.Kind,
		Operation: in.Extensions.Operation,
		Accepts:   accountKeysOnly,
	}, authz.OK
}

// generateOperations are the operations that create a key of each type.
var generateOperations = map[authz.KeyType]string{
	authz.KeyTypeService: "generateServiceAccessKey",
	authz.KeyTypeApp:     "generateAppAccessKey",
	authz.KeyTypeAccount: "generateAccountAccessKey",
}

// GenerateOperation is the catalogue's operation that creates a key of
// type t (false for a type no operation creates): the one name the
// service, its logs and every adapter use for it.
func GenerateOperation(t authz.KeyType) (string, bool) {
	op, ok := generateOperations[t]
	return op, ok
}

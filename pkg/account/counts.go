package account

import "context"

// Counts are read under the list operations: counting the caller's keys
// (apps, tenants) tells no more than listing them all, page after page,
// would. They are no operation of their own (no transport serves them),
// so the service authorises them itself, as the transports authorise a
// list: a caller whose scope does not allow the list gets PermissionDenied.
var (
	opKeys, _    = OperationNamed("keys")
	opApps, _    = OperationNamed("apps")
	opTenants, _ = OperationNamed("tenants")
)

// CountKeys is how many of the caller's keys pass f: the number of keys
// ListKeys with f would list over all its pages (f.Order aside), in one
// store read. It is authorised as ListKeys (the keys operation) and f is
// checked as ListKeys checks it.
func (s *Service) CountKeys(ctx context.Context, c Caller, f KeyFilter) (int, error) {
	if err := s.Authorize(c, opKeys); err != nil {
		return 0, err
	}
	var v Violations
	v.checkKeyFilter(&f)
	if err := v.err(); err != nil {
		return 0, err
	}
	n, err := s.store.CountKeys(ctx, c.AccountID, f)
	if err != nil {
		return 0, s.storeError(ctx, "CountKeys", "keys", err)
	}
	return n, nil
}

// CountApps is how many apps the caller's account has, authorised as
// ListApps (the apps operation).
func (s *Service) CountApps(ctx context.Context, c Caller) (int, error) {
	return s.countOwners(ctx, c, opApps, "CountApps", s.store.CountApps)
}

// CountTenants is how many tenants the caller's account has, authorised
// as ListTenants (the tenants operation).
func (s *Service) CountTenants(ctx context.Context, c Caller) (int, error) {
	return s.countOwners(ctx, c, opTenants, "CountTenants", s.store.CountTenants)
}

func (s *Service) countOwners(ctx context.Context, c Caller, op Operation, name string, count func(context.Context, string) (int, error)) (int, error) {
	if err := s.Authorize(c, op); err != nil {
		return 0, err
	}
	n, err := count(ctx, c.AccountID)
	if err != nil {
		return 0, s.storeError(ctx, name, op.Name, err)
	}
	return n, nil
}

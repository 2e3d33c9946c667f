package store

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/keygate/keygate/pkg/authz"
)

// An import (keygate import-file) makes an account hold what a keys file
// holds, without reissuing any key: the hashes are copied as they are. Its
// planning is this file's pure function, PlanImport, over what the file
// wants and what the account holds; a store applies the plan it returns
// in one transaction. Each object kind is one section of the plan, planned
// by planSection with the kind's own diff: apps, tenants, roles, service
// access denials (SPEC §11) and keys.

// ImportAction is what an import does with one object.
type ImportAction string

const (
	ImportCreate    ImportAction = "create"    // in the file, not in the account
	ImportUpdate    ImportAction = "update"    // in both, some field the file carries differs
	ImportUnchanged ImportAction = "unchanged" // in both, alike
	ImportKept      ImportAction = "kept"      // in the account only: left alone
)

// ImportActions are the actions in the order a plan's summary lists them.
var ImportActions = []ImportAction{ImportCreate, ImportUpdate, ImportUnchanged, ImportKept}

// ImportSet is what a keys file holds (or an account, read for an
// import or an export): apps, tenants, roles, denials and keys. Keys
// carry hashes, never secrets, and the ids of the roles they hold in
// RoleIDs (Spec.Roles is not read).
type ImportSet struct {
	Apps    []App
	Tenants []Tenant
	Roles   []Role
	Denials []Denial
	Keys    []Key
}

// ImportStep is one object of a plan.
type ImportStep[T any] struct {
	Action ImportAction
	ID     string
	// Want is what the object becomes (create, update, unchanged): the
	// stored record with the file's fields, or the file's record.
	Want T
	// Have is the stored record (update, unchanged, kept).
	Have T
	// Changed names the fields an update changes.
	Changed []string
	// Notes say what the import leaves as it is, and why.
	Notes []string
}

// ImportSection is the plan of one object kind.
type ImportSection[T any] struct {
	Kind  string // "app", "tenant", "role", "denial", "key"
	Steps []ImportStep[T]
}

// Count is the number of steps with action a.
func (s ImportSection[T]) Count(a ImportAction) int {
	n := 0
	for _, st := range s.Steps {
		if st.Action == a {
			n++
		}
	}
	return n
}

// ImportPlan is what an import does, kind by kind.
type ImportPlan struct {
	AccountID string
	Apps      ImportSection[App]
	Tenants   ImportSection[Tenant]
	Roles     ImportSection[Role]
	Denials   ImportSection[Denial]
	Keys      ImportSection[Key]
}

// Changes is the number of objects the plan creates or updates.
func (p ImportPlan) Changes() int {
	n := 0
	for _, a := range []ImportAction{ImportCreate, ImportUpdate} {
		n += p.Apps.Count(a) + p.Tenants.Count(a) + p.Roles.Count(a) + p.Denials.Count(a) + p.Keys.Count(a)
	}
	return n
}

// ErrImportConflict is what PlanImport's refusals wrap: the file and the
// account disagree in a way an import does not settle by itself.
var ErrImportConflict = errors.New("import conflict")

// PlanImport compares what the file wants with what the account has and
// says, object by object, what an import does. "Differs" covers the
// fields a keys file carries:
//   - apps and tenants: name (description and active are not in the file
//     and stay as stored; a new one is active, without description);
//   - roles: name, scope, description;
//   - denials: scope, reason. A denial's tenant and app cannot change (as
//     the Account API's update): a difference there is refused;
//   - keys: name, hash, scope, roles (the ids it holds, in any order),
//     active, not_before, expires_at, ip_filters, group, description,
//     response_headers. A key's type, app and tenant
//     cannot change: a difference there is refused. A new hash replaces
//     the stored one at once (the stored secret stops working); a file
//     whose hash is the key's previous one (rotated in the database since)
//     is refused as older than the database.
//
// An import never re-activates: an object inactive in the account stays
// inactive (a deactivation is a revocation, which replaying an old file
// must not undo); it is noted. Objects in the account but not in the
// file are kept as they are (a denial in force stays in force). Names and
// hashes must stay unique among the account's objects once imported; a
// key's roles, and a denial's tenant and app, must be in the file or the
// account. Every refusal names the object and is
// returned at once, joined, wrapping ErrImportConflict.
func PlanImport(accountID string, want, have ImportSet) (ImportPlan, error) {
	p := ImportPlan{AccountID: accountID}
	p.Apps = planSection("app", want.Apps, have.Apps, func(a App) string { return a.ID }, diffParent)
	p.Tenants = planSection("tenant", want.Tenants, have.Tenants, func(t Tenant) string { return t.ID },
		func(w, h Tenant) (Tenant, []string, []string, error) {
			out, changed, notes, err := diffParent(App(w), App(h))
			return Tenant(out), changed, notes, err
		})
	p.Roles = planSection("role", want.Roles, have.Roles, func(r Role) string { return r.ID }, diffRole)
	p.Denials = planSection("denial", want.Denials, have.Denials, func(d Denial) string { return d.ID }, diffDenial)
	p.Keys = planSection("key", normalizeRoles(want.Keys), have.Keys, func(k Key) string { return k.Spec.ID }, diffKey)
	errs := append(stepErrors(p.Apps), stepErrors(p.Tenants)...)
	errs = append(errs, stepErrors(p.Roles)...)
	errs = append(errs, stepErrors(p.Denials)...)
	errs = append(errs, stepErrors(p.Keys)...)
	errs = append(errs, uniqueAfter(p.Roles, "name", func(r Role) []string { return []string{r.Name} })...)
	errs = append(errs, missingAfter(p.Keys, "role", p.Roles, func(k Key) []string { return k.RoleIDs })...)
	errs = append(errs, missingAfter(p.Denials, "tenant", p.Tenants, func(d Denial) []string { return []string{d.TenantID} })...)
	errs = append(errs, missingAfter(p.Denials, "app", p.Apps, func(d Denial) []string { return []string{d.AppID} })...)
	errs = append(errs, uniqueAfter(p.Apps, "name", func(a App) []string { return []string{a.Name} })...)
	errs = append(errs, uniqueAfter(p.Tenants, "name", func(t Tenant) []string { return []string{t.Name} })...)
	errs = append(errs, uniqueAfter(p.Keys, "name", func(k Key) []string { return []string{k.Spec.Name} })...)
	errs = append(errs, uniqueAfter(p.Keys, "hash", func(k Key) []string {
		return []string{k.Spec.Hash, k.Spec.PreviousHash}
	})...)
	for i := range p.Apps.Steps {
		if st := &p.Apps.Steps[i]; st.Action == ImportCreate {
			st.Want.AccountID = accountID
		}
	}
	for i := range p.Tenants.Steps {
		if st := &p.Tenants.Steps[i]; st.Action == ImportCreate {
			st.Want.AccountID = accountID
		}
	}
	for i := range p.Roles.Steps {
		if st := &p.Roles.Steps[i]; st.Action == ImportCreate {
			st.Want.AccountID = accountID
		}
	}
	for i := range p.Denials.Steps {
		if st := &p.Denials.Steps[i]; st.Action == ImportCreate {
			st.Want.AccountID = accountID
		}
	}
	for i := range p.Keys.Steps {
		if st := &p.Keys.Steps[i]; st.Action == ImportCreate {
			st.Want.Spec.AccountID = accountID
		}
	}
	return p, errors.Join(errs...)
}

// planSection plans one kind: the file's objects in file order (create,
// update or unchanged), then the account's others (kept) in stored order.
// diff returns what the object becomes, the fields that change, notes,
// and a refusal.
func planSection[T any](kind string, want, have []T, id func(T) string,
	diff func(w, h T) (T, []string, []string, error),
) ImportSection[T] {
	s := ImportSection[T]{Kind: kind}
	stored := make(map[string]T, len(have))
	for _, h := range have {
		stored[id(h)] = h
	}
	inFile := make(map[string]bool, len(want))
	for _, w := range want {
		i := id(w)
		inFile[i] = true
		h, ok := stored[i]
		if !ok {
			s.Steps = append(s.Steps, ImportStep[T]{Action: ImportCreate, ID: i, Want: w})
			continue
		}
		out, changed, notes, err := diff(w, h)
		st := ImportStep[T]{Action: ImportUnchanged, ID: i, Want: out, Have: h, Changed: changed, Notes: notes}
		if len(changed) > 0 {
			st.Action = ImportUpdate
		}
		if err != nil {
			st.Notes = append(st.Notes, refusal+err.Error())
		}
		s.Steps = append(s.Steps, st)
	}
	for _, h := range have {
		if !inFile[id(h)] {
			s.Steps = append(s.Steps, ImportStep[T]{Action: ImportKept, ID: id(h), Have: h,
				Notes: []string{"in the database, not in the file: left as it is"}})
		}
	}
	return s
}

// refusal prefixes the note of a step that stops the import.
const refusal = "refused: "

func stepErrors[T any](s ImportSection[T]) []error {
	var errs []error
	for _, st := range s.Steps {
		for _, n := range st.Notes {
			if len(n) > len(refusal) && n[:len(refusal)] == refusal {
				errs = append(errs, fmt.Errorf("%w: %s %q: %s", ErrImportConflict, s.Kind, st.ID, n[len(refusal):]))
			}
		}
	}
	return errs
}

// uniqueAfter refuses two objects of a section that would hold the same
// value of field (a name, a hash) once the plan is applied. Both are the
// account's (or the file's), so naming both tells no other account's
// secret.
func uniqueAfter[T any](s ImportSection[T], field string, values func(T) []string) []error {
	var errs []error
	first := map[string]string{}
	// The stored objects first, so that a refusal names the file's.
	ordered := make([]ImportStep[T], 0, len(s.Steps))
	for _, st := range s.Steps {
		if st.Action == ImportKept {
			ordered = append(ordered, st)
		}
	}
	for _, st := range s.Steps {
		if st.Action != ImportKept {
			ordered = append(ordered, st)
		}
	}
	for _, st := range ordered {
		rec := st.Want
		if st.Action == ImportKept {
			rec = st.Have
		}
		for _, v := range values(rec) {
			if v == "" {
				continue
			}
			if other, dup := first[v]; dup && other != st.ID {
				errs = append(errs, fmt.Errorf("%w: %s %q: same %s as %s %q %s", ErrImportConflict,
					s.Kind, st.ID, field, s.Kind, other, whereIs(s, other)))
				continue
			}
			first[v] = st.ID
		}
	}
	return errs
}

// missingAfter refuses a reference from an object of s (a key's role, a
// denial's tenant or app) to an object of kind that neither the file nor
// the account holds once the plan is applied.
func missingAfter[T, U any](s ImportSection[T], kind string, of ImportSection[U], refs func(T) []string) []error {
	held := map[string]bool{}
	for _, st := range of.Steps {
		held[st.ID] = true
	}
	var errs []error
	for _, st := range s.Steps {
		if st.Action == ImportKept {
			continue // the database's own references hold (foreign keys)
		}
		for _, id := range refs(st.Want) {
			if id != "" && !held[id] {
				errs = append(errs, fmt.Errorf("%w: %s %q: %s %q is neither in the file nor in the account; add it to the file's %ss",
					ErrImportConflict, s.Kind, st.ID, kind, id, kind))
			}
		}
	}
	return errs
}

// normalizeRoles is keys with their role ids as stores keep them (sorted,
// no duplicates), so that the order a file lists them in is no change.
func normalizeRoles(keys []Key) []Key {
	out := slices.Clone(keys)
	for i := range out {
		out[i].RoleIDs = NormalizeRoleIDs(out[i].RoleIDs)
	}
	return out
}

// whereIs says whether the object id of s is in the file or only in the
// database.
func whereIs[T any](s ImportSection[T], id string) string {
	for _, st := range s.Steps {
		if st.ID == id && st.Action == ImportKept {
			return "(in the database, not in the file)"
		}
	}
	return "(in the file)"
}

// reactivation is the note of an object the file has active and the
// account has not.
const reactivation = "inactive in the database: stays inactive (an import never re-activates)"

func diffParent(w, h App) (App, []string, []string, error) {
	out := h
	var changed, notes []string
	if w.Name != h.Name {
		out.Name = w.Name
		changed = append(changed, "name")
	}
	if w.Quota != h.Quota {
		out.Quota = w.Quota
		changed = append(changed, "quota")
	}
	if !h.Active {
		notes = append(notes, reactivation)
	}
	return out, changed, notes, nil
}

func diffRole(w, h Role) (Role, []string, []string, error) {
	out := h
	var changed []string
	set := func(field string, differs bool, apply func()) {
		if differs {
			changed = append(changed, field)
			apply()
		}
	}
	set("name", w.Name != h.Name, func() { out.Name = w.Name })
	set("scope", w.Scope != h.Scope, func() { out.Scope = w.Scope })
	set("description", w.Description != h.Description, func() { out.Description = w.Description })
	set("rate_limit", w.RateLimit != h.RateLimit, func() { out.RateLimit = w.RateLimit })
	return out, changed, nil, nil
}

func diffDenial(w, h Denial) (Denial, []string, []string, error) {
	var fixed []string
	if w.TenantID != h.TenantID {
		fixed = append(fixed, fmt.Sprintf("tenant (%q in the database, %q in the file)", h.TenantID, w.TenantID))
	}
	if w.AppID != h.AppID {
		fixed = append(fixed, fmt.Sprintf("app (%q in the database, %q in the file)", h.AppID, w.AppID))
	}
	if len(fixed) > 0 {
		return h, nil, nil, fmt.Errorf("%s cannot change: delete the stored denial first, or give the file's denial another id",
			joinWords(fixed))
	}
	out := h
	var changed []string
	if w.Scope != h.Scope {
		out.Scope = w.Scope
		changed = append(changed, "scope")
	}
	if w.Reason != h.Reason {
		out.Reason = w.Reason
		changed = append(changed, "reason")
	}
	return out, changed, nil, nil
}

func diffKey(w, h Key) (Key, []string, []string, error) {
	ws, hs := w.Spec, h.Spec
	var fixed []string
	if ws.Type != hs.Type {
		fixed = append(fixed, fmt.Sprintf("type (%s in the database, %s in the file)", hs.Type, ws.Type))
	}
	if ws.AppID != hs.AppID {
		fixed = append(fixed, fmt.Sprintf("app (%q in the database, %q in the file)", hs.AppID, ws.AppID))
	}
	if ws.TenantID != hs.TenantID {
		fixed = append(fixed, fmt.Sprintf("tenant (%q in the database, %q in the file)", hs.TenantID, ws.TenantID))
	}
	if len(fixed) > 0 {
		return h, nil, nil, fmt.Errorf("%s cannot change: delete the stored key first, or give the file's key another id",
			joinWords(fixed))
	}
	if hs.PreviousHash != "" && ws.Hash == hs.PreviousHash {
		return h, nil, nil, errors.New("the file's hash is the key's previous one (the key was regenerated in the database since): " +
			"the file is older than the database; export-file the account for its current keys")
	}
	out := h
	out.Spec.IPFilters = slices.Clone(hs.IPFilters)
	out.Spec.ResponseHeaders = slices.Clone(hs.ResponseHeaders)
	out.RoleIDs = slices.Clone(h.RoleIDs)
	var changed, notes []string
	set := func(field string, differs bool, apply func()) {
		if differs {
			changed = append(changed, field)
			apply()
		}
	}
	set("name", ws.Name != hs.Name, func() { out.Spec.Name = ws.Name })
	set("hash", ws.Hash != hs.Hash, func() { out.Rotate(ws.Hash, time.Time{}, time.Time{}) })
	set("scope", ws.Scope != hs.Scope, func() { out.Spec.Scope = ws.Scope })
	set("roles", !slices.Equal(NormalizeRoleIDs(w.RoleIDs), NormalizeRoleIDs(h.RoleIDs)),
		func() { out.RoleIDs = NormalizeRoleIDs(w.RoleIDs) })
	set("active", !ws.Active && hs.Active, func() { out.Spec.Active = false })
	if ws.Active && !hs.Active {
		notes = append(notes, reactivation)
	}
	set("not_before", !ws.NotBefore.Equal(hs.NotBefore), func() { out.Spec.NotBefore = ws.NotBefore })
	set("expires_at", !ws.ExpiresAt.Equal(hs.ExpiresAt), func() { out.Spec.ExpiresAt = ws.ExpiresAt })
	set("ip_filters", !slices.Equal(ws.IPFilters, hs.IPFilters), func() { out.Spec.IPFilters = slices.Clone(ws.IPFilters) })
	set("group", ws.Group != hs.Group, func() { out.Spec.Group = ws.Group })
	set("description", ws.Description != hs.Description, func() { out.Spec.Description = ws.Description })
	set("response_headers", !slices.Equal(ws.ResponseHeaders, hs.ResponseHeaders),
		func() { out.Spec.ResponseHeaders = slices.Clone(ws.ResponseHeaders) })
	set("rate_limit", ws.RateLimit != hs.RateLimit, func() { out.Spec.RateLimit = ws.RateLimit })
	set("quota", ws.Quota != hs.Quota, func() { out.Spec.Quota = ws.Quota })
	if slices.Contains(changed, "hash") {
		notes = append(notes, "the stored secret stops working; the file's secret works")
	}
	return out, changed, notes, nil
}

func joinWords(ws []string) string {
	switch len(ws) {
	case 1:
		return ws[0]
	case 2:
		return ws[0] + " and " + ws[1]
	}
	out := ""
	for i, w := range ws {
		switch {
		case i == len(ws)-1:
			out += ", and " + w
		case i > 0:
			out += ", " + w
		default:
			out = w
		}
	}
	return out
}

// ImportOrigin is the origin an imported key is stored with: its secret
// was made outside this store. Account keys are always generated (SPEC
// §9: never custom), so theirs, made by keygate keygen, say so.
func ImportOrigin(t authz.KeyType) Origin {
	if t == authz.KeyTypeAccount {
		return OriginGenerated
	}
	return OriginCustom
}

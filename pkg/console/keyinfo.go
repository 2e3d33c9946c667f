package console

import (
	"context"
	"slices"
	"time"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/scope"
	"github.com/keygate/keygate/pkg/store"
)

// keyPanels are the key page's tabs beyond its settings (Contentserv's
// Endpoint tab, Unkey's usage and logs, SBS's sync status), each read
// with its own operation and offered only when the session may read it.
// Only the open tab is read. A panel that cannot be read says so; the
// rest of the page stands.
type keyPanels struct {
	Endpoints    []endpoint
	EndpointsErr string
	Chart        *usageChart
	UsageErr     string
	Sync         *account.SyncStatus
	SyncErr      string
	Audit        []auditRow
	AuditErr     string
	// MoreAudit is the audit log page of the key's events, when it has
	// more than the tab lists.
	MoreAudit bool
}

// keyTab is one of the key page's tabs: its ?tab= value, label and the
// operation that reads it ("" for Settings, which the page itself has).
type keyTab struct {
	Value, Label, Op string
	Selected         bool
}

var keyTabs = []keyTab{
	{"settings", "Settings", "", false},
	{"endpoints", "Endpoints", "services", false},
	{"usage", "Usage", "usage", false},
	{"audit", "Audit", "auditEvents", false},
	{"sync", "Sync", "syncStatus", false},
}

// tabsFor are the tabs the session may read, the one named selected
// (Settings when it names none of them).
func tabsFor(p *page, name string) ([]keyTab, string) {
	var out []keyTab
	for _, t := range keyTabs {
		if t.Op == "" || p.Can(t.Op) {
			out = append(out, t)
		}
	}
	sel := 0
	for i, t := range out {
		if t.Value == name {
			sel = i
		}
	}
	out[sel].Selected = true
	return out, out[sel].Value
}

// endpoint is a service and the operations of the route catalogue the
// key's scope reaches there.
type endpoint struct {
	Service string
	Ops     []string
}

// usageRow is one outcome's count over the last 7 days.
type usageRow struct {
	Outcome string
	Total   int64
}

// auditRow is one audit event, with its diff: the fields it changed,
// before and after (never a secret: the audit log holds none, and a
// field named like one is left out all the same).
type auditRow struct {
	At                     time.Time
	Actor, ActorID, Action string
	ObjectType, ObjectID   string
	ObjectPath             string
	Outcome, Reason        string
	Diff                   []fieldDiff
}

// auditRows is how many of the key's latest events its Audit tab lists.
const auditRows = 20

// keyPanels reads the open tab's panel.
func (h *Handler) keyPanels(ctx context.Context, p *page, k store.Key, tab string, rng usageRange) *keyPanels {
	c := p.session.caller
	kp := &keyPanels{}
	switch tab {
	case "endpoints":
		kp.Endpoints, kp.EndpointsErr = h.endpoints(ctx, p, k)
	case "usage":
		kp.Chart, kp.UsageErr = h.usageChart(ctx, c, map[store.UsageField]string{store.UsageKey: k.Spec.ID}, rng)
	case "sync":
		st, err := h.svc.GetSyncStatus(ctx, c, account.SyncInput{KeyID: k.Spec.ID})
		if err != nil {
			_, kp.SyncErr = statusOf(err)
		} else {
			kp.Sync = &st
		}
	case "audit":
		events, next, err := h.svc.ListAuditEvents(ctx, c, account.AuditFilter{KeyID: k.Spec.ID}, account.PageInput{Size: auditRows})
		if err != nil {
			_, kp.AuditErr = statusOf(err)
		}
		for _, e := range events {
			kp.Audit = append(kp.Audit, newAuditRow(e))
		}
		kp.MoreAudit = next != ""
	}
	return kp
}

// usageDays is the overview's usage window.
const usageDays = 7

// weekByOutcome is the usage of the last 7 days (today included) that
// matches filters, one row per outcome; the message of an error.
func (h *Handler) weekByOutcome(ctx context.Context, c account.Caller, filters map[store.UsageField]string) ([]usageRow, string) {
	series, err := h.svc.GetUsage(ctx, c, account.UsageInput{
		Filters: filters, Granularity: store.Daily, GroupBy: []store.UsageField{store.UsageOutcome},
		Since: store.Daily.Truncate(h.svc.Now().AddDate(0, 0, -usageDays+1)),
	})
	if err != nil {
		_, msg := statusOf(err)
		return nil, msg
	}
	var rows []usageRow
	for _, s := range series {
		rows = append(rows, usageRow{Outcome: s.Group[store.UsageOutcome], Total: s.Total})
	}
	return rows, ""
}

func newAuditRow(e store.AuditEvent) auditRow {
	row := auditRow{At: e.At, Actor: e.Actor.KeyName, ActorID: e.Actor.KeyID, Action: e.Action,
		ObjectType: e.ObjectType, ObjectID: e.ObjectID, ObjectPath: auditObjectPath(e.ObjectType, e.ObjectID), Outcome: e.Outcome, Reason: e.Reason}
	if row.Actor == "" {
		row.Actor = e.Actor.KeyID
	}
	if row.Actor == "" {
		row.Actor = "bootstrap"
	}
	row.Diff = diffOf(e.Before, e.After)
	return row
}

// endpoints are the catalogue's operations the key's effective scope
// (its own and its roles', SPEC §11) allows, among the services that
// accept its type.
func (h *Handler) endpoints(ctx context.Context, p *page, k store.Key) ([]endpoint, string) {
	c := p.session.caller
	parts := []string{k.Spec.Scope}
	if len(k.RoleIDs) > 0 {
		if !p.Can("serviceAccessRole") {
			return nil, "the key holds roles, which this session may not read"
		}
		for _, id := range k.RoleIDs {
			r, err := h.svc.GetServiceAccessRole(ctx, c, id)
			if err != nil {
				_, msg := statusOf(err)
				return nil, msg
			}
			parts = append(parts, r.Scope)
		}
	}
	var scopes []*scope.Scope
	for _, text := range parts {
		sc, err := scope.Parse(text)
		if err != nil {
			return nil, "scope: " + err.Error()
		}
		scopes = append(scopes, sc)
	}
	sc := scopes[0]
	if len(scopes) > 1 {
		if scopes[0].IsEmpty() {
			scopes = scopes[1:] // an empty own scope adds nothing to roles (SPEC §11)
		}
		sc = scope.Union(scopes...)
	}
	cat, err := h.svc.Services(ctx, c)
	if err != nil {
		_, msg := statusOf(err)
		return nil, msg
	}
	var out []endpoint
	for _, s := range cat {
		if !slices.Contains(s.KeyTypes, k.Spec.Type.String()) {
			continue
		}
		e := endpoint{Service: s.Name}
		for _, kind := range s.Kinds {
			for _, op := range kind.Operations {
				if sc.Allows(s.Name, kind.Name, op) {
					e.Ops = append(e.Ops, kind.Name+":"+op)
				}
			}
		}
		if len(e.Ops) > 0 {
			out = append(out, e)
		}
	}
	return out, ""
}

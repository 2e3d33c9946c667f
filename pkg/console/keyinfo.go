package console

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/scope"
	"github.com/keygate/keygate/pkg/store"
)

// keyPanels are the key page's panels beyond its settings (Contentserv's
// Endpoint tab, Unkey's usage and logs, SBS's sync status), each read
// with its own operation and shown only when the session may read it. A
// panel that cannot be read says so; the rest of the page stands.
type keyPanels struct {
	Endpoints    []endpoint
	EndpointsErr string
	Usage        []usageRow
	UsageErr     string
	ShowUsage    bool
	Sync         *account.SyncStatus
	SyncErr      string
	Audit        []auditRow
	AuditErr     string
	ShowAudit    bool
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

// auditRow is one audit event about the key, with its before and after
// as indented JSON (never a secret: the audit log holds none).
type auditRow struct {
	At                          time.Time
	Actor, Action               string
	Outcome, Reason             string
	Before, After               string
	ChangedBefore, ChangedAfter []string
}

// usageDays is the key page's usage window.
const usageDays = 7

// auditRows is how many of the key's latest events its page lists.
const auditRows = 20

func (h *Handler) keyPanels(ctx context.Context, p *page, k store.Key) *keyPanels {
	c := p.session.caller
	kp := &keyPanels{}
	if p.Can("services") {
		kp.Endpoints, kp.EndpointsErr = h.endpoints(ctx, p, k)
	}
	if p.Can("usage") {
		kp.ShowUsage = true
		kp.Usage, kp.UsageErr = h.weekByOutcome(ctx, c, map[store.UsageField]string{store.UsageKey: k.Spec.ID})
	}
	if p.Can("syncStatus") {
		st, err := h.svc.GetSyncStatus(ctx, c, account.SyncInput{KeyID: k.Spec.ID})
		if err != nil {
			_, kp.SyncErr = statusOf(err)
		} else {
			kp.Sync = &st
		}
	}
	if p.Can("auditEvents") {
		kp.ShowAudit = true
		events, _, err := h.svc.ListAuditEvents(ctx, c, account.AuditFilter{KeyID: k.Spec.ID}, account.PageInput{Size: auditRows})
		if err != nil {
			_, kp.AuditErr = statusOf(err)
		}
		for _, e := range events {
			kp.Audit = append(kp.Audit, newAuditRow(e))
		}
	}
	return kp
}

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
	row := auditRow{At: e.At, Actor: e.Actor.KeyName, Action: e.Action, Outcome: e.Outcome, Reason: e.Reason,
		Before: indent(e.Before), After: indent(e.After)}
	if row.Actor == "" {
		row.Actor = e.Actor.KeyID
	}
	row.ChangedBefore, row.ChangedAfter = changed(e.Before, e.After)
	return row
}

func indent(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}

// changed lists the top-level fields whose values differ, as
// "field: value" lines of before and after: the event's diff.
func changed(before, after json.RawMessage) (was, now []string) {
	var b, a map[string]json.RawMessage
	_ = json.Unmarshal(before, &b)
	_ = json.Unmarshal(after, &a)
	if b == nil || a == nil {
		return nil, nil
	}
	var fields []string
	for f := range a {
		fields = append(fields, f)
	}
	for f := range b {
		if _, ok := a[f]; !ok {
			fields = append(fields, f)
		}
	}
	slices.Sort(fields)
	for _, f := range fields {
		if !bytes.Equal(b[f], a[f]) {
			was = append(was, f+": "+string(orNone(b[f])))
			now = append(now, f+": "+string(orNone(a[f])))
		}
	}
	return was, now
}

func orNone(v json.RawMessage) json.RawMessage {
	if len(v) == 0 {
		return json.RawMessage("(none)")
	}
	return v
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

package accountcli

import (
	"encoding/json"
	"fmt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// AuditCmd is `keygate audit`: the account's audit events, newest first,
// with filters.
type AuditCmd struct {
	ClientFlags
	pageFlags
	Key     string `name:"key" placeholder:"KEY" help:"Only events about this key (its id, or the name of a key that still exists): its creation, changes, deletion and refused attempts on it."`
	Actor   string `name:"actor" placeholder:"KEY" help:"Only events made (or attempted) by this account key (its id, or the name of a key that still exists)."`
	Action  string `name:"action" placeholder:"ACTION" help:"Only this action (e.g. key.update), or every action on one type of object (key.*, app.*, tenant.*, account.*)."`
	Outcome string `name:"outcome" placeholder:"OUTCOME" help:"Only allowed events (changes made) or denied ones (calls refused by the escalation rule)."`
	Since   string `name:"since" placeholder:"TIME" help:"Only events at or after TIME: RFC 3339 (2027-01-01T09:00:00Z), a date (2027-01-01, midnight UTC) or a duration back from now (30m, 24h, 7d)."`
	Until   string `name:"until" placeholder:"TIME" help:"Only events before TIME, written as for --since."`
}

var auditHeader = []string{"ID", "TIME", "ACTOR", "ACTION", "OBJECT", "CHANGES"}

// request is the first page's request of c's filters, at now.
func (c *AuditCmd) request(now time.Time) (*accountv1.ListAuditEventsRequest, error) {
	r := &accountv1.ListAuditEventsRequest{
		PageSize: c.PageSize, PageToken: c.PageToken,
		KeyId: c.Key, ActorKeyId: c.Actor, Action: c.Action,
	}
	switch c.Outcome {
	case "", "allowed", "denied":
		r.Outcome = c.Outcome
	default:
		return nil, fmt.Errorf("--outcome: want allowed or denied, got %q", c.Outcome)
	}
	for _, f := range []struct {
		name, value string
		dst         **timestamppb.Timestamp
	}{{"since", c.Since, &r.Since}, {"until", c.Until, &r.Until}} {
		if f.value == "" {
			continue
		}
		t, err := parseAuditTime(f.name, f.value, now)
		if err != nil {
			return nil, err
		}
		*f.dst = timestamppb.New(t)
	}
	return r, nil
}

func (c *AuditCmd) Run(e *Env) error {
	req, err := c.request(time.Now())
	if err != nil {
		return err
	}
	return run(&c.ClientFlags, e, func(cl *client) error {
		if req.KeyId, err = auditKeyID(cl, req.KeyId); err != nil {
			return err
		}
		if req.ActorKeyId, err = auditKeyID(cl, req.ActorKeyId); err != nil {
			return err
		}
		var all []*accountv1.AuditEvent
		err := c.pages(cl, func(token string) (string, error) {
			r := proto.Clone(req).(*accountv1.ListAuditEventsRequest)
			r.PageToken = token
			resp, err := call(cl, cl.api.ListAuditEvents, r)
			all = append(all, resp.GetEvents()...)
			return resp.GetNextPageToken(), err
		})
		if err != nil {
			return err
		}
		msgs := make([]proto.Message, len(all))
		rows := make([][]string, len(all))
		for i, ev := range all {
			msgs[i] = ev
			rows[i] = auditRow(ev)
		}
		return cl.out.list(msgs, auditHeader, rows)
	})
}

// auditRow is an event's table row.
func auditRow(ev *accountv1.AuditEvent) []string {
	actor := withName(ev.GetActorKeyId(), ev.GetActorKeyName())
	if actor == "" {
		actor = "(bootstrap)"
	}
	object := ev.GetObjectType()
	if ev.GetObjectId() != "" {
		object += " " + ev.GetObjectId()
	}
	action := ev.GetAction()
	if ev.GetOutcome() == "denied" {
		action += " (denied)"
	}
	return []string{strconv.FormatInt(ev.GetId(), 10), fmtTime(ev.GetTime()), actor, action, object, auditChanges(ev)}
}

// auditKeyID is the key id a --key or --actor value names: a live key's
// id or name (resolveKey's rules), else the value itself, since the events
// of a deleted key are still found by its id.
func auditKeyID(cl *client, arg string) (string, error) {
	if arg == "" {
		return "", nil
	}
	k, id, err := lookupKey(cl, arg)
	switch {
	case status.Code(err) == codes.NotFound:
		return arg, nil
	case err != nil:
		return "", err
	case k != nil:
		return k.GetId(), nil
	}
	return id, nil
}

// maxAuditAgo bounds a duration back from now (time.Duration holds about
// 292 years).
const maxAuditAgo = 100 * 366 * 24 * time.Hour

// parseAuditTime reads flag name's time: RFC 3339 or a date (ParseTime),
// or a duration back from now (ParseDuration, so days too: 7d, 1d12h).
func parseAuditTime(name, s string, now time.Time) (time.Time, error) {
	if t, err := ParseTime(s); err == nil {
		return t, nil
	}
	if d, ok := parseAgo(s); ok {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--%s: want an RFC 3339 time (2027-01-01T09:00:00Z), a date (2027-01-01) or a duration back from now (30m, 24h, 7d), got %q", name, s)
}

// parseAgo reads a positive duration of at most maxAuditAgo.
func parseAgo(s string) (time.Duration, bool) {
	d, err := ParseDuration(s)
	if err != nil || d <= 0 || d > maxAuditAgo {
		return 0, false
	}
	return d, true
}

// Sizes of the CHANGES column.
const (
	changesWidth = 80 // runes of the whole cell (cell's cut)
	valueWidth   = 24 // runes of one value
)

// auditChanges is an event's CHANGES cell: what changed, field by field
// (`active: true → false; scope: "a" → "b"`), or a short summary of what
// was created or deleted; for a denied event, the reason code, then what
// the call attempted. Long values are cut; -o json has them whole.
func auditChanges(ev *accountv1.AuditEvent) string {
	before, after := ev.GetBefore().AsMap(), ev.GetAfter().AsMap()
	hasBefore, hasAfter := ev.GetBefore() != nil, ev.GetAfter() != nil
	denied := ev.GetOutcome() == "denied"
	verb := ev.GetAction()[strings.LastIndex(ev.GetAction(), ".")+1:]
	var parts []string
	if denied {
		// The reason code; ACTION says "(denied)".
		reason, _, _ := strings.Cut(ev.GetReason(), ":")
		if reason == "" {
			reason = "refused"
		}
		parts = append(parts, reason)
	}
	switch {
	case hasAfter && (!hasBefore || verb == "create"):
		word := "created"
		if denied {
			word = "would create"
		}
		parts = append(parts, word+" "+summary(after))
	case hasBefore && (!hasAfter && verb != "regenerate" || verb == "delete"):
		if !denied {
			parts = append(parts, "deleted "+summary(before))
		}
	case hasBefore && hasAfter:
		if verb == "regenerate" {
			parts = append(parts, "new secret")
		}
		parts = append(parts, fieldChanges(before, after)...)
	case verb == "regenerate":
		parts = append(parts, "new secret")
	}
	return joinWithin(parts, changesWidth)
}

// summary names a created or deleted record: a key by its type, name,
// app, tenant and scope; anything else by its name.
func summary(rec map[string]any) string {
	var out []string
	name := fieldValue("name", rec["name"])
	if typ, ok := rec["type"].(string); ok {
		out = append(out, typ+" key "+name)
		for _, f := range []string{"app_id", "tenant_id"} {
			if id, ok := rec[f].(string); ok && id != "" {
				out = append(out, strings.TrimSuffix(f, "_id")+" "+cut(id, valueWidth))
			}
		}
		if sc, ok := rec["scope"]; ok {
			out = append(out, "scope "+fieldValue("scope", sc))
		}
	} else {
		out = append(out, name)
	}
	if a, ok := rec["active"].(bool); ok && !a {
		out = append(out, "inactive")
	}
	return strings.Join(out, ", ")
}

// fieldChanges lists the fields whose values differ, by name, as
// `name: old → new` ("-" for absent); updated_at, which every change
// moves, is left out.
func fieldChanges(before, after map[string]any) []string {
	var names []string
	for k := range before {
		names = append(names, k)
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var out []string
	for _, k := range names {
		b, bok := before[k]
		a, aok := after[k]
		if k == "updated_at" || bok == aok && reflect.DeepEqual(a, b) {
			continue
		}
		old, nu := "-", "-"
		if bok {
			old = fieldValue(k, b)
		}
		if aok {
			nu = fieldValue(k, a)
		}
		out = append(out, k+": "+old+" → "+nu)
	}
	return out
}

// fieldValue is one value of a record, short: strings quoted, times to
// the second, lists and objects as JSON, each cut to valueWidth runes.
func fieldValue(field string, v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if field == "scope" && strings.TrimSpace(x) == "" {
			return "* (all)"
		}
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return t.UTC().Format(time.RFC3339)
		}
		return strconv.Quote(cut(x, valueWidth))
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "?"
	}
	return cut(string(b), valueWidth)
}

// cut shortens s to n runes, the last being "…".
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n < 1 {
		return ""
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// joinWithin joins parts with "; " in at most width runes: the parts that
// fit, then "+N more" for those that do not (a first part too long alone
// is cut).
func joinWithin(parts []string, width int) string {
	var b strings.Builder
	used := 0
	for i, p := range parts {
		sep := ""
		if i > 0 {
			sep = "; "
		}
		more := ""
		if rest := len(parts) - i - 1; rest > 0 {
			more = fmt.Sprintf("; +%d more", rest)
		}
		n := utf8.RuneCountInString(p)
		if used+len(sep)+n+len(more) <= width {
			b.WriteString(sep + p)
			used += len(sep) + n
			continue
		}
		if i == 0 {
			b.WriteString(cut(p, width-len(more)))
			b.WriteString(more)
			break
		}
		b.WriteString(fmt.Sprintf("; +%d more", len(parts)-i))
		break
	}
	return b.String()
}

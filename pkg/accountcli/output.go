package accountcli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/accountgrpc"
	"github.com/keygate/keygate/pkg/authz"
)

// printer writes tables or JSON.
type printer struct {
	w    io.Writer
	json bool
}

var jsonOpts = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// marshal is protojson with the proto field names, re-indented:
// protojson varies its white space on purpose, which a CLI's output
// should not.
func marshal(m proto.Message) ([]byte, error) {
	b, err := jsonOpts.Marshal(m)
	if err != nil {
		return nil, err
	}
	if b, err = cliEnums(b, m.ProtoReflect().Descriptor()); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// object prints one message: as JSON, or as a two-column field table.
func (p printer) object(m proto.Message, rows [][2]string) error {
	if p.json {
		b, err := marshal(m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.w, "%s\n", b)
		return err
	}
	tw := newTable(p.w)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r[0], cell(r[1]))
	}
	return tw.Flush()
}

// list prints messages: as a JSON array, or as a table with a header row.
func (p printer) list(msgs []proto.Message, header []string, rows [][]string) error {
	if p.json {
		var b bytes.Buffer
		b.WriteString("[")
		for i, m := range msgs {
			if i > 0 {
				b.WriteString(",")
			}
			j, err := jsonOpts.Marshal(m)
			if err != nil {
				return err
			}
			if j, err = cliEnums(j, m.ProtoReflect().Descriptor()); err != nil {
				return err
			}
			b.Write(j)
		}
		b.WriteString("]")
		var out bytes.Buffer
		if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
			return err
		}
		out.WriteString("\n")
		_, err := p.w.Write(out.Bytes())
		return err
	}
	tw := newTable(p.w)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		for i := range r {
			r[i] = cell(r[i])
		}
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// line prints a plain message in table mode (nothing in JSON mode, whose
// output is the object printed before or after).
func (p printer) line(format string, args ...any) error {
	if p.json {
		return nil
	}
	_, err := fmt.Fprintf(p.w, format+"\n", args...)
	return err
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

// cell makes a value safe for one table cell: control characters (tabs
// and newlines would break the alignment) are escaped, empty is "-", and
// long values are cut.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == 80 {
			b.WriteString("…")
			break
		}
		n++
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func fmtTime(t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// TypeName is the CLI's name of a key type: authz's (service, app,
// account), "unknown" for anything else.
func TypeName(t accountv1.KeyType) string {
	kt, _ := accountgrpc.KeyTypeFromProto(t)
	return kt.String()
}

// typeFromName is the API enum of a key type's name; unspecified for
// anything else.
func typeFromName(s string) accountv1.KeyType {
	kt, err := authz.ParseKeyType(s)
	if err != nil {
		return accountv1.KeyType_KEY_TYPE_UNSPECIFIED
	}
	return accountgrpc.KeyTypeProto(kt)
}

func originName(o accountv1.KeyOrigin) string {
	switch o {
	case accountv1.KeyOrigin_KEY_ORIGIN_GENERATED:
		return "generated"
	case accountv1.KeyOrigin_KEY_ORIGIN_CUSTOM:
		return "custom"
	}
	return ""
}

// ownerRows is the field table of an app or tenant.
func ownerRows(id, name, desc string, active bool, created, updated *timestamppb.Timestamp) [][2]string {
	return [][2]string{
		{"ID", id},
		{"NAME", name},
		{"DESCRIPTION", desc},
		{"ACTIVE", yesNo(active)},
		{"CREATED", fmtTime(created)},
		{"UPDATED", fmtTime(updated)},
	}
}

func keyRows(k *accountv1.Key) [][2]string {
	var headers []string
	for _, h := range k.GetResponseHeaders() {
		s := h.GetName() + "=" + h.GetValue()
		if h.GetDisabled() {
			s += " (disabled)"
		}
		headers = append(headers, s)
	}
	rows := [][2]string{
		{"ID", k.GetId()},
		{"NAME", k.GetName()},
		{"TYPE", TypeName(k.GetType())},
		{"APP", withName(k.GetAppId(), k.GetAppName())},
		{"TENANT", withName(k.GetTenantId(), k.GetTenantName())},
		{"ACTIVE", yesNo(k.GetActive())},
		{"SCOPE", ScopeText(k.GetScope())},
		{"GROUP", k.GetGroup()},
		{"DESCRIPTION", k.GetDescription()},
		{"NOT BEFORE", fmtTime(k.GetNotBefore())},
		{"EXPIRES", fmtTime(k.GetExpiresAt())},
		{"IP FILTERS", strings.Join(k.GetIpFilters(), ", ")},
		{"HEADERS", strings.Join(headers, ", ")},
		{"ROLES", strings.Join(k.GetRoleIds(), ", ")},
		{"RATE LIMIT", rateLimitText(k.GetRateLimit())},
		{"QUOTA", quotaText(k.GetQuota())},
		{"ORIGIN", originName(k.GetOrigin())},
		{"CREATED", fmtTime(k.GetCreateTime())},
		{"UPDATED", fmtTime(k.GetUpdateTime())},
		{"LAST USED", fmtTime(k.GetLastUsedTime())},
	}
	if t := k.GetPreviousSecretExpireTime(); t != nil {
		rows = append(rows, [2]string{"OLD SECRET VALID UNTIL", fmtTime(t)})
	}
	return rows
}

// AllScope is how tables show an empty scope. An empty scope allows every
// operation, so "-" (the sign of an empty cell) would read as "nothing".
const AllScope = "* (every operation of the services accepting its type)"

// ScopeText is a scope as people read it: AllScope for an empty one. JSON
// keeps the stored value (""), which scripts compare against what they set.
func ScopeText(scope string) string {
	if strings.TrimSpace(scope) == "" {
		return AllScope
	}
	return scope
}

func withName(id, name string) string {
	if id == "" || name == "" || name == id {
		return id
	}
	return id + " (" + name + ")"
}

var keyHeader = []string{"ID", "NAME", "TYPE", "APP", "TENANT", "ACTIVE", "GROUP", "SCOPE", "EXPIRES", "LAST USED"}

func keyRow(k *accountv1.Key) []string {
	return []string{
		k.GetId(), k.GetName(), TypeName(k.GetType()), k.GetAppId(), k.GetTenantId(), yesNo(k.GetActive()),
		k.GetGroup(), ScopeText(k.GetScope()), fmtTime(k.GetExpiresAt()), fmtTime(k.GetLastUsedTime()),
	}
}

package accountcli

import (
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// UsageCmd is `keygate usage`: the account's usage (SPEC §12), one row per
// series with its total and a sparkline.
type UsageCmd struct {
	ClientFlags
	Since       string   `name:"since" default:"7d" placeholder:"TIME" help:"Start of the range: RFC 3339 (2027-01-01T09:00:00Z), a date (2027-01-01, midnight UTC) or a duration back from now (24h, 7d). At most 400 days before --until."`
	Until       string   `name:"until" placeholder:"TIME" help:"End of the range (excluded), written as for --since; default now."`
	Granularity string   `name:"granularity" default:"day" enum:"hour,day,month" help:"Width of a point: hour, day or month (UTC)."`
	By          []string `name:"by" sep:"," placeholder:"FIELDS" help:"Group by these fields, comma-separated: tenant, app, key, service, operation, outcome. None: one row of totals."`
	Tenant      *string  `name:"tenant" placeholder:"ID" help:"Only this tenant's keys."`
	App         *string  `name:"app" placeholder:"ID" help:"Only this app's keys."`
	Key         *string  `name:"key" placeholder:"KEY" help:"Only this key (its id, or the name of a key that still exists)."`
	Service     *string  `name:"service" placeholder:"NAME" help:"Only this service."`
	Operation   *string  `name:"operation" placeholder:"NAME" help:"Only this operation."`
	Outcome     *string  `name:"outcome" placeholder:"OUTCOME" help:"Only this outcome: allowed, or a deny reason (scope_denied, ip_not_allowed, …)."`
}

// request is c's request at now.
func (c *UsageCmd) request(now time.Time) (*accountv1.GetUsageRequest, error) {
	r := &accountv1.GetUsageRequest{Granularity: c.Granularity, GroupBy: c.By,
		TenantId: c.Tenant, AppId: c.App, KeyId: c.Key, Service: c.Service, Operation: c.Operation, Outcome: c.Outcome}
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

func (c *UsageCmd) Run(e *Env) error {
	req, err := c.request(time.Now())
	if err != nil {
		return err
	}
	return run(&c.ClientFlags, e, func(cl *client) error {
		if req.KeyId != nil {
			id, err := auditKeyID(cl, *req.KeyId)
			if err != nil {
				return err
			}
			req.KeyId = &id
		}
		resp, err := call(cl, cl.api.GetUsage, req)
		if err != nil {
			return err
		}
		if cl.out.json {
			return cl.out.object(resp, nil)
		}
		header, rows := usageTable(resp, c.By)
		if err := cl.out.list(nil, header, rows); err != nil {
			return err
		}
		return cl.out.line("%s to %s, per %s", fmtTime(resp.GetSince()), fmtTime(resp.GetUntil()), resp.GetGranularity())
	})
}

// usageTable is one row per series: its group values, total and trend.
func usageTable(resp *accountv1.GetUsageResponse, by []string) (header []string, rows [][]string) {
	var fields []string
	for _, f := range by {
		if !containsString(fields, f) {
			fields = append(fields, f)
		}
	}
	for _, f := range fields {
		header = append(header, strings.ToUpper(f))
	}
	header = append(header, "TOTAL", "TREND")
	periods := usagePeriods(resp.GetSince().AsTime(), resp.GetUntil().AsTime(), resp.GetGranularity())
	for _, s := range resp.GetSeries() {
		var row []string
		for _, f := range fields {
			v := s.GetGroup()[f]
			if v == "" {
				v = "(none)"
			}
			row = append(row, v)
		}
		counts := make([]int64, len(periods))
		for _, p := range s.GetPoints() {
			if i := periodIndex(periods, p.GetTime().AsTime()); i >= 0 {
				counts[i] += p.GetCount()
			}
		}
		rows = append(rows, append(row, strconv.FormatInt(s.GetTotal(), 10), Sparkline(counts, maxSparkline)))
	}
	return header, rows
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// maxSparkline is the widest sparkline: longer series are summed into
// this many buckets.
const maxSparkline = 48

// usagePeriods are the starts of the periods in [since, until).
func usagePeriods(since, until time.Time, granularity string) []time.Time {
	since, until = since.UTC(), until.UTC()
	var start time.Time
	next := func(t time.Time) time.Time { return t.Add(time.Hour) }
	switch granularity {
	case "month":
		start = time.Date(since.Year(), since.Month(), 1, 0, 0, 0, 0, time.UTC)
		next = func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }
	case "day":
		start = time.Date(since.Year(), since.Month(), since.Day(), 0, 0, 0, 0, time.UTC)
		next = func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }
	default:
		start = since.Truncate(time.Hour)
	}
	var out []time.Time
	for t := start; t.Before(until) && len(out) < 24*401; t = next(t) {
		out = append(out, t)
	}
	return out
}

// periodIndex is the index of the period starting at t, or -1.
func periodIndex(periods []time.Time, t time.Time) int {
	lo, hi := 0, len(periods)
	for lo < hi {
		m := (lo + hi) / 2
		if periods[m].Before(t) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(periods) && periods[lo].Equal(t) {
		return lo
	}
	return -1
}

var sparks = []rune("▁▂▃▄▅▆▇█")

// Sparkline draws counts as one line of block characters, summing
// neighbours into at most width buckets; every zero is the lowest block,
// the largest count the highest.
func Sparkline(counts []int64, width int) string {
	if len(counts) == 0 {
		return ""
	}
	if width > 0 && len(counts) > width {
		b := make([]int64, width)
		for i, n := range counts {
			b[i*width/len(counts)] += n
		}
		counts = b
	}
	var peak int64
	for _, n := range counts {
		peak = max(peak, n)
	}
	var s strings.Builder
	for _, n := range counts {
		i := 0
		if peak > 0 && n > 0 {
			i = int((n*int64(len(sparks)-1) + peak - 1) / peak) // any count shows above zero
		}
		s.WriteRune(sparks[min(i, len(sparks)-1)])
	}
	return s.String()
}

package console

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/store"
)

// usageRange is a window the key page's usage chart offers: the last 48
// hours by hour, or the last 30 days by day.
type usageRange struct {
	Value, Label string
	gran         store.Granularity
	periods      int
}

var usageRanges = []usageRange{
	{"48h", "Last 48 hours, by hour", store.Hourly, 48},
	{"30d", "Last 30 days, by day", store.Daily, 30},
}

// weekRange is the app and tenant pages' chart: the overview's 7 days
// (today included), by day. It is not one of the key page's ranges.
var weekRange = usageRange{"7d", "Last 7 days, by day", store.Daily, usageDays}

// rangeNamed is the range a ?range= value names; the first for anything
// else.
func rangeNamed(v string) usageRange {
	for _, r := range usageRanges {
		if r.Value == v {
			return r
		}
	}
	return usageRanges[0]
}

// Chart geometry, in the SVG's own units (it scales to its box).
const (
	chartW, chartH      = 720, 240
	chartLeft, chartTop = 56, 12
	chartBottom         = 28
	chartPalette        = 8 // classes c0…c7 in console.css
)

// usageChart is a stacked bar chart of requests by outcome per period,
// drawn server-side as SVG (no script), with a legend and the same
// figures as a table for screen readers and for copying.
type usageChart struct {
	Range   usageRange
	Title   string
	Total   int64
	Legend  []chartSeries
	Bars    []chartBar
	Ticks   []chartTick
	XLabels []chartTick
	// Rows are the table: one per period, counts in Legend order.
	Rows []chartRow
	W, H int
	// PlotLeft, PlotRight, PlotBottom bound the plot area (axis lines).
	PlotLeft, PlotRight, PlotBottom int
}

type chartSeries struct {
	Outcome string
	Class   string
	Total   int64
}

type chartBar struct {
	X, W  string
	Label string // the period and its counts (a tooltip)
	Segs  []chartSeg
}

type chartSeg struct {
	Y, H  string
	Class string
}

type chartTick struct {
	Pos   string // y of a grid line, x of a period label
	Label string
}

type chartRow struct {
	Period string
	Counts []int64
	Total  int64
}

// usageChart reads the usage filters select (a key's, an app's or a
// tenant's) over rng from the service, one series per outcome, and lays
// the chart out; the message of an error.
func (h *Handler) usageChart(ctx context.Context, c account.Caller, filters map[store.UsageField]string, rng usageRange) (*usageChart, string) {
	now := h.svc.Now()
	since := rng.gran.Truncate(now)
	if rng.gran == store.Hourly {
		since = since.Add(-time.Duration(rng.periods-1) * time.Hour)
	} else {
		since = since.AddDate(0, 0, -(rng.periods - 1))
	}
	series, err := h.svc.GetUsage(ctx, c, account.UsageInput{
		Filters: filters, Granularity: rng.gran,
		GroupBy: []store.UsageField{store.UsageOutcome}, Since: since,
	})
	if err != nil {
		_, msg := statusOf(err)
		return nil, msg
	}
	return layoutChart(series, rng, since), ""
}

// layoutChart places the bars: one per period from since, each the stack
// of its outcomes' counts, allowed first (the palette keeps it green and
// gives the deny reasons the other colours).
func layoutChart(series []store.UsageSeries, rng usageRange, since time.Time) *usageChart {
	ch := &usageChart{Range: rng, W: chartW, H: chartH,
		PlotLeft: chartLeft, PlotRight: chartW - 4, PlotBottom: chartH - chartBottom}
	ch.Title = "Requests by outcome, " + lowerFirst(rng.Label)
	// Allowed first, then the deny reasons in the service's order.
	ordered := make([]store.UsageSeries, 0, len(series))
	for _, s := range series {
		if s.Group[store.UsageOutcome] == store.UsageOutcomeAllowed {
			ordered = append(ordered, s)
		}
	}
	for _, s := range series {
		if s.Group[store.UsageOutcome] != store.UsageOutcomeAllowed {
			ordered = append(ordered, s)
		}
	}
	periods := make([]time.Time, rng.periods)
	index := map[time.Time]int{}
	for i := range periods {
		if rng.gran == store.Hourly {
			periods[i] = since.Add(time.Duration(i) * time.Hour)
		} else {
			periods[i] = since.AddDate(0, 0, i)
		}
		index[periods[i]] = i
	}
	counts := make([][]int64, len(periods)) // [period][series]
	for i := range counts {
		counts[i] = make([]int64, len(ordered))
	}
	denies := 0
	for j, s := range ordered {
		cls := "c0" // allowed's alone
		if s.Group[store.UsageOutcome] != store.UsageOutcomeAllowed {
			cls = "c" + strconv.Itoa(1+denies%(chartPalette-1))
			denies++
		}
		ch.Legend = append(ch.Legend, chartSeries{Outcome: s.Group[store.UsageOutcome], Class: cls, Total: s.Total})
		ch.Total += s.Total
		for _, pt := range s.Points {
			if i, ok := index[rng.gran.Truncate(pt.Time)]; ok {
				counts[i][j] += pt.Count
			}
		}
	}
	var peak int64
	for i, p := range periods {
		row := chartRow{Period: periodLabel(p, rng.gran), Counts: counts[i]}
		for _, n := range counts[i] {
			row.Total += n
		}
		peak = max(peak, row.Total)
		ch.Rows = append(ch.Rows, row)
	}
	top := niceCeil(peak)
	plotH := float64(ch.PlotBottom - chartTop)
	slot := float64(ch.PlotRight-ch.PlotLeft) / float64(len(periods))
	barW := slot * 0.8
	for _, frac := range []int64{0, 1, 2, 3, 4} {
		v := top * frac / 4
		y := float64(ch.PlotBottom) - plotH*float64(v)/float64(top)
		ch.Ticks = append(ch.Ticks, chartTick{Pos: num(y), Label: strconv.FormatInt(v, 10)})
	}
	every := 6 // an x label every 6 hours, or every 5 days (each day of a week)
	if rng.gran == store.Daily {
		every = 5
	}
	if rng.periods <= usageDays {
		every = 1
	}
	for i, p := range periods {
		x := float64(ch.PlotLeft) + slot*float64(i)
		if i%every == 0 {
			lbl := p.Format("15:04")
			if rng.gran == store.Daily || p.Hour() == 0 {
				lbl = p.Format("Jan 2")
			}
			ch.XLabels = append(ch.XLabels, chartTick{Pos: num(x + slot/2), Label: lbl})
		}
		row := ch.Rows[i]
		if row.Total == 0 {
			continue
		}
		bar := chartBar{X: num(x + (slot-barW)/2), W: num(barW), Label: row.Period + ": " + strconv.FormatInt(row.Total, 10) + " requests"}
		y := float64(ch.PlotBottom)
		for j, n := range row.Counts {
			if n == 0 {
				continue
			}
			hgt := plotH * float64(n) / float64(top)
			y -= hgt
			bar.Segs = append(bar.Segs, chartSeg{Y: num(y), H: num(hgt), Class: ch.Legend[j].Class})
			bar.Label += fmt.Sprintf(", %s %d", ch.Legend[j].Outcome, n)
		}
		ch.Bars = append(ch.Bars, bar)
	}
	return ch
}

// niceCeil is the axis top: four grid steps, each the smallest of 1, 2
// or 5 × 10^k that makes four of them reach n (4 for an empty chart, so
// its grid still reads 0…4).
func niceCeil(n int64) int64 {
	need := max((n+3)/4, 1)
	for step := int64(1); ; step *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if m*step >= need {
				return 4 * m * step
			}
		}
	}
}

func periodLabel(t time.Time, g store.Granularity) string {
	if g == store.Hourly {
		return t.UTC().Format("2006-01-02 15:00")
	}
	return t.UTC().Format("2006-01-02")
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]|0x20) + s[1:]
}

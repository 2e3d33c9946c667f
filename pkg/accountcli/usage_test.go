package accountcli

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

func TestSparkline(t *testing.T) {
	for _, tc := range []struct {
		name   string
		counts []int64
		width  int
		want   string
	}{
		{"empty", nil, 10, ""},
		{"all zero", []int64{0, 0, 0}, 10, "▁▁▁"},
		{"rising", []int64{0, 1, 2, 3, 4, 5, 6, 7}, 10, "▁▂▃▄▅▆▇█"},
		{"a small count shows above zero", []int64{0, 1, 1000}, 10, "▁▂█"},
		{"summed into width", []int64{1, 1, 0, 0, 2, 2}, 3, "▅▁█"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Sparkline(tc.counts, tc.width); got != tc.want {
				t.Errorf("Sparkline(%v) = %q, want %q", tc.counts, got, tc.want)
			}
		})
	}
}

func TestUsageTable(t *testing.T) {
	day := func(d int) *timestamppb.Timestamp {
		return timestamppb.New(time.Date(2026, 5, 1+d, 0, 0, 0, 0, time.UTC))
	}
	resp := &accountv1.GetUsageResponse{Granularity: "day", Since: timestamppb.New(time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)),
		Until: day(4), Series: []*accountv1.UsageSeries{
			{Group: map[string]string{"operation": "read", "outcome": "allowed"}, Total: 9,
				Points: []*accountv1.UsagePoint{{Time: day(0), Count: 1}, {Time: day(3), Count: 8}}},
			{Group: map[string]string{"operation": "", "outcome": "unknown_route"}, Total: 2,
				Points: []*accountv1.UsagePoint{{Time: day(1), Count: 2}}},
		}}
	header, rows := usageTable(resp, []string{"operation", "outcome", "operation"})
	wantHeader := []string{"OPERATION", "OUTCOME", "TOTAL", "TREND"}
	wantRows := [][]string{{"read", "allowed", "9", "▂▁▁█"}, {"(none)", "unknown_route", "2", "▁█▁▁"}}
	if diff := cmp.Diff(wantHeader, header); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantRows, rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

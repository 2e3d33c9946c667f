package accountcli

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"0", 0, ""},
		{"90m", 90 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"-2h", -2 * time.Hour, ""},
		{"7d", 7 * 24 * time.Hour, ""},
		{"0d", 0, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"1d1h1m1s", 25*time.Hour + time.Minute + time.Second, ""},
		{"+30d", 30 * 24 * time.Hour, ""},
		{"-1d", -24 * time.Hour, ""},
		{"-1d12h", -36 * time.Hour, ""},
		{"", 0, "want a duration"},
		{"d", 0, "want a duration"},
		{"7", 0, "want a duration"},
		{"1.5d", 0, "want a duration"},
		{"1h2d", 0, "want a duration"},
		{"1d-2h", 0, "want a duration"},
		{"1dd", 0, "want a duration"},
		{"1d2", 0, "want a duration"},
		{"7days", 0, "want a duration"},
		{"2027-01-01", 0, "want a duration"},
		{"106752d", 0, "too long"},
		{"106751d24h", 0, "too long"},
		{"99999999999999999999d", 0, "too long"},
	} {
		got, err := ParseDuration(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseDuration(%q) = %v, %v; want an error saying %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2027-01-01", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{"2027-01-01T12:30:00Z", time.Date(2027, 1, 1, 12, 30, 0, 0, time.UTC), true},
		{"2027-01-01T12:30:00+02:00", time.Date(2027, 1, 1, 10, 30, 0, 0, time.UTC), true},
		{"2027-02-30", time.Time{}, false},
		{"2027-1-1", time.Time{}, false},
		{"2027-01-01 12:00", time.Time{}, false},
		{"tomorrow", time.Time{}, false},
		{"", time.Time{}, false},
	} {
		got, err := ParseTime(tc.in)
		if tc.ok != (err == nil) || tc.ok && !got.Equal(tc.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "a date (2027-01-01, midnight UTC)") {
			t.Errorf("ParseTime(%q): error %q does not say which forms it takes", tc.in, err)
		}
	}
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		sign time.Duration
		want time.Time
	}{
		{"30d", 1, now.AddDate(0, 0, 30)},
		{"90d", -1, now.AddDate(0, 0, -90)},
		{"720h", 1, now.AddDate(0, 0, 30)},
		{"2027-01-01", 1, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if got, err := parseTimeOrAge("f", tc.in, now, tc.sign); err != nil || !got.Equal(tc.want) {
			t.Errorf("parseTimeOrAge(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if _, err := parseTimeOrAge("expiring-before", "soon", now, 1); err == nil || !strings.Contains(err.Error(), "--expiring-before: want") {
		t.Errorf("parseTimeOrAge(soon) = %v", err)
	}
}

// FuzzParseDuration: no input panics; what parses prints back (Go's
// String) to the same duration; inputs without days parse as Go does.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"7d", "1d12h", "-1d", "+2d3m", "90m", "0", "106751d", "1d-2h", "d", "1.5h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if !strings.Contains(s, "d") {
			g, gerr := time.ParseDuration(s)
			if (err == nil) != (gerr == nil) || err == nil && d != g {
				t.Fatalf("ParseDuration(%q) = %v, %v; time.ParseDuration: %v, %v", s, d, err, g, gerr)
			}
		}
		if err != nil {
			return
		}
		back, err := ParseDuration(d.String())
		if err != nil || back != d {
			t.Fatalf("ParseDuration(%q) = %v, whose String %q parses to %v, %v", s, d, d.String(), back, err)
		}
	})
}

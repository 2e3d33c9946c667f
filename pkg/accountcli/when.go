package accountcli

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"
)

// DurationHelp and TimeHelp are what help texts say the flags take.
const (
	DurationHelp = "a duration: Go units (90m, 36h) and days (7d, 1d12h)"
	TimeHelp     = "an RFC 3339 time (2027-01-01T12:00:00Z) or a date (2027-01-01, midnight UTC)"
)

const day = 24 * time.Hour

// ParseDuration reads a Go duration (300ms, 1h30m, -2h) that may start with
// a number of days: 7d, 1d12h, -1d. A day is 24 hours.
func ParseDuration(s string) (time.Duration, error) {
	body, neg := s, false
	if body != "" && (body[0] == '-' || body[0] == '+') {
		neg, body = body[0] == '-', body[1:]
	}
	n, rest, ok := strings.Cut(body, "d")
	if !ok {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, durationError(s)
		}
		return d, nil
	}
	if n == "" || strings.TrimLeft(n, "0123456789") != "" {
		return 0, durationError(s)
	}
	days, err := strconv.ParseInt(n, 10, 64)
	if err != nil || days > math.MaxInt64/int64(day) {
		return 0, fmt.Errorf("duration %q is too long", s)
	}
	d := time.Duration(days) * day
	if rest != "" {
		if rest[0] == '-' || rest[0] == '+' {
			return 0, durationError(s)
		}
		r, err := time.ParseDuration(rest)
		if err != nil {
			return 0, durationError(s)
		}
		if r > math.MaxInt64-d {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		d += r
	}
	if neg {
		d = -d
	}
	return d, nil
}

func durationError(s string) error {
	return fmt.Errorf("want %s, got %q", DurationHelp, s)
}

// ParseTime reads an RFC 3339 time or a date (2027-01-01: that day's
// midnight, UTC).
func ParseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("want %s, got %q", TimeHelp, s)
}

// parseTime reads ParseTime's forms for flag name.
func parseTime(name, s string) (time.Time, error) {
	t, err := ParseTime(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s: %w", name, err)
	}
	return t, nil
}

// parseTimeOrAge reads a time (ParseTime), or a duration (ParseDuration)
// counted from now (sign +1: into the future, -1: into the past).
func parseTimeOrAge(name, s string, now time.Time, sign time.Duration) (time.Time, error) {
	if d, err := ParseDuration(s); err == nil {
		return now.Add(sign * d), nil
	}
	if t, err := ParseTime(s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--%s: want %s, or %s counted from now (30d), got %q", name, TimeHelp, DurationHelp, s)
}

// Duration is a duration flag that also takes days (ParseDuration).
type Duration time.Duration

// D is the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Decode is kong's mapper: it reads the flag's value with ParseDuration.
func (d *Duration) Decode(ctx *kong.DecodeContext) error {
	var s string
	if err := ctx.Scan.PopValueInto("duration", &s); err != nil {
		return err
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// DurationMapper is a kong mapper for time.Duration flags that reads
// ParseDuration's forms (days included), for a parser whose every
// duration flag should take them:
//
//	kong.TypeMapper(reflect.TypeFor[time.Duration](), accountcli.DurationMapper())
func DurationMapper() kong.MapperFunc {
	return func(ctx *kong.DecodeContext, target reflect.Value) error {
		var s string
		if err := ctx.Scan.PopValueInto("duration", &s); err != nil {
			return err
		}
		d, err := ParseDuration(s)
		if err != nil {
			return err
		}
		target.SetInt(int64(d))
		return nil
	}
}

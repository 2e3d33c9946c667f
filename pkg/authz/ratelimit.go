package authz

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// RateUnit is the unit of a RateLimit (SPEC §12): second, minute, hour or
// day, as Envoy's RateLimitUnit names them.
type RateUnit uint8

// Rate units. RateUnitNone is the zero value: no rate limit.
const (
	RateUnitNone RateUnit = iota
	RateUnitSecond
	RateUnitMinute
	RateUnitHour
	RateUnitDay
)

// MaxRequestsPerUnit bounds RateLimit.RequestsPerUnit: envoyproxy/ratelimit
// counts in uint32, and a billion requests per unit is past any real limit.
const MaxRequestsPerUnit = 1_000_000_000

var rateUnitNames = [...]string{"", "second", "minute", "hour", "day"}

// String is the unit's lower-case name ("second"), "" for none.
func (u RateUnit) String() string {
	if int(u) < len(rateUnitNames) {
		return rateUnitNames[u]
	}
	return "unit(" + strconv.Itoa(int(u)) + ")"
}

// EnvoyName is the unit as Envoy's RateLimitUnit enum spells it ("SECOND"),
// which the limit.dynamic_metadata override of a route's rate_limits reads.
func (u RateUnit) EnvoyName() string { return strings.ToUpper(u.String()) }

// seconds is the length of the unit in seconds, 0 for none.
func (u RateUnit) seconds() uint64 {
	switch u {
	case RateUnitSecond:
		return 1
	case RateUnitMinute:
		return 60
	case RateUnitHour:
		return 3600
	case RateUnitDay:
		return 86400
	}
	return 0
}

// ParseRateUnit reads a unit: second, minute, hour or day (any case), or
// s, m, h, d.
func ParseRateUnit(s string) (RateUnit, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "second", "s", "sec":
		return RateUnitSecond, nil
	case "minute", "m", "min":
		return RateUnitMinute, nil
	case "hour", "h":
		return RateUnitHour, nil
	case "day", "d":
		return RateUnitDay, nil
	}
	return RateUnitNone, fmt.Errorf("unit %q: want second, minute, hour or day", s)
}

// RateLimit is a key's or a role's rate limit (SPEC §12). Envoy enforces it
// through its global rate limit service; keygate only returns it in the
// dynamic metadata of an allow. The zero value is no limit.
type RateLimit struct {
	RequestsPerUnit uint32
	Unit            RateUnit
}

// IsZero reports whether r is no limit.
func (r RateLimit) IsZero() bool { return r == RateLimit{} }

// String is "N/unit" ("5/second"), "" for no limit; ParseRateLimit reads it.
func (r RateLimit) String() string {
	if r.IsZero() {
		return ""
	}
	return strconv.FormatUint(uint64(r.RequestsPerUnit), 10) + "/" + r.Unit.String()
}

// Check validates a limit: none, or a positive count of at most
// MaxRequestsPerUnit per second, minute, hour or day.
func (r RateLimit) Check() error {
	if r.IsZero() {
		return nil
	}
	if r.Unit == RateUnitNone || r.Unit.seconds() == 0 {
		return errors.New("unit required: second, minute, hour or day")
	}
	if r.RequestsPerUnit == 0 {
		return errors.New("requests_per_unit must be positive (leave rate_limit out for no limit)")
	}
	if r.RequestsPerUnit > MaxRequestsPerUnit {
		return fmt.Errorf("requests_per_unit %d is over the maximum %d", r.RequestsPerUnit, MaxRequestsPerUnit)
	}
	return nil
}

// ParseRateLimit reads "N/unit": 5/s, 5/second, 100/minute, 1000/h, 10/day.
// The result is checked (Check); "" is an error (there is nothing to read).
func ParseRateLimit(s string) (RateLimit, error) {
	n, u, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return RateLimit{}, fmt.Errorf("rate limit %q: want N/unit, e.g. 5/s or 100/minute", s)
	}
	count, err := strconv.ParseUint(strings.TrimSpace(n), 10, 32)
	if err != nil {
		return RateLimit{}, fmt.Errorf("rate limit %q: %q is not a positive whole number of requests", s, n)
	}
	unit, err := ParseRateUnit(u)
	if err != nil {
		return RateLimit{}, fmt.Errorf("rate limit %q: %w", s, err)
	}
	r := RateLimit{RequestsPerUnit: uint32(count), Unit: unit}
	if err := r.Check(); err != nil {
		return RateLimit{}, fmt.Errorf("rate limit %q: %w", s, err)
	}
	return r, nil
}

// stricter reports whether a admits fewer requests over time than b (a
// lower rate); at the same rate, the shorter unit (less burst) is stricter.
func (r RateLimit) stricter(b RateLimit) bool {
	// uint64: at most 1e9 * 86400, far from overflow.
	x, y := uint64(r.RequestsPerUnit)*b.Unit.seconds(), uint64(b.RequestsPerUnit)*r.Unit.seconds()
	if x != y {
		return x < y
	}
	return r.Unit < b.Unit
}

// effectiveRateLimit is the limit a key gets: its own when it has one,
// else the most restrictive of its roles' (the lowest rate), else none.
func effectiveRateLimit(own RateLimit, roles []*Role) RateLimit {
	if !own.IsZero() {
		return own
	}
	var eff RateLimit
	for _, r := range roles {
		if r.RateLimit.IsZero() {
			continue
		}
		if eff.IsZero() || r.RateLimit.stricter(eff) {
			eff = r.RateLimit
		}
	}
	return eff
}

// RateLimit is the key's effective rate limit (SPEC §12): the key's own
// rate_limit when it has one, else the most restrictive of its roles'
// (the lowest rate; at the same rate the shorter unit), else none
// (ok false). Computed at compile time.
func (k *Key) RateLimit() (RateLimit, bool) { return k.rateLimit, !k.rateLimit.IsZero() }

package keyfile

import (
	"go.yaml.in/yaml/v3"

	"github.com/keygate/keygate/pkg/authz"
)

var rateLimitFields = []string{"requests_per_unit", "unit"}

// rateLimit reads a key's or a role's rate_limit: {requests_per_unit: N,
// unit: second|minute|hour|day} (SPEC §12); absent is no limit. reported
// says a problem was reported here.
func (p *parser) rateLimit(n *yaml.Node, label string) (authz.RateLimit, bool) {
	before := p.NumErrors()
	f := p.Mapping(n, label, rateLimitFields, "rate_limit: want a mapping {requests_per_unit: N, unit: second|minute|hour|day}")
	if f == nil {
		return authz.RateLimit{}, p.NumErrors() > before
	}
	var r authz.RateLimit
	if v := f["requests_per_unit"].Value; v == nil {
		p.Errorf(n, label, "rate_limit.requests_per_unit", "required: how many requests per unit")
	} else if count, ok := p.Int(v, label, "rate_limit.requests_per_unit", 1, authz.MaxRequestsPerUnit); ok {
		r.RequestsPerUnit = uint32(count)
	}
	if v := f["unit"].Value; v == nil {
		p.Errorf(n, label, "rate_limit.unit", "required: second, minute, hour or day")
	} else if s, ok := p.String(v, label, "rate_limit.unit"); ok {
		u, err := authz.ParseRateUnit(s)
		if err != nil {
			p.Fail(v.Line, label, "rate_limit.unit", err)
		}
		r.Unit = u
	}
	if p.NumErrors() > before {
		return authz.RateLimit{}, true
	}
	return r, false
}

// rateLimitOut is rate_limit as Marshal writes it.
type rateLimitOut struct {
	RequestsPerUnit uint32 `yaml:"requests_per_unit"`
	Unit            string `yaml:"unit"`
}

func rateLimitYAML(r authz.RateLimit) *rateLimitOut {
	if r.IsZero() {
		return nil
	}
	return &rateLimitOut{RequestsPerUnit: r.RequestsPerUnit, Unit: r.Unit.String()}
}

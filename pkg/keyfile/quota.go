package keyfile

import (
	"go.yaml.in/yaml/v3"

	"github.com/keygate/keygate/pkg/authz"
)

var quotaFields = []string{"requests", "period"}

// quota reads a key's or a tenant's quota: {requests: N, period: day|month}
// (SPEC §12; a tenant's is monthly: monthOnly); absent is none. reported
// says a problem was reported here.
func (p *parser) quota(n *yaml.Node, label string, monthOnly bool) (authz.Quota, bool) {
	before := p.NumErrors()
	f := p.Mapping(n, label, quotaFields, "quota: want a mapping {requests: N, period: day|month}")
	if f == nil {
		return authz.Quota{}, p.NumErrors() > before
	}
	var q authz.Quota
	if v := f["requests"].Value; v == nil {
		p.Errorf(n, label, "quota.requests", "required: how many requests per period")
	} else if count, ok := p.Int(v, label, "quota.requests", 1, authz.MaxQuotaRequests); ok {
		q.Requests = int64(count)
	}
	if v := f["period"].Value; v == nil {
		p.Errorf(n, label, "quota.period", "required: day or month")
	} else if s, ok := p.String(v, label, "quota.period"); ok {
		period, err := authz.ParseQuotaPeriod(s)
		switch {
		case err != nil:
			p.Fail(v.Line, label, "quota.period", err)
		case monthOnly && period != authz.QuotaPeriodMonth:
			p.Errorf(v, label, "quota.period", "a tenant's quota is monthly: write period: month")
		}
		q.Period = period
	}
	if p.NumErrors() > before {
		return authz.Quota{}, true
	}
	return q, false
}

// quotaOut is quota as Marshal writes it.
type quotaOut struct {
	Requests int64  `yaml:"requests"`
	Period   string `yaml:"period"`
}

func quotaYAML(q authz.Quota) *quotaOut {
	if q.IsZero() {
		return nil
	}
	return &quotaOut{Requests: q.Requests, Period: q.Period.String()}
}

package issuer

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// issuedTotal counts issue requests. Labels never carry a key, a subject
// or an address: endpoint is axes4, data8 or native; result is issued,
// invalid (400, 413, 415), unauthorized (401), forbidden (403) or error.
var issuedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "licensegate_issued_total",
	Help: "Issue requests answered by license_issuer, by endpoint and result.",
}, []string{"endpoint", "result"})

// registerMetrics adds the collectors to a Caddy metrics registry; doing
// it again (several issuers, reloads) is harmless.
func registerMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	if err := reg.Register(issuedTotal); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return err
		}
	}
	return nil
}

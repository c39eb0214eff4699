package module

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// The gate's metrics. Labels never carry a license, a subject or an
// address: result is allowed, rejected, shadow or passed (store failing
// open), code a reject code or "" for allowed.
var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "licensegate_requests_total",
		Help: "Requests judged by license_gate, by result and reject code.",
	}, []string{"result", "code"})
	storeSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "licensegate_store_seconds",
		Help:    "Time of one counter store round trip.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
	})
	jwksRefreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "licensegate_jwks_refresh_total",
		Help: "Key set fetches, by result (ok or error).",
	}, []string{"result"})
	voidsPending = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "licensegate_store_voids_pending",
		Help: "Voids and refunds waiting for the counter store to answer.",
	})
	voidsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "licensegate_store_voids_dropped_total",
		Help: "Voids and refunds dropped (queue full or store closed): their charges stay counted.",
	})
	blocksTaken = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "licensegate_blocks_taken_total",
		Help: "Credit blocks the counter store granted to this gateway.",
	})
	blocksReturned = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "licensegate_blocks_returned_total",
		Help: "Credit blocks this gateway gave back to the counter store (idle, revoked, credits changed, recalled, config unloaded).",
	})
	blockRecalls = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "licensegate_block_recalls_total",
		Help: "Recalls this gateway sent: the store refused a charge for credits while gateways' blocks held some, and every gateway was asked to give its block of the license back.",
	})
	blockCreditsStranded = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "licensegate_block_credits_stranded_total",
		Help: "Unused credits of blocks whose return failed: counted as used until the license's counters expire.",
	})
	blockCreditsUnused = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "licensegate_block_credits_unused",
		Help: "Credits leased to this gateway in blocks and not yet served: what a crash would strand.",
	}, func() float64 { return float64(blockUnused.Load()) })
	cacheHits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "licensegate_verified_cache_hits_total",
		Help: "Requests whose token was found in the verified-token cache.",
	})
)

// The label sets of the hot path, resolved once.
var (
	allowedTotal = requestsTotal.WithLabelValues("allowed", "")
	passedTotal  = requestsTotal.WithLabelValues("passed", "serviceUnavailable")
)

// registerMetrics adds the collectors to a Caddy metrics registry; doing
// it again (several gates, reloads) is harmless.
func registerMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{requestsTotal, storeSeconds, jwksRefreshes, cacheHits, voidsPending, voidsDropped,
		blocksTaken, blocksReturned, blockRecalls, blockCreditsUnused, blockCreditsStranded} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

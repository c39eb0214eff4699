package redisstore

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/policy"
)

// BenchmarkChargeRedisCPU reports, beside the round trip, what a charge
// costs Redis itself: the usec_per_call of EVALSHA in INFO commandstats,
// over the benchmark's charges alone (the stats are reset first).
func BenchmarkChargeRedisCPU(b *testing.B) {
	srv := testredis.Start(b)
	s := newStore(b, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second, NoPipelining: true})
	ctx := context.Background()
	now := time.Now()
	for _, withID := range []bool{false, true} {
		name := "credits"
		if withID {
			name += "+request id"
		}
		b.Run(name, func(b *testing.B) {
			c := policy.Charge{Key: lk("bench-cpu-" + name + strconv.FormatInt(time.Now().UnixNano(), 10)), Cost: 1, Limit: policy.MaxCredits, Now: now, Expires: now.Add(time.Hour)}
			if _, err := s.Charge(ctx, &c); err != nil { // loads the script
				b.Fatal(err)
			}
			if _, err := srv.Do("config", "resetstat"); err != nil {
				b.Fatal(err)
			}
			i := 0
			for b.Loop() {
				if withID {
					i++
					c.Request = strconv.Itoa(i)
				}
				if r, err := s.Charge(ctx, &c); err != nil || r.Outcome != policy.Allowed {
					b.Fatalf("Charge = %+v, %v", r, err)
				}
			}
			b.ReportMetric(evalshaUsecPerCall(b, srv), "redis-µs/charge")
		})
	}
}

// evalshaUsecPerCall reads cmdstat_evalsha's usec_per_call.
func evalshaUsecPerCall(b *testing.B, srv *testredis.Server) float64 {
	b.Helper()
	info, err := srv.Do("info", "commandstats")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_evalsha:") {
			continue
		}
		for field := range strings.SplitSeq(strings.TrimSpace(strings.TrimPrefix(line, "cmdstat_evalsha:")), ",") {
			if v, ok := strings.CutPrefix(field, "usec_per_call="); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					b.Fatal(err)
				}
				return f
			}
		}
	}
	b.Fatalf("no cmdstat_evalsha in %q", info)
	return 0
}

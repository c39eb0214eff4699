package module

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/module/redisstore"
	"github.com/licensegate/licensegate/policy"
)

// countingRedis is the Redis store counting its round trips: charges
// (a block taken or ended rides on one), and return pipelines with the
// returns they carry.
type countingRedis struct {
	*redisstore.Store
	charges, batches, returns atomic.Int64
}

func (c *countingRedis) Charge(ctx context.Context, ch *policy.Charge) (policy.Result, error) {
	c.charges.Add(1)
	return c.Store.Charge(ctx, ch)
}

func (c *countingRedis) ReturnBlocks(ctx context.Context, rs []policy.BlockReturn) []error {
	c.batches.Add(1)
	c.returns.Add(int64(len(rs)))
	return c.Store.ReturnBlocks(ctx, rs)
}

// arrival is a license's next request in the Poisson load.
type arrival struct {
	at  time.Duration
	lic int
}

type arrivals []arrival

func (a arrivals) Len() int           { return len(a) }
func (a arrivals) Less(i, j int) bool { return a[i].at < a[j].at }
func (a arrivals) Swap(i, j int)      { a[i], a[j] = a[j], a[i] }
func (a *arrivals) Push(x any)        { *a = append(*a, x.(arrival)) }
func (a *arrivals) Pop() any {
	old := *a
	x := old[len(old)-1]
	*a = old[:len(old)-1]
	return x
}

// lowRateLicenses is how many licenses the low-rate load drives
// (LICENSEGATE_LOWRATE_LICENSES overrides it, e.g. 10000 as the load
// harness's pool).
func lowRateLicenses(t *testing.T) int {
	n := 1000
	if v := os.Getenv("LICENSEGATE_LOWRATE_LICENSES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			t.Fatalf("LICENSEGATE_LOWRATE_LICENSES=%q", v)
		}
	}
	return n
}

// TestQuietLicensesMakeFewStoreRoundTrips drives many licenses, each with
// Poisson arrivals at λ requests a second, through one gateway's block
// table on a real Redis, on a virtual clock with the sweeper's ticks every
// blockSweepEvery; it counts the store round trips per request after a
// warm-up, checks that the store counted exactly what was served, and
// reports the credits leased and unused (what a crash would strand).
func TestQuietLicensesMakeFewStoreRoundTrips(t *testing.T) {
	srv := testredis.Start(t)
	n := lowRateLicenses(t)
	for _, tc := range []struct {
		name     string
		rate     float64 // λ per license
		licenses int
		maxTrips float64 // round trips per request at most
	}{
		{"half a request a second each", 0.5, n, 0.25},
		{"one request a second each", 1, n, 0.07},
		{"two requests a second each", 2, n, 0.05},
		{"ten requests a second each", 10, max(n/10, 1), 0.05},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := redisstore.New(redisstore.Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second,
				Prefix: "lowrate" + strconv.FormatFloat(tc.rate, 'f', -1, 64) + ":"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			cs := &countingRedis{Store: s}
			tb := newBlockTable(cs, s, 5*time.Second)
			tb.startOnce.Do(func() {}) // the test sweeps on its own clock
			base := time.Now()
			// The warm-up outlasts a least block at 1 request a second, so
			// that blocks are taken and ended at their steady pace.
			const warm, run = 40 * time.Second, 100 * time.Second
			const credits = 1_000_000_000_000
			rng := rand.New(rand.NewPCG(18, uint64(tc.rate*1000)))
			next := func() time.Duration {
				return time.Duration(rng.ExpFloat64() / tc.rate * float64(time.Second))
			}
			keys := make([]policy.LicenseKey, tc.licenses)
			served := make([]int64, tc.licenses)
			q := make(arrivals, 0, tc.licenses)
			for i := range keys {
				keys[i] = policy.LicenseKey{Issuer: "https://iss", Key: "pool-" + strconv.Itoa(i)}
				q = append(q, arrival{next(), i})
			}
			heap.Init(&q)
			var requests, charges0, batches0, returns0 int64
			var unusedSum, unusedMax, sweeps, licMax int64
			sweepAt := blockSweepEvery
			for q[0].at < run {
				ev := heap.Pop(&q).(arrival)
				for ; sweepAt <= ev.at; sweepAt += blockSweepEvery {
					tb.sweep(base.Add(sweepAt))
					if sweepAt < warm {
						continue
					}
					u := blockUnused.Load()
					unusedSum, unusedMax, sweeps = unusedSum+u, max(unusedMax, u), sweeps+1
					for i := range tb.shards {
						sh := &tb.shards[i]
						sh.mu.Lock()
						for _, e := range sh.m {
							licMax = max(licMax, e.left)
						}
						sh.mu.Unlock()
					}
				}
				if ev.at >= warm && requests == 0 {
					charges0, batches0, returns0 = cs.charges.Load(), cs.batches.Load(), cs.returns.Load()
				}
				now := base.Add(ev.at)
				a := chargeAsk{key: keys[ev.lic], cost: 1, limit: credits, now: now}
				plan := tb.begin(&a)
				if plan.served {
					served[ev.lic]++
				} else {
					ch := policy.Charge{Key: a.key, Cost: 1, Limit: credits, Now: now, Expires: now.Add(time.Hour),
						Block: plan.ask, EndBlock: plan.end}
					res, err := cs.Charge(context.Background(), &ch)
					tb.finish(&a, plan, res, err, true)
					if err != nil || res.Outcome != policy.Allowed {
						t.Fatalf("charge: %+v, %v", res, err)
					}
					served[ev.lic]++
				}
				if ev.at >= warm {
					requests++
				}
				heap.Push(&q, arrival{ev.at + next(), ev.lic})
			}
			charges := cs.charges.Load() - charges0
			batches := cs.batches.Load() - batches0
			returns := cs.returns.Load() - returns0
			trips := float64(charges+batches) / float64(requests)
			t.Logf("λ=%v, %d licenses, %d requests in %v: %.3f round trips a request (%.3f charges, %.4f return pipelines carrying %.3f returns a request); "+
				"credits leased unused: %.1f a license on average, %d at most in one license, %d at most in all",
				tc.rate, tc.licenses, requests, run-warm, trips, float64(charges)/float64(requests),
				float64(batches)/float64(requests), float64(returns)/float64(requests),
				float64(unusedSum)/float64(sweeps)/float64(tc.licenses), licMax, unusedMax)
			if trips > tc.maxTrips {
				t.Errorf("%.3f store round trips a request, want at most %v", trips, tc.maxTrips)
			}
			// Exact: once every block is back, the store counts what was
			// served, nothing more.
			tb.close(5 * time.Second)
			for i, k := range keys {
				u, err := s.Usage(context.Background(), k, base.Add(run))
				if err != nil {
					t.Fatal(err)
				}
				if u.Used != served[i] || u.Leased != 0 {
					t.Fatalf("%s: served %d; the store holds used %d, leased %d", k.Key, served[i], u.Used, u.Leased)
				}
			}
		})
	}
}

// BenchmarkBlockTableSweep is one sweep of a table of many licenses (the
// sweeper's steady cost every blockSweepEvery), and reports the table's
// heap per license: "blocks", each license holding a block not yet idle;
// "quiet", each seen once and holding none (a large pool of licenses
// too quiet for blocks).
func BenchmarkBlockTableSweep(b *testing.B) {
	for _, bc := range []struct {
		name     string
		n        int
		requests int
	}{{"blocks", 10000, 3}, {"blocks", DefaultBlockTable, 3}, {"quiet", DefaultBlockTable, 1}} {
		n := bc.n
		b.Run(bc.name+"/"+strconv.Itoa(n), func(b *testing.B) {
			s := newBlockStore()
			keys := make([]policy.LicenseKey, n)
			for i := range keys {
				keys[i] = policy.LicenseKey{Issuer: "https://iss", Key: "pool-" + strconv.Itoa(i)}
				s.used[keys[i]], s.leased[keys[i]] = 0, 0
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			tb := newBlockTable(s, s, time.Second)
			tb.startOnce.Do(func() {})
			now := time.Unix(1_000_000, 0)
			for _, k := range keys {
				a := chargeAsk{key: k, cost: 1, limit: 1 << 40, now: now}
				for range bc.requests {
					p := tb.begin(&a)
					if !p.served {
						res, err := s.Charge(context.Background(), &policy.Charge{Key: a.key, Cost: 1, Limit: a.limit, Block: p.ask, EndBlock: p.end})
						tb.finish(&a, p, res, err, true)
					}
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			perLicense := float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
			b.ResetTimer()
			for i := range b.N {
				// Every tick's own time, as the sweeper's.
				tb.sweep(now.Add(blockIdle/2 + time.Duration(i%8)*time.Nanosecond))
			}
			b.StopTimer()
			b.ReportMetric(perLicense, "B/license")
			if s.returns.Load() != 0 {
				b.Fatal("a block went back")
			}
			tb.close(time.Second)
		})
	}
}

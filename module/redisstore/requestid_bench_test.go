package redisstore

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/policy"
)

// BenchmarkChargeRequestID measures what a request id costs a charge on
// the healthy path: the charge script then looks the id up in the req
// bucket of the charge's time and adds it there, setting the bucket's
// expiry when the charge created it (see chargeLua and reqBucket).
// Charges with and without an id alternate in rounds (ABBA, so that drift
// hits both alike), against one real redis-server, each license in its
// steady state: its clock advances by 1/rate a charge, so its live
// buckets hold the ids of the last policy.UndoWindow. Reported, as
// medians over the rounds:
//
//   - redis-µs/charge: Redis's own time in the script (INFO commandstats,
//     usec per EVALSHA), and cpu-µs/charge: the whole redis-server
//     process's CPU (INFO's used_cpu_user + used_cpu_sys) per charge;
//   - ns/charge and allocs/charge on the Go side (one charge at a time,
//     so ns/charge is mostly the round trip);
//   - B/license: MEMORY USAGE of the license's keys once its buckets are
//     steady: the buckets live by the license's clock (the ids of
//     UndoWindow at that rate; without ids, none). Redis's clock lags the
//     license's here, so older buckets still exist; in production they
//     have expired.
//
// Each figure comes as <name>-noid, <name>-id and <name>-ratio (id / no
// id). Run it with -benchtime=1x: the rounds are the repetitions.
//
//	go test ./module/redisstore -run '^$' -bench ChargeRequestID -benchtime=1x
func BenchmarkChargeRequestID(b *testing.B) {
	srv := testredis.Start(b)
	s := newStore(b, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second, NoPipelining: true})
	const (
		rounds = 12
		perRun = 3000 // charges per license per round
	)
	for _, rate := range []int{100, 1000} {
		b.Run(fmt.Sprintf("%d per s", rate), func(b *testing.B) {
			for b.Loop() {
				benchRequestID(b, s, srv, rate, rounds, perRun)
			}
		})
	}
}

// idPhase is one license charged with or without request ids.
type idPhase struct {
	c      policy.Charge
	ids    bool
	seq    uint64
	step   time.Duration
	keys   []string
	figure map[string][]float64
}

func benchRequestID(b *testing.B, s *Store, srv *testredis.Server, rate, rounds, perRun int) {
	ctx := context.Background()
	start := time.Now()
	phases := [2]*idPhase{}
	for i, ids := range []bool{false, true} {
		k := lk(fmt.Sprintf("bench-reqid-%d-%t-%d", rate, ids, start.UnixNano()))
		p := &idPhase{
			c:      policy.Charge{Key: k, Cost: 1, Limit: policy.MaxCredits, Now: start, Expires: start.Add(24 * time.Hour)},
			ids:    ids,
			step:   time.Second / time.Duration(rate),
			keys:   s.keys(k)[:reqIndex],
			figure: map[string][]float64{},
		}
		phases[i] = p
		// Steady state first: a full UndoWindow of ids at this rate.
		warm := int(policy.UndoWindow/time.Second) * rate
		p.run(b, ctx, s, warm)
	}
	for r := range rounds {
		order := []*idPhase{phases[0], phases[1]}
		if r%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, p := range order {
			redisBefore := redisCounters(b, srv)
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			t0 := time.Now()
			p.run(b, ctx, s, perRun)
			elapsed := time.Since(t0)
			runtime.ReadMemStats(&m1)
			redisAfter := redisCounters(b, srv)
			n := float64(perRun)
			calls := redisAfter["calls"] - redisBefore["calls"]
			p.figure["redis-µs/charge"] = append(p.figure["redis-µs/charge"], (redisAfter["usec"]-redisBefore["usec"])/calls)
			p.figure["cpu-µs/charge"] = append(p.figure["cpu-µs/charge"], (redisAfter["cpu"]-redisBefore["cpu"])*1e6/n)
			p.figure["ns/charge"] = append(p.figure["ns/charge"], float64(elapsed.Nanoseconds())/n)
			p.figure["allocs/charge"] = append(p.figure["allocs/charge"], float64(m1.Mallocs-m0.Mallocs)/n)
		}
	}
	for _, p := range phases {
		var bytes float64
		for _, k := range append(p.keys, p.buckets(s)...) {
			out, err := srv.Do("MEMORY", "USAGE", k, "SAMPLES", "0")
			if err != nil {
				b.Fatal(err)
			}
			if out != "" {
				v, _ := strconv.ParseFloat(out, 64)
				bytes += v
			}
		}
		p.figure["B/license"] = []float64{bytes}
	}
	for _, name := range []string{"redis-µs/charge", "cpu-µs/charge", "ns/charge", "allocs/charge", "B/license"} {
		without, with := median(phases[0].figure[name]), median(phases[1].figure[name])
		b.ReportMetric(without, strings.Replace(name, "/", "-noid/", 1))
		b.ReportMetric(with, strings.Replace(name, "/", "-id/", 1))
		b.ReportMetric(with/without, strings.Replace(name, "/", "-ratio/", 1))
	}
	ids := 0
	for _, k := range phases[1].buckets(s) {
		n, _ := srv.Do("HLEN", k)
		v, _ := strconv.Atoi(n)
		ids += v
	}
	b.Logf("%d per s: %d ids remembered per license with ids, in buckets of %d ms", rate, ids, reqBucketMs)
}

// buckets are the req keys of the phase's license live by its clock: the
// buckets of the last policy.UndoWindow.
func (p *idPhase) buckets(s *Store) []string {
	now := p.c.Now.UnixMilli()
	var out []string
	for b := reqBucket(now - policy.UndoWindow.Milliseconds()); b <= reqBucket(now); b++ {
		if reqForget(b) > now {
			out = append(out, s.keysAt(p.c.Key, b)[reqIndex])
		}
	}
	return out
}

// run charges the phase's license n times, one at a time, advancing its
// clock by its step each time.
func (p *idPhase) run(b *testing.B, ctx context.Context, s *Store, n int) {
	for range n {
		p.c.Now = p.c.Now.Add(p.step)
		if p.ids {
			p.seq++
			p.c.Request = "bnchprefix12." + strconv.FormatUint(p.seq, 36)
		}
		if r, err := s.Charge(ctx, &p.c); err != nil || r.Outcome != policy.Allowed {
			b.Fatalf("Charge = %+v, %v", r, err)
		}
	}
}

// redisCounters reads EVALSHA's calls and usec (INFO commandstats) and the
// server's CPU seconds, user and system (INFO cpu).
func redisCounters(b *testing.B, srv *testredis.Server) map[string]float64 {
	out := map[string]float64{}
	info, err := srv.Do("INFO", "commandstats")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_evalsha:")
		if !ok {
			continue
		}
		for field := range strings.SplitSeq(rest, ",") {
			k, v, _ := strings.Cut(field, "=")
			if k == "calls" || k == "usec" {
				out[k], _ = strconv.ParseFloat(v, 64)
			}
		}
	}
	cpu, err := srv.Do("INFO", "cpu")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(cpu, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, _ := strconv.ParseFloat(v, 64)
			out["cpu"] += f
		}
	}
	return out
}

// median is the middle of xs (the mean of the two middle ones for an
// even count).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

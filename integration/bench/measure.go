package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/module/redisstore"
	"github.com/licensegate/licensegate/policy"
)

// memStage is the memory of every gate instance and of Redis after every
// token of a pool was sent once (stage 0: only the hot token).
//
// Redis is read twice: with the request records the stage's requests
// left (ids kept for a minute, for voids and refunds: per request, not
// per license), then after dropping every record, which leaves the
// licenses' own state.
type memStage struct {
	pool         int
	inst         map[string]memory
	redisUsed    int64 // used_memory of the single node, -1 when unknown
	redisState   int64 // the same without request records, -1 when unknown
	redisKeys    int64 // keys without request records
	clusterUsed  int64
	clusterState int64
}

// fill sends every pool token once to every gate instance that serves
// its pool, pool size by pool size (the pools are prefixes of each other),
// and records the memory after each size.
func (b *bench) fill(ctx context.Context) ([]memStage, error) {
	stage := func(n int) memStage {
		s := memStage{pool: n, inst: map[string]memory{}, redisUsed: -1, redisState: -1, clusterUsed: -1, clusterState: -1}
		for _, in := range b.plan.insts {
			if in.gate {
				s.inst[in.name] = in.memory(b.client)
			}
		}
		s.redisUsed, s.redisState = usedWithAndWithoutRecords(b.redis)
		s.redisKeys, _ = b.redis.keys()
		if b.cluster != nil {
			s.clusterUsed, s.clusterState = usedWithAndWithoutRecords(b.cluster)
		}
		return s
	}
	stages := []memStage{stage(0)}
	prev := 0
	for _, n := range b.plan.pools {
		start := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, len(b.plan.insts))
		for i, in := range b.plan.insts {
			if !in.gate || in.maxPool < n {
				continue
			}
			wg.Go(func() { errs[i] = b.sendTokens(ctx, in, prev, n) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		logf("sent pool tokens %d..%d once to every configuration that serves them (%v)", prev, n-1,
			time.Since(start).Round(time.Millisecond))
		stages = append(stages, stage(n))
		prev = n
	}
	return stages, nil
}

// usedWithAndWithoutRecords reads used_memory, drops the request records
// and reads it again; -1 for what could not be read.
func usedWithAndWithoutRecords(rs *redisSet) (with, without int64) {
	with, without = -1, -1
	if v, err := rs.info("memory", "used_memory"); err == nil {
		with = v
	}
	if _, err := rs.dropRecords(); err != nil {
		logf("%v", err)
		return with, without
	}
	if v, err := rs.info("memory", "used_memory"); err == nil {
		without = v
	}
	return with, without
}

// measureAll warms every group up, then runs the rounds.
func (b *bench) measureAll(ctx context.Context) ([]result, error) {
	if b.o.warmup > 0 {
		for _, g := range b.plan.groups {
			for _, in := range g.insts {
				r, err := b.wrkRun(ctx, in, g.w, b.o.warmup)
				if err != nil {
					return nil, fmt.Errorf("warm-up of %s with %s: %w", in.name, g.w.label, err)
				}
				if r.errors.total() > 0 {
					logf("warning: warm-up of %s with %s had errors (not measured): %v", in.name, g.w.label, r.errors)
				}
			}
		}
	}
	var runs []result
	for round := 1; round <= b.plan.maxRounds(); round++ {
		for _, g := range b.plan.groups {
			if round > g.rounds {
				continue
			}
			for _, in := range g.order(round) {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				d := b.o.duration
				if !g.headline {
					d = b.o.curveDur
				}
				r, err := b.runOnce(ctx, in, g.w, round, d)
				if err != nil {
					return nil, fmt.Errorf("round %d, %s, %s: %w\ncaddy log:\n%s", round, in.name, g.w.label, err, in.p.tail())
				}
				hits := ""
				if !math.IsNaN(r.hitRatio) {
					hits = fmt.Sprintf("  cache hits %.1f%%", 100*r.hitRatio)
				}
				if !math.IsNaN(r.trips) {
					hits += fmt.Sprintf("  store trips/req %.3f", r.trips)
				}
				logf("round %2d  %-3s %-13s %7.0f req/s  p99 %-9v Caddy CPU/req %-8v errors %d%s",
					round, in.name, g.w.label, r.rps, r.p99, perRequest(r.cpu.caddy, r.requests), r.errors.total(), hits)
				runs = append(runs, r)
			}
		}
	}
	return runs, nil
}

// checkRedis confirms that the Redis stores hold a counter for every
// license the gate charged: at least one key per license (the hot token
// and the largest pool sent to C; the cluster's pool for C3).
func (b *bench) checkRedis(stages []memStage) string {
	var parts []string
	verdict := "ok"
	check := func(name string, rs *redisSet, licenses int) {
		keys, err := rs.keys()
		if err != nil {
			parts = append(parts, fmt.Sprintf("%s: %v", name, err))
			verdict = "MISMATCH"
			return
		}
		v := "ok"
		if keys < int64(licenses) {
			v, verdict = "MISMATCH: fewer keys than licenses", "MISMATCH"
		}
		parts = append(parts, fmt.Sprintf("%s holds %d keys for %d licenses (%.1f per license) — %s",
			name, keys, licenses, float64(keys)/float64(licenses), v))
	}
	if c := b.plan.instance("C"); c != nil {
		check("the single node", b.redis, c.maxPool+1)
		// The hot token's counter, read in Redis and through the gate.
		key := redisstore.DefaultPrefix + "{" + redisstore.Tag(policy.LicenseKey{Issuer: benchIssuer, Key: b.toks.hotJTI}) + "}:used"
		viaGate, err := b.used(c, b.toks.hot)
		inRedis, rerr := testredis.Command(b.redis.nodes[0].addr, "GET", key)
		switch {
		case errors.Join(err, rerr) != nil:
			parts, verdict = append(parts, fmt.Sprintf("reading the hot token's counter: %v", errors.Join(err, rerr))), "MISMATCH"
		case inRedis != strconv.FormatInt(viaGate, 10):
			parts, verdict = append(parts, fmt.Sprintf("the hot token's counter `%s` holds %q, the gate reports %d used — MISMATCH",
				key, inRedis, viaGate)), "MISMATCH"
		default:
			parts = append(parts, fmt.Sprintf("the hot token's counter `lg:{<tag>}:used` holds %s, as the gate reports", inRedis))
		}
	}
	if b.cluster != nil {
		check("the cluster", b.cluster, b.plan.instance("C3").maxPool+1)
	}
	return strings.Join(parts, "; ") + "; every hot-token run of B and C raised the license's counter by the requests wrk counted (at most -connections more, in flight at its end) — " + verdict
}

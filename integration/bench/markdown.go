package main

import (
	"fmt"
	"math"
	"strings"

	"github.com/licensegate/licensegate/module"
)

// markdown is RESULTS.md: the environment, the headline with its targets,
// the handler-chain benchmark, the curve, memory, CPU per request, the
// method and every run.
func (rep *report) markdown() string {
	var b strings.Builder
	e, o := rep.env, rep.o
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	head := rep.plan.groups[1].w // the headline pool

	w("# licensegate benchmark results\n\n")
	w("The cost of `license_gate` in front of `reverse_proxy`, measured by the load harness in this folder, ")
	w("and how it grows with the number of distinct licenses. Produced by the command below on a quiet machine; ")
	w("rerun it to replace this file and `%s`.\n\n", curveSVG)
	w("```sh\n%s\n```\n\n", e.command)
	w("| | |\n|---|---|\n")
	w("| date | %s |\n", e.date.Format("2006-01-02 15:04 MST"))
	w("| cores (`nproc`) | %d |\n", e.nproc)
	if e.cpu != "" {
		w("| CPU | %s |\n", e.cpu)
	}
	w("| kernel | %s |\n", e.kernel)
	w("| load average before / after (1, 5, 15 min) | %s / %s |\n", e.loadStart, e.loadEnd)
	w("| Go | %s |\n", e.goVersion)
	w("| Caddy | %s |\n", firstLine(e.caddyVersion))
	w("| commit | %s |\n", e.commit)
	w("| wrk | %s |\n", e.wrkVersion)
	if e.redisVersion != "" {
		w("| Redis | %s |\n", e.redisVersion)
	}
	w("| processes | %s |\n", e.pinning)
	if o.note != "" {
		w("| note | %s |\n", o.note)
	}
	w("| runs | %d connections, %d wrk threads; headline %d rounds × %v, rest of the curve %d rounds × %v |\n",
		o.connections, o.threads, o.rounds, o.duration, o.curveRounds, o.curveDur)
	w("\n")

	w("## Headline\n\n")
	w("In every round each configuration runs once, back to back, in an order rotated per round. `×A` is the run's ")
	w("requests/s divided by A's in the same round; the table gives the median of these paired ratios and, in brackets, ")
	w("a %.0f %% confidence interval of that median (order statistics: for 20 rounds the 6th and 15th smallest ratio; ", 100*confidence)
	w("below 6 rounds only the range). `Caddy CPU` is the CPU time (user + system, from `/proc`) Caddy spent per ")
	w("request: unlike requests/s it hardly depends on what else runs, so its paired ratio (above 1: what the gate adds) ")
	w("is the steadier measure of the gate's own cost. `all CPU` adds wrk, the upstream and Redis. ")
	w("The machine's pace still moves it (on a shared machine the upstream's CPU per request, the same work in every ")
	w("configuration, moves as much), so `÷ upstream ×A` divides each run's Caddy CPU by its upstream's before the ")
	w("pairing, which takes the pace of the run out and gives much narrower intervals. It reads low: the upstream's ")
	w("CPU per request also rises when a gate in front slows Caddy and changes how requests reach it (fewer per ")
	w("wake-up), with the memory store as with Redis, so part of what it divides out is the gate's doing. Take it as ")
	w("a lower bound of the gate's cost, the plain ratio as an upper one.\n\n")
	w("| scenario | tokens | req/s | ×A | Caddy CPU/req | Caddy CPU ×A | ÷ upstream ×A | all CPU/req | p99 | p99 added |\n")
	w("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, g := range rep.plan.groups {
		if !g.headline {
			continue
		}
		for _, in := range g.insts {
			if in.name != "A" && in.name != "B" && in.name != "C" {
				continue
			}
			c := rep.cell(g.w.key, in.name)
			if c == nil {
				continue
			}
			add := "—"
			if in.name != "A" {
				add = signedMS(c.addP99)
			}
			w("| %s: %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", in.name, in.title, g.w.label, c.rps,
				ivText(c.ratio), us(c.cpuCaddy), ivText(c.cpuRatio), ivText(c.paceRatio), us(c.cpuTotal), ms(c.p99), add)
		}
	}
	w("\n")

	w("## Targets\n\n")
	w("A target is met when the whole interval is at or above it, missed when the whole interval is below, and open ")
	w("otherwise (more rounds or a quieter machine decide). The goal for a headline interval is ±%.2f.\n\n", targetHalfInterval)
	w("| what | target | measured | verdict | interval ± |\n|---|--:|--:|---|--:|\n")
	tgt := func(what string, c *cell, target float64) {
		if c == nil {
			return
		}
		w("| %s | ≥ %.2f | %s | %s | %.3f |\n", what, target, ivText(c.ratio), verdict(c.ratio, target), c.ratio.halfWidth())
	}
	tgt("C (Redis), hot token", rep.cell("hot", "C"), targetRedis)
	tgt("C (Redis), "+head.label, rep.cell(head.key, "C"), targetRedis)
	tgt("B (memory), hot token", rep.cell("hot", "B"), targetMemory)
	tgt("B (memory), "+head.label, rep.cell(head.key, "B"), targetMemory)
	cpu := func(what string, iv interval) {
		if iv.ok() {
			w("| %s | ≤ %.2f | %s | %s | %.3f |\n", what, targetRedisCPU, ivText(iv), verdictAtMost(iv, targetRedisCPU), iv.halfWidth())
		}
	}
	for _, wl := range []struct{ key, label string }{{"hot", "hot token"}, {head.key, head.label}} {
		if c := rep.cell(wl.key, "C"); c != nil {
			cpu("C (Redis), "+wl.label+", Caddy CPU ×A", c.cpuRatio)
			cpu("C (Redis), "+wl.label+", Caddy CPU ÷ upstream ×A", c.paceRatio)
		}
	}
	for _, st := range []string{"B", "C"} {
		tgt(st+", 100k uniform, default options", rep.cell(poolWorkload(100000, distUniform).key, st), targetUniform100k)
		tgt(st+", 100k zipf, default options", rep.cell(poolWorkload(100000, distZipf).key, st), targetZipf100k)
	}
	// The memory targets, at the largest pool with a figure (C or C+).
	var heapRow, redisRow *memRow
	rows := rep.memRows()
	for i := range rows {
		m := &rows[i]
		if m.in.store != "redis" || m.in.name == "C3" {
			continue
		}
		if !math.IsNaN(m.heapPerLic) && (heapRow == nil || m.pool >= heapRow.pool) {
			heapRow = m
		}
		if !math.IsNaN(m.redisPer) && (redisRow == nil || m.pool > redisRow.pool) {
			redisRow = m
		}
	}
	atMost := func(v, limit float64) string {
		if v <= limit {
			return "met"
		}
		return "**missed**"
	}
	if heapRow != nil {
		w("| Caddy heap per cached license (%s, %s pool) | ≤ %d B | %s | %s | |\n", heapRow.in.name,
			countLabel(float64(heapRow.pool)), targetCacheBytes, bytesText(heapRow.heapPerLic), atMost(heapRow.heapPerLic, targetCacheBytes))
	}
	if redisRow != nil {
		w("| Redis `used_memory` per license, request records dropped (%s pool) | ≤ %d B | %s | %s | |\n", countLabel(float64(redisRow.pool)),
			targetRedisBytes, bytesText(redisRow.redisPer), atMost(redisRow.redisPer, targetRedisBytes))
	}
	w("\n")
	if e.redisCheck != "" {
		w("Counting check: %s.\n\n", e.redisCheck)
	}

	if len(rep.goBench) > 0 {
		w("## Handler chain (Go benchmark)\n\n")
		w("`BenchmarkServeHTTP` in `module/bench_test.go`: the gate with a cached token in front of a no-op next handler, ")
		w("beside the bare chain (the same per-request setup, as Caddy's server makes it, calling the next handler directly); ")
		w("`memory` and `redis` charge credits in the in-memory store and in a real redis-server on loopback (so redis's ")
		w("ns/op includes the wait for the round trip); `uncounted/hot` is `BenchmarkServeHTTPUncounted`, the gate with ")
		w("the in-memory store and a token without credits (nothing counted), beside its own bare chain. ns/op and CPU ns/op ")
		w("(the process's CPU time per request, which hardly grows when other processes take turns on the cores) are ")
		w("medians of the repetitions (CPU only over runs of %d iterations or more), ×bare CPU the ratio of the medians; ", minCPUIters)
		w("allocations do not depend on the machine's load at all.\n\n```sh\n%s\n```\n\n", e.goBenchCmd)
		w("| chain | ns/op | CPU ns/op | ×bare CPU | gate's own CPU ns/op | B/op | allocs/op | gate's own allocs |\n")
		w("|---|--:|--:|--:|--:|--:|--:|--:|\n")
		byName := map[string]*goBench{}
		for _, g := range rep.goBench {
			byName[g.name] = g
		}
		for _, g := range rep.goBench {
			bare := byName[g.bareName()]
			if bare == nil {
				continue
			}
			cpu, ratio, own := "—", "—", "—"
			if len(g.cpuNsPerOp) > 0 && len(bare.cpuNsPerOp) > 0 && min(g.minIters, bare.minIters) >= minCPUIters {
				c, bc := median(g.cpuNsPerOp), median(bare.cpuNsPerOp)
				cpu, ratio, own = fmt.Sprintf("%.0f", c), fmt.Sprintf("%.2f", c/bc), fmt.Sprintf("%.0f", c-bc)
			}
			w("| %s | %.0f | %s | %s | %s | %.0f | %.0f | %.0f |\n", g.name, median(g.nsPerOp), cpu, ratio, own,
				g.bytesPerOp, g.allocsPerOp, g.allocsPerOp-bare.allocsPerOp)
		}
		w("\n")
	}

	w("## The curve\n\n")
	w("![requests/s ×A against distinct licenses](%s)\n\n", curveSVG)
	w("Pools are prefixes of one list of distinct licenses (`jti`), each request carrying one token drawn uniformly or ")
	w("with Zipf's law (s = %.1f: the i-th most popular license is drawn ∝ i^-%.1f) from a fixed sequence of %d draws, which every run walks from a place drawn for it (its wrk threads a share of the sequence apart), so that no run replays the stretch of the run before. ", zipfS, zipfS, sequenceLen)
	w("`cache hits` is the share of the run's requests whose token came from the verified-token cache ")
	w("(`%s` over `%s`, from Caddy's metrics); a miss costs an RS256 signature check. ", metricHits, metricRequests)
	w("`store trips` is the Redis gateways' store round trips per request (`%s` over the same): ", metricStoreTrips)
	w("below 1 where requests were served from credit blocks.\n\n")
	w("| tokens | scenario | cache_size | rounds | req/s | ×A | Caddy CPU/req | Caddy CPU ×A | cache hits | store trips |\n")
	w("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, g := range rep.plan.groups {
		if g.w.pool == 0 {
			continue
		}
		for _, in := range g.insts {
			c := rep.cell(g.w.key, in.name)
			if c == nil {
				continue
			}
			w("| %s | %s | %s | %d | %.0f | %s | %s | %s | %s | %s |\n", g.w.label, in.name, in.cacheLabel(module.DefaultCacheSize),
				len(c.runs), c.rps, ivText(c.ratio), us(c.cpuCaddy), ivText(c.cpuRatio), pct(c.hitRatio), tripsText(c.trips))
		}
	}
	w("\n")
	if c3 := rep.plan.instance("C3"); c3 != nil {
		key := poolWorkload(o.clusterPool, distUniform).key
		w("Redis Cluster (3 masters) against a single node at the %s pool, uniform: C3 ÷ C requests/s per round %s",
			countLabel(float64(o.clusterPool)), ivText(rep.pairedBetween(key, "C3", "C")))
		if c, c3c := rep.cell(key, "C"), rep.cell(key, "C3"); c != nil && c3c != nil {
			w("; Redis CPU per request %s (single) and %s (3 nodes together)", us(c.cpuRedis), us(c3c.cpuRedis))
		}
		w(".\n\n")
	}

	if rows := rep.memRows(); len(rows) > 0 {
		w("## Memory per license\n\n")
		w("After every token of the pool was sent once (pool by pool, growing), Caddy's live heap after a forced ")
		w("garbage collection (`go_memstats_heap_alloc_bytes`, through the admin endpoint's `/debug/pprof/heap?gc=1`) and ")
		w("its resident set (`VmRSS`); per license is the growth since only the hot token was sent, divided by the pool ")
		w("(shown only where the cache holds the whole pool). B's heap also holds the in-memory store's counters. ")
		w("Redis per license is the growth of `used_memory` (summed over the Cluster's nodes for C3) once the request ")
		w("records are dropped: what a license costs for as long as its token lives. A request record is what each ")
		w("charged request adds besides, for one minute (its id, kept so that a void or refund applies once): ")
		w("`used_memory` before dropping the records minus after, per request of the stage.\n\n")
		w("| pool | scenario | cache_size | live heap | heap per license | RSS | Redis per license | Redis keys per license | Redis per request record |\n")
		w("|--:|---|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, m := range rows {
			keys := "—"
			if !math.IsNaN(m.keysPer) {
				keys = fmt.Sprintf("%.2f", m.keysPer)
			}
			w("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", countLabel(float64(m.pool)), m.in.name,
				m.in.cacheLabel(module.DefaultCacheSize), bytesText(float64(m.heap)), bytesText(m.heapPerLic),
				bytesText(float64(m.rss)), bytesText(m.redisPer), keys, bytesText(m.recordPer))
		}
		w("\n")
	}

	w("## CPU time per request\n\n")
	w("Medians over the rounds, by process: wrk's own rusage; Caddy and the upstream from `/proc/<pid>/stat`; Redis from ")
	w("its `INFO cpu` (all nodes of a Cluster).\n\n")
	w("| tokens | scenario | wrk | Caddy | upstream | Redis | total |\n|---|---|--:|--:|--:|--:|--:|\n")
	for _, c := range rep.cells {
		redis := "—"
		if c.in.store == "redis" {
			redis = us(c.cpuRedis)
		}
		w("| %s | %s | %s | %s | %s | %s | %s |\n", c.g.w.label, c.in.name, us(c.cpuWrk), us(c.cpuCaddy),
			us(c.cpuUpstream), redis, us(c.cpuTotal))
	}
	w("\n")

	w("## Method\n\n")
	w("- One `go build ./cmd/licensegate` binary; every configuration runs it with a Caddyfile that is identical but ")
	w("for the `license_gate` block: HTTP on a loopback port, no access log, `reverse_proxy` to the same upstream with ")
	w("`keepalive 2m` and `keepalive_idle_conns(_per_host) %d`. All configurations run for the whole measurement; ", 2*o.connections)
	w("only the one under load works.\n")
	w("- Configurations: A `reverse_proxy` alone; B the gate with the in-memory store; C with `store redis` on one ")
	w("redis-server (`--save '' --appendonly no`)")
	if rep.plan.fitsSize > 0 {
		w("; B+ and C+ as B and C with `cache_size %d`, which holds the largest pool", rep.plan.fitsSize)
	}
	if rep.plan.instance("C3") != nil {
		w("; C3 as C on a Redis Cluster of 3 masters (started as the tests start theirs, not pinned)")
	}
	w(". The gate: `jwks_file` (one RSA-2048 key), `algorithms RS256`, `require_item %s`, otherwise defaults. ", benchItem)
	w("Every token is RS256, licenses the item and carries `credits` = %d with its own `jti`, so every request ", int64(benchCredits))
	w("is a real charge (with Redis, one script round trip).\n")
	w("- Before the rounds every configuration gets every token once, each answer checked (`200 ok`, credits headers ")
	w("exactly when the gate is on); this verifies the tokens into the cache and creates the counters. Then one ")
	w("unmeasured run of %v per configuration and workload.\n", o.warmup)
	if o.leadIn > 0 || o.leadInRedis > 0 || o.leadInPool > 0 {
		w("- Each measured run follows an unmeasured lead-in on the same configuration and workload, %v, and for the ", o.leadIn)
		w("configurations with Redis %v with the hot token and %v with a pool: while the others run, a Redis gateway's ", o.leadInRedis, o.leadInPool)
		w("credit blocks idle out (after 5 s) and its licenses' request rates (judged over 4 s) age, so without it every ")
		w("run would measure C starting cold, which a gateway under steady load never is. At the pools a license sees about ")
		w("a request a second or less, and asks its first block once it showed two requests within 4 s: a lead-in of 4 s ")
		w("left about one license in seven without a block when the measured run began (C's 10k store trips then read ")
		w("0.08–0.18 a request, more on a slower machine), 8 s leaves about one in a hundred. The `store trips` column shows ")
		w("what remains; compare it with the steady state's: 0.039 a request at 1 a second per license, 0.173 at 0.5, in ")
		w("the module's virtual-clock test `TestQuietLicensesMakeFewStoreRoundTrips`.\n")
	}
	w("- The hot token goes with every request (`wrk -H`); pool tokens are pre-formatted per wrk thread by `bench.lua` ")
	w("and sent in the order of the workload's index sequence. Tokens are minted once into a cache directory ")
	w("(`-tokens`) and reused by later runs.\n")
	w("- Every hot-token run of a gate checks the counting: the license's counter, read through the gate before and ")
	w("after, rose by at least the requests wrk counted and at most %d more (requests in flight when wrk stops). ", o.connections)
	w("Any socket error or non-2xx answer, or a miscount, fails the harness.\n")
	w("- wrk, Caddy, the upstream and Redis share the machine's %d cores, as in a single-node deployment (%s).\n", e.nproc, e.pinning)
	w("- `-cpuprofile DIR` additionally saves a CPU profile of A, B and C under the headline pool load (admin ")
	w("endpoint, `/debug/pprof/profile`), in extra runs that are not part of these numbers.\n\n")

	w("## Every run\n\n")
	w("| round | scenario | tokens | req/s | p50 | p90 | p99 | p99.9 | requests | errors | Caddy CPU/req | cache hits | store trips |\n")
	w("|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rep.runs {
		label := r.workload
		for _, g := range rep.plan.groups {
			if g.w.key == r.workload {
				label = g.w.label
			}
		}
		w("| %d | %s | %s | %.0f | %s | %s | %s | %s | %d | %d | %s | %s | %s |\n", r.round, r.instance, label, r.rps,
			ms(r.p50), ms(r.p90), ms(r.p99), ms(r.p999), r.requests, r.errors.total(),
			us(perRequest(r.cpu.caddy, r.requests)), pct(r.hitRatio), tripsText(r.trips))
	}
	return b.String()
}

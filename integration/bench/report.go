package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/licensegate/licensegate/module"
)

// Targets: the gate's throughput against bare reverse_proxy (median of
// the paired ratios) and its memory per license.
const (
	targetRedis        = 0.95 // C, hot token and headline pool
	targetMemory       = 0.97 // B, hot token and headline pool
	targetUniform100k  = 0.85 // 100k uniform pool, default options
	targetZipf100k     = 0.93 // 100k Zipf pool, default options
	targetCacheBytes   = 1024 // Caddy memory per cached license
	targetRedisBytes   = 400  // Redis memory per credits-only license
	targetHalfInterval = 0.03 // the interval a headline figure should have
	confidence         = 0.95
)

// curveSVG is the chart's file name, next to the results file.
const curveSVG = "curve.svg"

// environment describes the machine and the software measured.
type environment struct {
	date         time.Time
	nproc        int
	cpu          string
	kernel       string
	goVersion    string
	caddyVersion string
	wrkVersion   string
	redisVersion string
	commit       string
	command      string
	loadStart    string
	loadEnd      string
	redisCheck   string
	pinning      string
	goBenchCmd   string
}

func collectEnv(root, wrkBin, redisBin string) *environment {
	e := &environment{date: time.Now().UTC(), nproc: runtime.NumCPU(), goVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	e.kernel = commandOutput("uname", "-sr")
	e.wrkVersion = firstLine(commandOutput(wrkBin, "-v"))
	if redisBin != "" {
		e.redisVersion = firstLine(commandOutput(redisBin, "--version"))
	}
	e.commit = commandOutput("git", "-C", root, "rev-parse", "--short=12", "HEAD")
	if st := commandOutput("git", "-C", root, "status", "--porcelain", "--untracked-files=no"); st != "" && st != "?" {
		e.commit += " (with uncommitted changes)"
	}
	e.command = commandLine()
	return e
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

// commandLine is how the harness was started, as one would type it.
func commandLine() string {
	parts := []string{"go", "run", "./integration/bench"}
	if exe, err := os.Executable(); err == nil && !strings.Contains(exe, "go-build") {
		parts = []string{filepath.Base(exe)}
	}
	for _, a := range os.Args[1:] {
		if a == "" || strings.ContainsAny(a, " \t\"'$`\\|&;<>(){}*?") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// cell aggregates the rounds of one workload on one instance.
type cell struct {
	g      *group
	in     *instance
	runs   []result
	rps    float64 // median
	rpsMin float64
	rpsMax float64
	p50    time.Duration // medians
	p99    time.Duration
	// ratio is the run's requests/s over A's in the same round; cpuRatio
	// Caddy's CPU time per request over A's Caddy's.
	ratio, cpuRatio interval
	addP99          time.Duration // median of p99 − A's p99, same round
	// CPU time per request, medians over rounds, by process.
	cpuWrk, cpuCaddy, cpuUpstream, cpuRedis, cpuTotal time.Duration
	hitRatio                                          float64 // median; NaN when unknown
}

type report struct {
	o       options
	env     *environment
	plan    *plan
	runs    []result
	cells   []*cell
	stages  []memStage
	goBench []*goBench
}

func buildReport(o options, env *environment, p *plan, runs []result, stages []memStage, gb []*goBench) *report {
	rep := &report{o: o, env: env, plan: p, runs: runs, stages: stages, goBench: gb}
	for _, g := range p.groups {
		// A's figures by round, for the pairing.
		aRPS, aCPU := map[int]float64{}, map[int]float64{}
		aP99 := map[int]time.Duration{}
		for _, r := range runs {
			if r.workload == g.w.key && r.instance == "A" {
				aRPS[r.round], aP99[r.round] = r.rps, r.p99
				aCPU[r.round] = float64(perRequest(r.cpu.caddy, r.requests))
			}
		}
		for _, in := range g.insts {
			c := &cell{g: g, in: in}
			var rps, hits []float64
			var p50, p99, add, cw, cc, cu, cr, ct []time.Duration
			myRPS, myCPU := map[int]float64{}, map[int]float64{}
			for _, r := range runs {
				if r.workload != g.w.key || r.instance != in.name {
					continue
				}
				c.runs = append(c.runs, r)
				n := r.requests
				rps = append(rps, r.rps)
				p50, p99 = append(p50, r.p50), append(p99, r.p99)
				cw, cc = append(cw, perRequest(r.cpu.wrk, n)), append(cc, perRequest(r.cpu.caddy, n))
				cu, cr = append(cu, perRequest(r.cpu.upstream, n)), append(cr, perRequest(r.cpu.redis, n))
				ct = append(ct, perRequest(r.cpu.total(), n))
				if !math.IsNaN(r.hitRatio) {
					hits = append(hits, r.hitRatio)
				}
				myRPS[r.round], myCPU[r.round] = r.rps, float64(perRequest(r.cpu.caddy, n))
				if ap, ok := aP99[r.round]; ok {
					add = append(add, r.p99-ap)
				}
			}
			if len(rps) == 0 {
				continue
			}
			c.rps, c.rpsMin, c.rpsMax = median(rps), slices.Min(rps), slices.Max(rps)
			c.p50, c.p99 = medianDur(p50), medianDur(p99)
			c.cpuWrk, c.cpuCaddy, c.cpuUpstream = medianDur(cw), medianDur(cc), medianDur(cu)
			c.cpuRedis, c.cpuTotal = medianDur(cr), medianDur(ct)
			c.hitRatio = math.NaN()
			if len(hits) > 0 {
				c.hitRatio = median(hits)
			}
			if in.name != "A" {
				c.ratio = medianInterval(pairedRatios(myRPS, aRPS), confidence)
				c.cpuRatio = medianInterval(pairedRatios(myCPU, aCPU), confidence)
				if len(add) > 0 {
					c.addP99 = medianDur(add)
				}
			}
			rep.cells = append(rep.cells, c)
		}
	}
	return rep
}

// cell finds the aggregate of a workload (by key) on an instance.
func (rep *report) cell(workload, inst string) *cell {
	for _, c := range rep.cells {
		if c.g.w.key == workload && c.in.name == inst {
			return c
		}
	}
	return nil
}

// pairedBetween is the per-round ratio of two instances' requests/s in
// one workload (e.g. C3 over C).
func (rep *report) pairedBetween(workload, num, den string) interval {
	n, d := map[int]float64{}, map[int]float64{}
	for _, r := range rep.runs {
		if r.workload != workload {
			continue
		}
		switch r.instance {
		case num:
			n[r.round] = r.rps
		case den:
			d[r.round] = r.rps
		}
	}
	return medianInterval(pairedRatios(n, d), confidence)
}

func medianDur(v []time.Duration) time.Duration {
	f := make([]float64, len(v))
	for i, d := range v {
		f[i] = float64(d)
	}
	return time.Duration(median(f))
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func us(d time.Duration) string {
	return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
}

func signedMS(d time.Duration) string {
	return fmt.Sprintf("%+.2f ms", float64(d)/float64(time.Millisecond))
}

// ivText prints a median with its interval: "0.912 [0.884, 0.941]"; the
// interval is marked "range" when too few rounds give a 95 % interval.
func ivText(iv interval) string {
	switch {
	case !iv.ok():
		return "—"
	case iv.n == 1:
		return fmt.Sprintf("%.3f (1 round)", iv.median)
	case !iv.full:
		return fmt.Sprintf("%.3f [range %.3f, %.3f]", iv.median, iv.lo, iv.hi)
	default:
		return fmt.Sprintf("%.3f [%.3f, %.3f]", iv.median, iv.lo, iv.hi)
	}
}

func pct(f float64) string {
	if math.IsNaN(f) {
		return "—"
	}
	return fmt.Sprintf("%.1f %%", 100*f)
}

func bytesText(v float64) string {
	switch {
	case math.IsNaN(v) || v < 0:
		return "—"
	case v >= 10<<20:
		return fmt.Sprintf("%.0f MiB", v/(1<<20))
	case v >= 10<<10:
		return fmt.Sprintf("%.0f KiB", v/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", v)
	}
}

// verdict compares an interval with a lower bound: met when all of it is
// at or above, missed when all of it is below, open otherwise.
func verdict(iv interval, target float64) string {
	switch {
	case !iv.ok():
		return "not measured"
	case iv.lo >= target:
		return "met"
	case iv.hi < target:
		return "**missed**"
	default:
		return "open (the interval holds the target)"
	}
}

// failures lists the runs that had socket errors or non-2xx answers.
func (rep *report) failures() []string {
	var out []string
	for _, r := range rep.runs {
		if r.errors.total() > 0 {
			out = append(out, fmt.Sprintf("round %d, %s, %s: %v", r.round, r.instance, r.workload, r.errors))
		}
	}
	return out
}

// perLicense is the growth of a memory figure from stage 0 to the stage of
// pool n, divided by n; NaN when unknown.
func perLicense(at, base int64, n int) float64 {
	if at < 0 || base < 0 || n <= 0 {
		return math.NaN()
	}
	return float64(at-base) / float64(n)
}

// effectiveCache is an instance's cache_size.
func effectiveCache(in *instance) int {
	if in.cacheSize > 0 {
		return in.cacheSize
	}
	return module.DefaultCacheSize
}

// memRow is one line of the memory table.
type memRow struct {
	pool       int
	in         *instance
	heap, rss  int64
	heapPerLic float64 // NaN when the cache cannot hold the pool
	redisPer   float64 // NaN for memory stores
	keysPer    float64 // Redis keys per license, single node; NaN otherwise
}

func (rep *report) memRows() []memRow {
	var out []memRow
	if len(rep.stages) == 0 {
		return nil
	}
	base := rep.stages[0]
	for _, st := range rep.stages[1:] {
		for _, in := range rep.plan.insts {
			m, ok := st.inst[in.name]
			if !ok || in.maxPool < st.pool {
				continue
			}
			r := memRow{pool: st.pool, in: in, heap: m.heap, rss: m.rss, heapPerLic: math.NaN(), redisPer: math.NaN(),
				keysPer: math.NaN()}
			// A full cache shard evicts: the growth then is not per license.
			if st.pool*5/4 <= effectiveCache(in) {
				r.heapPerLic = perLicense(m.heap, base.inst[in.name].heap, st.pool)
			}
			switch {
			case in.name == "C3":
				r.redisPer = perLicense(st.clusterUsed, base.clusterUsed, st.pool)
			case in.store == "redis":
				r.redisPer = perLicense(st.redisUsed, base.redisUsed, st.pool)
				r.keysPer = perLicense(st.redisKeys, base.redisKeys, st.pool)
			}
			out = append(out, r)
		}
	}
	return out
}

// curvePlot is ×A against pool size: the memory and Redis stores, uniform
// and Zipf, with the default cache_size (solid for uniform, dashed for
// Zipf) and, where it differs, one that fits (lighter colours).
func (rep *report) curvePlot() plot {
	p := plot{
		title:  "license_gate throughput ÷ bare reverse_proxy, by distinct licenses",
		xLabel: "distinct licenses in the pool (log scale)",
		yLabel: "requests/s ×A (median, 95 % interval)",
		refY:   []plotRef{{1, "bare reverse_proxy"}, {targetUniform100k, fmt.Sprintf("target %.2f (100k uniform)", targetUniform100k)}},
	}
	type spec struct {
		label, color string
		inst, fit    string
	}
	specs := []spec{
		{"memory", "#1f77b4", "B", ""}, {"Redis", "#d62728", "C", ""},
		{"memory, cache fits", "#8fbbd9", "B", "B+"}, {"Redis, cache fits", "#eb9394", "C", "C+"},
	}
	hasFit := rep.plan.instance("B+") != nil
	for _, sp := range specs {
		if sp.fit != "" && !hasFit {
			continue
		}
		for _, d := range rep.o.dists {
			s := plotSeries{name: sp.label + ", " + d, color: sp.color, dashed: d == distZipf}
			pools := rep.plan.pools
			for i, n := range pools {
				key := poolWorkload(n, d).key
				c := rep.cell(key, sp.inst)
				if sp.fit != "" {
					// Where the default cache holds the pool, the fitting
					// configuration is the default one: draw only from the
					// last such pool on, so the lines do not overlap.
					f := rep.cell(key, sp.fit)
					next := i+1 < len(pools) && rep.cell(poolWorkload(pools[i+1], d).key, sp.fit) != nil
					switch {
					case f != nil:
						c = f
					case !next:
						continue
					}
				}
				if c != nil && c.ratio.ok() {
					s.points = append(s.points, plotPoint{float64(n), c.ratio.median, c.ratio.lo, c.ratio.hi})
				}
			}
			if len(s.points) > 0 {
				p.series = append(p.series, s)
			}
		}
	}
	for _, d := range rep.o.dists {
		s := plotSeries{name: "Redis Cluster (3), " + d, color: "#2ca02c", dashed: d == distZipf}
		for _, n := range rep.plan.pools {
			if c := rep.cell(poolWorkload(n, d).key, "C3"); c != nil && c.ratio.ok() {
				s.points = append(s.points, plotPoint{float64(n), c.ratio.median, c.ratio.lo, c.ratio.hi})
			}
		}
		if len(s.points) > 0 {
			p.series = append(p.series, s)
		}
	}
	return p
}

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
	w("is the steadier measure of the gate's own cost. `all CPU` adds wrk, the upstream and Redis.\n\n")
	w("| scenario | tokens | req/s | ×A | Caddy CPU/req | Caddy CPU ×A | all CPU/req | p99 | p99 added |\n")
	w("|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
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
			w("| %s: %s | %s | %.0f | %s | %s | %s | %s | %s | %s |\n", in.name, in.title, g.w.label, c.rps,
				ivText(c.ratio), us(c.cpuCaddy), ivText(c.cpuRatio), us(c.cpuTotal), ms(c.p99), add)
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
		w("| Redis `used_memory` per license (%s pool) | ≤ %d B | %s | %s | |\n", countLabel(float64(redisRow.pool)),
			targetRedisBytes, bytesText(redisRow.redisPer), atMost(redisRow.redisPer, targetRedisBytes))
	}
	w("\n")
	if e.redisCheck != "" {
		w("Counting check: %s.\n\n", e.redisCheck)
	}

	if len(rep.goBench) > 0 {
		w("## Handler chain (Go benchmark)\n\n")
		w("`BenchmarkServeHTTP` in `module/bench_test.go`: the gate with a cached token in front of a no-op next handler, ")
		w("beside the bare chain (the same per-request setup calling the next handler directly); `redis` counts in a real ")
		w("redis-server on loopback, so its ns/op includes the wait for the round trip. ns/op is the median of the ")
		w("repetitions; allocations do not depend on the machine's load at all.\n\n```sh\n%s\n```\n\n", e.goBenchCmd)
		w("| chain | ns/op | ×bare ns/op | gate's own ns/op | B/op | allocs/op | gate's own allocs |\n|---|--:|--:|--:|--:|--:|--:|\n")
		var bare *goBench
		for _, g := range rep.goBench {
			if g.name == "bare" {
				bare = g
			}
		}
		for _, g := range rep.goBench {
			ns, bns := median(g.nsPerOp), median(bare.nsPerOp)
			w("| %s | %.0f | %.2f | %.0f | %.0f | %.0f | %.0f |\n", g.name, ns, ns/bns, ns-bns, g.bytesPerOp,
				g.allocsPerOp, g.allocsPerOp-bare.allocsPerOp)
		}
		w("\n")
	}

	w("## The curve\n\n")
	w("![requests/s ×A against distinct licenses](%s)\n\n", curveSVG)
	w("Pools are prefixes of one list of distinct licenses (`jti`), each request carrying one token drawn uniformly or ")
	w("with Zipf's law (s = %.1f: the i-th most popular license is drawn ∝ i^-%.1f) from a fixed sequence of %d draws. ", zipfS, zipfS, sequenceLen)
	w("`cache hits` is the share of the run's requests whose token came from the verified-token cache ")
	w("(`%s` over `%s`, from Caddy's metrics); a miss costs an RS256 signature check.\n\n", metricHits, metricRequests)
	w("| tokens | scenario | cache_size | rounds | req/s | ×A | Caddy CPU/req | Caddy CPU ×A | cache hits |\n")
	w("|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, g := range rep.plan.groups {
		if g.w.pool == 0 {
			continue
		}
		for _, in := range g.insts {
			c := rep.cell(g.w.key, in.name)
			if c == nil {
				continue
			}
			w("| %s | %s | %s | %d | %.0f | %s | %s | %s | %s |\n", g.w.label, in.name, in.cacheLabel(module.DefaultCacheSize),
				len(c.runs), c.rps, ivText(c.ratio), us(c.cpuCaddy), ivText(c.cpuRatio), pct(c.hitRatio))
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
		w("Redis per license is the growth of `used_memory` (summed over the Cluster's nodes for C3).\n\n")
		w("| pool | scenario | cache_size | live heap | heap per license | RSS | Redis per license | Redis keys per license |\n")
		w("|--:|---|--:|--:|--:|--:|--:|--:|\n")
		for _, m := range rows {
			keys := "—"
			if !math.IsNaN(m.keysPer) {
				keys = fmt.Sprintf("%.2f", m.keysPer)
			}
			w("| %s | %s | %s | %s | %s | %s | %s | %s |\n", countLabel(float64(m.pool)), m.in.name,
				m.in.cacheLabel(module.DefaultCacheSize), bytesText(float64(m.heap)), bytesText(m.heapPerLic),
				bytesText(float64(m.rss)), bytesText(m.redisPer), keys)
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
	w("| round | scenario | tokens | req/s | p50 | p90 | p99 | p99.9 | requests | errors | Caddy CPU/req | cache hits |\n")
	w("|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rep.runs {
		label := r.workload
		for _, g := range rep.plan.groups {
			if g.w.key == r.workload {
				label = g.w.label
			}
		}
		w("| %d | %s | %s | %.0f | %s | %s | %s | %s | %d | %d | %s | %s |\n", r.round, r.instance, label, r.rps,
			ms(r.p50), ms(r.p90), ms(r.p99), ms(r.p999), r.requests, r.errors.total(),
			us(perRequest(r.cpu.caddy, r.requests)), pct(r.hitRatio))
	}
	return b.String()
}

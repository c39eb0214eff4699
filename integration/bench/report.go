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
	targetRedisCPU     = 1.05 // C's Caddy CPU per request ×A, at most, hot token and headline pool
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
	// Caddy's CPU time per request over A's Caddy's; paceRatio the same
	// with each run's Caddy CPU divided by its upstream's (see paced).
	ratio, cpuRatio, paceRatio interval
	addP99                     time.Duration // median of p99 − A's p99, same round
	// CPU time per request, medians over rounds, by process.
	cpuWrk, cpuCaddy, cpuUpstream, cpuRedis, cpuTotal time.Duration
	hitRatio                                          float64 // median; NaN when unknown
	trips                                             float64 // store round trips per request, median; NaN when unknown
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
		aRPS, aCPU, aPace := map[int]float64{}, map[int]float64{}, map[int]float64{}
		aP99 := map[int]time.Duration{}
		for _, r := range runs {
			if r.workload == g.w.key && r.instance == "A" {
				aRPS[r.round], aP99[r.round] = r.rps, r.p99
				aCPU[r.round] = float64(perRequest(r.cpu.caddy, r.requests))
				if p, ok := r.paced(); ok {
					aPace[r.round] = p
				}
			}
		}
		for _, in := range g.insts {
			c := &cell{g: g, in: in}
			var rps, hits, trips []float64
			var p50, p99, add, cw, cc, cu, cr, ct []time.Duration
			myRPS, myCPU, myPace := map[int]float64{}, map[int]float64{}, map[int]float64{}
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
				if !math.IsNaN(r.trips) {
					trips = append(trips, r.trips)
				}
				myRPS[r.round], myCPU[r.round] = r.rps, float64(perRequest(r.cpu.caddy, n))
				if p, ok := r.paced(); ok {
					myPace[r.round] = p
				}
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
			c.hitRatio, c.trips = math.NaN(), math.NaN()
			if len(hits) > 0 {
				c.hitRatio = median(hits)
			}
			if len(trips) > 0 {
				c.trips = median(trips)
			}
			if in.name != "A" {
				c.ratio = medianInterval(pairedRatios(myRPS, aRPS), confidence)
				c.cpuRatio = medianInterval(pairedRatios(myCPU, aCPU), confidence)
				c.paceRatio = medianInterval(pairedRatios(myPace, aPace), confidence)
				if len(add) > 0 {
					c.addP99 = medianDur(add)
				}
			}
			rep.cells = append(rep.cells, c)
		}
	}
	return rep
}

// paced is the run's Caddy CPU time over its upstream's: the upstream
// does the same work for every request in every configuration (the gate
// adds nothing to what it is sent), so its CPU time per request tells how
// fast the machine ran during this very run, and dividing by it takes the
// machine's pace out of Caddy's figure. It reads low: a gate that slows
// Caddy also changes how requests reach the upstream (fewer per wake-up),
// which raises the upstream's CPU per request too. ok is false when
// either is unknown.
func (r result) paced() (float64, bool) {
	if r.cpu.caddy <= 0 || r.cpu.upstream <= 0 {
		return 0, false
	}
	return float64(r.cpu.caddy) / float64(r.cpu.upstream), true
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

// tripsText is store round trips per request, or a dash when unknown.
func tripsText(f float64) string {
	if math.IsNaN(f) {
		return "—"
	}
	return fmt.Sprintf("%.3f", f)
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

// verdictAtMost is verdict for a target the figure must not exceed.
func verdictAtMost(iv interval, target float64) string {
	switch {
	case !iv.ok():
		return "not measured"
	case iv.hi <= target:
		return "met"
	case iv.lo > target:
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
	redisPer   float64 // the licenses' state in Redis; NaN for memory stores
	recordPer  float64 // a request's record in Redis (ids kept for voids); NaN when unknown
	keysPer    float64 // Redis keys per license without records, single node; NaN otherwise
}

func (rep *report) memRows() []memRow {
	var out []memRow
	if len(rep.stages) == 0 {
		return nil
	}
	base := rep.stages[0]
	prev := base
	for _, st := range rep.stages[1:] {
		for _, in := range rep.plan.insts {
			m, ok := st.inst[in.name]
			if !ok || in.maxPool < st.pool {
				continue
			}
			r := memRow{pool: st.pool, in: in, heap: m.heap, rss: m.rss, heapPerLic: math.NaN(), redisPer: math.NaN(),
				recordPer: math.NaN(), keysPer: math.NaN()}
			// A full cache shard evicts: the growth then is not per license.
			if st.pool*5/4 <= effectiveCache(in) {
				r.heapPerLic = perLicense(m.heap, base.inst[in.name].heap, st.pool)
			}
			// The state grows with the pool; the records at a stage are
			// those of its requests, one per license it added.
			switch {
			case in.name == "C3":
				r.redisPer = perLicense(st.clusterState, base.clusterState, st.pool)
				r.recordPer = perLicense(st.clusterUsed, st.clusterState, st.pool-prev.pool)
			case in.store == "redis":
				r.redisPer = perLicense(st.redisState, base.redisState, st.pool)
				r.recordPer = perLicense(st.redisUsed, st.redisState, st.pool-prev.pool)
				r.keysPer = perLicense(st.redisKeys, base.redisKeys, st.pool)
			}
			out = append(out, r)
		}
		prev = st
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

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Targets of the issue, for scenario C against A.
const (
	targetRatio  = 0.90
	targetAddP99 = time.Millisecond
)

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

// row aggregates the rounds of one scenario and token mode.
type row struct {
	scen     *scenario
	mode     string
	runs     []result
	rps      float64 // median
	rpsMin   float64
	rpsMax   float64
	p50      time.Duration // medians
	p99      time.Duration
	p999     time.Duration
	hasRatio bool
	ratio    float64       // median over rounds of rps / A's rps in the same round
	addP99   time.Duration // median over rounds of p99 - A's p99 in the same round
	// CPU time per request, medians over rounds, by process.
	cpuWrk, cpuCaddy, cpuUpstream, cpuRedis, cpuTotal time.Duration
	cpuRatio                                          float64 // median over rounds of total CPU/request / A's
}

type report struct {
	o    options
	env  *environment
	rows []*row
	runs []result
}

func buildReport(o options, env *environment, scens []*scenario, runs []result) *report {
	rep := &report{o: o, env: env, runs: runs}
	find := func(scen, mode string, round int) *result {
		for i := range runs {
			if r := &runs[i]; r.scenario == scen && r.mode == mode && r.round == round {
				return r
			}
		}
		return nil
	}
	for _, s := range scens {
		for _, mode := range modes(o.pool) {
			rw := &row{scen: s, mode: mode}
			var rps []float64
			var p50, p99, p999, add []time.Duration
			var ratios, cpuRatios []float64
			var cw, cc, cu, cr, ct []time.Duration
			for _, r := range runs {
				if r.scenario != s.name || r.mode != mode {
					continue
				}
				rw.runs = append(rw.runs, r)
				rps = append(rps, r.rps)
				p50, p99, p999 = append(p50, r.p50), append(p99, r.p99), append(p999, r.p999)
				n := r.requests
				cw, cc = append(cw, perRequest(r.cpu.wrk, n)), append(cc, perRequest(r.cpu.caddy, n))
				cu, cr = append(cu, perRequest(r.cpu.upstream, n)), append(cr, perRequest(r.cpu.redis, n))
				ct = append(ct, perRequest(r.cpu.total(), n))
				if a := find("A", mode, r.round); a != nil && a.rps > 0 {
					ratios = append(ratios, r.rps/a.rps)
					add = append(add, r.p99-a.p99)
					if at := perRequest(a.cpu.total(), a.requests); at > 0 {
						cpuRatios = append(cpuRatios, float64(perRequest(r.cpu.total(), n))/float64(at))
					}
				}
			}
			if len(rps) == 0 {
				continue
			}
			rw.rps, rw.rpsMin, rw.rpsMax = median(rps), slices.Min(rps), slices.Max(rps)
			rw.p50, rw.p99, rw.p999 = medianDur(p50), medianDur(p99), medianDur(p999)
			if len(ratios) > 0 {
				rw.hasRatio, rw.ratio, rw.addP99 = true, median(ratios), medianDur(add)
			}
			rw.cpuWrk, rw.cpuCaddy, rw.cpuUpstream = medianDur(cw), medianDur(cc), medianDur(cu)
			rw.cpuRedis, rw.cpuTotal = medianDur(cr), medianDur(ct)
			if len(cpuRatios) > 0 {
				rw.cpuRatio = median(cpuRatios)
			}
			rep.rows = append(rep.rows, rw)
		}
	}
	return rep
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

// failures lists the runs that had socket errors or non-2xx answers.
func (rep *report) failures() []string {
	var out []string
	for _, r := range rep.runs {
		if r.errors.total() > 0 {
			out = append(out, fmt.Sprintf("round %d, %s, %s: %v", r.round, r.scenario, r.mode, r.errors))
		}
	}
	return out
}

func (rep *report) markdown() string {
	var b strings.Builder
	e, o := rep.env, rep.o
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	w("# licensegate benchmark results\n\n")
	w("The cost of `license_gate` in front of `reverse_proxy`, measured by the load harness in this folder.\n")
	w("Produced by the command below; rerun it to replace this file.\n\n")
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
	if o.note != "" {
		w("| note | %s |\n", o.note)
	}
	w("| runs | %d interleaved rounds × %v per run, %d connections, %d wrk threads |\n",
		o.rounds, o.duration, o.connections, o.threads)
	w("\n")

	w("## Results\n\n")
	w("Medians over the rounds. `×A` is the median over rounds of the run's requests/s divided by A's in the same round; ")
	w("`p99 added` the median over rounds of the run's p99 minus A's p99 in the same round.\n\n")
	w("| scenario | tokens | req/s | req/s min–max | p50 | p99 | p99.9 | ×A | p99 added |\n")
	w("|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rep.rows {
		ratio, add := "—", "—"
		if r.hasRatio && r.scen.name != "A" {
			ratio, add = fmt.Sprintf("%.3f", r.ratio), signedMS(r.addP99)
		}
		w("| %s: %s | %s | %.0f | %.0f–%.0f | %s | %s | %s | %s | %s |\n",
			r.scen.name, r.scen.title, r.mode, r.rps, r.rpsMin, r.rpsMax,
			ms(r.p50), ms(r.p99), ms(r.p999), ratio, add)
	}
	w("\n")

	w("## CPU time per request\n\n")
	w("CPU time (user + system) each process spent during the measured runs, divided by the requests wrk counted; ")
	w("medians over the rounds. Unlike requests/s it hardly depends on what else runs on the machine, so it shows ")
	w("the gate's cost even on a busy one. When the %d cores are the bottleneck, as here, ", e.nproc)
	w("throughput ×A is about 1 / (CPU ×A).\n\n")
	w("| scenario | tokens | wrk | Caddy | upstream | Redis | total | CPU ×A |\n")
	w("|---|---|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rep.rows {
		ratio := "—"
		if r.scen.name != "A" && r.cpuRatio > 0 {
			ratio = fmt.Sprintf("%.3f", r.cpuRatio)
		}
		redis := "—"
		if r.scen.store == "redis" {
			redis = us(r.cpuRedis)
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.scen.name, r.mode, us(r.cpuWrk), us(r.cpuCaddy),
			us(r.cpuUpstream), redis, us(r.cpuTotal), ratio)
	}
	w("\n")

	w("## Targets (2-core machine, loopback)\n\n")
	w("C/A ≥ %.2f in throughput and at most %v of added p99 latency, for both the hot token and the token pool.\n\n",
		targetRatio, targetAddP99)
	w("| scenario | tokens | ×A ≥ %.2f | p99 added ≤ %v |\n|---|---|---|---|\n", targetRatio, targetAddP99)
	for _, r := range rep.rows {
		if r.scen.name == "A" || !r.hasRatio {
			continue
		}
		mark := func(ok bool) string {
			if ok {
				return "met"
			}
			return "**missed**"
		}
		w("| %s | %s | %.3f %s | %s %s |\n", r.scen.name, r.mode, r.ratio, mark(r.ratio >= targetRatio),
			signedMS(r.addP99), mark(r.addP99 <= targetAddP99))
	}
	w("\nThe targets are stated for C; B (memory store) is listed for comparison.\n\n")
	if e.redisCheck != "" {
		w("Redis check: %s.\n\n", e.redisCheck)
	}

	w("## Method\n\n")
	w("- One `go build ./cmd/licensegate` binary; every scenario runs it with a Caddyfile that is identical but for the ")
	w("`license_gate` block: HTTP on a loopback port, no access log (Caddy's default logging), ")
	w("`reverse_proxy` to the same upstream with `keepalive 2m` and `keepalive_idle_conns(_per_host) %d` ", 2*o.connections)
	w("(twice the client connections, so upstream connections are reused and not churned).\n")
	w("- Only one Caddy runs at a time: each round starts the scenario's Caddy, sends every token once (checking that ")
	w("each answer is `200 ok` and carries the credits headers exactly when the gate is on; this also verifies every ")
	w("pool token into the gate's cache and creates its counter), warms up with wrk for %v, then measures the hot ", o.warmup)
	w("token and then the pool, and stops Caddy. Scenarios are interleaved (A B C A B C …) so slow drifts of the ")
	w("machine hit every scenario alike.\n")
	w("- The gate: `jwks_file` (one RSA-2048 key), `algorithms RS256`, `require_item %s`, `cache_size %d`; ", benchItem,
		max(20000, 4*(o.pool+1)))
	w("B uses the default in-memory store, C `store redis { addresses <redis> }` with the default options. ")
	w("Every token is RS256, licenses the item and carries `credits` = %d with its own `jti`, so every request of B ", int64(benchCredits))
	w("and C is a real charge (C: one Lua script round trip to Redis per request).\n")
	w("- Tokens: one hot token sent with every request (`wrk -H`), and a pool of %d distinct tokens that ", o.pool)
	w("`bench.lua` rotates through, one token per request (requests pre-formatted per wrk thread).\n")
	w("- Upstream: a minimal Go `net/http` server in its own process (the harness re-executed) answering `ok`. ")
	w("redis-server runs with `--save '' --appendonly no`. wrk, Caddy, the upstream and Redis share the machine's ")
	w("%d cores, as in a single-node deployment; a faster machine or separate load generator will show higher rates.\n", e.nproc)
	w("- Latencies are wrk's (`--latency`, `latency:percentile()`); A's Caddy forwards the same `Authorization` header ")
	w("unchecked. A run with any socket error or non-2xx answer fails the harness (after this file is written).\n")
	w("- CPU time per request: user + system time from `/proc/<pid>/stat` for Caddy, the upstream and Redis, and ")
	w("wrk's own rusage, over each measured run.\n")
	w("- `-cpuprofile DIR` additionally saves a CPU profile of each scenario's Caddy under the pool load ")
	w("(from Caddy's admin endpoint, `/debug/pprof/profile`), in extra runs that are not part of these numbers.\n\n")

	w("## Every run\n\n")
	w("| round | scenario | tokens | req/s | p50 | p90 | p99 | p99.9 | max | requests | errors | CPU/req |\n")
	w("|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rep.runs {
		w("| %d | %s | %s | %.0f | %s | %s | %s | %s | %s | %d | %d | %s |\n", r.round, r.scenario, r.mode, r.rps,
			ms(r.p50), ms(r.p90), ms(r.p99), ms(r.p999), ms(r.max), r.requests, r.errors.total(),
			us(perRequest(r.cpu.total(), r.requests)))
	}
	return b.String()
}

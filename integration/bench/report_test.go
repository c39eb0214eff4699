package main

import (
	"errors"
	"flag"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	out := `Running 3s test @ http://127.0.0.1:1/
  2 threads and 64 connections
BENCHJSON {"requests":30000,"duration_us":3000000,"bytes":1,"err_connect":0,"err_read":1,"err_write":0,"err_status":2,"err_timeout":0,"lat_mean_us":1200.5,"lat_max_us":9000,"p50_us":1000,"p90_us":2000,"p99_us":4000,"p999_us":8000}
`
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.rps != 10000 || r.p50 != time.Millisecond || r.p99 != 4*time.Millisecond || r.p999 != 8*time.Millisecond {
		t.Errorf("parsed %+v", r)
	}
	if r.errors.total() != 3 || r.errors.Status != 2 {
		t.Errorf("errors %+v", r.errors)
	}
	if _, err := parseWrk("no result"); err == nil {
		t.Error("output without BENCHJSON parsed")
	}
}

// testOptions are the quick defaults, as the flags give them.
func testOptions(t *testing.T, args ...string) options {
	t.Helper()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o, err := parseFlags(fs, args)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestQuickChangesOnlyTheFlagsNotGiven(t *testing.T) {
	o := testOptions(t, "-quick", "-rounds", "3")
	if o.rounds != 3 || o.curveRounds != 1 || o.duration != time.Second || o.pool != 1000 || o.out != "-" ||
		len(o.pools) != 1 || o.pools[0] != 1000 || o.clusterPool != 1000 || o.goBenchCount != 1 {
		t.Errorf("quick options %+v", o)
	}
	full := testOptions(t)
	if full.rounds != 20 || full.duration != 3*time.Second || len(full.pools) != 3 || full.pin {
		t.Errorf("default options %+v", full)
	}
	if err := (&options{duration: time.Second, rounds: 1, curveRounds: 1, threads: 1, connections: 1, pool: 1,
		dists: []string{"pareto"}}).validate(); err == nil {
		t.Error("an unknown distribution was accepted")
	}
}

func TestPlanLaysOutTheHeadlineAndTheCurve(t *testing.T) {
	o := testOptions(t) // pools 1k, 10k, 100k; cluster at 10k
	p := newPlan(&o, 20000)
	var names []string
	for _, in := range p.insts {
		names = append(names, in.name)
	}
	if got := strings.Join(names, " "); got != "A B C B+ C+ C3" {
		t.Errorf("instances %q", got)
	}
	if p.fitsSize != 200000 {
		t.Errorf("fits cache_size %d", p.fitsSize)
	}
	want := map[string]string{
		"hot":            "A B C",
		"10000-uniform":  "A B C C3",
		"1000-uniform":   "A B C",
		"1000-zipf":      "A B C",
		"10000-zipf":     "A B C C3",
		"100000-uniform": "A B C B+ C+",
		"100000-zipf":    "A B C B+ C+",
	}
	if len(p.groups) != len(want) {
		t.Errorf("%d groups, want %d", len(p.groups), len(want))
	}
	for i, g := range p.groups {
		var ns []string
		for _, in := range g.insts {
			ns = append(ns, in.name)
		}
		if got := strings.Join(ns, " "); got != want[g.w.key] {
			t.Errorf("group %s: %q, want %q", g.w.key, got, want[g.w.key])
		}
		if headline := i < 2; g.headline != headline || (headline && g.rounds != 20) || (!headline && g.rounds != 6) {
			t.Errorf("group %s: headline %v, rounds %d", g.w.key, g.headline, g.rounds)
		}
	}
	head := p.groups[1]
	if len(head.order(6)) != 4 || len(head.order(7)) != 3 {
		t.Errorf("C3 joins the headline pool's rounds %d times: %d, %d", head.extraRounds, len(head.order(6)), len(head.order(7)))
	}
	if c3 := p.instance("C3"); c3.maxPool != 10000 {
		t.Errorf("C3 serves up to %d", c3.maxPool)
	}
	// hot 3×20×3s + 10k uniform (3×20 + 1×6)×3s + 1k 2×3×6×2s + 10k zipf 4×6×2s
	// + 100k 2×5×6×2s, 1s of warm-up for each of the 27 pairs, and a lead-in
	// before each of the 60+66+36+24+60 measured runs: 1s, 4s for the 20 of
	// C with the hot token, and 8s for the 26+12+12+24 of C, C3 and C+ with
	// a pool.
	if got, want := p.measureTime(&o), (180+198+72+48+120+27+246+20*3+74*7)*time.Second; got != want {
		t.Errorf("measure time %v, want %v", got, want)
	}
	if p.maxRounds() != 20 || len(p.pools) != 3 {
		t.Errorf("max rounds %d, pools %v", p.maxRounds(), p.pools)
	}
	// The order rotates by one per round.
	g := p.groups[0]
	for r, want := range map[int]string{1: "ABC", 2: "BCA", 3: "CAB", 4: "ABC"} {
		got := ""
		for _, in := range g.order(r) {
			got += in.name
		}
		if got != want {
			t.Errorf("round %d order %s, want %s", r, got, want)
		}
	}
}

func TestReportRatiosArePairedByRound(t *testing.T) {
	o := testOptions(t, "-quick", "-curve=false")
	p := newPlan(&o, 20000)
	var runs []result
	add := func(inst string, round int, rps float64, p99 time.Duration, caddyPerReq time.Duration) {
		for _, g := range p.groups {
			runs = append(runs, result{workload: g.w.key, instance: inst, round: round, rps: rps, p99: p99,
				requests: int64(rps), cpu: cpuUse{caddy: time.Duration(rps) * caddyPerReq}, hitRatio: math.NaN()})
		}
	}
	// Round 2 is twice as fast for everyone: the per-round ratio stays 0.9.
	add("A", 1, 1000, 2*time.Millisecond, 100*time.Microsecond)
	add("B", 1, 950, 2*time.Millisecond, 105*time.Microsecond)
	add("C", 1, 900, 3*time.Millisecond, 110*time.Microsecond)
	add("A", 2, 2000, 2*time.Millisecond, 100*time.Microsecond)
	add("B", 2, 1900, 2*time.Millisecond, 105*time.Microsecond)
	add("C", 2, 1800, 2500*time.Microsecond, 110*time.Microsecond)
	rep := buildReport(o, &environment{nproc: 2, pinning: "not pinned"}, p, runs, nil, nil)
	c := rep.cell("hot", "C")
	if c == nil || c.ratio.median < 0.8999 || c.ratio.median > 0.9001 || c.ratio.lo != c.ratio.hi {
		t.Fatalf("C's ratio %+v", c)
	}
	if c.addP99 != 750*time.Microsecond {
		t.Errorf("added p99 %v, want the median of 1ms and 0.5ms", c.addP99)
	}
	if c.rps != 1350 || c.cpuCaddy != 110*time.Microsecond || math.Abs(c.cpuRatio.median-1.1) > 1e-9 {
		t.Errorf("median rps %v, Caddy CPU %v, CPU ratio %v", c.rps, c.cpuCaddy, c.cpuRatio)
	}
	md := rep.markdown()
	for _, want := range []string{
		"| C: license_gate (Redis) + reverse_proxy | hot token | 1350 | 0.900 [range 0.900, 0.900] | 110.0 µs | 1.100 [range 1.100, 1.100] |",
		"| C (Redis), hot token | ≥ 0.95 | 0.900 [range 0.900, 0.900] | **missed** |",
		"| B (memory), hot token | ≥ 0.97 | 0.950 [range 0.950, 0.950] | **missed** |",
		"| cores (`nproc`) | 2 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if len(rep.failures()) != 0 {
		t.Errorf("failures %v", rep.failures())
	}
}

func TestVerdict(t *testing.T) {
	tests := []struct {
		name string
		iv   interval
		want string
	}{
		{"an interval above the target meets it", interval{n: 20, median: 0.97, lo: 0.96, hi: 0.98}, "met"},
		{"an interval below the target misses it", interval{n: 20, median: 0.9, lo: 0.88, hi: 0.92}, "**missed**"},
		{"an interval holding the target leaves it open", interval{n: 20, median: 0.95, lo: 0.93, hi: 0.97}, "open (the interval holds the target)"},
		{"no rounds measure nothing", interval{}, "not measured"},
	}
	for _, tt := range tests {
		if got := verdict(tt.iv, 0.95); got != tt.want {
			t.Errorf("%s: %q", tt.name, got)
		}
	}
}

func TestParseMetricsSumsTheSeriesOfAName(t *testing.T) {
	text := `# HELP licensegate_requests_total Requests judged by license_gate.
# TYPE licensegate_requests_total counter
licensegate_requests_total{code="",result="allowed"} 1200
licensegate_requests_total{code="expired",result="rejected"} 3
licensegate_verified_cache_hits_total 1150
go_memstats_heap_alloc_bytes 1.2345e+07
weird{label="a } b"} 2
`
	m := parseMetrics(text)
	if m[metricRequests] != 1203 || m[metricHits] != 1150 || m["go_memstats_heap_alloc_bytes"] != 12345000 || m["weird"] != 2 {
		t.Errorf("parsed %v", m)
	}
}

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
BenchmarkServeHTTP/bare-2         	 3000000	       402.0 ns/op	     552 B/op	       7 allocs/op
BenchmarkServeHTTP/memory-2       	  300000	      4219 ns/op	     920 B/op	      15 allocs/op
BenchmarkServeHTTP/bare-2         	 3000000	       410.0 ns/op	     552 B/op	       7 allocs/op
BenchmarkServeHTTP/redis          	   20000	     85162 ns/op	    2758 B/op	      51 allocs/op
BenchmarkServeHTTPUncounted/hot/bare-2 	 3000000	      1600 ns/op	      1500 cpu-ns/op	    2464 B/op	      23 allocs/op
BenchmarkServeHTTPUncounted/hot/gate-2 	 3000000	      1900 ns/op	      1800 cpu-ns/op	    2544 B/op	      24 allocs/op
PASS
`
	bs, err := parseGoBench(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 5 || bs[0].name != "bare" || len(bs[0].nsPerOp) != 2 || bs[1].allocsPerOp != 15 ||
		bs[2].name != "redis" || bs[2].bytesPerOp != 2758 || bs[2].bareName() != "bare" {
		t.Errorf("parsed %+v %+v %+v", bs[0], bs[1], bs[2])
	}
	if g := bs[4]; g.name != "uncounted/hot/gate" || len(g.cpuNsPerOp) != 1 || g.cpuNsPerOp[0] != 1800 ||
		g.bareName() != "uncounted/hot/bare" || bs[3].name != g.bareName() || g.minIters != 3000000 || bs[0].minIters != 3000000 {
		t.Errorf("the uncounted chain parsed as %+v beside %+v", g, bs[3])
	}
	if _, err := parseGoBench("PASS\n"); err == nil {
		t.Error("output without the bare benchmark parsed")
	}
}

func TestMemoryPerLicenseNeedsAPoolTheCacheHoldsAndSeparatesRequestRecords(t *testing.T) {
	o := testOptions(t, "-quick", "-pools", "1000,100000")
	p := newPlan(&o, 20000)
	for _, in := range p.insts {
		in.maxPool = 100000
		if in.cacheSize == 0 {
			in.cacheSize = 20000 // smaller than the 100k pool, whatever the gate's default
		}
	}
	mem := func(heap int64) memory { return memory{heap: heap, rss: 2 * heap} }
	stages := []memStage{
		{pool: 0, inst: map[string]memory{"B": mem(1000), "C": mem(1000), "C+": mem(1000)}, redisUsed: 600, redisState: 500},
		{pool: 1000, inst: map[string]memory{"B": mem(1001000), "C": mem(801000), "C+": mem(801000)}, redisUsed: 400500, redisState: 300500},
		{pool: 100000, inst: map[string]memory{"B": mem(9000000), "C": mem(9000000), "C+": mem(80001000)}, redisUsed: 39900500, redisState: 30000500},
	}
	rep := &report{o: o, plan: p, stages: stages}
	got := map[string]memRow{}
	for _, r := range rep.memRows() {
		got[countLabel(float64(r.pool))+" "+r.in.name] = r
	}
	if r := got["1k C"]; r.heapPerLic != 800 || r.redisPer != 300 || r.recordPer != 100 {
		t.Errorf("1k C: %+v", r)
	}
	if r := got["100k C"]; !math.IsNaN(r.heapPerLic) || r.redisPer != 300 || r.recordPer != 100 {
		t.Errorf("100k C (cache smaller than the pool): %+v", r)
	}
	if r := got["100k C+"]; r.heapPerLic != 800 {
		t.Errorf("100k C+: %+v", r)
	}
	if r := got["1k B"]; r.heapPerLic != 1000 || !math.IsNaN(r.redisPer) {
		t.Errorf("1k B: %+v", r)
	}
}

func TestCheckChargedAllowsOnlyTheRequestsInFlight(t *testing.T) {
	tests := []struct {
		name    string
		charged int64
		wantErr bool
	}{
		{"every answered request charged once is right", 1000, false},
		{"requests in flight at the end may be charged too", 1064, false},
		{"a request answered but not charged is a miscount", 999, true},
		{"more charges than requests and connections is a miscount", 1065, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkCharged(tt.charged, 1000, 64)
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, errMiscount)) {
				t.Errorf("checkCharged(%d, 1000, 64) = %v", tt.charged, err)
			}
		})
	}
}

func TestThePacedCPURatioTakesOutTheMachinesPace(t *testing.T) {
	o := testOptions(t, "-quick", "-curve=false")
	p := newPlan(&o, 20000)
	var runs []result
	add := func(inst string, round int, caddy, upstream time.Duration) {
		for _, g := range p.groups {
			runs = append(runs, result{workload: g.w.key, instance: inst, round: round, rps: 1000, requests: 1000,
				cpu: cpuUse{caddy: 1000 * caddy, upstream: 1000 * upstream}, hitRatio: math.NaN(), trips: math.NaN()})
		}
	}
	// In round 1 the machine ran 10 % slower during C's run: the upstream,
	// whose work is the same, shows it too. C's gate costs 5 %.
	add("A", 1, 100*time.Microsecond, 40*time.Microsecond)
	add("B", 1, 100*time.Microsecond, 40*time.Microsecond)
	add("C", 1, 115500*time.Nanosecond, 44*time.Microsecond)
	add("A", 2, 100*time.Microsecond, 40*time.Microsecond)
	add("B", 2, 100*time.Microsecond, 40*time.Microsecond)
	add("C", 2, 105*time.Microsecond, 40*time.Microsecond)
	rep := buildReport(o, &environment{nproc: 2, pinning: "not pinned"}, p, runs, nil, nil)
	c := rep.cell("hot", "C")
	if c == nil || math.Abs(c.paceRatio.lo-1.05) > 1e-9 || math.Abs(c.paceRatio.hi-1.05) > 1e-9 {
		t.Fatalf("C's paced CPU ratio %+v, want 1.05 in both rounds", c.paceRatio)
	}
	if math.Abs(c.cpuRatio.hi-1.155) > 1e-9 {
		t.Errorf("C's plain CPU ratio %+v, want up to 1.155", c.cpuRatio)
	}
	md := rep.markdown()
	for _, want := range []string{
		"| 1.050 [range 1.050, 1.050] |",
		"| C (Redis), hot token, Caddy CPU ÷ upstream ×A | ≤ 1.05 | 1.050 [range 1.050, 1.050] | met |",
		"[range 1.050, 1.155] | open (the interval holds the target) |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the results lack %q", want)
		}
	}
	// Without the upstream's CPU there is nothing to pace by.
	for i := range runs {
		runs[i].cpu.upstream = 0
	}
	if c := buildReport(o, &environment{nproc: 2, pinning: "not pinned"}, p, runs, nil, nil).cell("hot", "C"); c.paceRatio.ok() {
		t.Errorf("a paced ratio %+v without the upstream's CPU", c.paceRatio)
	}
}

package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	out := `Running 3s test @ http://127.0.0.1:1/
  2 threads and 64 connections
  Latency Distribution
     50%    1.00ms
BENCHJSON {"requests":30000,"duration_us":3000000,"bytes":1,"err_connect":0,"err_read":1,"err_write":0,"err_status":2,"err_timeout":0,"lat_mean_us":1200.5,"lat_max_us":9000,"p50_us":1000,"p90_us":2000,"p99_us":4000,"p999_us":8000}
`
	r, err := parseWrk(out, modeHot)
	if err != nil {
		t.Fatal(err)
	}
	if r.rps != 10000 || r.p50 != time.Millisecond || r.p99 != 4*time.Millisecond || r.p999 != 8*time.Millisecond {
		t.Errorf("parsed %+v", r)
	}
	if r.errors.total() != 3 || r.errors.Status != 2 {
		t.Errorf("errors %+v", r.errors)
	}
	if _, err := parseWrk("no result", modeHot); err == nil {
		t.Error("output without BENCHJSON parsed")
	}
}

func TestReportRatiosAreTakenPerRound(t *testing.T) {
	o := options{rounds: 2, duration: time.Second, connections: 64, threads: 2, pool: 10000, warmup: time.Second}
	var runs []result
	add := func(scen string, round int, rps float64, p99 time.Duration) {
		for _, mode := range modes(o.pool) {
			runs = append(runs, result{scenario: scen, mode: mode, round: round, rps: rps, p99: p99,
				requests: int64(rps), cpu: cpuUse{caddy: time.Duration(rps) * 100 * time.Microsecond}})
		}
	}
	// Round 2 is twice as fast for everyone: the per-round ratio stays 0.9.
	add("A", 1, 1000, 2*time.Millisecond)
	add("C", 1, 900, 3*time.Millisecond)
	add("A", 2, 2000, 2*time.Millisecond)
	add("C", 2, 1800, 2500*time.Microsecond)
	rep := buildReport(o, &environment{nproc: 2}, []*scenario{scenarioByName("A"), scenarioByName("C")}, runs)
	if len(rep.rows) != 4 {
		t.Fatalf("%d rows", len(rep.rows))
	}
	c := rep.rows[2]
	if c.scen.name != "C" || !c.hasRatio || c.ratio < 0.8999 || c.ratio > 0.9001 {
		t.Errorf("C ratio %v (row %+v)", c.ratio, c)
	}
	if c.addP99 != 750*time.Microsecond {
		t.Errorf("added p99 %v, want the median of 1ms and 0.5ms", c.addP99)
	}
	if c.rps != 1350 || c.cpuTotal != 100*time.Microsecond || c.cpuRatio != 1 {
		t.Errorf("median rps %v, cpu %v, cpu ratio %v", c.rps, c.cpuTotal, c.cpuRatio)
	}
	md := rep.markdown()
	for _, want := range []string{"| C: license_gate (Redis) + reverse_proxy | hot token | 1350 |", "0.900 met", "+0.75 ms met", "| cores (`nproc`) | 2 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if len(rep.failures()) != 0 {
		t.Errorf("failures %v", rep.failures())
	}
}

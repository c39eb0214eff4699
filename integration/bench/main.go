// Command bench is the load harness of licensegate: it measures what the
// license_gate handler costs in front of reverse_proxy.
//
// Run it from the repository root:
//
//	go run ./integration/bench
//
// It builds the licensegate binary, starts a trivial upstream (this same
// program, re-executed as a separate process) and a redis-server on loopback
// ports, mints RS256 tokens (one hot token and a pool of distinct tokens),
// and then, interleaved round by round (A B C A B C …), runs wrk against
// three Caddy configurations that differ only in the gate:
//
//	A  reverse_proxy alone
//	B  license_gate (in-memory store) + reverse_proxy
//	C  license_gate (Redis store)     + reverse_proxy
//
// each with the hot token and with the token pool. It prints and writes
// (-out, default integration/bench/RESULTS.md) a Markdown table of the
// median requests/s, p50/p99/p99.9 latency, throughput ratios against A and
// the p99 added to A. wrk and redis-server are installed with apt-get when
// missing (as root).
//
// Why rounds and ratios: a shared machine's throughput drifts by tens of
// percent within a minute, so one long run per configuration compares
// different machines. Short rounds of A, B and C back to back see the same
// machine, and their ratios, taken round by round, cancel the drift.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// upstreamEnv makes the harness binary serve as the upstream instead.
const upstreamEnv = "LICENSEGATE_BENCH_UPSTREAM"

type options struct {
	duration    time.Duration
	warmup      time.Duration
	rounds      int
	connections int
	threads     int
	pool        int
	scenarios   string
	out         string
	cpuprofile  string
	profileTime time.Duration
	keep        bool
	note        string
}

func main() {
	if addr := os.Getenv(upstreamEnv); addr != "" {
		serveUpstream(addr)
		return
	}
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of one measured wrk run")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "wrk warm-up per Caddy start (after every pool token was sent once), not measured")
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds (A B C A B C ...)")
	flag.IntVar(&o.connections, "connections", 64, "wrk connections")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads")
	flag.IntVar(&o.pool, "pool", 10000, "distinct tokens in the token pool")
	flag.StringVar(&o.scenarios, "scenarios", "A,B,C", "scenarios to run, in order (subset of A,B,C; A is needed for the ratios)")
	flag.StringVar(&o.out, "out", "", "Markdown results file (default <repo>/integration/bench/RESULTS.md; - for none)")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "after the rounds, save a CPU profile of Caddy under load (pool tokens) for each scenario in this directory (not part of the measurement)")
	flag.DurationVar(&o.profileTime, "profile-seconds", 5*time.Second, "length of each -cpuprofile capture")
	flag.StringVar(&o.note, "note", "", "a remark written into the results (e.g. what else ran on the machine)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (Caddyfiles, logs, tokens)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./integration/bench [flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func (o *options) validate() error {
	switch {
	case o.duration < time.Second:
		return errors.New("-duration must be at least 1s")
	case o.rounds < 1:
		return errors.New("-rounds must be at least 1")
	case o.threads < 1 || o.connections < o.threads:
		return errors.New("-threads must be at least 1 and -connections at least -threads")
	case o.pool < 1:
		return errors.New("-pool must be at least 1")
	}
	for _, s := range strings.Split(o.scenarios, ",") {
		if scenarioByName(strings.TrimSpace(s)) == nil {
			return fmt.Errorf("-scenarios: unknown scenario %q (A, B or C)", s)
		}
	}
	return nil
}

func run(o options) error {
	if err := o.validate(); err != nil {
		return err
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if o.out == "" {
		o.out = filepath.Join(root, "integration", "bench", "RESULTS.md")
	}
	var scens []*scenario
	for _, s := range strings.Split(o.scenarios, ",") {
		scens = append(scens, scenarioByName(strings.TrimSpace(s)))
	}
	needRedis := false
	for _, s := range scens {
		needRedis = needRedis || s.store == "redis"
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	procs := &procSet{}
	defer procs.stopAll()

	wrkBin, err := ensureTool("wrk", "wrk")
	if err != nil {
		return err
	}
	var redisBin string
	if needRedis {
		if redisBin, err = ensureTool("redis-server", "redis-server"); err != nil {
			return err
		}
	}

	dir, err := os.MkdirTemp("", "licensegate-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		logf("keeping %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	env := collectEnv(root, wrkBin, redisBin)
	env.loadStart = loadAverage()

	logf("building licensegate")
	bin := filepath.Join(dir, "licensegate")
	if err := buildBinary(root, bin); err != nil {
		return err
	}
	env.caddyVersion = commandOutput(bin, "version")

	logf("minting 1 hot token and %d pool tokens (RS256)", o.pool)
	start := time.Now()
	toks, err := mintTokens(dir, o.pool)
	if err != nil {
		return err
	}
	logf("minted in %v", time.Since(start).Round(time.Millisecond))

	scriptPath := filepath.Join(dir, "bench.lua")
	if err := os.WriteFile(scriptPath, benchLua, 0o644); err != nil {
		return err
	}

	up, upProc, err := startUpstream(procs, dir)
	if err != nil {
		return err
	}
	logf("upstream on %s", up)
	var rds *redisServer
	if needRedis {
		if rds, err = startRedis(procs, redisBin, dir); err != nil {
			return err
		}
		logf("redis-server on %s", rds.addr)
	}

	b := &bench{o: o, dir: dir, bin: bin, wrk: wrkBin, script: scriptPath, toks: toks,
		upstream: up, upstreamProc: upProc, redis: rds, procs: procs, client: newClient(o.connections)}
	var runs []result
	for round := 1; round <= o.rounds; round++ {
		for _, s := range scens {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rs, err := b.measure(ctx, s, round)
			if err != nil {
				return fmt.Errorf("round %d, scenario %s: %w", round, s.name, err)
			}
			runs = append(runs, rs...)
		}
	}
	env.loadEnd = loadAverage()

	if rds != nil {
		env.redisCheck = b.checkRedis(runs)
	}

	rep := buildReport(o, env, scens, runs)
	md := rep.markdown()
	fmt.Println()
	fmt.Print(md)
	if o.out != "-" {
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			return err
		}
		logf("wrote %s", o.out)
	}

	if o.cpuprofile != "" {
		if err := b.profiles(ctx, scens); err != nil {
			return err
		}
	}
	if errs := rep.failures(); len(errs) > 0 {
		return fmt.Errorf("some runs had errors:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

// serveUpstream is the upstream process: the smallest useful HTTP server.
func serveUpstream(addr string) {
	body := []byte("ok")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	})
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

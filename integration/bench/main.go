// Command bench is the load harness of licensegate: it measures what the
// license_gate handler costs in front of reverse_proxy, and how that cost
// grows with the number of distinct licenses.
//
// Run it from the repository root on a quiet machine:
//
//	go run ./integration/bench            # everything, about 16 minutes
//	go run ./integration/bench -quick     # a smoke run of every part, about a minute
//
// The first run also mints the 100,000 pool tokens (a minute or two on two
// cores) into a cache directory (-tokens) that later runs reuse.
//
// It builds the licensegate binary, runs the handler-chain Go benchmark
// (BenchmarkServeHTTP in module/bench_test.go), starts a trivial upstream
// (this same program, re-executed), a redis-server and a Redis Cluster of
// three masters on loopback ports, takes RS256 tokens from a cache
// directory (minting what is missing), and keeps several Caddy
// configurations running side by side that differ only in the gate:
//
//	A   reverse_proxy alone
//	B   license_gate (in-memory store) + reverse_proxy
//	C   license_gate (Redis store)     + reverse_proxy
//	B+  B with a cache_size that fits the largest pool (when the default does not)
//	C+  C likewise
//	C3  C counting in the Redis Cluster (at one pool size)
//
// Only one of them is under load at a time. Each workload (the hot token,
// or a pool of distinct licenses drawn uniformly or Zipf-skewed) is
// measured in rounds: in every round each configuration runs once for a
// few seconds, back to back, the order rotated per round. Ratios to A are
// taken per round and reported as the median with a 95 % interval, beside
// Caddy's CPU time per request. It writes (-out, default
// integration/bench/RESULTS.md) the tables and curve.svg next to them.
// wrk and redis-server are installed with apt-get when missing (as root).
//
// Why rounds and ratios: a shared machine's throughput drifts by tens of
// percent within a minute, so one long run per configuration compares
// different machines. Short runs back to back see the same machine, and
// their ratios, taken round by round, cancel the drift.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/licensegate/licensegate/module"
)

// upstreamEnv makes the harness binary serve as the upstream instead.
const upstreamEnv = "LICENSEGATE_BENCH_UPSTREAM"

type options struct {
	duration     time.Duration
	warmup       time.Duration
	leadIn       time.Duration
	leadInRedis  time.Duration
	leadInPool   time.Duration
	rounds       int
	curveRounds  int
	curveDur     time.Duration
	connections  int
	threads      int
	pool         int
	curve        bool
	pools        []int
	dists        []string
	clusterPool  int
	pin          bool
	tokenDir     string
	goBench      bool
	goBenchTime  string
	goBenchCount int
	out          string
	cpuprofile   string
	profileTime  time.Duration
	keep         bool
	note         string
	quick        bool
}

func main() {
	if addr := os.Getenv(upstreamEnv); addr != "" {
		serveUpstream(addr)
		return
	}
	o, err := parseFlags(flag.CommandLine, os.Args[1:])
	if err != nil {
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// parseFlags reads the command line; -quick changes the defaults of the
// flags that are not given.
func parseFlags(fs *flag.FlagSet, args []string) (options, error) {
	var o options
	var pools, dists string
	cache, _ := os.UserCacheDir()
	if cache == "" {
		cache = os.TempDir()
	}
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "length of one measured wrk run")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "an unmeasured wrk run per configuration and workload before the rounds")
	fs.DurationVar(&o.leadIn, "lead-in", time.Second, "an unmeasured wrk run right before each measured one, on the same configuration and workload; 0 for none")
	fs.DurationVar(&o.leadInRedis, "lead-in-redis", 4*time.Second, "the lead-in of the configurations with a Redis store: their credit blocks idle out (after 5s) while the others run, and a license's rate is judged over 4s")
	fs.DurationVar(&o.leadInPool, "lead-in-redis-pool", 8*time.Second, "the lead-in of the configurations with a Redis store with a pool of licenses: at about a request a second per license, 4s leaves one license in seven without its block when the measured run starts, 8s one in a hundred")
	fs.IntVar(&o.rounds, "rounds", 20, "interleaved rounds of the headline workloads (hot token, -pool uniform)")
	fs.IntVar(&o.curveRounds, "curve-rounds", 6, "interleaved rounds of the other workloads of the curve (6 is the fewest whose range is a 95 % interval)")
	fs.DurationVar(&o.curveDur, "curve-duration", 2*time.Second, "length of one measured wrk run of the curve's other workloads")
	fs.IntVar(&o.connections, "connections", 64, "wrk connections")
	fs.IntVar(&o.threads, "threads", 2, "wrk threads")
	fs.IntVar(&o.pool, "pool", 10000, "distinct licenses of the headline pool")
	fs.BoolVar(&o.curve, "curve", true, "measure the curve: every -pools size with every -dists distribution")
	fs.StringVar(&pools, "pools", "1000,10000,100000", "pool sizes of the curve")
	fs.StringVar(&dists, "dists", "uniform,zipf", "token distributions of the curve (uniform, zipf: s=1.1)")
	fs.IntVar(&o.clusterPool, "cluster-pool", 10000, "pool size at which C3 (Redis Cluster, 3 masters) is measured; 0 for none")
	fs.BoolVar(&o.pin, "pin", false, "pin Caddy to CPU 0 and wrk, the upstream and Redis to the other CPUs (taskset)")
	fs.StringVar(&o.tokenDir, "tokens", filepath.Join(cache, "licensegate-bench"), "cache directory of the signing key and minted tokens, reused between runs")
	fs.BoolVar(&o.goBench, "gobench", true, "run the handler-chain Go benchmark (module BenchmarkServeHTTP)")
	fs.StringVar(&o.goBenchTime, "gobench-time", "1s", "-benchtime of the Go benchmark")
	fs.IntVar(&o.goBenchCount, "gobench-count", 5, "-count of the Go benchmark")
	fs.StringVar(&o.out, "out", "", "Markdown results file; curve.svg is written next to it (default <repo>/integration/bench/RESULTS.md; - for none)")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "after the rounds, save a CPU profile of each headline configuration under the headline pool load in this directory (not part of the measurement)")
	fs.DurationVar(&o.profileTime, "profile-duration", 5*time.Second, "length of each -cpuprofile capture (e.g. 15s)")
	fs.StringVar(&o.note, "note", "", "a remark written into the results (e.g. what else ran on the machine)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (Caddyfiles, logs, token files)")
	fs.BoolVar(&o.quick, "quick", false, "a smoke run of every part in about a minute, for CI: -rounds 2 -curve-rounds 1 -duration 1s -curve-duration 1s -pool 1000 -pools 1000 -cluster-pool 1000 -gobench-time 100x -gobench-count 1 -lead-in-redis-pool 4s -out -")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./integration/bench [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return o, errors.New("unexpected arguments")
	}
	if o.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quick := map[string]string{"rounds": "2", "curve-rounds": "1", "duration": "1s", "curve-duration": "1s", "pool": "1000",
			"pools": "1000", "cluster-pool": "1000", "gobench-time": "100x", "gobench-count": "1", "out": "-",
			"lead-in-redis-pool": "4s"}
		for name, v := range quick {
			if !set[name] {
				if err := fs.Set(name, v); err != nil {
					return o, err
				}
			}
		}
	}
	var err error
	if o.pools, err = parseInts(pools); err != nil {
		return o, fmt.Errorf("-pools: %w", err)
	}
	o.dists = strings.Split(dists, ",")
	for i := range o.dists {
		o.dists[i] = strings.TrimSpace(o.dists[i])
	}
	return o, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func (o *options) validate() error {
	switch {
	case o.duration < time.Second || o.curveDur < time.Second:
		return errors.New("-duration and -curve-duration must be at least 1s")
	case o.rounds < 1 || o.curveRounds < 1:
		return errors.New("-rounds and -curve-rounds must be at least 1")
	case o.threads < 1 || o.connections < o.threads:
		return errors.New("-threads must be at least 1 and -connections at least -threads")
	case o.pool < 1:
		return errors.New("-pool must be at least 1")
	case o.clusterPool < 0:
		return errors.New("-cluster-pool must not be negative")
	}
	for _, d := range o.dists {
		if d != distUniform && d != distZipf {
			return fmt.Errorf("-dists: unknown distribution %q (uniform, zipf)", d)
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
	p := newPlan(&o, module.DefaultCacheSize)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	procs := &procSet{}
	defer procs.stopAll()

	wrkBin, err := ensureTool("wrk", "wrk")
	if err != nil {
		return err
	}
	redisBin, err := ensureTool("redis-server", "redis-server")
	if err != nil {
		return err
	}
	var pin *pinning
	if o.pin {
		if pin, err = newPinning(runtime.NumCPU()); err != nil {
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
	env.pinning = pin.describe()

	logf("building licensegate")
	bin := filepath.Join(dir, "licensegate")
	if err := buildBinary(root, bin); err != nil {
		return err
	}
	env.caddyVersion = commandOutput(bin, "version")

	var gb []*goBench
	if o.goBench {
		logf("running the handler-chain Go benchmark")
		if gb, env.goBenchCmd, err = runGoBench(root, o.goBenchTime, o.goBenchCount); err != nil {
			return err
		}
	}

	maxPool := slices.Max(append([]int{1}, p.pools...))
	toks, err := loadTokens(o.tokenDir, maxPool, time.Now())
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	scriptPath, err := writeWorkloads(p, toks, dir)
	if err != nil {
		return err
	}

	up, upProc, err := startUpstream(procs, pin, dir)
	if err != nil {
		return err
	}
	logf("upstream on %s", up)
	b := &bench{starts: rand.New(rand.NewPCG(1, 2)), o: o, dir: dir, bin: bin, wrk: wrkBin, script: scriptPath, toks: toks, upstream: up,
		upstreamProc: upProc, procs: procs, pin: pin, client: newClient(o.connections), plan: p}
	if b.redis, err = startSingle(procs, pin, redisBin, dir); err != nil {
		return err
	}
	logf("redis-server on %s", b.redis.nodes[0].addr)
	for _, in := range p.insts {
		switch {
		case in.name == "C3":
			if _, err := ensureTool("redis-cli", "redis-tools"); err != nil {
				return err
			}
			var stopCluster func()
			if b.cluster, stopCluster, err = startCluster(dir, 3); err != nil {
				return fmt.Errorf("redis cluster: %w", err)
			}
			defer stopCluster()
			logf("redis cluster on %s", strings.Join(b.cluster.addrs(), " "))
			in.redis = b.cluster
		case in.store == "redis":
			in.redis = b.redis
		}
	}
	for _, in := range p.insts {
		if err := b.startCaddy(in); err != nil {
			return fmt.Errorf("starting %s: %w", in.name, err)
		}
		if _, err := b.check(in, toks.hot); err != nil {
			return fmt.Errorf("%s, hot token: %w\ncaddy log:\n%s", in.name, err, in.p.tail())
		}
	}
	logf("started %d Caddy configurations; the runs take about %v", len(p.insts), p.measureTime(&o).Round(time.Second))

	stages, err := b.fill(ctx)
	if err != nil {
		return err
	}

	runs, err := b.measureAll(ctx)
	if err != nil {
		return err
	}
	env.loadEnd = loadAverage()
	env.redisCheck = b.checkRedis(stages)

	rep := buildReport(o, env, p, runs, stages, gb)
	md := rep.markdown()
	fmt.Println()
	fmt.Print(md)
	if o.out != "-" {
		if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			return err
		}
		svgPath := filepath.Join(filepath.Dir(o.out), curveSVG)
		if err := os.WriteFile(svgPath, []byte(rep.curvePlot().svg()), 0o644); err != nil {
			return err
		}
		logf("wrote %s and %s", o.out, svgPath)
	}
	if o.cpuprofile != "" {
		if err := b.profiles(ctx); err != nil {
			return err
		}
	}
	var errs []string
	errs = append(errs, rep.failures()...)
	if strings.Contains(env.redisCheck, "MISMATCH") {
		errs = append(errs, "Redis check: "+env.redisCheck)
	}
	if len(errs) > 0 {
		return fmt.Errorf("the measurement failed:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

// writeWorkloads writes each pool's token file and index sequence and the
// wrk script into dir, and returns the script's path.
func writeWorkloads(p *plan, toks *tokens, dir string) (string, error) {
	p.files(dir)
	for _, g := range p.groups {
		if g.w.pool == 0 {
			continue
		}
		if err := toks.writePool(g.w.tokPath, g.w.pool); err != nil {
			return "", err
		}
		// The seed depends only on the workload, so every run of the
		// harness sends the same sequence.
		seed := uint64(g.w.pool) << 1
		if g.w.dist == distZipf {
			seed |= 1
		}
		seq, err := indexSequence(g.w.dist, g.w.pool, sequenceLen, seed)
		if err != nil {
			return "", err
		}
		if err := writeSequence(g.w.seqPath, seq); err != nil {
			return "", err
		}
	}
	scriptPath := filepath.Join(dir, "bench.lua")
	return scriptPath, os.WriteFile(scriptPath, benchLua, 0o644)
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

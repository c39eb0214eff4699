package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/licensegate/licensegate/module"
)

//go:embed bench.lua
var benchLua []byte

// bench holds what every run needs.
type bench struct {
	o            options
	dir          string
	bin          string
	wrk          string
	script       string
	toks         *tokens
	upstream     string
	upstreamProc *proc
	redis        *redisSet // scenario C's single node
	cluster      *redisSet // scenario C3's, or nil
	procs        *procSet
	pin          *pinning
	client       *http.Client
	plan         *plan
	// starts draws where each wrk run of a pool starts in its sequence
	// (seeded: the same draws every time the harness runs).
	starts *rand.Rand
}

// result is one measured wrk run.
type result struct {
	workload  string // workload key
	instance  string
	round     int
	rps       float64
	requests  int64
	p50, p90  time.Duration
	p99, p999 time.Duration
	mean, max time.Duration
	errors    wrkErrors
	cpu       cpuUse
	// hitRatio is the share of the run's allowed requests whose token came
	// from the verified-token cache; NaN when unknown.
	hitRatio float64
	// trips is the store round trips of the run's charges per request
	// judged (licensegate_store_seconds_count over requests); NaN when
	// unknown or when the gate has no store round trips (memory store).
	trips float64
}

type wrkErrors struct {
	Connect, Read, Write, Status, Timeout int64
}

func (e wrkErrors) total() int64 { return e.Connect + e.Read + e.Write + e.Status + e.Timeout }

func (e wrkErrors) String() string {
	return fmt.Sprintf("connect %d, read %d, write %d, non-2xx/3xx %d, timeout %d",
		e.Connect, e.Read, e.Write, e.Status, e.Timeout)
}

// Metric names the harness reads from the gate.
const (
	metricHits     = "licensegate_verified_cache_hits_total"
	metricRequests = "licensegate_requests_total"
	// One sample per store round trip of a charge.
	metricStoreTrips = "licensegate_store_seconds_count"
)

// runOnce measures one instance with one workload, after its lead-in
// (unmeasured): wrk for d, the CPU
// time of every process, the cache hits, and for the hot token that the
// gate charged every request exactly once.
func (b *bench) runOnce(ctx context.Context, in *instance, w *workload, round int, d time.Duration) (result, error) {
	if lead := b.o.leadFor(in, w); lead > 0 {
		r, err := b.wrkRun(ctx, in, w, lead)
		if err != nil {
			return result{}, fmt.Errorf("lead-in: %w", err)
		}
		if r.errors.total() > 0 {
			logf("warning: lead-in of %s with %s had errors (not measured): %v", in.name, w.label, r.errors)
		}
		if in.gate {
			// The lead-in's requests in flight when wrk stopped must be
			// judged before the counter is read, or they count in this run.
			b.settle(in)
		}
	}
	var usedBefore int64
	if in.gate && w.pool == 0 {
		var err error
		if usedBefore, err = b.used(in, b.toks.hot); err != nil {
			return result{}, fmt.Errorf("reading the hot token's counter: %w", err)
		}
	}
	var mBefore map[string]float64
	if in.gate {
		mBefore, _ = in.metrics(b.client)
	}
	before := b.cpuSnapshot(in)
	r, err := b.wrkRun(ctx, in, w, d)
	if err != nil {
		return result{}, err
	}
	wrkCPU := r.cpu.wrk
	r.cpu = b.cpuSnapshot(in).sub(before)
	r.cpu.wrk = wrkCPU
	r.workload, r.instance, r.round = w.key, in.name, round
	r.hitRatio, r.trips = math.NaN(), math.NaN()
	if in.p.exited() {
		return result{}, fmt.Errorf("caddy exited during the run:\n%s", in.p.tail())
	}
	if in.gate {
		if mAfter, err := in.metrics(b.client); err == nil && mBefore != nil {
			hits, okH := mAfter[metricHits]
			reqs := mAfter[metricRequests] - mBefore[metricRequests]
			if okH && reqs > 0 {
				// Requests still in flight when wrk stops may have hit the
				// cache but not been counted yet.
				r.hitRatio = min(1, (hits-mBefore[metricHits])/reqs)
			}
			if trips, ok := mAfter[metricStoreTrips]; ok && reqs > 0 && in.redis != nil {
				r.trips = (trips - mBefore[metricStoreTrips]) / reqs
			}
		}
	}
	if in.gate && w.pool == 0 && round > 0 {
		after, err := b.used(in, b.toks.hot)
		if err != nil {
			return result{}, fmt.Errorf("reading the hot token's counter: %w", err)
		}
		// The read itself is charged.
		if err := checkCharged(after-usedBefore-1, r.requests, b.o.connections); err != nil {
			return result{}, err
		}
	}
	return r, nil
}

// leadFor is the lead-in before each measured run of in with w.
func (o *options) leadFor(in *instance, w *workload) time.Duration {
	switch {
	case in.store == "redis" && w.pool > 0:
		return o.leadInPool
	case in.store == "redis":
		return o.leadInRedis
	}
	return o.leadIn
}

// settle waits, up to 2 s, until the gate's judged-requests metric holds
// still for 50 ms: every request of a finished wrk run was judged.
func (b *bench) settle(in *instance) {
	last := -1.0
	for range 40 {
		m, err := in.metrics(b.client)
		if err != nil {
			return
		}
		if m[metricRequests] == last {
			return
		}
		last = m[metricRequests]
		time.Sleep(50 * time.Millisecond)
	}
}

// checkCharged compares the rise of a license's counter over a wrk run
// with the requests wrk counted: wrk does not count the requests in flight
// when it stops (at most one per connection), which the gate may have
// charged, so the rise may exceed the count by that much and no more.
func checkCharged(charged, requests int64, connections int) error {
	if charged < requests || charged > requests+int64(connections) {
		return fmt.Errorf("%w: the hot token's counter rose by %d for %d requests answered (at most %d in flight)",
			errMiscount, charged, requests, connections)
	}
	return nil
}

// errMiscount is a gate that did not charge every request exactly once.
var errMiscount = errors.New("the gate miscounted")

// used sends one request with token and returns the credits used so far
// as the gate reports them (limit − remaining): the store's counter, read
// through the gate, whatever the store's key layout.
func (b *bench) used(in *instance, token string) (int64, error) {
	h, err := b.check(in, token)
	if err != nil {
		return 0, err
	}
	limit, err1 := strconv.ParseInt(h.Get(module.HeaderCreditsLimit), 10, 64)
	remaining, err2 := strconv.ParseInt(h.Get(module.HeaderCreditsRemaining), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("credits headers: %w", err)
	}
	return limit - remaining, nil
}

// check sends one request and verifies that the gate (or its absence)
// shows: a gate instance answers with the credits headers.
func (b *bench) check(in *instance, token string) (http.Header, error) {
	var err error
	for attempt := range 4 {
		if attempt > 0 {
			// A starved machine can stall the store past its timeout (503);
			// the measured runs count every non-2xx answer.
			time.Sleep(100 * time.Millisecond)
		}
		var h http.Header
		if h, err = b.checkOnce(in, token); err == nil || !strings.HasPrefix(err.Error(), "status 503") {
			return h, err
		}
	}
	return nil, err
}

func (b *bench) checkOnce(in *instance, token string) (http.Header, error) {
	req, err := http.NewRequest(http.MethodGet, in.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		return nil, fmt.Errorf("status %d, body %q", resp.StatusCode, body)
	}
	gated := resp.Header.Get(module.HeaderCreditsLimit) != ""
	if gated != in.gate {
		return nil, fmt.Errorf("%s present: %v, want %v", module.HeaderCreditsLimit, gated, in.gate)
	}
	return resp.Header, nil
}

// sendTokens sends pool tokens [from, to) once each, checking every
// answer: this verifies them into the gate's cache (as far as it holds
// them) and creates their counters.
func (b *bench) sendTokens(ctx context.Context, in *instance, from, to int) error {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= to || ctx.Err() != nil {
					return
				}
				if _, err := b.check(in, b.toks.pool[i]); err != nil {
					select {
					case errc <- fmt.Errorf("%s: pool token %d: %w", in.name, i, err):
					default:
					}
					next.Store(int64(to))
					return
				}
			}
		})
	}
	wg.Wait()
	// Leave no idle connection of the checks on the Caddy under test.
	b.client.CloseIdleConnections()
	select {
	case err := <-errc:
		return err
	default:
		return ctx.Err()
	}
}

// wrkRun runs wrk once against an instance.
func (b *bench) wrkRun(ctx context.Context, in *instance, w *workload, d time.Duration) (result, error) {
	secs := int((d + time.Second - 1) / time.Second)
	args := []string{"-t", strconv.Itoa(b.o.threads), "-c", strconv.Itoa(b.o.connections),
		"-d", strconv.Itoa(secs) + "s", "--timeout", "5s", "--latency", "-s", b.script}
	if w.pool == 0 {
		args = append(args, "-H", "Authorization: Bearer "+b.toks.hot, in.url)
	} else {
		// A start of its own for every run, so that no run replays the
		// stretch of the run before it (a lead-in's, say): a license's
		// requests then come as the draws say, not twice at a fixed gap.
		start := b.starts.IntN(sequenceLen)
		args = append(args, in.url, "--", w.tokPath, w.seqPath, strconv.Itoa(start), strconv.Itoa(b.o.threads))
	}
	cmd := b.pin.commandContext(ctx, roleOther, b.wrk, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	setProcAttr(cmd)
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("wrk: %w\n%s%s", err, stdout.String(), stderr.String())
	}
	r, err := parseWrk(stdout.String())
	r.cpu.wrk = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return r, err
}

// wrkJSON is what bench.lua's done() prints.
type wrkJSON struct {
	Requests   int64   `json:"requests"`
	DurationUS int64   `json:"duration_us"`
	ErrConnect int64   `json:"err_connect"`
	ErrRead    int64   `json:"err_read"`
	ErrWrite   int64   `json:"err_write"`
	ErrStatus  int64   `json:"err_status"`
	ErrTimeout int64   `json:"err_timeout"`
	MeanUS     float64 `json:"lat_mean_us"`
	MaxUS      int64   `json:"lat_max_us"`
	P50US      int64   `json:"p50_us"`
	P90US      int64   `json:"p90_us"`
	P99US      int64   `json:"p99_us"`
	P999US     int64   `json:"p999_us"`
}

func parseWrk(out string) (result, error) {
	var line string
	for l := range strings.SplitSeq(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "BENCHJSON "); ok {
			line = rest
		}
	}
	if line == "" {
		return result{}, fmt.Errorf("no BENCHJSON line in wrk's output:\n%s", out)
	}
	var w wrkJSON
	if err := json.Unmarshal([]byte(line), &w); err != nil {
		return result{}, fmt.Errorf("parsing wrk's result %q: %w", line, err)
	}
	if w.DurationUS <= 0 {
		return result{}, fmt.Errorf("wrk reported no duration: %s", line)
	}
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	return result{
		requests: w.Requests,
		rps:      float64(w.Requests) / (float64(w.DurationUS) / 1e6),
		p50:      us(w.P50US), p90: us(w.P90US), p99: us(w.P99US), p999: us(w.P999US),
		mean: time.Duration(w.MeanUS * float64(time.Microsecond)), max: us(w.MaxUS),
		errors: wrkErrors{Connect: w.ErrConnect, Read: w.ErrRead, Write: w.ErrWrite,
			Status: w.ErrStatus, Timeout: w.ErrTimeout},
	}, nil
}

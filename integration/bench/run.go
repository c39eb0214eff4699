package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/module/redisstore"
	"github.com/licensegate/licensegate/policy"
)

//go:embed bench.lua
var benchLua []byte

// scenario is one Caddy configuration under test.
type scenario struct {
	name  string
	title string
	gate  bool
	store string // "memory" or "redis" when gate
}

var allScenarios = []*scenario{
	{name: "A", title: "reverse_proxy"},
	{name: "B", title: "license_gate (memory) + reverse_proxy", gate: true, store: "memory"},
	{name: "C", title: "license_gate (Redis) + reverse_proxy", gate: true, store: "redis"},
}

func scenarioByName(name string) *scenario {
	for _, s := range allScenarios {
		if strings.EqualFold(s.name, name) {
			return s
		}
	}
	return nil
}

// Token modes.
const (
	modeHot  = "hot token"
	modePool = "10k pool"
)

func modes(pool int) []string {
	if pool == 10000 {
		return []string{modeHot, modePool}
	}
	return []string{modeHot, poolModeName(pool)}
}

func poolModeName(pool int) string {
	if pool == 10000 {
		return modePool
	}
	return fmt.Sprintf("%d pool", pool)
}

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
	redis        *redisServer
	procs        *procSet
	client       *http.Client
}

// result is one measured wrk run.
type result struct {
	scenario  string
	mode      string
	round     int
	rps       float64
	requests  int64
	p50, p90  time.Duration
	p99, p999 time.Duration
	mean, max time.Duration
	errors    wrkErrors
	cpu       cpuUse
}

type wrkErrors struct {
	Connect, Read, Write, Status, Timeout int64
}

func (e wrkErrors) total() int64 { return e.Connect + e.Read + e.Write + e.Status + e.Timeout }

func (e wrkErrors) String() string {
	return fmt.Sprintf("connect %d, read %d, write %d, non-2xx/3xx %d, timeout %d",
		e.Connect, e.Read, e.Write, e.Status, e.Timeout)
}

// measure starts the scenario's Caddy, checks and warms it, runs wrk with
// the hot token and with the pool, and stops it.
func (b *bench) measure(ctx context.Context, s *scenario, round int) ([]result, error) {
	c, err := b.startCaddy(s, "round"+strconv.Itoa(round))
	if err != nil {
		return nil, err
	}
	defer b.stopCaddy(c)
	if err := b.warm(ctx, s, c); err != nil {
		return nil, fmt.Errorf("%w\ncaddy log:\n%s", err, c.p.tail())
	}
	var out []result
	for _, mode := range modes(b.o.pool) {
		before := b.cpuSnapshot(c)
		r, err := b.wrkRun(ctx, c.url, mode, b.o.duration)
		if err != nil {
			return nil, fmt.Errorf("%s: %w\ncaddy log:\n%s", mode, err, c.p.tail())
		}
		wrkCPU := r.cpu.wrk
		r.cpu = b.cpuSnapshot(c).sub(before)
		r.cpu.wrk = wrkCPU
		r.scenario, r.round = s.name, round
		if c.p.exited() {
			return nil, fmt.Errorf("caddy exited during the run:\n%s", c.p.tail())
		}
		logf("round %d  %s  %-9s  %7.0f req/s  p50 %-9v p99 %-9v p99.9 %-9v CPU/req %-7v errors %d",
			round, s.name, mode, r.rps, r.p50, r.p99, r.p999, perRequest(r.cpu.total(), r.requests), r.errors.total())
		out = append(out, r)
	}
	return out, nil
}

// warm sends every token once (so the pool is verified into the gate's
// cache and, for C, every counter exists in Redis), checking each answer,
// then runs wrk briefly with the pool.
func (b *bench) warm(ctx context.Context, s *scenario, c *caddyProc) error {
	if err := b.checkRetry(c.url, b.toks.hot, s); err != nil {
		return fmt.Errorf("hot token: %w", err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(b.toks.pool) || ctx.Err() != nil {
					return
				}
				if err := b.checkRetry(c.url, b.toks.pool[i], s); err != nil {
					select {
					case errc <- fmt.Errorf("pool token %d: %w", i, err):
					default:
					}
					next.Store(int64(len(b.toks.pool)))
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
	}
	if b.o.warmup > 0 {
		r, err := b.wrkRun(ctx, c.url, poolModeName(b.o.pool), b.o.warmup)
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		if r.errors.total() > 0 {
			logf("warning: %s warm-up had errors (not measured): %v", s.name, r.errors)
		}
	}
	return nil
}

// checkRetry is check, retried a few times on 503: a starved machine can
// stall the store past its timeout, which the warm-up (not measured) may
// ride out; the measured runs count every non-2xx answer.
func (b *bench) checkRetry(url, token string, s *scenario) error {
	var err error
	for attempt := range 4 {
		if attempt > 0 {
			logf("warning: %s warm-up: %v; retrying", s.name, err)
			time.Sleep(100 * time.Millisecond)
		}
		if err = b.check(url, token, s); err == nil || !strings.HasPrefix(err.Error(), "status 503") {
			return err
		}
	}
	return err
}

// check sends one request and verifies that the gate (or its absence)
// shows: a gate scenario answers with the credits headers.
func (b *bench) check(url, token string, s *scenario) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		return fmt.Errorf("status %d, body %q", resp.StatusCode, body)
	}
	gated := resp.Header.Get("X-License-Credits-Limit") != ""
	if gated != s.gate {
		return fmt.Errorf("X-License-Credits-Limit present: %v, want %v", gated, s.gate)
	}
	return nil
}

// wrkRun runs wrk once with the hot token (mode modeHot) or the pool.
func (b *bench) wrkRun(ctx context.Context, url, mode string, d time.Duration) (result, error) {
	secs := int((d + time.Second - 1) / time.Second)
	args := []string{"-t", strconv.Itoa(b.o.threads), "-c", strconv.Itoa(b.o.connections),
		"-d", strconv.Itoa(secs) + "s", "--timeout", "5s", "--latency", "-s", b.script}
	if mode == modeHot {
		args = append(args, "-H", "Authorization: Bearer "+b.toks.hot, url)
	} else {
		args = append(args, url, "--", b.toks.poolPath)
	}
	cmd := exec.CommandContext(ctx, b.wrk, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	setProcAttr(cmd)
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("wrk: %w\n%s%s", err, stdout.String(), stderr.String())
	}
	r, err := parseWrk(stdout.String(), mode)
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

func parseWrk(out, mode string) (result, error) {
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
		mode:     mode,
		requests: w.Requests,
		rps:      float64(w.Requests) / (float64(w.DurationUS) / 1e6),
		p50:      us(w.P50US), p90: us(w.P90US), p99: us(w.P99US), p999: us(w.P999US),
		mean: time.Duration(w.MeanUS * float64(time.Microsecond)), max: us(w.MaxUS),
		errors: wrkErrors{Connect: w.ErrConnect, Read: w.ErrRead, Write: w.ErrWrite,
			Status: w.ErrStatus, Timeout: w.ErrTimeout},
	}, nil
}

// checkRedis confirms that scenario C charged in Redis: the hot token's
// counter holds at least the requests C sent with it, and the pool's
// counters exist.
func (b *bench) checkRedis(runs []result) string {
	var sent int64
	for _, r := range runs {
		if r.scenario == "C" && r.mode == modeHot {
			sent += r.requests
		}
	}
	if sent == 0 {
		return ""
	}
	used, err := testredis.Command(b.redis.addr, "GET", "lg:{"+redisstore.Tag(policy.LicenseKey{Issuer: benchIssuer, Key: b.toks.hotJTI})+"}:used")
	if err != nil {
		return "could not read the hot token's counter: " + err.Error()
	}
	n, _ := strconv.ParseInt(used, 10, 64)
	keys, _ := testredis.Command(b.redis.addr, "DBSIZE")
	verdict := "ok"
	if n < sent {
		verdict = "MISMATCH: fewer charges than requests"
	}
	return fmt.Sprintf("hot token's Redis counter `lg:{<tag>}:used` = %d after %d measured requests in C "+
		"(plus warm-up); %s keys in Redis — %s", n, sent, keys, verdict)
}

// profiles captures a CPU profile of Caddy for each scenario while wrk runs
// with the pool; these runs are not part of the results.
func (b *bench) profiles(ctx context.Context, scens []*scenario) error {
	if err := os.MkdirAll(b.o.cpuprofile, 0o755); err != nil {
		return err
	}
	for _, s := range scens {
		c, err := b.startCaddy(s, "profile")
		if err != nil {
			return err
		}
		err = func() error {
			defer b.stopCaddy(c)
			if err := b.warm(ctx, s, c); err != nil {
				return fmt.Errorf("%w\ncaddy log:\n%s", err, c.p.tail())
			}
			secs := int(b.o.profileTime / time.Second)
			if secs < 1 {
				secs = 1
			}
			var prof []byte
			var perr error
			done := make(chan struct{})
			go func() {
				defer close(done)
				cl := &http.Client{Timeout: time.Duration(secs+30) * time.Second}
				resp, err := cl.Get(c.admin + "/debug/pprof/profile?seconds=" + strconv.Itoa(secs))
				if err != nil {
					perr = err
					return
				}
				defer resp.Body.Close()
				prof, perr = io.ReadAll(resp.Body)
				if perr == nil && resp.StatusCode != http.StatusOK {
					perr = fmt.Errorf("status %d: %s", resp.StatusCode, prof)
				}
			}()
			if _, err := b.wrkRun(ctx, c.url, poolModeName(b.o.pool), time.Duration(secs+2)*time.Second); err != nil {
				return err
			}
			<-done
			if perr != nil {
				return fmt.Errorf("fetching the profile: %w", perr)
			}
			path := filepath.Join(b.o.cpuprofile, "caddy-"+s.name+".pprof")
			if err := os.WriteFile(path, prof, 0o644); err != nil {
				return err
			}
			logf("CPU profile of %s: %s (go tool pprof -top %s)", s.name, path, path)
			return nil
		}()
		if err != nil {
			return fmt.Errorf("profiling %s: %w", s.name, err)
		}
	}
	return nil
}

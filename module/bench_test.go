package module

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/policy"
)

// The benchmarks of the hot path: token verification without and with the
// verified-token cache, the policy checks on a license decoded from a real
// token, and the whole handler chain (gate + a no-op next handler) with the
// in-memory store and with a real redis-server, beside the bare chain. The
// end-to-end comparison with bare reverse_proxy is the load harness,
// integration/bench, which also runs BenchmarkServeHTTP and reports it.
//
//	go test -run '^$' -bench . -benchmem ./module/

const benchItemName = "bench"

// benchFixture is a provisioned gate (memory store, RS256 key in a
// jwks_file) and a key to mint tokens with.
type benchFixture struct {
	gate *Gate
	key  *rsa.PrivateKey
	seq  int
}

var benchKey struct {
	key *rsa.PrivateKey
	err error
}

// benchRSAKey makes one RSA-2048 key for all benchmarks of the run.
func benchRSAKey(b *testing.B) *rsa.PrivateKey {
	b.Helper()
	if benchKey.key == nil && benchKey.err == nil {
		benchKey.key, benchKey.err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if benchKey.err != nil {
		b.Fatal(benchKey.err)
	}
	return benchKey.key
}

func newBenchFixture(b *testing.B) *benchFixture { return newBenchFixtureStore(b, nil) }

// newBenchFixtureStore is newBenchFixture with a counter store (nil: the
// in-memory store).
func newBenchFixtureStore(b *testing.B, store *StoreConfig) *benchFixture {
	b.Helper()
	key := benchRSAKey(b)
	b64 := base64.RawURLEncoding.EncodeToString
	doc, err := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": "bench", "use": "sig", "alg": "RS256",
		"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
	}}})
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "jwks.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	g := &Gate{JWKSFiles: []string{path}, Algorithms: []string{"RS256"}, RequireItem: benchItemName, Store: store}
	if err := provisionForBench(g, ctx); err != nil {
		cancel()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = g.Cleanup()
		cancel()
	})
	return &benchFixture{gate: g, key: key}
}

// provisionForBench is Provision without the events app: ctx.App("events")
// dereferences the context's config, which a bare caddy.NewContext does not
// have (no config is loaded in a benchmark), so it would panic. The events
// are only emitted on rejects, which these benchmarks do not make.
func provisionForBench(g *Gate, ctx caddy.Context) error {
	g.ctx = ctx
	// Caddy's default log level is INFO: allowed requests are not logged.
	g.logger = ctx.Logger().WithOptions(zap.IncreaseLevel(zapcore.InfoLevel))
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	return g.provisionGate()
}

// mint signs an RS256 token with a fresh jti, the benchmark item and
// credits that never run out.
func (f *benchFixture) mint(b *testing.B) string {
	b.Helper()
	f.seq++
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": "bench", "sub": "alice", "jti": fmt.Sprintf("bench-%d", f.seq),
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"items": []string{benchItemName}, "credits": policy.MaxCredits,
	})
	tok.Header["kid"] = "bench"
	s, err := tok.SignedString(f.key)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkVerifyCold is a token verified from scratch: parsing, the RS256
// signature, the registered claims and decoding the license claims (the
// cache is off, so every iteration does the full work).
func BenchmarkVerifyCold(b *testing.B) {
	f := newBenchFixture(b)
	toks := make([]string, 32)
	for i := range toks {
		toks[i] = f.mint(b)
	}
	cold := *f.gate.verifier
	cold.cache = nil
	ctx, now := context.Background(), time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, rej := cold.verify(ctx, toks[i%len(toks)], now); rej != nil {
			b.Fatal(rej)
		}
		i++
	}
}

// BenchmarkVerifyCached is a repeated token: one SHA-256 of the token and a
// cache lookup, no signature verification.
func BenchmarkVerifyCached(b *testing.B) {
	f := newBenchFixture(b)
	tok := f.mint(b)
	v := f.gate.verifier
	ctx, now := context.Background(), time.Now()
	first, rej := v.verify(ctx, tok, now)
	if rej != nil {
		b.Fatal(rej)
	}
	b.ReportAllocs()
	for b.Loop() {
		e, rej := v.verify(ctx, tok, now)
		if rej != nil {
			b.Fatal(rej)
		}
		if e.lic != first.lic {
			b.Fatal("the token was verified again instead of coming from the cache")
		}
	}
}

// BenchmarkPolicyCheck runs the gate's rules on a license decoded from a
// real token: the per-request policy evaluation must not allocate.
func BenchmarkPolicyCheck(b *testing.B) {
	f := newBenchFixture(b)
	e, rej := f.gate.verifier.verify(context.Background(), f.mint(b), time.Now())
	if rej != nil {
		b.Fatal(rej)
	}
	q := policy.Request{Now: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if rej := f.gate.rules.Check(e.lic, &q); rej != nil {
			b.Fatal(rej)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = f.gate.rules.Check(e.lic, &q) }); n != 0 {
		b.Errorf("policy evaluation allocates %v times per request, want 0", n)
	}
}

// benchWriter is a ResponseWriter that keeps nothing but the header map,
// so the benchmark counts the handler's allocations, not a recorder's.
type benchWriter struct {
	h      http.Header
	status int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchWriter) WriteHeader(status int)      { w.status = status }

// BenchmarkServeHTTP is the whole handler chain with a cached token: the
// gate (extraction, cache hit, policy checks, the credit charge, the
// credits headers, placeholders and metrics) in front of a no-op next
// handler. "bare" is the same per-request setup (Caddy's
// caddyhttp.PrepareRequest: a fresh replacer, vars and request context)
// calling the next handler directly; "memory" and "redis" are the gate with the in-memory
// store and with a real redis-server on loopback (one script round trip
// per request). Unlike the load harness's requests/s, allocs/op and the
// ratio of ns/op to bare's hardly depend on what else runs on the machine.
func BenchmarkServeHTTP(b *testing.B) {
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	})
	b.Run("bare", func(b *testing.B) {
		c := newBenchChain(b, "")
		b.ReportAllocs()
		defer reportCPU(b, processCPU())
		for b.Loop() {
			if err := next.ServeHTTP(c.w, c.request()); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, st := range benchStores {
		b.Run(st.name, func(b *testing.B) {
			f := newBenchFixtureStore(b, st.store(b))
			c := newBenchChain(b, f.mint(b))
			// Verify once, so the loop measures the cached path.
			if err := f.gate.ServeHTTP(c.w, c.request(), next); err != nil || c.w.status != http.StatusOK {
				b.Fatalf("first request: status %d, err %v", c.w.status, err)
			}
			b.ReportAllocs()
			defer reportCPU(b, processCPU())
			for b.Loop() {
				if err := f.gate.ServeHTTP(c.w, c.request(), next); err != nil || c.w.status != http.StatusOK {
					b.Fatalf("status %d, err %v", c.w.status, err)
				}
			}
			if c.w.h.Get(HeaderCreditsLimit) == "" {
				b.Fatal("no credits header: the request was not charged")
			}
		})
	}
}

// benchStores are the counter stores the handler benchmarks compare:
// the in-memory store, and a real redis-server on loopback (credit
// blocks on, the default).
var benchStores = []struct {
	name  string
	store func(b *testing.B) *StoreConfig
}{
	{"memory", func(*testing.B) *StoreConfig { return nil }},
	{"redis", func(b *testing.B) *StoreConfig {
		return &StoreConfig{Type: "redis", Addresses: []string{testredis.Start(b).Addr()}}
	}},
}

// benchChain is the per-request setup of BenchmarkServeHTTP.
type benchChain struct {
	w    *benchWriter
	base *http.Request
}

func newBenchChain(b *testing.B, tok string) *benchChain {
	b.Helper()
	base := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
	if tok != "" {
		base.Header.Set("Authorization", "Bearer "+tok)
	}
	return &benchChain{w: &benchWriter{h: make(http.Header)}, base: base}
}

// request resets the writer and makes the request as Caddy's server does
// for every request: a fresh replacer with Caddy's HTTP placeholders, the
// request's vars (with the client address) and the original request.
func (c *benchChain) request() *http.Request {
	clear(c.w.h)
	c.w.status = 0
	r := caddyhttp.PrepareRequest(c.base, caddy.NewReplacer(), c.w, nil)
	caddyhttp.SetVar(r.Context(), caddyhttp.ClientIPVarKey, "127.0.0.1")
	return r
}

// reportCPU adds the process's CPU time per iteration since start as
// cpu-ns/op: on a machine shared with other work it moves far less than
// ns/op. Deferred at the start of the loop.
func reportCPU(b *testing.B, start time.Duration) {
	if start > 0 && b.N > 0 {
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}

package module

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/golang-jwt/jwt/v5"
	dto "github.com/prometheus/client_model/go"

	"github.com/licensegate/licensegate/policy"
)

// benchPoolSize is the pool of BenchmarkServeHTTPUncounted: the load
// harness's largest, which the default cache_size holds.
const benchPoolSize = 100_000

// benchPoolDir keeps the benchmark's signing key and minted pool tokens
// between runs: signing 100,000 RS256 tokens takes a minute or more on
// a small machine, verifying them a few seconds. Each kind of pool
// (plain, with credits) has its own key and directory.
func benchPoolDir(credits bool) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	dir = filepath.Join(dir, "licensegate-module-bench")
	if credits {
		dir = filepath.Join(dir, "credits")
	}
	return dir
}

// benchPoolFormat names the claims of the cached pool tokens; a change
// mints them anew.
const benchPoolFormat = "1"

// benchPoolLifetime is how long minted pool tokens stay valid; they are
// minted anew when less than a week is left.
const benchPoolLifetime = 365 * 24 * time.Hour

// loadBenchPool returns the key (which benchRSAKey then gives every
// fixture made after it) and n RS256 tokens, each with its own jti and
// sub, from the cache directory or minted into it: without credits, or
// with credits that never run out.
func loadBenchPool(b *testing.B, n int, credits bool) []string {
	b.Helper()
	dir := benchPoolDir(credits)
	if dir != "" {
		if key, toks, err := readBenchPool(dir, n); err == nil {
			benchKey.key, benchKey.err = key, nil
			return toks
		}
	}
	benchKey.key, benchKey.err = nil, nil // a new key: the other kind's may be another
	key := benchRSAKey(b)
	exp := time.Now().Add(benchPoolLifetime).Truncate(time.Second)
	b.Logf("minting %d RS256 pool tokens (kept in %s for later runs)", n, dir)
	toks := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, runtime.GOMAXPROCS(0))
	for w := range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := w; i < n; i += runtime.GOMAXPROCS(0) {
				claims := jwt.MapClaims{
					"iss": "bench", "sub": fmt.Sprintf("user-%d", i), "jti": fmt.Sprintf("pool-%06d", i),
					"iat": exp.Add(-benchPoolLifetime).Unix(), "exp": exp.Unix(), "items": []string{benchItemName},
				}
				if credits {
					claims["credits"] = policy.MaxCredits
				}
				tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
				tok.Header["kid"] = "bench"
				s, err := tok.SignedString(key)
				if err != nil {
					errs <- err
					return
				}
				toks[i] = s
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	if dir != "" {
		if err := writeBenchPool(dir, key, exp, toks); err != nil {
			b.Logf("pool tokens not kept: %v", err)
		}
	}
	return toks
}

// readBenchPool reads the cached key and at least n tokens that stay
// valid for a week more.
func readBenchPool(dir string, n int) (*rsa.PrivateKey, []string, error) {
	pemBytes, err := os.ReadFile(filepath.Join(dir, "key.pem"))
	if err != nil {
		return nil, nil, err
	}
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return nil, nil, errors.New("key.pem holds no PEM block")
	}
	key, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
	if err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(filepath.Join(dir, "pool.txt"))
	if err != nil {
		return nil, nil, err
	}
	head, rest, _ := strings.Cut(string(data), "\n")
	format, expText, _ := strings.Cut(head, " ")
	exp, err := strconv.ParseInt(expText, 10, 64)
	if err != nil || format != benchPoolFormat || time.Until(time.Unix(exp, 0)) < 7*24*time.Hour {
		return nil, nil, errors.New("pool tokens of another format or about to expire")
	}
	toks := strings.Fields(rest)
	if len(toks) < n {
		return nil, nil, fmt.Errorf("%d pool tokens kept, %d wanted", len(toks), n)
	}
	return key, toks[:n], nil
}

func writeBenchPool(dir string, key *rsa.PrivateKey, exp time.Time, toks []string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600); err != nil {
		return err
	}
	doc := benchPoolFormat + " " + strconv.FormatInt(exp.Unix(), 10) + "\n" + strings.Join(toks, "\n") + "\n"
	return os.WriteFile(filepath.Join(dir, "pool.txt"), []byte(doc), 0o600)
}

// BenchmarkServeHTTPUncounted is the whole handler chain with the
// in-memory store and tokens without credits or seats, so the store is
// never asked: what remains is the gate's own work (extraction, the
// verified-token cache, the policy checks, placeholders, metrics).
// "hot" sends one token; "pool100k" sends 100,000 distinct tokens drawn
// uniformly, all verified into the cache (default cache_size) before the
// loop. "bare" is the same per-request setup calling the next handler
// directly. Profile the gate's part with
//
//	go test -run '^$' -bench 'Uncounted/pool100k/gate' -cpuprofile cpu.out ./module/
//	go tool pprof -top -cum -focus 'Gate..ServeHTTP' cpu.out
func BenchmarkServeHTTPUncounted(b *testing.B) {
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	})
	var pool []string
	poolOnce := func(b *testing.B) []string {
		if pool == nil {
			pool = loadBenchPool(b, benchPoolSize, false)
		}
		return pool
	}
	workloads := []struct {
		name   string
		tokens func(b *testing.B, f func() *benchFixture) []string
	}{
		{"hot", func(b *testing.B, f func() *benchFixture) []string {
			fx := f()
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
				"iss": "bench", "sub": "alice", "jti": "hot", "iat": time.Now().Unix(),
				"exp": time.Now().Add(time.Hour).Unix(), "items": []string{benchItemName},
			})
			tok.Header["kid"] = "bench"
			s, err := tok.SignedString(fx.key)
			if err != nil {
				b.Fatal(err)
			}
			return []string{s}
		}},
		{"pool100k", func(b *testing.B, _ func() *benchFixture) []string { return poolOnce(b) }},
	}
	for _, wl := range workloads {
		b.Run(wl.name+"/bare", func(b *testing.B) {
			toks := wl.tokens(b, func() *benchFixture { return newBenchFixture(b) })
			c := newPoolChain(b, toks)
			b.ReportAllocs()
			defer reportCPU(b, processCPU())
			for b.Loop() {
				if err := next.ServeHTTP(c.w, c.request()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(wl.name+"/gate", func(b *testing.B) {
			var f *benchFixture
			fixture := func() *benchFixture {
				if f == nil {
					f = newBenchFixture(b)
				}
				return f
			}
			toks := wl.tokens(b, fixture)
			fixture() // after the pool: the key is the pool's
			c := newPoolChain(b, toks)
			// Verify every token once, outside ServeHTTP (so that a
			// profile focused on it shows the loop alone).
			ctx, now := context.Background(), time.Now()
			for _, tok := range toks {
				if _, rej := f.gate.verifier.verify(ctx, tok, now); rej != nil {
					b.Fatal(rej)
				}
			}
			b.ReportAllocs()
			defer reportCPU(b, processCPU())
			for b.Loop() {
				if err := f.gate.ServeHTTP(c.w, c.request(), next); err != nil || c.w.status != http.StatusOK {
					b.Fatalf("status %d, err %v", c.w.status, err)
				}
			}
			if c.w.h.Get(HeaderCreditsLimit) != "" {
				b.Fatal("a credits header: the request was charged")
			}
		})
	}
}

// poolChain is benchChain with a token per request, drawn uniformly
// from a pool in a fixed order. Each request's header value is a fresh
// copy, as net/http makes one from the bytes it read: the token is in
// the CPU's cache when the gate reads it, as it is in a server.
type poolChain struct {
	*benchChain
	auth   []string // the Authorization header of each token
	header []string // the request's header value
	seq    []int32
	i      int
}

func newPoolChain(b *testing.B, toks []string) *poolChain {
	b.Helper()
	c := &poolChain{benchChain: newBenchChain(b, ""), auth: make([]string, len(toks)), header: make([]string, 1)}
	for i, tok := range toks {
		c.auth[i] = "Bearer " + tok
	}
	c.base.Header["Authorization"] = c.header
	r := rand.New(rand.NewPCG(1, 2))
	c.seq = make([]int32, 1<<18)
	for i := range c.seq {
		c.seq[i] = int32(r.IntN(len(toks)))
	}
	return c
}

// request is the next request of the sequence.
func (c *poolChain) request() *http.Request {
	c.header[0] = strings.Clone(c.auth[c.seq[c.i&(len(c.seq)-1)]])
	c.i++
	return c.benchChain.request()
}

// benchCreditsPoolSize is the pool of BenchmarkServeHTTPCreditsPool: the
// load harness's headline pool.
const benchCreditsPoolSize = 10_000

// BenchmarkServeHTTPCreditsPool is BenchmarkServeHTTP over 10,000
// distinct licenses with credits, drawn uniformly: every request is
// charged, most from the gateway's credit block of its license (with
// Redis), and each touches that license's state in the verified-token
// cache, the revocations and the block table, few of which stay in the
// CPU's caches. "bare" is the per-request setup alone. Profile it with
//
//	go test -run '^$' -bench 'CreditsPool/redis' -cpuprofile cpu.out ./module/
//	go tool pprof -top -cum -focus 'Gate..ServeHTTP' cpu.out
func BenchmarkServeHTTPCreditsPool(b *testing.B) {
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	})
	var pool []string
	tokens := func(b *testing.B) []string {
		if pool == nil {
			pool = loadBenchPool(b, benchCreditsPoolSize, true)
		}
		return pool
	}
	b.Run("bare", func(b *testing.B) {
		c := newPoolChain(b, tokens(b))
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
			toks := tokens(b)
			f := newBenchFixtureStore(b, st.store(b)) // after the pool: the key is the pool's
			c := newPoolChain(b, toks)
			// Verify and charge every license once, and again until the
			// pushed revocations are known (before, every request asks
			// the store), so the loop measures the steady state.
			for round := 0; round < 2 || !revocationsKnown(f.gate); round++ {
				if round > 50 {
					b.Fatal("the store's revocations were never read")
				}
				for range toks {
					if err := f.gate.ServeHTTP(c.w, c.request(), next); err != nil || c.w.status != http.StatusOK {
						b.Fatalf("warm up: status %d, err %v", c.w.status, err)
					}
				}
			}
			b.ReportAllocs()
			defer reportCPU(b, processCPU())
			calls := storeCalls()
			for b.Loop() {
				if err := f.gate.ServeHTTP(c.w, c.request(), next); err != nil || c.w.status != http.StatusOK {
					b.Fatalf("status %d, err %v", c.w.status, err)
				}
			}
			b.ReportMetric(float64(storeCalls()-calls)/float64(b.N), "trips/op")
			if c.w.h.Get(HeaderCreditsLimit) == "" {
				b.Fatal("no credits header: the request was not charged")
			}
		})
	}
}

// storeCalls is how many charges the gates sent to their stores (the
// observations of licensegate_store_seconds).
func storeCalls() uint64 {
	var m dto.Metric
	if err := storeSeconds.Write(&m); err != nil {
		return 0
	}
	return m.GetHistogram().GetSampleCount()
}

// revocationsKnown reports whether g's store answers revocations in
// process (always, for a store that keeps none).
func revocationsKnown(g *Gate) bool {
	if g.revocationView == nil {
		return true
	}
	_, known := g.revocationView.IsRevoked(policy.LicenseKey{Issuer: "bench", Key: "x"}, time.Now())
	return known
}

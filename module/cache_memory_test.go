package module

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// maxBytesPerLicense is the most heap a cached license may take: the
// gate's target, with the verified-token cache sized for 100,000 tokens
// or more, is 1 KiB per license.
const maxBytesPerLicense = 1024

// cacheFill is a gate and distinct tokens shaped like the load harness's
// (iss, sub, jti, iat, exp, one item, credits).
type cacheFill struct {
	gate *Gate
	clk  *testClock
	toks []string
}

func newCacheFill(t testing.TB, n int) *cacheFill {
	t.Helper()
	clk := newClock()
	k := newKey(t, "bench", "EdDSA") // fast to sign; the license is the same whatever the algorithm
	g := fileGate(t, k)
	g.CacheSize = 2 * n // holds every token
	g, _ = provisioned(t, g, clk)
	f := &cacheFill{gate: g, clk: clk, toks: make([]string, n)}
	now := clk.Now()
	for i := range f.toks {
		f.toks[i] = k.sign(t, jwt.MapClaims{
			"iss": "https://licenses.example", "sub": fmt.Sprintf("user-%d", i), "jti": fmt.Sprintf("lic-%06d", i),
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "items": []string{"bench"}, "credits": 1_000_000,
		}, nil)
	}
	return f
}

// bytesPerLicense verifies every token into an empty cache and returns
// the live heap it added, per token, after a garbage collection: the
// cache entries, the licenses and what they point to.
func (f *cacheFill) bytesPerLicense(t testing.TB) float64 {
	t.Helper()
	v := *f.gate.verifier
	v.cache = newTokenCache(f.gate.CacheSize)
	ctx, now := context.Background(), f.clk.Now()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, tok := range f.toks {
		if _, rej := v.verify(ctx, tok, now); rej != nil {
			t.Fatal(rej)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := v.cache.len(); n != len(f.toks) {
		t.Fatalf("the cache holds %d of %d tokens", n, len(f.toks))
	}
	runtime.KeepAlive(v.cache)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(len(f.toks))
}

// TestCachedLicenseTakesAtMostOneKiB fills the cache with distinct
// licenses and bounds the heap each one takes (the median of three fills,
// as other goroutines of the test binary allocate too).
func TestCachedLicenseTakesAtMostOneKiB(t *testing.T) {
	f := newCacheFill(t, 4000)
	var got []float64
	for range 3 {
		got = append(got, f.bytesPerLicense(t))
	}
	slices.Sort(got)
	t.Logf("heap per cached license: %.0f B (fills: %.0f)", got[1], got)
	if got[1] > maxBytesPerLicense {
		t.Errorf("a cached license takes %.0f bytes of heap, want at most %d", got[1], maxBytesPerLicense)
	}
}

// BenchmarkCacheMemory reports the heap per cached license (B/license)
// for caches of 1,000 and 10,000 distinct tokens. The time per op is
// filling the cache: one signature verification and decoding per token.
func BenchmarkCacheMemory(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			f := newCacheFill(b, n)
			var per float64
			for b.Loop() {
				per = f.bytesPerLicense(b)
			}
			b.ReportMetric(per, "B/license")
		})
	}
}

package module

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
)

func TestTokenCacheStaysBoundedUnderConcurrency(t *testing.T) {
	t.Parallel()
	for _, size := range []int{1, 64, 1000} {
		c := newTokenCache(size)
		lic := &policy.License{}
		limit := max(size, cacheShards) // at least one entry per shard
		now := time.Unix(1_800_000_000, 0)
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < 2000; i++ {
					var h [32]byte
					binary.LittleEndian.PutUint64(h[:], uint64(w)<<32|uint64(i)*2654435761)
					binary.LittleEndian.PutUint64(h[8:], uint64(i))
					c.put(h, lic, "k", 0, now.Add(time.Minute), now)
					if got, kid := c.get(h, now); got == nil {
						// Another writer may have evicted it already when
						// shards are tiny; that is allowed, a wrong entry is not.
						continue
					} else if got != lic || kid != "k" {
						t.Errorf("wrong entry")
					}
					if n := c.len(); n > limit {
						t.Errorf("cache of size %d holds %d entries", size, n)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		if n := c.len(); n > limit || n == 0 {
			t.Errorf("cache of size %d ends with %d entries", size, n)
		}
	}
}

func TestTokenCacheEntriesExpire(t *testing.T) {
	t.Parallel()
	c := newTokenCache(100)
	now := time.Unix(1_800_000_000, 0)
	h := tokenHash("a.b.c")
	if lic, _ := c.get(h, now); lic != nil {
		t.Fatal("empty cache returned an entry")
	}
	c.put(h, &policy.License{}, "k", 0, now.Add(time.Minute), now)
	if lic, kid := c.get(h, now.Add(59*time.Second)); lic == nil || kid != "k" {
		t.Error("entry missing before it is due")
	}
	if lic, _ := c.get(h, now.Add(61*time.Second)); lic != nil {
		t.Error("entry returned after it is due for re-verification")
	}
	if lic, _ := c.get(tokenHash("a.b.d"), now); lic != nil {
		t.Error("another token's hash hit")
	}
	var nilCache *tokenCache
	nilCache.put(h, &policy.License{}, "", 0, now, now)
	if lic, _ := nilCache.get(h, now); lic != nil {
		t.Error("nil cache returned an entry")
	}
}

// someLicense is a cached license for tests of the cache alone.
var someLicense = &policy.License{}

// cached returns the license c holds for h at now, or nil.
func cached(c *tokenCache, h [32]byte, now time.Time) *policy.License {
	lic, _ := c.get(h, now)
	return lic
}

// shardHash returns a hash of shard 0 numbered i.
func shardHash(i int) [32]byte {
	var h [32]byte
	h[0] = cacheShards // lands in shard 0
	binary.LittleEndian.PutUint64(h[1:], uint64(i))
	return h
}

func TestTokenCacheDropsDueEntriesFirst(t *testing.T) {
	t.Parallel()
	c := newTokenCache(4 * cacheShards) // four entries per shard
	now := time.Unix(1_800_000_000, 0)
	fresh := []int{0, 2}
	for i := range 4 {
		exp := now.Add(time.Hour)
		if i%2 == 1 {
			exp = now.Add(time.Minute) // due after a minute
		}
		c.put(shardHash(i), someLicense, "", 0, exp, now)
	}
	later := now.Add(2 * time.Minute)
	c.put(shardHash(10), someLicense, "", 0, later.Add(time.Hour), later)
	for _, i := range fresh {
		if cached(c, shardHash(i), later) == nil {
			t.Errorf("fresh entry %d evicted while due entries were there", i)
		}
	}
	if cached(c, shardHash(10), later) == nil {
		t.Error("the new entry is missing")
	}
	if n := c.len(); n != 3 {
		t.Errorf("%d entries, want 3: both due entries dropped in one sweep", n)
	}
}

// TestTokenCacheEvictsFairly: on a full shard of equally fresh entries,
// each entry is about as likely to go as any other.
func TestTokenCacheEvictsFairly(t *testing.T) {
	t.Parallel()
	const size, rounds = 16, 4000
	now := time.Unix(1_800_000_000, 0)
	evicted := make([]int, size)
	c := newTokenCache(size * cacheShards)
	for i := range size {
		c.put(shardHash(i), someLicense, "", 0, now.Add(time.Hour), now)
	}
	s := &c.shards[0]
	for r := range rounds {
		extra := shardHash(1000 + r)
		c.put(extra, someLicense, "", 0, now.Add(time.Hour), now) // one original goes
		s.mu.Lock()
		s.remove(int(s.index[indexKey(&extra)]))
		s.mu.Unlock()
		for i := range size {
			if cached(c, shardHash(i), now) == nil {
				evicted[i]++
				c.put(shardHash(i), someLicense, "", 0, now.Add(time.Hour), now) // back in
			}
		}
	}
	// Each entry goes in about rounds/size rounds; allow a wide band (a
	// Go map's first key is favoured several times over).
	mean := 0
	for _, n := range evicted {
		mean += n
	}
	mean /= size
	for i, n := range evicted {
		if n < mean/2 || n > mean*2 {
			t.Errorf("entry %d evicted %d times, mean %d: %v", i, n, mean, evicted)
			break
		}
	}
}

// countingSource counts key lookups (one per signature verification) and
// holds the first one until released.
type countingSource struct {
	keySource
	lookups atomic.Int64
	entered chan struct{}
	release chan struct{}
}

func (s *countingSource) current() *keySet {
	if s.lookups.Add(1) == 1 {
		close(s.entered)
		<-s.release
	}
	return s.keySource.current()
}

// TestConcurrentMissesVerifyOnce: requests that miss the cache with the
// same token at the same time share one verification.
func TestConcurrentMissesVerifyOnce(t *testing.T) {
	t.Parallel()
	clk := newClock()
	k := newKey(t, "k", "ES256")
	g, _ := provisioned(t, fileGate(t, k), clk)
	src := &countingSource{keySource: g.verifier.bindings.anyIssuer.sources[0], entered: make(chan struct{}), release: make(chan struct{})}
	g.verifier.bindings.anyIssuer.sources[0] = src
	tok := k.sign(t, claimsAt(clk), nil)

	const n = 16
	var wg sync.WaitGroup
	var started atomic.Int64
	results := make([]*policy.License, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started.Add(1)
			e, rej := g.verifier.verify(context.Background(), tok, clk.Now())
			if rej != nil {
				t.Error(rej)
			}
			results[i] = e.lic
		}()
	}
	<-src.entered
	// Let the others reach the verifier: without sharing, each would look
	// its key up too (and the count below would exceed one).
	waitFor(t, "every request to start", func() bool { return started.Load() == n })
	time.Sleep(50 * time.Millisecond)
	close(src.release)
	wg.Wait()
	if got := src.lookups.Load(); got != 1 {
		t.Errorf("%d concurrent misses of one token verified it %d times, want once", n, got)
	}
	for _, e := range results {
		if e != results[0] {
			t.Fatal("the waiters got different licenses")
		}
	}
}

func TestTokenCacheWithRoomDropsDueEntriesOncePerInterval(t *testing.T) {
	t.Parallel()
	c := newTokenCache(100 * cacheShards)
	now := time.Unix(1_800_000_000, 0)
	for i := range 64 {
		c.put(shardHash(i), someLicense, "", 0, now.Add(30*time.Second), now)
	}
	c.put(shardHash(100), someLicense, "", 0, now.Add(time.Hour), now.Add(45*time.Second))
	if n := c.len(); n != 65 {
		t.Errorf("%d entries, want 65: no sweep within a minute of the last", n)
	}
	c.put(shardHash(101), someLicense, "", 0, now.Add(time.Hour), now.Add(61*time.Second))
	if n := c.len(); n != 2 {
		t.Errorf("%d entries, want 2: the due entries dropped a minute after the last sweep", n)
	}
	s := &c.shards[0]
	s.mu.RLock()
	defer s.mu.RUnlock()
	if cap(s.entries) > 8 || len(s.index) != 2 {
		t.Errorf("a shard that emptied keeps room for %d entries (index %d), want its memory back", cap(s.entries), len(s.index))
	}
	for _, i := range []int{100, 101} {
		if lic, _ := c.get(shardHash(i), now.Add(61*time.Second)); lic == nil {
			t.Errorf("entry %d lost when the shard shrank", i)
		}
	}
}

// TestCachedTokenFillsClaimPlaceholders: the cache keeps no token, yet a
// request whose token comes from the cache still fills the placeholders
// of claims the license did not keep (from its own token), whether it is
// allowed or rejected after verification.
func TestCachedTokenFillsClaimPlaceholders(t *testing.T) {
	t.Parallel()
	clk := newClock()
	k := newKey(t, "k", "ES256")
	g, _ := provisioned(t, fileGate(t, k), clk)
	rg := fileGate(t, k)
	rg.RequireItem = "axesWord"
	rejecting, _ := provisioned(t, rg, clk)
	tok := k.sign(t, claimsAt(clk, "sub", "bob", "org", "acme"), nil)
	for _, tc := range []struct {
		name   string
		g      *Gate
		passed bool
	}{
		{"an allowed request", g, true},
		{"a request rejected after verification", rejecting, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, what := range []string{"verified", "from the cache"} {
				out := serve(t, tc.g, bearer(tok))
				if out.passed != tc.passed {
					t.Fatalf("%s: passed %v, want %v", what, out.passed, tc.passed)
				}
				// Asked twice each: the second answers come from what the
				// first decoding left in the replacer.
				const ask = "{http.license.claim.org}|{http.license.claim.sub}|{http.license.claim.absent}"
				if got := out.repl.ReplaceAll(ask+"|"+ask, "?"); got != "acme|bob|?|acme|bob|?" {
					t.Errorf("%s: claim placeholders %q, want acme|bob|?|acme|bob|? (empty is the default)", what, got)
				}
				if n := tc.g.verifier.cache.len(); n != 1 {
					t.Fatalf("request %d: %d cached tokens, want 1", i, n)
				}
			}
		})
	}
}

// TestTokenCacheTellsTokensApartBeyondTheIndexKey: two hashes that share
// the bytes the index is keyed by are still two tokens: neither is taken
// for the other, and the later one takes the slot.
func TestTokenCacheTellsTokensApartBeyondTheIndexKey(t *testing.T) {
	t.Parallel()
	c := newTokenCache(100)
	now := time.Unix(1_800_000_000, 0)
	a, b := shardHash(7), shardHash(7)
	b[31] = 1
	la, lb := &policy.License{Subject: "a"}, &policy.License{Subject: "b"}
	c.put(a, la, "", 0, now.Add(time.Hour), now)
	if cached(c, b, now) != nil {
		t.Fatal("a hash sharing the index key hit another token's entry")
	}
	c.put(b, lb, "", 0, now.Add(time.Hour), now)
	if cached(c, b, now) != lb || cached(c, a, now) != nil || c.len() != 1 {
		t.Errorf("after the second put: a %v, b %v, %d entries; want b alone", cached(c, a, now), cached(c, b, now), c.len())
	}
}

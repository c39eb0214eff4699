package module

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"
)

func TestTokenCacheStaysBoundedUnderConcurrency(t *testing.T) {
	t.Parallel()
	for _, size := range []int{1, 64, 1000} {
		c := newTokenCache(size)
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
					c.put(h, &verified{kid: "k", expires: now.Add(time.Minute)}, now)
					if e := c.get(h, now); e == nil {
						// Another writer may have evicted it already when
						// shards are tiny; that is allowed, a wrong entry is not.
						continue
					} else if e.kid != "k" {
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
	if c.get(h, now) != nil {
		t.Fatal("empty cache returned an entry")
	}
	c.put(h, &verified{kid: "k", expires: now.Add(time.Minute)}, now)
	if c.get(h, now.Add(59*time.Second)) == nil {
		t.Error("entry missing before it is due")
	}
	if c.get(h, now.Add(61*time.Second)) != nil {
		t.Error("entry returned after it is due for re-verification")
	}
	if c.get(tokenHash("a.b.d"), now) != nil {
		t.Error("another token's hash hit")
	}
	var nilCache *tokenCache
	nilCache.put(h, &verified{}, now)
	if nilCache.get(h, now) != nil {
		t.Error("nil cache returned an entry")
	}
}

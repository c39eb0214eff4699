package module

import (
	"sync"
	"time"
)

const cacheShards = 32

// tokenCache is a bounded map of verified tokens, keyed by the SHA-256 of
// the token, so a repeated token costs no signature verification. Only
// tokens that passed verification are stored; when a shard is full an
// arbitrary entry makes room.
type tokenCache struct {
	perShard int
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[[32]byte]*verified
}

func newTokenCache(size int) *tokenCache {
	c := &tokenCache{perShard: max(size/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[[32]byte]*verified)
	}
	return c
}

func (c *tokenCache) shard(h [32]byte) *cacheShard { return &c.shards[h[0]%cacheShards] }

// get returns the entry when present and not due for re-verification.
func (c *tokenCache) get(h [32]byte, now time.Time) *verified {
	if c == nil {
		return nil
	}
	s := c.shard(h)
	s.mu.RLock()
	e := s.m[h]
	s.mu.RUnlock()
	if e == nil || now.After(e.expires) {
		return nil
	}
	return e
}

func (c *tokenCache) put(h [32]byte, e *verified) {
	if c == nil {
		return
	}
	s := c.shard(h)
	s.mu.Lock()
	if len(s.m) >= c.perShard {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[h] = e
	s.mu.Unlock()
}

// len counts the entries, for tests.
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.RLock()
		n += len(c.shards[i].m)
		c.shards[i].mu.RUnlock()
	}
	return n
}

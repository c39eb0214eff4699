package module

import (
	"math/rand/v2"
	"sync"
	"time"
)

const cacheShards = 32

// tokenCache is a bounded map of verified tokens, keyed by the SHA-256 of
// the token, so a repeated token costs no signature verification. Only
// tokens that passed verification are stored.
//
// When a shard is full, entries already due for re-verification go first
// (all of them, in one sweep); when none is, one of two entries picked at
// random goes, the one due sooner. Picking from a slice with math/rand
// is fair: unlike the first key of a Go map iteration, which favours
// some entries over others, every entry is equally likely to be looked at.
type tokenCache struct {
	perShard int
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu      sync.RWMutex
	index   map[[32]byte]int32 // hash → position in entries
	entries []cacheEntry
	// soonest is no later than the earliest expiry in entries: before
	// it, a sweep for due entries would find none.
	soonest time.Time
}

type cacheEntry struct {
	h [32]byte
	e *verified
}

func newTokenCache(size int) *tokenCache {
	c := &tokenCache{perShard: max(size/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].index = make(map[[32]byte]int32)
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
	var e *verified
	if i, ok := s.index[h]; ok {
		e = s.entries[i].e
	}
	s.mu.RUnlock()
	if e == nil || now.After(e.expires) {
		return nil
	}
	return e
}

// put stores a verified token, making room when the shard is full.
func (c *tokenCache) put(h [32]byte, e *verified, now time.Time) {
	if c == nil {
		return
	}
	s := c.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.index[h]; ok {
		s.entries[i].e = e
		return
	}
	if len(s.entries) >= c.perShard {
		s.makeRoom(now, c.perShard)
	}
	if len(s.entries) == 0 || e.expires.Before(s.soonest) {
		s.soonest = e.expires
	}
	s.index[h] = int32(len(s.entries))
	s.entries = append(s.entries, cacheEntry{h: h, e: e})
}

// makeRoom frees at least one slot of a shard holding limit entries;
// s.mu is held.
func (s *cacheShard) makeRoom(now time.Time, limit int) {
	if now.After(s.soonest) {
		// Something is due: drop every due entry and learn the new
		// earliest expiry. (soonest may be early after random
		// evictions; then this sweep finds nothing and corrects it.)
		var soonest time.Time
		for i := 0; i < len(s.entries); {
			exp := s.entries[i].e.expires
			if now.After(exp) {
				s.remove(i)
				continue
			}
			if soonest.IsZero() || exp.Before(soonest) {
				soonest = exp
			}
			i++
		}
		s.soonest = soonest
	}
	if len(s.entries) < limit {
		return
	}
	a, b := rand.IntN(len(s.entries)), rand.IntN(len(s.entries))
	if s.entries[b].e.expires.Before(s.entries[a].e.expires) {
		a = b
	}
	s.remove(a)
}

// remove deletes entries[i], moving the last entry into its place; s.mu
// is held.
func (s *cacheShard) remove(i int) {
	delete(s.index, s.entries[i].h)
	last := len(s.entries) - 1
	if i != last {
		s.entries[i] = s.entries[last]
		s.index[s.entries[i].h] = int32(i)
	}
	s.entries[last] = cacheEntry{}
	s.entries = s.entries[:last]
}

// len counts the entries, for tests.
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.RLock()
		n += len(c.shards[i].entries)
		c.shards[i].mu.RUnlock()
	}
	return n
}

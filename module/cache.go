package module

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/licensegate/licensegate/policy"
)

const cacheShards = 32

// sweepInterval is how often at most a shard drops its due entries while
// it has room: memory follows the tokens seen lately rather than every
// token since the start, up to the cache's size.
const sweepInterval = time.Minute

// tokenCache is a bounded map of verified tokens, keyed by the SHA-256 of
// the token, so a repeated token costs no signature verification. Only
// tokens that passed verification are stored, and only what a request
// needs from them: the license and the kid. Not the token: a request that
// hits the cache brings the same token (its hash matched), so it is taken
// from the request when a placeholder needs a claim the license did not
// keep.
//
// When a shard is full, entries already due for re-verification go first
// (all of them, in one sweep); when none is, one of two entries picked at
// random goes, the one due sooner. Picking from a slice with math/rand
// is fair: unlike the first key of a Go map iteration, which favours
// some entries over others, every entry is equally likely to be looked at.
// A shard with room sweeps its due entries too, at most once per
// sweepInterval, when a new token arrives.
type tokenCache struct {
	perShard int
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.RWMutex
	// index maps 8 bytes of a token's hash to its position in entries,
	// where the whole hash is compared: a third of the map's memory of a
	// whole-hash key. Two tokens sharing those 8 bytes (never seen in
	// practice) take turns in one slot, each put evicting the other.
	index   map[uint64]int32
	entries []cacheEntry
	// soonest is no later than the earliest expiry in entries: before
	// it, a sweep for due entries would find none.
	soonest int64
	// swept is when due entries were last dropped.
	swept int64
}

// cacheEntry is one verified token, held in the shard's slice itself (no
// allocation of its own): 80 bytes beside the license.
type cacheEntry struct {
	h       [32]byte
	lic     *policy.License
	kid     string
	expires int64  // unix nanoseconds: when the token must be verified again
	keys    uint64 // the version of the key sets it was verified with (keyBindings.version)
	// keyHash is policy.KeyHash of the license's key, for the credit
	// blocks and the in-memory store: computed once here, not on every
	// request.
	keyHash uint64
}

func newTokenCache(size int) *tokenCache {
	c := &tokenCache{perShard: max(size/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].index = make(map[uint64]int32)
	}
	return c
}

func (c *tokenCache) shard(h [32]byte) *cacheShard { return &c.shards[h[0]%cacheShards] }

// indexKey is the part of a hash the shard's index is keyed by (not the
// byte that picks the shard).
func indexKey(h *[32]byte) uint64 { return binary.LittleEndian.Uint64(h[1:9]) }

// get returns the license and kid of a token when present and not due
// for re-verification; a nil license otherwise.
func (c *tokenCache) get(h [32]byte, now time.Time) (*policy.License, string) {
	e, ok := c.find(h)
	if !ok || now.UnixNano() > e.expires {
		return nil, ""
	}
	return e.lic, e.kid
}

// find returns the entry of a token, due for re-verification or not.
func (c *tokenCache) find(h [32]byte) (cacheEntry, bool) {
	if c == nil {
		return cacheEntry{}, false
	}
	s := c.shard(h)
	s.mu.RLock()
	i, ok := s.index[indexKey(&h)]
	if !ok || s.entries[i].h != h {
		s.mu.RUnlock()
		return cacheEntry{}, false
	}
	e := s.entries[i]
	s.mu.RUnlock()
	return e, true
}

// put stores a token verified with the key sets of version keys, due
// for re-verification at expires, making room when the shard is full.
func (c *tokenCache) put(h [32]byte, lic *policy.License, kid string, keys uint64, expires, now time.Time) {
	if c == nil {
		return
	}
	exp, t := expires.UnixNano(), now.UnixNano()
	s := c.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	kh := policy.KeyHash(licenseKey(lic))
	if i, ok := s.index[indexKey(&h)]; ok {
		s.entries[i] = cacheEntry{h: h, lic: lic, kid: kid, expires: exp, keys: keys, keyHash: kh}
		s.soonest = min(s.soonest, exp)
		return
	}
	if t > s.soonest && (len(s.entries) >= c.perShard || t-s.swept >= int64(sweepInterval)) {
		s.sweep(t)
	}
	if len(s.entries) >= c.perShard {
		s.evictOne()
	}
	if len(s.entries) == 0 || exp < s.soonest {
		s.soonest = exp
	}
	s.index[indexKey(&h)] = int32(len(s.entries))
	s.entries = append(s.entries, cacheEntry{h: h, lic: lic, kid: kid, expires: exp, keys: keys, keyHash: kh})
}

// sweep drops every entry due at now (unix ns) and learns the new
// earliest expiry; s.mu is held. (soonest may be early after random
// evictions; then a sweep finds nothing and corrects it.)
func (s *cacheShard) sweep(now int64) {
	var soonest int64
	for i := 0; i < len(s.entries); {
		exp := s.entries[i].expires
		if now > exp {
			s.remove(i)
			continue
		}
		if soonest == 0 || exp < soonest {
			soonest = exp
		}
		i++
	}
	s.soonest, s.swept = soonest, now
	if len(s.entries) < cap(s.entries)/4 {
		// Most of the shard was due: give its memory back. A Go map does
		// not shrink when emptied, so the index is built anew.
		s.entries = append(make([]cacheEntry, 0, 2*len(s.entries)), s.entries...)
		s.index = make(map[uint64]int32, len(s.entries))
		for i := range s.entries {
			s.index[indexKey(&s.entries[i].h)] = int32(i)
		}
	}
}

// evictOne drops one of two entries picked at random, the one due
// sooner; s.mu is held and the shard is not empty.
func (s *cacheShard) evictOne() {
	a, b := rand.IntN(len(s.entries)), rand.IntN(len(s.entries))
	if s.entries[b].expires < s.entries[a].expires {
		a = b
	}
	s.remove(a)
}

// remove deletes entries[i], moving the last entry into its place; s.mu
// is held.
func (s *cacheShard) remove(i int) {
	delete(s.index, indexKey(&s.entries[i].h))
	last := len(s.entries) - 1
	if i != last {
		s.entries[i] = s.entries[last]
		s.index[indexKey(&s.entries[i].h)] = int32(i)
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

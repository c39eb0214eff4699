package policy

import (
	"context"
	"sync"
	"time"
)

const memoryShards = 64

// Memory is the in-memory Counters for a single node. It is exact under
// concurrency; entries are forgotten once their token has expired. Call
// Sweep periodically (or Close never: it owns no goroutine) to drop
// expired entries.
type Memory struct {
	shards [memoryShards]memoryShard
}

type memoryShard struct {
	mu sync.Mutex
	// entries is keyed by the license key's KeyHash, so that a charge
	// carrying it (Charge.KeyHash) finds its entry without reading the
	// key's bytes, in a map whose slots are 16 bytes. A key whose hash
	// another key's entry holds (2⁻⁶⁴ a pair) is kept in overflow.
	entries  map[uint64]*memoryEntry
	overflow map[LicenseKey]*memoryEntry
}

// memoryEntry is one license's counters. What a charge of credits reads
// comes first: with many licenses, an entry is rarely in the CPU's
// caches.
type memoryEntry struct {
	used         int64
	limit        int64 // credits of the last token charged, for Usage
	hasLimit     bool
	seats        map[string]time.Time // hardware id -> last seen
	usedExpires  time.Time
	revokedUntil time.Time
	seatsExpires time.Time
	seatTTL      time.Duration // the SessionTTL of the last seat taken
	key          LicenseKey
	// reqs are the request ids charged or undone within UndoWindow, and
	// reqOrder the same ids in the order they came, to forget them.
	reqs     map[string]requestRecord
	reqOrder []requestAt
	leases   *leaseBook // the license's leases (lease_memory.go), nil when none
}

// requestRecord is what a charged (or undone) request id left: when, and
// what of it Undo has still to give back.
type requestRecord struct {
	at      time.Time
	credits bool // charged credits not yet given back
	seat    bool // took a new seat not yet given back
}

type requestAt struct {
	id string
	at time.Time
}

// forgetRequests drops the request ids older than UndoWindow at now.
func (e *memoryEntry) forgetRequests(now time.Time) {
	cutoff := now.Add(-UndoWindow)
	i := 0
	for ; i < len(e.reqOrder) && e.reqOrder[i].at.Before(cutoff); i++ {
		delete(e.reqs, e.reqOrder[i].id)
	}
	if i > 0 {
		e.reqOrder = e.reqOrder[i:]
		if len(e.reqOrder) == 0 {
			e.reqs, e.reqOrder = nil, nil
		}
	}
}

// rememberRequest records id.
func (e *memoryEntry) rememberRequest(id string, r requestRecord) {
	if e.reqs == nil {
		e.reqs = make(map[string]requestRecord)
	}
	e.reqs[id] = r
	e.reqOrder = append(e.reqOrder, requestAt{id, r.at})
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	m := &Memory{}
	for i := range m.shards {
		m.shards[i].entries = make(map[uint64]*memoryEntry)
	}
	return m
}

// shard is the shard of key, and key's KeyHash.
func (m *Memory) shard(key LicenseKey) (*memoryShard, uint64) {
	h := KeyHash(key)
	return m.shardAt(h), h
}

// shardAt is the shard of the license key of KeyHash h.
func (m *Memory) shardAt(h uint64) *memoryShard { return &m.shards[h%memoryShards] }

// find returns the entry of key (h its KeyHash), nil when none. The
// shard must be locked.
func (s *memoryShard) find(h uint64, key LicenseKey) *memoryEntry {
	if e := s.entries[h]; e != nil && e.key == key {
		return e
	}
	return s.overflow[key]
}

// entry returns key's entry (h its KeyHash), creating it when create is
// true. It forgets parts that have lapsed. The shard must be locked.
func (s *memoryShard) entry(h uint64, key LicenseKey, now time.Time, create bool) *memoryEntry {
	e := s.find(h, key)
	if e != nil {
		if !e.usedExpires.IsZero() && now.After(e.usedExpires) {
			e.used, e.usedExpires, e.hasLimit = 0, time.Time{}, false
		}
		if !e.revokedUntil.IsZero() && now.After(e.revokedUntil) {
			e.revokedUntil = time.Time{}
		}
		// A zero seatsExpires (a Charge without Expires) keeps the seats,
		// as a zero usedExpires keeps the credits; each seat still lapses
		// after its SessionTTL.
		if e.seats != nil && !e.seatsExpires.IsZero() && now.After(e.seatsExpires) {
			e.seats = nil
		}
	}
	if e == nil && create {
		e = &memoryEntry{key: key}
		if s.entries[h] == nil {
			s.entries[h] = e
		} else {
			if s.overflow == nil {
				s.overflow = map[LicenseKey]*memoryEntry{}
			}
			s.overflow[key] = e
		}
	}
	return e
}

// Charge implements Counters.
func (m *Memory) Charge(_ context.Context, c *Charge) (Result, error) {
	h := c.KeyHash
	if h == 0 {
		h = KeyHash(c.Key)
	}
	s := m.shardAt(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(h, c.Key, c.Now, true)
	if c.Request != "" {
		e.forgetRequests(c.Now)
		if _, seen := e.reqs[c.Request]; seen {
			return Result{Outcome: Duplicate, Used: e.used}, nil
		}
	}
	if e.revokedUntil.After(c.Now) {
		return Result{Outcome: Revoked}, nil
	}
	rec := requestRecord{at: c.Now}
	if c.Seats > 0 {
		cutoff := c.Now.Add(-c.SessionTTL)
		var oldest time.Time
		held := false
		for hw, seen := range e.seats {
			if !seen.After(cutoff) {
				delete(e.seats, hw)
				continue
			}
			if hw == c.Hardware {
				held = true
			}
			if oldest.IsZero() || seen.Before(oldest) {
				oldest = seen
			}
		}
		if !held && int64(len(e.seats)) >= c.Seats {
			return Result{Outcome: SeatsFull, Used: e.used, RetryAfter: oldest.Add(c.SessionTTL).Sub(c.Now)}, nil
		}
		rec.seat = !held
	}
	if c.Limit >= 0 {
		if e.used+c.Cost > c.Limit {
			return Result{Outcome: CreditsExhausted, Used: e.used}, nil
		}
		rec.credits = c.Cost > 0
		e.used += c.Cost
		e.limit, e.hasLimit = c.Limit, true
		if c.Expires.After(e.usedExpires) {
			e.usedExpires = c.Expires
		}
	}
	if c.Seats > 0 {
		if e.seats == nil {
			// seats may be up to 2^20: let the map grow with use
			e.seats = make(map[string]time.Time, min(c.Seats, 8))
		}
		e.seats[c.Hardware] = c.Now
		e.seatTTL = c.SessionTTL
		if c.Expires.After(e.seatsExpires) {
			e.seatsExpires = c.Expires
		}
	}
	if c.Request != "" && (rec.credits || rec.seat) {
		e.rememberRequest(c.Request, rec)
	}
	return Result{Outcome: Allowed, Used: e.used}, nil
}

// Refund implements Counters.
func (m *Memory) Refund(_ context.Context, key LicenseKey, cost int64) error {
	s, h := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.find(h, key); e != nil {
		e.used -= cost
	}
	return nil
}

// Undo implements Counters. Memory keeps request ids by id alone, so it
// ignores u.Charged.
func (m *Memory) Undo(_ context.Context, u *Undo) error {
	s, h := m.shard(u.Key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(h, u.Key, u.Now, true)
	if u.Request == "" {
		// A charge without an id (the caller saw its reply): a refund.
		if u.Ran && e.hasLimit {
			e.used -= u.Cost
		}
		return nil
	}
	e.forgetRequests(u.Now)
	r, seen := e.reqs[u.Request]
	if !seen {
		// The charge has not come (yet): it will count nothing. Or,
		// when it is known to have run, its record is gone: refund.
		if u.Ran && e.hasLimit {
			e.used -= u.Cost
		}
		e.rememberRequest(u.Request, requestRecord{at: u.Now})
		return nil
	}
	if r.credits && e.hasLimit {
		e.used -= u.Cost
	}
	if r.seat && u.Seat {
		if seen, held := e.seats[u.Hardware]; held && seen.Equal(r.at) {
			delete(e.seats, u.Hardware)
		}
		r.seat = false
	}
	r.credits = false
	e.reqs[u.Request] = r
	return nil
}

// Revoke implements Counters.
func (m *Memory) Revoke(_ context.Context, key LicenseKey, until time.Time) error {
	if until.After(MaxTime) {
		return ErrOutOfRange
	}
	s, h := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entry(h, key, time.Now(), true).revokedUntil = until
	return nil
}

// Unrevoke implements Counters.
func (m *Memory) Unrevoke(_ context.Context, key LicenseKey) error {
	s, h := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.find(h, key); e != nil {
		e.revokedUntil = time.Time{}
	}
	return nil
}

// Usage implements Counters.
func (m *Memory) Usage(_ context.Context, key LicenseKey, now time.Time) (Usage, error) {
	s, h := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	u := Usage{Issuer: key.Issuer, Key: key.Key}
	if e := s.entry(h, key, now, false); e != nil {
		u.Used = e.used
		if e.hasLimit {
			u.SetLimit(e.limit)
		}
		if e.revokedUntil.After(now) {
			u.Revoked, u.RevokedUntil = true, e.revokedUntil.Unix()
		}
		for _, seen := range e.seats {
			if seen.After(now.Add(-e.seatTTL)) {
				u.Seats++
			}
		}
	}
	return u, nil
}

// AdjustCredits implements Counters.
func (m *Memory) AdjustCredits(_ context.Context, key LicenseKey, add int64, reset bool, expires time.Time) (int64, error) {
	s, h := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(h, key, time.Now(), true)
	base := e.used
	if reset {
		base = 0
	}
	// |base| <= MaxUsed, so neither bound overflows.
	if (add > 0 && base < -MaxUsed+add) || (add < 0 && base > MaxUsed+add) {
		return e.used, ErrOutOfRange
	}
	e.used = base - add
	if expires.After(e.usedExpires) {
		e.usedExpires = expires
	}
	return e.used, nil
}

// Sweep forgets every entry that holds nothing current at now. It returns
// the number of entries left.
func (m *Memory) Sweep(now time.Time) int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		for h, e := range s.entries {
			if s.sweep(h, e, now) {
				delete(s.entries, h)
			}
		}
		for k, e := range s.overflow {
			if s.sweep(KeyHash(k), e, now) {
				delete(s.overflow, k)
			}
		}
		n += len(s.entries) + len(s.overflow)
		s.mu.Unlock()
	}
	return n
}

// sweep forgets what lapsed in e (h its key's KeyHash) and reports
// whether e holds nothing current at now; the shard is locked.
func (s *memoryShard) sweep(h uint64, e *memoryEntry, now time.Time) bool {
	s.entry(h, e.key, now, false)
	e.forgetRequests(now)
	return e.used == 0 && e.revokedUntil.IsZero() && e.seats == nil && e.reqs == nil && e.leases.empty(now)
}

package policy

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

const memoryShards = 64

// Memory is the in-memory Counters for a single node. It is exact under
// concurrency; entries are forgotten once their token has expired. Call
// Sweep periodically (or Close never: it owns no goroutine) to drop
// expired entries.
type Memory struct {
	seed   maphash.Seed
	shards [memoryShards]memoryShard
}

type memoryShard struct {
	mu      sync.Mutex
	entries map[LicenseKey]*memoryEntry
}

type memoryEntry struct {
	used         int64
	usedExpires  time.Time
	revokedUntil time.Time
	seats        map[string]time.Time // hardware id -> last seen
	seatsExpires time.Time
	seatTTL      time.Duration // the SessionTTL of the last seat taken
	limit        int64         // credits of the last token charged, for Usage
	hasLimit     bool
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
	m := &Memory{seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].entries = make(map[LicenseKey]*memoryEntry)
	}
	return m
}

func (m *Memory) shard(key LicenseKey) *memoryShard {
	return &m.shards[maphash.Comparable(m.seed, key)%memoryShards]
}

// entry returns key's entry, creating it when create is true. It forgets
// parts that have lapsed. The shard must be locked.
func (s *memoryShard) entry(key LicenseKey, now time.Time, create bool) *memoryEntry {
	e := s.entries[key]
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
		e = &memoryEntry{}
		s.entries[key] = e
	}
	return e
}

// Charge implements Counters.
func (m *Memory) Charge(_ context.Context, c *Charge) (Result, error) {
	s := m.shard(c.Key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(c.Key, c.Now, true)
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
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[key]; e != nil {
		e.used -= cost
	}
	return nil
}

// Undo implements Counters. Memory keeps request ids by id alone, so it
// ignores u.Charged.
func (m *Memory) Undo(_ context.Context, u *Undo) error {
	s := m.shard(u.Key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(u.Key, u.Now, true)
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
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entry(key, time.Now(), true).revokedUntil = until
	return nil
}

// Unrevoke implements Counters.
func (m *Memory) Unrevoke(_ context.Context, key LicenseKey) error {
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[key]; e != nil {
		e.revokedUntil = time.Time{}
	}
	return nil
}

// Usage implements Counters.
func (m *Memory) Usage(_ context.Context, key LicenseKey, now time.Time) (Usage, error) {
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	u := Usage{Issuer: key.Issuer, Key: key.Key}
	if e := s.entry(key, now, false); e != nil {
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
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(key, time.Now(), true)
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
		for k := range s.entries {
			e := s.entry(k, now, false)
			e.forgetRequests(now)
			if e.used == 0 && e.revokedUntil.IsZero() && e.seats == nil && e.reqs == nil && e.leases.empty(now) {
				delete(s.entries, k)
			}
		}
		n += len(s.entries)
		s.mu.Unlock()
	}
	return n
}

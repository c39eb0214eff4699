package policy

import (
	"context"
	"sort"
	"time"
)

// leaseBook holds one license's leases in Memory, beside its credits.
type leaseBook struct {
	byID    map[string]*Lease
	devices map[string]map[string]string // hardware id -> item -> lease id
}

// live reports whether l has not ended at now.
func (l *Lease) live(now time.Time) bool { return l.Until.After(now) }

// device returns hw's live leases by item, dropping ended ones; nil when
// hw holds none (and then hw is forgotten).
func (b *leaseBook) device(hw string, now time.Time) map[string]string {
	items := b.devices[hw]
	for item, id := range items {
		if l := b.byID[id]; l == nil || !l.live(now) {
			delete(b.byID, id)
			delete(items, item)
		}
	}
	if len(items) == 0 {
		delete(b.devices, hw)
		return nil
	}
	return items
}

// prune forgets every ended lease and every device without a live one.
// It returns the time until the first device's seat frees by itself.
func (b *leaseBook) prune(now time.Time) time.Duration {
	var first time.Duration
	for hw := range b.devices {
		items := b.device(hw, now)
		var end time.Time
		for _, id := range items {
			if u := b.byID[id].Until; u.After(end) {
				end = u
			}
		}
		if d := end.Sub(now); items != nil && (first == 0 || d < first) {
			first = d
		}
	}
	for id, l := range b.byID {
		if !l.live(now) {
			delete(b.byID, id)
		}
	}
	return first
}

// empty reports whether no lease is live at now.
func (b *leaseBook) empty(now time.Time) bool {
	if b == nil {
		return true
	}
	b.prune(now)
	return len(b.byID) == 0
}

// TakeLeases implements Leases. It ignores r.Request: an in-process
// store answers every call, so no take is ever in doubt and none needs
// undoing.
func (m *Memory) TakeLeases(_ context.Context, r *LeaseRequest) ([]LeaseResult, error) {
	s, h := m.shard(r.License)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(h, r.License, r.Now, true)
	out := make([]LeaseResult, len(r.Items))
	if e.revokedUntil.After(r.Now) {
		for i := range out {
			out[i] = LeaseResult{Outcome: LeaseRevoked, Used: e.used}
		}
		return out, nil
	}
	b := e.leases
	if b == nil {
		b = &leaseBook{byID: map[string]*Lease{}, devices: map[string]map[string]string{}}
	}
	used := e.used
	holds := b.device(r.Hardware, r.Now) != nil
	for i, it := range r.Items {
		res := &out[i]
		res.Used = used
		id := it.LeaseID
		if id != "" {
			l := b.byID[id]
			if l == nil || !l.live(r.Now) || l.Hardware != r.Hardware || l.Item != it.Item {
				res.Outcome = LeaseNotMatching
				continue
			}
		} else {
			if !holds && r.Seats > 0 {
				first := b.prune(r.Now)
				if int64(len(b.devices)) >= r.Seats {
					res.Outcome, res.RetryAfter = LeaseSeatsFull, first
					continue
				}
			}
			id = it.NewID
		}
		if r.Limit >= 0 && used+it.Cost > r.Limit {
			res.Outcome = LeaseCreditsExhausted
			continue
		}
		res.Lease = Lease{ID: id, Item: it.Item, Hardware: r.Hardware, Until: r.Until, Issuer: r.Issuer}
		holds = true
		if r.Limit >= 0 {
			used += it.Cost
		}
		res.Used = used
		if r.CheckOnly {
			continue
		}
		if r.Limit >= 0 {
			e.used = used
			e.limit, e.hasLimit = r.Limit, true
			if r.Expires.After(e.usedExpires) {
				e.usedExpires = r.Expires
			}
		}
		items := b.devices[r.Hardware]
		if items == nil {
			items = map[string]string{}
			b.devices[r.Hardware] = items
		}
		if old := items[it.Item]; old != "" && old != id {
			// A new lease of an item the device already leases replaces
			// that lease (a client that lost its lease id starts over).
			if l := b.byID[old]; l != nil && l.live(r.Now) {
				res.Replaced = *l
			}
			delete(b.byID, old)
		}
		items[it.Item] = id
		l := res.Lease
		b.byID[id] = &l
		e.leases = b
	}
	return out, nil
}

// ReleaseLease implements Leases.
func (m *Memory) ReleaseLease(_ context.Context, license LicenseKey, id string, now time.Time) (Lease, bool, error) {
	s, h := m.shard(license)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(h, license, now, false)
	if e == nil || e.leases == nil {
		return Lease{}, false, nil
	}
	b := e.leases
	l := b.byID[id]
	if l == nil || !l.live(now) {
		return Lease{}, false, nil
	}
	delete(b.byID, id)
	if items := b.devices[l.Hardware]; items[l.Item] == id {
		delete(items, l.Item)
	}
	b.device(l.Hardware, now)
	return *l, true, nil
}

// LiveLeases implements Leases. The leases are ordered by device, then
// item.
func (m *Memory) LiveLeases(_ context.Context, license LicenseKey, now time.Time) ([]Lease, error) {
	s, h := m.shard(license)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(h, license, now, false)
	if e == nil || e.leases == nil {
		return nil, nil
	}
	e.leases.prune(now)
	out := make([]Lease, 0, len(e.leases.byID))
	for _, l := range e.leases.byID {
		out = append(out, *l)
	}
	SortLeases(out)
	return out, nil
}

// SortLeases orders leases by device, then item, then id.
func SortLeases(ls []Lease) {
	sort.Slice(ls, func(i, j int) bool {
		a, b := ls[i], ls[j]
		if a.Hardware != b.Hardware {
			return a.Hardware < b.Hardware
		}
		if a.Item != b.Item {
			return a.Item < b.Item
		}
		return a.ID < b.ID
	})
}

var _ Leases = (*Memory)(nil)

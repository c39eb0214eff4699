package policy

import (
	"context"
	"testing"
	"time"
)

// Two license keys of one KeyHash (forced here through Charge.KeyHash; a
// real pair is 2⁻⁶⁴) keep apart counts, and each is found again after
// the other's entry is swept.
func TestMemoryKeepsTwoKeysOfOneHashApart(t *testing.T) {
	m := NewMemory()
	ctx, now := context.Background(), time.Now()
	a, b := LicenseKey{Issuer: "i", Key: "a"}, LicenseKey{Issuer: "i", Key: "b"}
	const h = 42
	for _, key := range []LicenseKey{a, b, a} {
		res, err := m.Charge(ctx, &Charge{Key: key, KeyHash: h, Cost: 1, Limit: 10, Expires: now.Add(time.Minute), Now: now})
		if err != nil || res.Outcome != Allowed {
			t.Fatalf("charge %v: %v, %v", key, res, err)
		}
	}
	s := &m.shards[h%memoryShards]
	used := func(key LicenseKey) int64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		if e := s.find(h, key); e != nil {
			return e.used
		}
		return -1
	}
	if ua, ub := used(a), used(b); ua != 2 || ub != 1 {
		t.Fatalf("used a %d, b %d; want 2 and 1", ua, ub)
	}
	// Both lapse and go. Then a takes the hash's slot again and b the
	// overflow; once a lapses and is swept, b is still found.
	if n := m.Sweep(now.Add(2 * time.Minute)); n != 0 {
		t.Fatalf("%d entries left after both expired", n)
	}
	if _, err := m.Charge(ctx, &Charge{Key: a, KeyHash: h, Cost: 1, Limit: 10, Expires: now.Add(time.Minute), Now: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Charge(ctx, &Charge{Key: b, KeyHash: h, Cost: 3, Limit: 10, Expires: now.Add(time.Hour), Now: now}); err != nil {
		t.Fatal(err)
	}
	if e := s.entries[h]; e == nil || e.key != a {
		t.Fatal("a, charged first, does not hold the hash's slot")
	}
	m.Sweep(now.Add(2 * time.Minute)) // a lapses, b stays
	if ua, ub := used(a), used(b); ua != -1 || ub != 3 {
		t.Fatalf("after a lapsed: used a %d, b %d; want none and 3", ua, ub)
	}
}

package policy_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
)

var _ policy.Counters = (*policy.Memory)(nil)

var ctx = context.Background()

// clock is an injectable test clock. It starts at the wall clock, because
// Revoke and AdjustCredits (whose signatures carry no time) use it.
type clock struct{ now time.Time }

// testIssuer is the issuer of the tests' licenses.
const testIssuer = "https://license.example.com"

// lk is the test issuer's license with counting key key.
func lk(key string) policy.LicenseKey { return policy.LicenseKey{Issuer: testIssuer, Key: key} }

func newClock() *clock                        { return &clock{now: time.Now().Truncate(time.Second)} }
func (c *clock) at(d time.Duration) time.Time { return c.now.Add(d) }

// charge is a Charge of cost credits out of limit, expiring an hour after
// the clock's start.
func (c *clock) charge(key string, cost, limit int64, d time.Duration) *policy.Charge {
	return &policy.Charge{Key: lk(key), Cost: cost, Limit: limit, Now: c.at(d), Expires: c.at(time.Hour)}
}

func mustCharge(t *testing.T, m *policy.Memory, ch *policy.Charge, want policy.Outcome, used int64) policy.Result {
	t.Helper()
	res, err := m.Charge(ctx, ch)
	if err != nil {
		t.Fatalf("Charge: %v", err)
	}
	if res.Outcome != want || res.Used != used {
		t.Fatalf("Charge(%+v) = %+v; want outcome %v, used %d", ch, res, want, used)
	}
	return res
}

func usage(t *testing.T, m *policy.Memory, key string, now time.Time) policy.Usage {
	t.Helper()
	u, err := m.Usage(ctx, lk(key), now)
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	return u
}

func TestMemoryCredits(t *testing.T) {
	t.Run("credits are used up one by one, then exhausted", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		for i := int64(1); i <= 3; i++ {
			mustCharge(t, m, c.charge("k", 1, 3, 0), policy.Allowed, i)
		}
		mustCharge(t, m, c.charge("k", 1, 3, 0), policy.CreditsExhausted, 3)
		mustCharge(t, m, c.charge("k", 1, 3, 0), policy.CreditsExhausted, 3)
		if u := usage(t, m, "k", c.at(0)); u.Used != 3 || u.Key != "k" || u.Revoked {
			t.Fatalf("Usage = %+v", u)
		}
	})
	t.Run("a cost above one is charged whole or not at all", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		mustCharge(t, m, c.charge("k", 4, 10, 0), policy.Allowed, 4)
		mustCharge(t, m, c.charge("k", 4, 10, 0), policy.Allowed, 8)
		mustCharge(t, m, c.charge("k", 4, 10, 0), policy.CreditsExhausted, 8)
		// a cheaper request that still fits is not refused
		mustCharge(t, m, c.charge("k", 2, 10, 0), policy.Allowed, 10)
		mustCharge(t, m, c.charge("k", 1, 10, 0), policy.CreditsExhausted, 10)
	})
	t.Run("zero credits refuse any cost", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		mustCharge(t, m, c.charge("k", 1, 0, 0), policy.CreditsExhausted, 0)
	})
	t.Run("a zero cost passes even with zero credits", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		mustCharge(t, m, c.charge("k", 0, 0, 0), policy.Allowed, 0)
	})
	t.Run("limit -1 (no credits claim) is never charged", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		for range 100 {
			mustCharge(t, m, c.charge("k", 5, -1, 0), policy.Allowed, 0)
		}
		if u := usage(t, m, "k", c.at(0)); u.Used != 0 {
			t.Fatalf("Used = %d", u.Used)
		}
	})
	t.Run("keys are counted apart", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		mustCharge(t, m, c.charge("a", 1, 1, 0), policy.Allowed, 1)
		mustCharge(t, m, c.charge("b", 1, 1, 0), policy.Allowed, 1)
		mustCharge(t, m, c.charge("a", 1, 1, 0), policy.CreditsExhausted, 1)
	})
	t.Run("two issuers' licenses with the same key are counted apart", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		a := c.charge("lic-42", 1, 1, 0)
		b := c.charge("lic-42", 1, 1, 0)
		b.Key.Issuer = "https://other.example.com"
		mustCharge(t, m, a, policy.Allowed, 1)
		mustCharge(t, m, b, policy.Allowed, 1)
		mustCharge(t, m, a, policy.CreditsExhausted, 1)
		if err := m.Revoke(ctx, a.Key, c.at(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if u := usage(t, m, "lic-42", c.at(0)); !u.Revoked {
			t.Fatalf("Usage = %+v", u)
		}
		if u, _ := m.Usage(ctx, b.Key, c.at(0)); u.Revoked || u.Used != 1 || u.Issuer != b.Key.Issuer {
			t.Fatalf("the other issuer's Usage = %+v", u)
		}
	})
	t.Run("an unknown key has empty usage", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		if u := usage(t, m, "nobody", c.at(0)); u != (policy.Usage{Issuer: testIssuer, Key: "nobody"}) {
			t.Fatalf("Usage = %+v", u)
		}
	})
}

func TestMemoryRefund(t *testing.T) {
	t.Run("a refund gives credits back", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		mustCharge(t, m, c.charge("k", 1, 2, 0), policy.Allowed, 1)
		mustCharge(t, m, c.charge("k", 1, 2, 0), policy.Allowed, 2)
		mustCharge(t, m, c.charge("k", 1, 2, 0), policy.CreditsExhausted, 2)
		if err := m.Refund(ctx, lk("k"), 1); err != nil {
			t.Fatal(err)
		}
		mustCharge(t, m, c.charge("k", 1, 2, 0), policy.Allowed, 2)
	})
	t.Run("a refund of a larger cost gives it all back", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		mustCharge(t, m, c.charge("k", 5, 5, 0), policy.Allowed, 5)
		if err := m.Refund(ctx, lk("k"), 5); err != nil {
			t.Fatal(err)
		}
		if u := usage(t, m, "k", c.at(0)); u.Used != 0 {
			t.Fatalf("Used = %d", u.Used)
		}
	})
	t.Run("an undo without a request id refunds a charge whose reply came, and nothing else", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		mustCharge(t, m, c.charge("k", 2, 5, 0), policy.Allowed, 2)
		if err := m.Undo(ctx, &policy.Undo{Key: lk("k"), Cost: 2, Now: c.at(0)}); err != nil {
			t.Fatal(err)
		}
		if u := usage(t, m, "k", c.at(0)); u.Used != 2 {
			t.Fatalf("an undo of a charge not known to have run changed Used to %d", u.Used)
		}
		if err := m.Undo(ctx, &policy.Undo{Key: lk("k"), Cost: 2, Ran: true, Now: c.at(0)}); err != nil {
			t.Fatal(err)
		}
		if u := usage(t, m, "k", c.at(0)); u.Used != 0 {
			t.Fatalf("Used = %d after the refund", u.Used)
		}
		// The next charge without an id is no duplicate of anything.
		mustCharge(t, m, c.charge("k", 1, 5, 0), policy.Allowed, 1)
	})
	t.Run("a refund for an unknown key is a no-op", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		if err := m.Refund(ctx, lk("nobody"), 3); err != nil {
			t.Fatal(err)
		}
		if u := usage(t, m, "nobody", c.at(0)); u.Used != 0 {
			t.Fatalf("Used = %d", u.Used)
		}
	})
}

func TestMemoryRevocation(t *testing.T) {
	t.Run("a revoked key is refused until its revocation lapses", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		mustCharge(t, m, c.charge("k", 1, 10, 0), policy.Allowed, 1)
		until := c.at(30 * time.Minute)
		if err := m.Revoke(ctx, lk("k"), until); err != nil {
			t.Fatal(err)
		}
		mustCharge(t, m, c.charge("k", 1, 10, time.Minute), policy.Revoked, 0)
		u := usage(t, m, "k", c.at(time.Minute))
		if !u.Revoked || u.RevokedUntil != until.Unix() || u.Used != 1 {
			t.Fatalf("Usage = %+v", u)
		}
		// a refused request spends nothing
		mustCharge(t, m, c.charge("k", 1, 10, 29*time.Minute), policy.Revoked, 0)
		if u := usage(t, m, "k", c.at(31*time.Minute)); u.Revoked || u.RevokedUntil != 0 || u.Used != 1 {
			t.Fatalf("after lapse Usage = %+v", u)
		}
		mustCharge(t, m, c.charge("k", 1, 10, 31*time.Minute), policy.Allowed, 2)
	})
	t.Run("a key can be revoked before its first charge", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		if err := m.Revoke(ctx, lk("k"), c.at(time.Hour)); err != nil {
			t.Fatal(err)
		}
		mustCharge(t, m, c.charge("k", 1, -1, 0), policy.Revoked, 0)
	})
	t.Run("revocation is checked before credits", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		ch := c.charge("k", 1, 0, 0)
		if err := m.Revoke(ctx, lk("k"), c.at(time.Hour)); err != nil {
			t.Fatal(err)
		}
		mustCharge(t, m, ch, policy.Revoked, 0)
	})
	t.Run("Unrevoke lifts a revocation", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		if err := m.Revoke(ctx, lk("k"), c.at(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := m.Unrevoke(ctx, lk("k")); err != nil {
			t.Fatal(err)
		}
		mustCharge(t, m, c.charge("k", 1, 10, 0), policy.Allowed, 1)
		if u := usage(t, m, "k", c.at(0)); u.Revoked {
			t.Fatalf("Usage = %+v", u)
		}
	})
	t.Run("Unrevoke of an unknown key is a no-op", func(t *testing.T) {
		if err := policy.NewMemory().Unrevoke(ctx, lk("nobody")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("revoking with a past time revokes nothing", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		if err := m.Revoke(ctx, lk("k"), c.at(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		mustCharge(t, m, c.charge("k", 1, 10, 0), policy.Allowed, 1)
	})
}

func TestMemoryAdjustCredits(t *testing.T) {
	t.Run("a top up lowers used and lets more requests through", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		for i := int64(1); i <= 3; i++ {
			mustCharge(t, m, c.charge("k", 1, 3, 0), policy.Allowed, i)
		}
		used, err := m.AdjustCredits(ctx, lk("k"), 2, false, c.at(time.Hour))
		if err != nil || used != 1 {
			t.Fatalf("AdjustCredits = %d, %v; want 1", used, err)
		}
		mustCharge(t, m, c.charge("k", 1, 3, 0), policy.Allowed, 2)
		mustCharge(t, m, c.charge("k", 1, 3, 0), policy.Allowed, 3)
		mustCharge(t, m, c.charge("k", 1, 3, 0), policy.CreditsExhausted, 3)
	})
	t.Run("a top up beyond the token's credits makes used negative", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		used, err := m.AdjustCredits(ctx, lk("k"), 5, false, c.at(time.Hour))
		if err != nil || used != -5 {
			t.Fatalf("AdjustCredits = %d, %v; want -5", used, err)
		}
		for i := int64(-4); i <= 2; i++ {
			mustCharge(t, m, c.charge("k", 1, 2, 0), policy.Allowed, i)
		}
		mustCharge(t, m, c.charge("k", 1, 2, 0), policy.CreditsExhausted, 2)
	})
	t.Run("a reset makes used zero", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		mustCharge(t, m, c.charge("k", 3, 3, 0), policy.Allowed, 3)
		used, err := m.AdjustCredits(ctx, lk("k"), 0, true, c.at(time.Hour))
		if err != nil || used != 0 {
			t.Fatalf("AdjustCredits = %d, %v; want 0", used, err)
		}
		mustCharge(t, m, c.charge("k", 3, 3, 0), policy.Allowed, 3)
	})
	t.Run("a reset with a top up starts below zero", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		mustCharge(t, m, c.charge("k", 3, 3, 0), policy.Allowed, 3)
		used, err := m.AdjustCredits(ctx, lk("k"), 2, true, c.at(time.Hour))
		if err != nil || used != -2 {
			t.Fatalf("AdjustCredits = %d, %v; want -2", used, err)
		}
	})
	t.Run("an adjustment is forgotten with the counter", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		if _, err := m.AdjustCredits(ctx, lk("k"), 5, false, c.at(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if u := usage(t, m, "k", c.at(2*time.Hour)); u.Used != 0 {
			t.Fatalf("Used after expiry = %d", u.Used)
		}
	})
}

func TestMemorySeats(t *testing.T) {
	const ttl = 10 * time.Minute
	seat := func(c *clock, hw string, limit int64, d time.Duration) *policy.Charge {
		ch := c.charge("k", 1, limit, d)
		ch.Seats, ch.Hardware, ch.SessionTTL = 2, hw, ttl
		return ch
	}
	t.Run("up to N hardware ids hold a seat; the next waits for the oldest", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		mustCharge(t, m, seat(c, "A", -1, 0), policy.Allowed, 0)
		mustCharge(t, m, seat(c, "B", -1, time.Minute), policy.Allowed, 0)
		res := mustCharge(t, m, seat(c, "C", -1, 2*time.Minute), policy.SeatsFull, 0)
		if res.RetryAfter != 8*time.Minute { // A lapses at 10m
			t.Fatalf("RetryAfter = %v; want 8m", res.RetryAfter)
		}
		if u := usage(t, m, "k", c.at(2*time.Minute)); u.Seats != 2 {
			t.Fatalf("Seats = %d", u.Seats)
		}
	})
	t.Run("the same hardware id refreshes its seat", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		mustCharge(t, m, seat(c, "A", -1, 0), policy.Allowed, 0)
		mustCharge(t, m, seat(c, "B", -1, time.Minute), policy.Allowed, 0)
		// A is still within its seat and refreshes it
		mustCharge(t, m, seat(c, "A", -1, 3*time.Minute), policy.Allowed, 0)
		// now B (seen at 1m) is the oldest: it lapses at 11m
		res := mustCharge(t, m, seat(c, "C", -1, 4*time.Minute), policy.SeatsFull, 0)
		if res.RetryAfter != 7*time.Minute {
			t.Fatalf("RetryAfter = %v; want 7m", res.RetryAfter)
		}
		// at 10m A's first seat would have lapsed, but A refreshed it
		mustCharge(t, m, seat(c, "C", -1, 10*time.Minute+time.Second), policy.SeatsFull, 0)
		// after 11m B has lapsed and C gets its seat
		mustCharge(t, m, seat(c, "C", -1, 11*time.Minute+time.Second), policy.Allowed, 0)
	})
	t.Run("seats lapse after the session TTL", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		mustCharge(t, m, seat(c, "A", -1, 0), policy.Allowed, 0)
		mustCharge(t, m, seat(c, "B", -1, 0), policy.Allowed, 0)
		mustCharge(t, m, seat(c, "C", -1, ttl-time.Second), policy.SeatsFull, 0)
		mustCharge(t, m, seat(c, "C", -1, ttl), policy.Allowed, 0)
		mustCharge(t, m, seat(c, "D", -1, ttl), policy.Allowed, 0)
		mustCharge(t, m, seat(c, "A", -1, ttl), policy.SeatsFull, 0)
	})
	t.Run("a seats-rejected request spends no credits", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		mustCharge(t, m, seat(c, "A", 10, 0), policy.Allowed, 1)
		mustCharge(t, m, seat(c, "B", 10, 0), policy.Allowed, 2)
		for range 5 {
			mustCharge(t, m, seat(c, "C", 10, 0), policy.SeatsFull, 2)
		}
		if u := usage(t, m, "k", c.at(0)); u.Used != 2 {
			t.Fatalf("Used = %d", u.Used)
		}
	})
	t.Run("a credits-rejected request takes no seat", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		mustCharge(t, m, seat(c, "A", 1, 0), policy.Allowed, 1)
		mustCharge(t, m, seat(c, "B", 1, 0), policy.CreditsExhausted, 1)
		if u := usage(t, m, "k", c.at(0)); u.Seats != 1 {
			t.Fatalf("Seats = %d", u.Seats)
		}
	})
	t.Run("a revoked request takes no seat", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		if err := m.Revoke(ctx, lk("k"), c.at(time.Minute)); err != nil {
			t.Fatal(err)
		}
		mustCharge(t, m, seat(c, "A", -1, 0), policy.Revoked, 0)
		if u := usage(t, m, "k", c.at(0)); u.Seats != 0 {
			t.Fatalf("Seats = %d", u.Seats)
		}
	})
	t.Run("seats are forgotten when the token expires", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		long := func(hw string, d time.Duration) *policy.Charge {
			ch := seat(c, hw, -1, d)
			ch.SessionTTL = 24 * time.Hour
			return ch
		}
		mustCharge(t, m, long("A", 0), policy.Allowed, 0)
		mustCharge(t, m, long("B", 0), policy.Allowed, 0)
		mustCharge(t, m, long("C", 59*time.Minute), policy.SeatsFull, 0)
		ch := long("C", time.Hour+time.Second)
		ch.Expires = c.at(2 * time.Hour) // a new token on the same key
		mustCharge(t, m, ch, policy.Allowed, 0)
	})
	t.Run("usage counts only seats within the session TTL", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		mustCharge(t, m, seat(c, "A", -1, 0), policy.Allowed, 0)
		mustCharge(t, m, seat(c, "B", -1, 5*time.Minute), policy.Allowed, 0)
		for _, tc := range []struct {
			at   time.Duration
			want int64
		}{{5 * time.Minute, 2}, {ttl - time.Second, 2}, {ttl, 1}, {ttl + 5*time.Minute, 0}} {
			if u := usage(t, m, "k", c.at(tc.at)); u.Seats != tc.want {
				t.Errorf("at %v: Seats = %d; want %d", tc.at, u.Seats, tc.want)
			}
		}
	})
	t.Run("a huge seats claim does not preallocate", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		ch := seat(c, "A", -1, 0)
		ch.Seats = 1 << 20
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		mustCharge(t, m, ch, policy.Allowed, 0)
		runtime.ReadMemStats(&after)
		if grown := after.TotalAlloc - before.TotalAlloc; grown > 64<<10 {
			t.Fatalf("one seat allocated %d bytes", grown)
		}
	})
	t.Run("seats are held without an expiry time", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		for _, hw := range []string{"A", "B", "C"} {
			ch := seat(c, hw, -1, 0)
			ch.Expires = time.Time{}
			res, err := m.Charge(ctx, ch)
			if err != nil {
				t.Fatal(err)
			}
			if want := hw != "C"; (res.Outcome == policy.Allowed) != want {
				t.Fatalf("%s: %+v", hw, res)
			}
		}
	})
}

func TestMemoryExpiry(t *testing.T) {
	t.Run("credits are forgotten after Expires", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		mustCharge(t, m, c.charge("k", 3, 3, 0), policy.Allowed, 3)
		mustCharge(t, m, c.charge("k", 1, 3, time.Hour), policy.CreditsExhausted, 3)
		if u := usage(t, m, "k", c.at(time.Hour+time.Second)); u.Used != 0 {
			t.Fatalf("Used = %d", u.Used)
		}
		ch := c.charge("k", 1, 3, time.Hour+time.Second)
		ch.Expires = c.at(2 * time.Hour)
		mustCharge(t, m, ch, policy.Allowed, 1)
	})
	t.Run("a later Expires extends the counter", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		mustCharge(t, m, c.charge("k", 1, 3, 0), policy.Allowed, 1)
		ch := c.charge("k", 1, 3, 0)
		ch.Expires = c.at(3 * time.Hour)
		mustCharge(t, m, ch, policy.Allowed, 2)
		if u := usage(t, m, "k", c.at(2*time.Hour)); u.Used != 2 {
			t.Fatalf("Used = %d", u.Used)
		}
	})
	t.Run("an earlier Expires does not shorten the counter", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		mustCharge(t, m, c.charge("k", 1, 3, 0), policy.Allowed, 1)
		ch := c.charge("k", 1, 3, 0)
		ch.Expires = c.at(time.Minute)
		mustCharge(t, m, ch, policy.Allowed, 2)
		if u := usage(t, m, "k", c.at(30*time.Minute)); u.Used != 2 {
			t.Fatalf("Used = %d", u.Used)
		}
	})
}

func TestMemorySweep(t *testing.T) {
	c, m := newClock(), policy.NewMemory()
	if n := m.Sweep(c.at(0)); n != 0 {
		t.Fatalf("empty store: Sweep = %d", n)
	}
	for i := range 100 {
		mustCharge(t, m, c.charge(fmt.Sprint("used-", i), 1, 10, 0), policy.Allowed, 1)
	}
	// entries that hold nothing are dropped at once
	mustCharge(t, m, c.charge("nothing", 1, -1, 0), policy.Allowed, 0)
	if err := m.Revoke(ctx, lk("revoked"), c.at(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := m.Sweep(c.at(0)); n != 101 {
		t.Fatalf("Sweep = %d; want 101 (100 used + 1 revoked)", n)
	}
	if n := m.Sweep(c.at(time.Hour)); n != 101 {
		t.Fatalf("Sweep at Expires = %d; want 101", n)
	}
	if n := m.Sweep(c.at(time.Hour + time.Second)); n != 1 {
		t.Fatalf("Sweep after Expires = %d; want 1 (the revocation)", n)
	}
	if u := usage(t, m, "used-7", c.at(time.Hour+time.Second)); u.Used != 0 {
		t.Fatalf("swept key still has Used = %d", u.Used)
	}
	if n := m.Sweep(c.at(3*time.Hour + time.Second)); n != 0 {
		t.Fatalf("Sweep after the revocation lapsed = %d; want 0", n)
	}
	// a swept key starts afresh
	ch := c.charge("used-7", 1, 10, 3*time.Hour)
	ch.Expires = c.at(4 * time.Hour)
	mustCharge(t, m, ch, policy.Allowed, 1)
}

// TestMemoryExactUnderConcurrency: many goroutines charging one key never
// spend more than the limit and never refuse while credit remains.
func TestMemoryExactUnderConcurrency(t *testing.T) {
	const workers, perWorker = 64, 200
	tests := []struct {
		name        string
		cost, limit int64
		wantAllowed int64
	}{
		{"64 goroutines spend exactly the limit", 1, 5000, 5000},
		{"a limit above the demand allows every request", 1, workers*perWorker + 10, workers * perWorker},
		{"cost 3 of 1000 allows exactly 333", 3, 1000, 333},
		{"zero credits allow nothing", 1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, m := newClock(), policy.NewMemory()
			var allowed, exhausted atomic.Int64
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range workers {
				wg.Go(func() {
					<-start
					for range perWorker {
						res, err := m.Charge(ctx, c.charge("hot", tt.cost, tt.limit, 0))
						if err != nil {
							t.Error(err)
							return
						}
						switch res.Outcome {
						case policy.Allowed:
							allowed.Add(1)
							if res.Used > tt.limit {
								t.Errorf("Used %d above limit %d", res.Used, tt.limit)
							}
						case policy.CreditsExhausted:
							exhausted.Add(1)
							if tt.limit-res.Used >= tt.cost {
								t.Errorf("refused with %d credits left", tt.limit-res.Used)
							}
						default:
							t.Errorf("outcome %v", res.Outcome)
						}
					}
				})
			}
			close(start)
			wg.Wait()
			if allowed.Load() != tt.wantAllowed || allowed.Load()+exhausted.Load() != workers*perWorker {
				t.Fatalf("allowed %d, exhausted %d; want %d allowed", allowed.Load(), exhausted.Load(), tt.wantAllowed)
			}
			if u := usage(t, m, "hot", c.at(0)); u.Used != tt.wantAllowed*tt.cost {
				t.Fatalf("Used = %d; want %d", u.Used, tt.wantAllowed*tt.cost)
			}
		})
	}

	t.Run("charges and refunds interleaved stay exact", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range perWorker {
					res, _ := m.Charge(ctx, c.charge("hot", 1, 100, 0))
					if res.Outcome == policy.Allowed {
						allowed.Add(1)
						if err := m.Refund(ctx, lk("hot"), 1); err != nil {
							t.Error(err)
						}
					}
				}
			})
		}
		wg.Wait()
		if u := usage(t, m, "hot", c.at(0)); u.Used != 0 {
			t.Fatalf("Used = %d after refunding every charge", u.Used)
		}
		if allowed.Load() != workers*perWorker {
			t.Fatalf("allowed %d of %d although every charge was refunded", allowed.Load(), workers*perWorker)
		}
	})

	t.Run("64 hardware ids racing for 8 seats get exactly 8", func(t *testing.T) {
		c, m := newClock(), policy.NewMemory()
		var allowed, full atomic.Int64
		var wg sync.WaitGroup
		for i := range workers {
			wg.Go(func() {
				ch := c.charge("seats", 1, 1000, 0)
				ch.Seats, ch.Hardware, ch.SessionTTL = 8, fmt.Sprint("hw-", i), time.Minute
				for range 10 { // each id retries; a holder keeps its seat
					res, _ := m.Charge(ctx, ch)
					switch res.Outcome {
					case policy.Allowed:
						allowed.Add(1)
					case policy.SeatsFull:
						full.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if allowed.Load() != 8*10 || full.Load() != (workers-8)*10 {
			t.Fatalf("allowed %d, seats full %d; want 80 and %d", allowed.Load(), full.Load(), (workers-8)*10)
		}
		if u := usage(t, m, "seats", c.at(0)); u.Seats != 8 || u.Used != 80 {
			t.Fatalf("Usage = %+v", u)
		}
	})
}

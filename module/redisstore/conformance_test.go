package redisstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/policy"
)

// The conformance suite: every case runs against policy.Memory, the
// reference, and against the Redis store, so both keep the same contract.

// fixture is one case's view of a store: a fresh key and a clock.
type fixture struct {
	t       *testing.T
	s       policy.Counters
	key     policy.LicenseKey
	base    time.Time // the case's "now"; offsets are from here
	expires time.Time // default Charge.Expires
	// charged is the time of each request id's first charge, which undo
	// gives as Undo.Charged when the case gives none (as the gate does:
	// a void or refund carries its charge's time).
	charged map[string]time.Time
}

// charge runs c at base+at, filling in the key and, when zero, Expires.
func (f *fixture) charge(at time.Duration, c policy.Charge) policy.Result {
	f.t.Helper()
	c.Key = f.key
	c.Now = f.base.Add(at)
	if c.Expires.IsZero() {
		c.Expires = f.expires
	}
	if _, seen := f.charged[c.Request]; c.Request != "" && !seen {
		if f.charged == nil {
			f.charged = map[string]time.Time{}
		}
		f.charged[c.Request] = c.Now
	}
	r, err := f.s.Charge(context.Background(), &c)
	if err != nil {
		f.t.Fatalf("Charge(%+v): %v", c, err)
	}
	return r
}

// want charges and checks the outcome and the credits used.
func (f *fixture) want(at time.Duration, c policy.Charge, outcome policy.Outcome, used int64) policy.Result {
	f.t.Helper()
	r := f.charge(at, c)
	if r.Outcome != outcome || r.Used != used {
		f.t.Fatalf("at +%v Charge(cost %d, limit %d, seats %d, hw %q) = %s used %d; want %s used %d",
			at, c.Cost, c.Limit, c.Seats, c.Hardware, outcomeName(r.Outcome), r.Used, outcomeName(outcome), used)
	}
	return r
}

func (f *fixture) usage(at time.Duration) policy.Usage {
	f.t.Helper()
	u, err := f.s.Usage(context.Background(), f.key, f.base.Add(at))
	if err != nil {
		f.t.Fatalf("Usage: %v", err)
	}
	return u
}

// undo runs u at base+at for the fixture's key, Charged (when not given)
// the time of u.Request's first charge, if any.
func (f *fixture) undo(at time.Duration, u policy.Undo) {
	f.t.Helper()
	u.Key, u.Now = f.key, f.base.Add(at)
	if u.Charged.IsZero() {
		u.Charged = f.charged[u.Request]
	}
	if err := f.s.Undo(context.Background(), &u); err != nil {
		f.t.Fatalf("Undo(%+v): %v", u, err)
	}
}

// req is c with request id id.
func req(id string, c policy.Charge) policy.Charge {
	c.Request = id
	return c
}

func (f *fixture) refund(cost int64) {
	f.t.Helper()
	if err := f.s.Refund(context.Background(), f.key, cost); err != nil {
		f.t.Fatalf("Refund: %v", err)
	}
}

func (f *fixture) revoke(until time.Time) {
	f.t.Helper()
	if err := f.s.Revoke(context.Background(), f.key, until); err != nil {
		f.t.Fatalf("Revoke: %v", err)
	}
}

func (f *fixture) adjust(add int64, reset bool) int64 {
	f.t.Helper()
	used, err := f.s.AdjustCredits(context.Background(), f.key, add, reset, f.expires)
	if err != nil {
		f.t.Fatalf("AdjustCredits: %v", err)
	}
	return used
}

func outcomeName(o policy.Outcome) string {
	switch o {
	case policy.Allowed:
		return "Allowed"
	case policy.Revoked:
		return "Revoked"
	case policy.CreditsExhausted:
		return "CreditsExhausted"
	case policy.SeatsFull:
		return "SeatsFull"
	}
	return "Outcome(?)"
}

// credits is a Charge of cost against limit, without seats.
func credits(cost, limit int64) policy.Charge {
	return policy.Charge{Cost: cost, Limit: limit}
}

// seat is a Charge from hardware id hw, with n seats of ttl, no credits.
func seat(hw string, n int64, ttl time.Duration) policy.Charge {
	return policy.Charge{Cost: 1, Limit: -1, Seats: n, Hardware: hw, SessionTTL: ttl}
}

const ttl = 10 * time.Minute

var conformance = []struct {
	name string
	run  func(f *fixture)
}{
	{"credits are charged one by one until exhausted", func(f *fixture) {
		for i := int64(1); i <= 3; i++ {
			f.want(0, credits(1, 3), policy.Allowed, i)
		}
		f.want(0, credits(1, 3), policy.CreditsExhausted, 3)
		f.want(time.Second, credits(1, 3), policy.CreditsExhausted, 3)
	}},
	{"a cost above one is charged whole or not at all", func(f *fixture) {
		f.want(0, credits(2, 5), policy.Allowed, 2)
		f.want(0, credits(2, 5), policy.Allowed, 4)
		f.want(0, credits(2, 5), policy.CreditsExhausted, 4)
		f.want(0, credits(1, 5), policy.Allowed, 5)
	}},
	{"zero credits refuse the first request", func(f *fixture) {
		f.want(0, credits(1, 0), policy.CreditsExhausted, 0)
		if u := f.usage(0); u.Used != 0 {
			t := f.t
			t.Fatalf("Usage.Used = %d after a refused charge, want 0", u.Used)
		}
	}},
	{"a zero cost is allowed even without credits", func(f *fixture) {
		f.want(0, credits(0, 0), policy.Allowed, 0)
		f.want(0, credits(0, 0), policy.Allowed, 0)
	}},
	{"limit -1 charges nothing", func(f *fixture) {
		for range 5 {
			f.want(0, credits(7, -1), policy.Allowed, 0)
		}
		if u := f.usage(0); u.Used != 0 {
			f.t.Fatalf("Usage.Used = %d, want 0", u.Used)
		}
	}},
	{"limit -1 reports the credits used by tokens that have a limit", func(f *fixture) {
		f.want(0, credits(2, 10), policy.Allowed, 2)
		f.want(0, credits(1, -1), policy.Allowed, 2)
	}},
	{"a refund gives the credits back", func(f *fixture) {
		f.want(0, credits(1, 2), policy.Allowed, 1)
		f.want(0, credits(1, 2), policy.Allowed, 2)
		f.want(0, credits(1, 2), policy.CreditsExhausted, 2)
		f.refund(1)
		f.want(0, credits(1, 2), policy.Allowed, 2)
		f.refund(2)
		if u := f.usage(0); u.Used != 0 {
			f.t.Fatalf("Usage.Used = %d after refunding everything, want 0", u.Used)
		}
	}},
	{"a refund of a key never charged stores nothing", func(f *fixture) {
		f.refund(3)
		if u := f.usage(0); u != (policy.Usage{Issuer: f.key.Issuer, Key: f.key.Key}) {
			f.t.Fatalf("Usage = %+v, want empty", u)
		}
	}},
	{"seats admit n distinct hardware ids and refuse the next with RetryAfter", func(f *fixture) {
		f.want(0, seat("a", 2, ttl), policy.Allowed, 0)
		f.want(time.Minute, seat("b", 2, ttl), policy.Allowed, 0)
		r := f.want(2*time.Minute, seat("c", 2, ttl), policy.SeatsFull, 0)
		if r.RetryAfter != 8*time.Minute {
			f.t.Fatalf("RetryAfter = %v, want 8m (a's seat lapses at +10m)", r.RetryAfter)
		}
	}},
	{"a seat holder is admitted while the seats are full", func(f *fixture) {
		f.want(0, seat("a", 2, ttl), policy.Allowed, 0)
		f.want(0, seat("b", 2, ttl), policy.Allowed, 0)
		f.want(time.Second, seat("a", 2, ttl), policy.Allowed, 0)
		f.want(time.Second, seat("b", 2, ttl), policy.Allowed, 0)
	}},
	{"a request refreshes its seat", func(f *fixture) {
		f.want(0, seat("a", 2, ttl), policy.Allowed, 0)
		f.want(time.Minute, seat("b", 2, ttl), policy.Allowed, 0)
		f.want(5*time.Minute, seat("a", 2, ttl), policy.Allowed, 0)
		// At +10m a's first seat would have lapsed; refreshed, it holds, and
		// b (seen at +1m) is now the oldest.
		r := f.want(ttl, seat("c", 2, ttl), policy.SeatsFull, 0)
		if r.RetryAfter != time.Minute {
			f.t.Fatalf("RetryAfter = %v, want 1m", r.RetryAfter)
		}
	}},
	{"a seat lapses SessionTTL after its last request", func(f *fixture) {
		f.want(0, seat("a", 1, ttl), policy.Allowed, 0)
		f.want(ttl-time.Millisecond, seat("b", 1, ttl), policy.SeatsFull, 0)
		f.want(ttl, seat("b", 1, ttl), policy.Allowed, 0)
		f.want(ttl, seat("a", 1, ttl), policy.SeatsFull, 0)
	}},
	{"a request refused for seats spends no credit", func(f *fixture) {
		c := policy.Charge{Cost: 1, Limit: 5, Seats: 1, SessionTTL: ttl}
		c.Hardware = "a"
		f.want(0, c, policy.Allowed, 1)
		c.Hardware = "b"
		f.want(0, c, policy.SeatsFull, 1)
		f.want(0, c, policy.SeatsFull, 1)
		if u := f.usage(0); u.Used != 1 || u.Seats != 1 {
			f.t.Fatalf("Usage = %+v, want 1 credit used and 1 seat", u)
		}
	}},
	{"a request refused for credits takes no seat", func(f *fixture) {
		c := policy.Charge{Cost: 1, Limit: 1, Seats: 3, SessionTTL: ttl}
		c.Hardware = "a"
		f.want(0, c, policy.Allowed, 1)
		c.Hardware = "b"
		f.want(0, c, policy.CreditsExhausted, 1)
		if u := f.usage(0); u.Seats != 1 {
			f.t.Fatalf("Usage.Seats = %d, want 1", u.Seats)
		}
	}},
	{"a revoked key is refused until the revocation ends", func(f *fixture) {
		f.want(0, credits(1, 5), policy.Allowed, 1)
		f.revoke(f.base.Add(time.Hour))
		f.want(time.Minute, credits(1, 5), policy.Revoked, 0)
		f.want(time.Minute, seat("a", 1, ttl), policy.Revoked, 0)
		if u := f.usage(time.Minute); u.Used != 1 || u.Seats != 0 {
			f.t.Fatalf("Usage = %+v, want revoked requests to spend nothing", u)
		}
		f.want(time.Hour, credits(1, 5), policy.Allowed, 2)
	}},
	{"unrevoke lifts a revocation at once", func(f *fixture) {
		f.revoke(f.base.Add(time.Hour))
		f.want(0, credits(1, 5), policy.Revoked, 0)
		if err := f.s.Unrevoke(context.Background(), f.key); err != nil {
			f.t.Fatal(err)
		}
		f.want(0, credits(1, 5), policy.Allowed, 1)
	}},
	{"a revocation ending at the zero time lifts it", func(f *fixture) {
		f.revoke(f.base.Add(time.Hour))
		f.revoke(time.Time{})
		f.want(0, credits(1, 5), policy.Allowed, 1)
	}},
	{"unrevoking a key never revoked is harmless", func(f *fixture) {
		if err := f.s.Unrevoke(context.Background(), f.key); err != nil {
			f.t.Fatal(err)
		}
		f.want(0, credits(1, 5), policy.Allowed, 1)
	}},
	{"usage reports credits, seats and revocation", func(f *fixture) {
		c := policy.Charge{Cost: 2, Limit: 10, Seats: 3, SessionTTL: ttl}
		for _, hw := range []string{"a", "b", "a"} {
			c.Hardware = hw
			f.charge(0, c)
		}
		until := f.base.Add(2 * time.Hour)
		f.revoke(until)
		want := policy.Usage{Issuer: f.key.Issuer, Key: f.key.Key, Used: 6, Revoked: true, RevokedUntil: until.Unix(), Seats: 2,
			HasLimit: true, Limit: 10, Left: 4}
		if u := f.usage(time.Minute); u != want {
			f.t.Fatalf("Usage = %+v, want %+v", u, want)
		}
		want.Revoked, want.RevokedUntil, want.Seats = false, 0, 0
		if u := f.usage(2 * time.Hour); u != want {
			f.t.Fatalf("Usage after the revocation and the seats' ttl = %+v, want %+v", u, want)
		}
	}},
	{"usage counts the seats seen within the last SessionTTL", func(f *fixture) {
		f.want(0, seat("a", 3, ttl), policy.Allowed, 0)
		f.want(time.Minute, seat("b", 3, ttl), policy.Allowed, 0)
		f.want(2*time.Minute, seat("c", 3, 5*time.Minute), policy.Allowed, 0)
		if u := f.usage(2 * time.Minute); u.Seats != 3 {
			f.t.Fatalf("Usage.Seats at +2m = %d, want 3", u.Seats)
		}
		// The last seat was taken with a 5m ttl: a (seen at 0) no longer
		// counts at +5m, b (+1m) does until +6m.
		if u := f.usage(5 * time.Minute); u.Seats != 2 {
			f.t.Fatalf("Usage.Seats at +5m = %d, want 2", u.Seats)
		}
		if u := f.usage(6 * time.Minute); u.Seats != 1 {
			f.t.Fatalf("Usage.Seats at +6m = %d, want 1", u.Seats)
		}
	}},
	{"seats without Expires stay until their SessionTTL", func(f *fixture) {
		r, err := f.s.Charge(context.Background(), &policy.Charge{Key: f.key, Cost: 1, Limit: -1, Seats: 1,
			Hardware: "a", SessionTTL: ttl, Now: f.base})
		if err != nil || r.Outcome != policy.Allowed {
			f.t.Fatalf("Charge without Expires = %+v, %v", r, err)
		}
		r, err = f.s.Charge(context.Background(), &policy.Charge{Key: f.key, Cost: 1, Limit: -1, Seats: 1,
			Hardware: "b", SessionTTL: ttl, Now: f.base.Add(48 * time.Hour)})
		if err != nil || r.Outcome != policy.Allowed {
			f.t.Fatalf("Charge after a's ttl = %+v, %v", r, err)
		}
		r, err = f.s.Charge(context.Background(), &policy.Charge{Key: f.key, Cost: 1, Limit: -1, Seats: 1,
			Hardware: "a", SessionTTL: ttl, Now: f.base.Add(48*time.Hour + time.Minute)})
		if err != nil || r.Outcome != policy.SeatsFull || r.RetryAfter != ttl-time.Minute {
			f.t.Fatalf("Charge while b holds the seat = %+v, %v; want SeatsFull, RetryAfter 9m", r, err)
		}
	}},
	{"usage of an unknown key is empty", func(f *fixture) {
		if u := f.usage(0); u != (policy.Usage{Issuer: f.key.Issuer, Key: f.key.Key}) {
			f.t.Fatalf("Usage = %+v, want empty", u)
		}
	}},
	{"a top up lets used go below zero and grants more", func(f *fixture) {
		f.want(0, credits(1, 1), policy.Allowed, 1)
		f.want(0, credits(1, 1), policy.CreditsExhausted, 1)
		if used := f.adjust(2, false); used != -1 {
			f.t.Fatalf("AdjustCredits(+2) = %d, want -1", used)
		}
		f.want(0, credits(1, 1), policy.Allowed, 0)
		f.want(0, credits(1, 1), policy.Allowed, 1)
		f.want(0, credits(1, 1), policy.CreditsExhausted, 1)
	}},
	{"a reset sets used to zero before the top up", func(f *fixture) {
		f.want(0, credits(3, 3), policy.Allowed, 3)
		if used := f.adjust(0, true); used != 0 {
			f.t.Fatalf("AdjustCredits(reset) = %d, want 0", used)
		}
		if used := f.adjust(4, true); used != -4 {
			f.t.Fatalf("AdjustCredits(reset, +4) = %d, want -4", used)
		}
		if used := f.adjust(-1, false); used != -3 {
			f.t.Fatalf("AdjustCredits(-1) = %d, want -3", used)
		}
		f.want(0, credits(6, 3), policy.Allowed, 3)
	}},
	{"adjusting a key never charged creates it", func(f *fixture) {
		if used := f.adjust(5, false); used != -5 {
			f.t.Fatalf("AdjustCredits(+5) = %d, want -5", used)
		}
		if u := f.usage(0); u.Used != -5 {
			f.t.Fatalf("Usage.Used = %d, want -5", u.Used)
		}
	}},
	{"counters are forgotten once Expires has passed", func(f *fixture) {
		c := policy.Charge{Cost: 1, Limit: 1, Seats: 1, Hardware: "a", SessionTTL: 24 * time.Hour,
			Expires: f.base.Add(time.Hour)}
		f.want(0, c, policy.Allowed, 1)
		c.Hardware = "b"
		f.want(time.Hour, c, policy.SeatsFull, 1)
		if u := f.usage(time.Hour + time.Millisecond); u.Used != 0 || u.Seats != 0 {
			f.t.Fatalf("Usage after Expires = %+v, want nothing held", u)
		}
		c.Expires = f.base.Add(2 * time.Hour)
		f.want(time.Hour+time.Millisecond, c, policy.Allowed, 1)
	}},
	{"a later Expires extends the counters and an earlier one does not shorten them", func(f *fixture) {
		f.want(0, policy.Charge{Cost: 1, Limit: 5, Expires: f.base.Add(time.Hour)}, policy.Allowed, 1)
		f.want(0, policy.Charge{Cost: 1, Limit: 5, Expires: f.base.Add(3 * time.Hour)}, policy.Allowed, 2)
		f.want(0, policy.Charge{Cost: 1, Limit: 5, Expires: f.base.Add(2 * time.Hour)}, policy.Allowed, 3)
		if u := f.usage(3 * time.Hour); u.Used != 3 {
			f.t.Fatalf("Usage at +3h = %d, want 3 (kept until the latest Expires)", u.Used)
		}
		if u := f.usage(3*time.Hour + time.Millisecond); u.Used != 0 {
			f.t.Fatalf("Usage after +3h = %d, want 0", u.Used)
		}
	}},
	{"credits up to MaxCredits stay exact", func(f *fixture) {
		const max = policy.MaxCredits
		f.want(0, credits(max-1, max), policy.Allowed, max-1)
		f.want(0, credits(2, max), policy.CreditsExhausted, max-1)
		f.want(0, credits(1, max), policy.Allowed, max)
		f.want(0, credits(1, max), policy.CreditsExhausted, max)
		f.want(0, credits(0, max), policy.Allowed, max)
		if used := f.adjust(max, false); used != 0 {
			f.t.Fatalf("AdjustCredits(+max) = %d, want 0", used)
		}
		if used := f.adjust(max, false); used != -max {
			f.t.Fatalf("AdjustCredits(+max) = %d, want %d", used, -max)
		}
		f.want(0, credits(max, max), policy.Allowed, 0)
		f.want(0, credits(max, max), policy.Allowed, max)
		f.want(0, credits(1, max), policy.CreditsExhausted, max)
		if used := f.adjust(3*max, false); used != -2*max {
			f.t.Fatalf("AdjustCredits(+3max) = %d, want %d (beyond 2^53, exact)", used, -2*max)
		}
		if u := f.usage(0); u.Used != -2*max {
			f.t.Fatalf("Usage.Used = %d, want %d", u.Used, -2*max)
		}
		f.want(0, credits(max, max), policy.Allowed, -max)
		f.want(0, credits(1, max), policy.Allowed, -max+1)
	}},
	{"a top up beyond MaxUsed is refused and changes nothing", func(f *fixture) {
		f.want(0, credits(2, 5), policy.Allowed, 2)
		for range 3 {
			f.adjust(policy.MaxCredits, false)
		}
		before := f.usage(0).Used
		for _, tc := range []struct {
			add   int64
			reset bool
		}{{policy.MaxUsed, false}, {-policy.MaxUsed - 1<<20, true}, {1<<63 - 1, false}, {-1 << 63, false}} {
			used, err := f.s.AdjustCredits(context.Background(), f.key, tc.add, tc.reset, f.expires)
			if !errors.Is(err, policy.ErrOutOfRange) {
				f.t.Fatalf("AdjustCredits(%d, reset %v) = %d, %v; want ErrOutOfRange", tc.add, tc.reset, used, err)
			}
		}
		if u := f.usage(0); u.Used != before {
			f.t.Fatalf("Usage.Used = %d after refused top ups, want %d", u.Used, before)
		}
	}},
	{"a revocation beyond year 9999 is refused and changes nothing", func(f *fixture) {
		until := f.base.Add(time.Hour)
		f.revoke(until)
		for _, late := range []time.Time{policy.MaxTime.Add(time.Second), time.Unix(1<<62, 0)} {
			if err := f.s.Revoke(context.Background(), f.key, late); !errors.Is(err, policy.ErrOutOfRange) {
				f.t.Fatalf("Revoke(%v) = %v, want ErrOutOfRange", late, err)
			}
		}
		if u := f.usage(0); !u.Revoked || u.RevokedUntil != until.Unix() {
			f.t.Fatalf("Usage = %+v after refused revocations, want revoked until %d", u, until.Unix())
		}
		f.revoke(policy.MaxTime)
		if u := f.usage(0); u.RevokedUntil != policy.MaxTime.Unix() {
			f.t.Fatalf("revoked until %d, want the end of 9999", u.RevokedUntil)
		}
	}},
	{"an undo after the charge gives the credits back, once", func(f *fixture) {
		f.want(0, req("r1", credits(2, 5)), policy.Allowed, 2)
		f.want(0, req("r2", credits(2, 5)), policy.Allowed, 4)
		f.undo(time.Second, policy.Undo{Request: "r1", Cost: 2})
		f.undo(time.Second, policy.Undo{Request: "r1", Cost: 2})
		if u := f.usage(time.Second); u.Used != 2 {
			f.t.Fatalf("Usage.Used = %d after undoing r1 twice, want 2", u.Used)
		}
		// The same charge again (the same id at its time) counts nothing.
		f.want(0, req("r1", credits(2, 5)), policy.Duplicate, 2)
		f.want(2*time.Second, req("r3", credits(3, 5)), policy.Allowed, 5)
	}},
	{"an undo before the charge makes it count nothing", func(f *fixture) {
		// The void carries the charge's time, as the gate's do.
		f.undo(0, policy.Undo{Request: "late", Charged: f.base.Add(time.Second), Cost: 1, Hardware: "a", Seat: true})
		f.want(time.Second, req("late", policy.Charge{Cost: 1, Limit: 5, Seats: 1, Hardware: "a", SessionTTL: ttl}), policy.Duplicate, 0)
		if u := f.usage(time.Second); u.Used != 0 || u.Seats != 0 {
			f.t.Fatalf("Usage = %+v after a voided charge, want nothing", u)
		}
		// The seat was not taken: another device gets it.
		f.want(time.Second, req("next", policy.Charge{Cost: 1, Limit: 5, Seats: 1, Hardware: "b", SessionTTL: ttl}), policy.Allowed, 1)
	}},
	{"a charge without a request id is never a duplicate", func(f *fixture) {
		f.undo(0, policy.Undo{Cost: 1})
		f.want(0, credits(1, 5), policy.Allowed, 1)
		f.want(0, credits(1, 5), policy.Allowed, 2)
	}},
	{"a void gives back the new seat it took, a refund keeps it", func(f *fixture) {
		seat1 := policy.Charge{Cost: 1, Limit: 5, Seats: 1, SessionTTL: ttl}
		a, b := seat1, seat1
		a.Hardware, b.Hardware = "a", "b"
		f.want(0, req("r1", a), policy.Allowed, 1)
		f.undo(time.Second, policy.Undo{Request: "r1", Cost: 1, Hardware: "a"})
		f.want(time.Second, req("r2", b), policy.SeatsFull, 0)
		f.undo(time.Second, policy.Undo{Request: "r1", Cost: 1, Hardware: "a", Seat: true})
		if u := f.usage(time.Second); u.Used != 0 || u.Seats != 0 {
			f.t.Fatalf("Usage = %+v after a refund and a void, want used 0 and no seat", u)
		}
		f.want(time.Second, req("r3", b), policy.Allowed, 1)
	}},
	{"a void leaves a seat a later request refreshed", func(f *fixture) {
		a := policy.Charge{Cost: 0, Limit: -1, Seats: 1, Hardware: "a", SessionTTL: ttl}
		b := a
		b.Hardware = "b"
		f.want(0, req("r1", a), policy.Allowed, 0)
		f.want(time.Second, req("r2", a), policy.Allowed, 0)
		f.undo(2*time.Second, policy.Undo{Request: "r1", Hardware: "a", Seat: true})
		f.want(2*time.Second, req("r3", b), policy.SeatsFull, 0)
	}},
	{"request ids are forgotten after UndoWindow", func(f *fixture) {
		w := policy.UndoWindow
		f.want(0, req("r1", credits(1, 5)), policy.Allowed, 1)
		f.undo(0, policy.Undo{Request: "gone", Cost: 1})
		// An undo past the window finds nothing to give back.
		f.undo(w+time.Second, policy.Undo{Request: "r1", Cost: 1})
		f.want(w+time.Second, req("gone", credits(1, 5)), policy.Allowed, 2)
		// It leaves a tombstone, though: the charge, should it come
		// again, counts nothing.
		f.want(0, req("r1", credits(1, 5)), policy.Duplicate, 2)
	}},
	{"a refund after UndoWindow still gives the credits back, once", func(f *fixture) {
		w := policy.UndoWindow
		f.want(0, req("slow", credits(2, 5)), policy.Allowed, 2)
		f.undo(w+time.Minute, policy.Undo{Request: "slow", Cost: 2, Ran: true})
		f.undo(w+time.Minute, policy.Undo{Request: "slow", Cost: 2, Ran: true})
		if u := f.usage(w + time.Minute); u.Used != 0 {
			f.t.Fatalf("Usage.Used = %d after a late refund sent twice, want 0", u.Used)
		}
	}},
	{"two issuers' licenses with the same key are counted apart", func(f *fixture) {
		other := *f
		other.key.Issuer += "/other"
		f.want(0, credits(1, 1), policy.Allowed, 1)
		other.want(0, credits(1, 1), policy.Allowed, 1)
		f.want(0, credits(1, 1), policy.CreditsExhausted, 1)
		f.revoke(f.base.Add(time.Hour))
		other.want(0, seat("a", 1, ttl), policy.Allowed, 1)
		if u := other.usage(0); u.Revoked || u.Issuer != other.key.Issuer {
			f.t.Fatalf("the other issuer's Usage = %+v", u)
		}
	}},
}

// hostileKeys are counting keys that would break a hash tag taken from the
// key itself: an empty tag, braces in every order, and 10 KB of unicode.
var hostileKeys = map[string]string{
	"close brace first":  "}x",
	"empty braces":       "{}",
	"braces reversed":    "a}b{c",
	"10 KB of unicode":   strings.Repeat("ключ🔑{}", 732), // 14 bytes a time, 10 KB
	"a NUL and newlines": "a\x00b\r\n{c}",
}

// TestConformanceOnClusterWithHostileKeys runs the whole suite, the block
// cases included, on a real Redis Cluster of three masters, once per
// hostile key: every key of a license must land in one slot whatever the
// key string.
func TestConformanceOnClusterWithHostileKeys(t *testing.T) {
	addrs := testredis.StartCluster(t, 3)
	s := newStore(t, Options{Addresses: addrs, Timeout: 5 * time.Second})
	base := time.Now().Truncate(time.Second)
	for name, key := range hostileKeys {
		t.Run(name, func(t *testing.T) {
			for _, tc := range append(conformance[:len(conformance):len(conformance)], blockConformance...) {
				t.Run(tc.name, func(t *testing.T) {
					tc.run(&fixture{
						t: t,
						s: s,
						// The issuer tells the cases apart; the key is the hostile one.
						key:     policy.LicenseKey{Issuer: t.Name(), Key: key},
						base:    base,
						expires: base.Add(24 * time.Hour),
					})
				})
			}
		})
	}
}

// stores are the implementations under the suite.
func conformanceStores(t *testing.T) []struct {
	name string
	s    policy.Counters
} {
	srv := testredis.Start(t)
	rs := newStore(t, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second})
	return []struct {
		name string
		s    policy.Counters
	}{
		{"memory", policy.NewMemory()},
		{"redis", rs},
	}
}

func TestConformance(t *testing.T) {
	base := time.Now().Truncate(time.Second)
	for _, store := range conformanceStores(t) {
		t.Run(store.name, func(t *testing.T) {
			for _, tc := range conformance {
				t.Run(tc.name, func(t *testing.T) {
					tc.run(&fixture{
						t:       t,
						s:       store.s,
						key:     lk(t.Name()),
						base:    base,
						expires: base.Add(24 * time.Hour),
					})
				})
			}
		})
	}
}

// testIssuer is the issuer of the tests' licenses.
const testIssuer = "https://license.example.com"

// lk is the test issuer's license with counting key key.
func lk(key string) policy.LicenseKey { return policy.LicenseKey{Issuer: testIssuer, Key: key} }

// newStore opens a Store that is closed when the test ends.
func newStore(t testing.TB, o Options) *Store {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatalf("New(%+v): %v", o, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

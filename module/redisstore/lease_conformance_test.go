package redisstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/policy"
)

// The lease conformance suite: every case runs against policy.Memory, the
// reference, and against the Redis store.

// leaseStore is a store that counts both ways, as the issuer and the
// gates share one.
type leaseStore interface {
	policy.Counters
	policy.Leases
}

// leaseFixture is one case's view of a store: a fresh license and a clock.
type leaseFixture struct {
	t    *testing.T
	s    leaseStore
	lic  policy.LicenseKey
	base time.Time
	n    int // lease ids handed out
}

// req is a lease request at base+at for device hw: seats, credits limit
// (-1 none), a lease of ttl, and items as "item" (new, cost 1) or
// "item=leaseId" (renewal, cost 0).
func (f *leaseFixture) req(at time.Duration, hw string, seats, limit int64, ttl time.Duration, items ...string) *policy.LeaseRequest {
	r := &policy.LeaseRequest{License: f.lic, Hardware: hw, Seats: seats, Limit: limit,
		Now: f.base.Add(at), Until: f.base.Add(at + ttl), Expires: f.base.Add(24 * time.Hour)}
	for _, it := range items {
		name, renew, _ := strings.Cut(it, "=")
		f.n++
		li := policy.LeaseItem{Item: name, LeaseID: renew, NewID: fmt.Sprintf("lease-%d", f.n)}
		if renew == "" {
			li.Cost = 1
		}
		r.Items = append(r.Items, li)
	}
	return r
}

// take runs r and checks each item's outcome; it returns the results.
func (f *leaseFixture) take(r *policy.LeaseRequest, want ...policy.LeaseOutcome) []policy.LeaseResult {
	f.t.Helper()
	got, err := f.s.TakeLeases(context.Background(), r)
	if err != nil {
		f.t.Fatalf("TakeLeases: %v", err)
	}
	if len(got) != len(want) {
		f.t.Fatalf("TakeLeases gave %d results, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Outcome != want[i] {
			f.t.Fatalf("at +%v hw %q item %q: %s, want %s", r.Now.Sub(f.base), r.Hardware, r.Items[i].Item,
				leaseOutcomeName(got[i].Outcome), leaseOutcomeName(want[i]))
		}
		if want[i] == policy.LeaseGranted {
			l := got[i].Lease
			wantID := r.Items[i].LeaseID
			if wantID == "" {
				wantID = r.Items[i].NewID
			}
			if l.ID != wantID || l.Item != r.Items[i].Item || l.Hardware != r.Hardware || !l.Until.Equal(r.Until) {
				f.t.Fatalf("granted lease %+v, want id %q item %q hw %q until %v", l, wantID, r.Items[i].Item, r.Hardware, r.Until)
			}
		}
	}
	return got
}

// grant takes one new lease of item for hw and returns its id.
func (f *leaseFixture) grant(at time.Duration, hw string, seats int64, ttl time.Duration, item string) string {
	f.t.Helper()
	return f.take(f.req(at, hw, seats, -1, ttl, item), policy.LeaseGranted)[0].Lease.ID
}

func (f *leaseFixture) release(at time.Duration, id string) bool {
	f.t.Helper()
	_, ok, err := f.s.ReleaseLease(context.Background(), f.lic, id, f.base.Add(at))
	if err != nil {
		f.t.Fatalf("ReleaseLease: %v", err)
	}
	return ok
}

// live lists the live leases as "hw/item/id".
func (f *leaseFixture) live(at time.Duration) string {
	f.t.Helper()
	ls, err := f.s.LiveLeases(context.Background(), f.lic, f.base.Add(at))
	if err != nil {
		f.t.Fatalf("LiveLeases: %v", err)
	}
	var out []string
	for _, l := range ls {
		out = append(out, l.Hardware+"/"+l.Item+"/"+l.ID)
	}
	return strings.Join(out, " ")
}

func (f *leaseFixture) used(at time.Duration) int64 {
	f.t.Helper()
	u, err := f.s.Usage(context.Background(), f.lic, f.base.Add(at))
	if err != nil {
		f.t.Fatalf("Usage: %v", err)
	}
	return u.Used
}

func leaseOutcomeName(o policy.LeaseOutcome) string {
	switch o {
	case policy.LeaseGranted:
		return "granted"
	case policy.LeaseRevoked:
		return "revoked"
	case policy.LeaseCreditsExhausted:
		return "credits exhausted"
	case policy.LeaseSeatsFull:
		return "seats full"
	case policy.LeaseNotMatching:
		return "not matching"
	}
	return fmt.Sprintf("outcome %d", o)
}

const (
	granted    = policy.LeaseGranted
	revoked    = policy.LeaseRevoked
	exhausted  = policy.LeaseCreditsExhausted
	seatsFull  = policy.LeaseSeatsFull
	notMatched = policy.LeaseNotMatching
)

var leaseConformance = []struct {
	name string
	run  func(f *leaseFixture)
}{
	{"a new lease is granted with the request's id and end", func(f *leaseFixture) {
		id := f.grant(0, "dev-a", 0, time.Hour, "word")
		if got := f.live(time.Minute); got != "dev-a/word/"+id {
			f.t.Fatalf("live = %q", got)
		}
	}},
	{"the device after the last seat gets seats full until the first lease ends", func(f *leaseFixture) {
		f.grant(0, "a", 3, 10*time.Minute, "word")
		f.grant(time.Minute, "b", 3, 10*time.Minute, "word")
		f.grant(2*time.Minute, "c", 3, 10*time.Minute, "word")
		r := f.take(f.req(3*time.Minute, "d", 3, -1, 10*time.Minute, "word"), seatsFull)
		if r[0].RetryAfter != 7*time.Minute {
			f.t.Fatalf("RetryAfter = %v, want 7m (a's lease ends at +10m)", r[0].RetryAfter)
		}
		// At the end of a's lease its seat is free without a release.
		f.grant(10*time.Minute, "d", 3, 10*time.Minute, "word")
		f.take(f.req(10*time.Minute, "e", 3, -1, 10*time.Minute, "word"), seatsFull)
	}},
	{"a device leasing a second item takes no second seat", func(f *leaseFixture) {
		f.grant(0, "a", 2, time.Hour, "word")
		f.grant(0, "b", 2, time.Hour, "word")
		f.grant(0, "a", 2, time.Hour, "slide")
		f.take(f.req(0, "a", 2, -1, time.Hour, "calc", "sheet"), granted, granted)
		f.take(f.req(0, "c", 2, -1, time.Hour, "word"), seatsFull)
	}},
	{"renewal extends the same lease without another seat", func(f *leaseFixture) {
		id := f.grant(0, "a", 1, 10*time.Minute, "word")
		f.take(f.req(9*time.Minute, "a", 1, -1, 10*time.Minute, "word="+id), granted)
		f.take(f.req(15*time.Minute, "b", 1, -1, 10*time.Minute, "word"), seatsFull)
		if got := f.live(18 * time.Minute); got != "a/word/"+id {
			f.t.Fatalf("live after renewal = %q", got)
		}
		f.take(f.req(19*time.Minute, "b", 1, -1, 10*time.Minute, "word"), granted)
	}},
	{"renewal is refused for another device's, another item's, an ended or an unknown lease", func(f *leaseFixture) {
		id := f.grant(0, "a", 0, 10*time.Minute, "word")
		f.take(f.req(time.Minute, "b", 0, -1, time.Hour, "word="+id), notMatched)
		f.take(f.req(time.Minute, "a", 0, -1, time.Hour, "slide="+id), notMatched)
		f.take(f.req(time.Minute, "a", 0, -1, time.Hour, "word=nope"), notMatched)
		f.take(f.req(10*time.Minute, "a", 0, -1, time.Hour, "word="+id), notMatched)
	}},
	{"release frees the seat at once and is idempotent", func(f *leaseFixture) {
		id := f.grant(0, "a", 1, time.Hour, "word")
		f.take(f.req(time.Minute, "b", 1, -1, time.Hour, "word"), seatsFull)
		if !f.release(2*time.Minute, id) {
			f.t.Fatal("release of a live lease reported unknown")
		}
		if f.release(2*time.Minute, id) || f.release(2*time.Minute, "never") {
			f.t.Fatal("a second release, or of an unknown lease, reported found")
		}
		f.grant(3*time.Minute, "b", 1, time.Hour, "word")
		f.take(f.req(4*time.Minute, "a", 1, -1, time.Hour, "word="+id), notMatched)
	}},
	{"releasing one of a device's leases keeps its seat", func(f *leaseFixture) {
		w := f.grant(0, "a", 1, time.Hour, "word")
		s := f.grant(0, "a", 1, 2*time.Hour, "slide")
		f.release(time.Minute, w)
		f.take(f.req(2*time.Minute, "b", 1, -1, time.Hour, "word"), seatsFull)
		if got := f.live(2 * time.Minute); got != "a/slide/"+s {
			f.t.Fatalf("live = %q", got)
		}
		f.release(3*time.Minute, s)
		f.grant(3*time.Minute, "b", 1, time.Hour, "word")
	}},
	{"a new lease of an item the device holds replaces the old one", func(f *leaseFixture) {
		old := f.grant(0, "a", 1, time.Hour, "word")
		r := f.take(f.req(time.Minute, "a", 1, -1, time.Hour, "word"), granted)
		nu := r[0].Lease.ID
		// The caller is told which lease ended, to revoke its token.
		if rep := r[0].Replaced; rep.ID != old || rep.Item != "word" || rep.Hardware != "a" || !rep.Until.Equal(f.base.Add(time.Hour)) {
			f.t.Fatalf("Replaced = %+v, want lease %q ending at +1h", rep, old)
		}
		if got := f.live(2 * time.Minute); got != "a/word/"+nu {
			f.t.Fatalf("live = %q", got)
		}
		f.take(f.req(2*time.Minute, "a", 1, -1, time.Hour, "word="+old), notMatched)
		if f.release(2*time.Minute, old) {
			f.t.Fatal("the replaced lease could still be released")
		}
	}},
	{"a new lease replacing an ended one reports nothing replaced", func(f *leaseFixture) {
		f.grant(0, "a", 1, time.Minute, "word")
		if r := f.take(f.req(2*time.Minute, "a", 1, -1, time.Hour, "word"), granted); r[0].Replaced.ID != "" {
			f.t.Fatalf("Replaced = %+v, want none", r[0].Replaced)
		}
	}},
	{"a lease keeps the issuer of its token for release and listing", func(f *leaseFixture) {
		r := f.req(0, "a", 1, -1, time.Hour, "word")
		r.Issuer = "https://leases.test"
		id := f.take(r, granted)[0].Lease.ID
		ls, err := f.s.LiveLeases(context.Background(), f.lic, f.base)
		if err != nil || len(ls) != 1 || ls[0].Issuer != "https://leases.test" {
			f.t.Fatalf("LiveLeases = %+v, %v; want the lease with its issuer", ls, err)
		}
		l, ok, err := f.s.ReleaseLease(context.Background(), f.lic, id, f.base)
		if err != nil || !ok || l.Issuer != "https://leases.test" {
			f.t.Fatalf("ReleaseLease = %+v, %v, %v; want the lease with its issuer", l, ok, err)
		}
	}},
	{"credits are charged to the counter the gate charges", func(f *leaseFixture) {
		if _, err := f.s.Charge(context.Background(), &policy.Charge{Key: f.lic, Cost: 2, Limit: 5,
			Now: f.base, Expires: f.base.Add(24 * time.Hour)}); err != nil {
			f.t.Fatal(err)
		}
		r := f.req(time.Minute, "a", 0, 5, time.Hour, "word", "slide", "calc", "sheet")
		r.Items[1].Cost = 2
		got := f.take(r, granted, granted, exhausted, exhausted)
		if got[1].Used != 5 || got[2].Used != 5 {
			f.t.Fatalf("used after the items = %d, %d; want 5, 5", got[1].Used, got[2].Used)
		}
		if u := f.used(time.Minute); u != 5 {
			f.t.Fatalf("Usage.Used = %d, want 5", u)
		}
		res, err := f.s.Charge(context.Background(), &policy.Charge{Key: f.lic, Cost: 1, Limit: 5,
			Now: f.base.Add(2 * time.Minute), Expires: f.base.Add(24 * time.Hour)})
		if err != nil || res.Outcome != policy.CreditsExhausted {
			f.t.Fatalf("gate charge after the leases = %+v, %v; want credits exhausted", res, err)
		}
	}},
	{"a renewal charges only what it asks for", func(f *leaseFixture) {
		id := f.take(f.req(0, "a", 0, 3, time.Hour, "word"), granted)[0].Lease.ID
		f.take(f.req(time.Minute, "a", 0, 3, time.Hour, "word="+id), granted)
		r := f.req(2*time.Minute, "a", 0, 3, time.Hour, "word="+id)
		r.Items[0].Cost = 3
		f.take(r, exhausted)
		if u := f.used(3 * time.Minute); u != 1 {
			f.t.Fatalf("used = %d, want 1", u)
		}
	}},
	{"check only answers as a consumption would and records nothing", func(f *leaseFixture) {
		f.grant(0, "a", 1, time.Hour, "word")
		r := f.req(time.Minute, "b", 1, 10, time.Hour, "word")
		r.CheckOnly = true
		f.take(r, seatsFull)
		r = f.req(time.Minute, "a", 1, 1, time.Hour, "slide", "calc")
		r.CheckOnly = true
		got := f.take(r, granted, exhausted)
		if got[0].Used != 1 {
			f.t.Fatalf("check-only used = %d, want 1 (as if charged)", got[0].Used)
		}
		if u := f.used(time.Minute); u != 0 {
			f.t.Fatalf("check only charged: used %d", u)
		}
		if got := f.live(time.Minute); strings.Count(got, "/") != 2 {
			f.t.Fatalf("check only took a lease: live = %q", got)
		}
	}},
	{"a revoked license gets no lease", func(f *leaseFixture) {
		if err := f.s.Revoke(context.Background(), f.lic, f.base.Add(time.Hour)); err != nil {
			f.t.Fatal(err)
		}
		f.take(f.req(0, "a", 0, 10, time.Hour, "word", "slide"), revoked, revoked)
		if u := f.used(0); u != 0 {
			f.t.Fatalf("used = %d", u)
		}
		f.grant(2*time.Hour, "a", 0, time.Hour, "word")
	}},
	{"names with any bytes round-trip", func(f *leaseFixture) {
		hw := "a:1:b\x00{}\n é"
		r := f.req(0, hw, 1, -1, time.Hour, "it:em 1", "")
		r.Items[0].NewID = "1:x"
		got := f.take(r, granted, granted)
		want := hw + "//" + got[1].Lease.ID + " " + hw + "/it:em 1/1:x"
		if l := f.live(time.Minute); l != want {
			f.t.Fatalf("live = %q, want %q", l, want)
		}
		f.take(f.req(time.Minute, hw, 1, -1, time.Hour, "it:em 1=1:x"), granted)
	}},
	{"another issuer's license of the same key has its own seats and leases", func(f *leaseFixture) {
		id := f.grant(0, "a", 1, time.Hour, "word")
		other := *f
		other.lic.Issuer = "https://other.test"
		other.grant(0, "b", 1, time.Hour, "word")
		other.take(other.req(0, "a", 1, -1, time.Hour, "word="+id), notMatched)
		if other.release(0, id) {
			f.t.Fatal("another issuer's release found the lease")
		}
		f.take(f.req(0, "b", 1, -1, time.Hour, "word"), seatsFull)
	}},
	{"live leases are listed by device and item, without ended ones", func(f *leaseFixture) {
		b := f.grant(0, "b", 0, time.Hour, "word")
		a2 := f.grant(0, "a", 0, time.Hour, "word")
		a1 := f.grant(0, "a", 0, time.Hour, "slide")
		f.grant(0, "c", 0, time.Minute, "word")
		if got, want := f.live(2*time.Minute), "a/slide/"+a1+" a/word/"+a2+" b/word/"+b; got != want {
			f.t.Fatalf("live = %q, want %q", got, want)
		}
		if got := f.live(2 * time.Hour); got != "" {
			f.t.Fatalf("live after all ended = %q", got)
		}
	}},
}

func TestLeaseConformance(t *testing.T) {
	srv := testredis.Start(t)
	stores := []struct {
		name string
		s    leaseStore
	}{
		{"memory", policy.NewMemory()},
		{"redis", newStore(t, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second})},
	}
	base := time.Now().Truncate(time.Second)
	for _, store := range stores {
		t.Run(store.name, func(t *testing.T) {
			for _, tc := range leaseConformance {
				t.Run(tc.name, func(t *testing.T) {
					tc.run(&leaseFixture{t: t, s: store.s, base: base,
						lic: policy.LicenseKey{Issuer: "https://issuer.test", Key: t.Name()}})
				})
			}
		})
	}
}

package policy_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
)

// TestMemoryLeasesExactUnderConcurrency: 50 devices racing for 3 seats,
// exactly 3 win, and the credits charged are theirs.
func TestMemoryLeasesExactUnderConcurrency(t *testing.T) {
	c, m := newClock(), policy.NewMemory()
	lic := policy.LicenseKey{Issuer: "https://issuer.test", Key: "floating"}
	var won, full atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 50 {
		wg.Go(func() {
			<-start
			res, err := m.TakeLeases(ctx, &policy.LeaseRequest{License: lic, Hardware: fmt.Sprint("device-", i),
				Seats: 3, Limit: 100, Items: []policy.LeaseItem{{Item: "word", NewID: fmt.Sprint("lease-", i), Cost: 1}},
				Until: c.at(time.Hour), Expires: c.at(2 * time.Hour), Now: c.at(0)})
			switch {
			case err != nil:
				t.Error(err)
			case res[0].Outcome == policy.LeaseGranted:
				won.Add(1)
			case res[0].Outcome == policy.LeaseSeatsFull:
				full.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if won.Load() != 3 || full.Load() != 47 {
		t.Fatalf("%d won, %d refused; want 3 and 47", won.Load(), full.Load())
	}
	if u, _ := m.Usage(ctx, lic, c.at(0)); u.Used != 3 {
		t.Fatalf("used %d; want 3", u.Used)
	}
}

// TestMemorySweepKeepsLiveLeases: an entry holding only leases stays
// until they end.
func TestMemorySweepKeepsLiveLeases(t *testing.T) {
	c, m := newClock(), policy.NewMemory()
	lic := policy.LicenseKey{Issuer: "https://issuer.test", Key: "leased"}
	if _, err := m.TakeLeases(ctx, &policy.LeaseRequest{License: lic, Hardware: "a", Seats: 1, Limit: -1,
		Items: []policy.LeaseItem{{Item: "word", NewID: "l1"}}, Until: c.at(time.Hour), Now: c.at(0)}); err != nil {
		t.Fatal(err)
	}
	if n := m.Sweep(c.at(30 * time.Minute)); n != 1 {
		t.Fatalf("Sweep with a live lease left %d entries; want 1", n)
	}
	if n := m.Sweep(c.at(time.Hour)); n != 0 {
		t.Fatalf("Sweep after the lease ended left %d entries; want 0", n)
	}
}

func TestLeaseCodesHaveTheirOwnMessages(t *testing.T) {
	seen := map[string]policy.Code{}
	for _, c := range append(append([]policy.Code{}, policy.Codes...), policy.LeaseCodes...) {
		m := c.Message()
		if m == "The request was rejected" {
			t.Errorf("%s has the fallback message", c)
		}
		if o, dup := seen[m]; dup {
			t.Errorf("%s and %s share the message %q", c, o, m)
		}
		seen[m] = c
	}
	for _, c := range policy.LeaseCodes {
		if c.Valid() {
			t.Errorf("%s is a gate code; lease codes are answered by /authz/ only", c)
		}
	}
}

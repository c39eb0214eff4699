package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/policy"
)

// raceForSeats has devices distinct devices ask at once, spread over the
// stores, for a lease on a license with seats seats and 2*devices credits.
// It returns the devices that won and how many were refused for seats.
func raceForSeats(t *testing.T, stores []policy.Leases, lic policy.LicenseKey, devices int, seats int64) (winners []string, refused int) {
	t.Helper()
	now := time.Now()
	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range devices {
		wg.Go(func() {
			hw := fmt.Sprintf("device-%02d", i)
			<-start
			res, err := stores[i%len(stores)].TakeLeases(context.Background(), &policy.LeaseRequest{
				License: lic, Hardware: hw, Seats: seats, Limit: int64(2 * devices),
				Items: []policy.LeaseItem{{Item: "word", NewID: "lease-" + hw, Cost: 1}},
				Until: now.Add(time.Hour), Expires: now.Add(2 * time.Hour), Now: now,
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("TakeLeases: %v", err)
			case res[0].Outcome == policy.LeaseGranted:
				winners = append(winners, hw)
			case res[0].Outcome == policy.LeaseSeatsFull:
				refused++
			default:
				t.Errorf("%s: %s", hw, leaseOutcomeName(res[0].Outcome))
			}
		})
	}
	close(start)
	wg.Wait()
	return winners, refused
}

// wantSeatRace checks a race's end state: exactly seats winners, the rest
// refused, one credit charged per winner, the winners' leases live.
func wantSeatRace(t *testing.T, s leaseStore, lic policy.LicenseKey, winners []string, refused int) {
	t.Helper()
	if len(winners) != 3 || refused != 47 {
		t.Fatalf("%d won (%v), %d refused; want exactly 3 and 47", len(winners), winners, refused)
	}
	now := time.Now()
	ls, err := s.LiveLeases(context.Background(), lic, now)
	if err != nil || len(ls) != 3 {
		t.Fatalf("LiveLeases = %v, %v; want the 3 winners", ls, err)
	}
	u, err := s.Usage(context.Background(), lic, now)
	if err != nil || u.Used != 3 {
		t.Fatalf("Usage = %+v, %v; want 3 credits used", u, err)
	}
}

func TestFiftyDevicesRaceForThreeSeatsAcrossGateways(t *testing.T) {
	srv := testredis.Start(t)
	var stores []policy.Leases
	var first *Store
	for range 3 {
		s := newStore(t, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second})
		first = s
		stores = append(stores, s)
	}
	lic := policy.LicenseKey{Issuer: "https://issuer.test", Key: "floating"}
	winners, refused := raceForSeats(t, stores, lic, 50, 3)
	wantSeatRace(t, first, lic, winners, refused)
}

func TestFiftyDevicesRaceForThreeSeatsOnCluster(t *testing.T) {
	addrs := testredis.StartCluster(t, 3)
	var stores []policy.Leases
	var first *Store
	for range 3 {
		s := newStore(t, Options{Addresses: addrs, Timeout: 5 * time.Second})
		first = s
		stores = append(stores, s)
	}
	cc, ok := first.client.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("several addresses gave a %T, want *redis.ClusterClient", first.client)
	}
	ctx := context.Background()
	masters := map[string]bool{}
	for i := range 4 {
		lic := policy.LicenseKey{Issuer: "https://issuer.test", Key: fmt.Sprintf("floating-%d", i)}
		slots := map[int64]bool{}
		for _, k := range first.leaseKeys(lic) {
			slot, err := cc.ClusterKeySlot(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			slots[slot] = true
		}
		if len(slots) != 1 {
			t.Fatalf("lease keys of %v span slots %v", lic, slots)
		}
		node, err := cc.MasterForKey(ctx, first.leaseKeys(lic)[0])
		if err != nil {
			t.Fatal(err)
		}
		masters[node.Options().Addr] = true
		winners, refused := raceForSeats(t, stores, lic, 50, 3)
		wantSeatRace(t, first, lic, winners, refused)
	}
	if len(masters) < 2 {
		t.Fatalf("all licenses on %v; want them spread over the masters", masters)
	}
}

func TestLeaseKeysExpireWithTheLicense(t *testing.T) {
	srv := testredis.Start(t)
	s := newStore(t, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second})
	lic := policy.LicenseKey{Issuer: "https://issuer.test", Key: "expiring"}
	now := time.Now()
	expires := now.Add(2 * time.Hour).Truncate(time.Millisecond)
	if _, err := s.TakeLeases(context.Background(), &policy.LeaseRequest{
		License: lic, Hardware: "a", Seats: 2, Limit: 10,
		Items: []policy.LeaseItem{{Item: "word", NewID: "l1", Cost: 1}},
		Until: now.Add(time.Hour), Expires: expires, Now: now,
	}); err != nil {
		t.Fatal(err)
	}
	// lease_req and lease_undo hold request ids, written only for a take
	// with one and kept for policy.UndoWindow.
	for _, k := range s.leaseKeys(lic)[:6] {
		if k == s.leaseKeys(lic)[2] {
			continue // revoked: not written
		}
		at, err := srv.Do("PEXPIRETIME", k)
		if err != nil || at != fmt.Sprint(expires.UnixMilli()) {
			t.Errorf("PEXPIRETIME %s = %s, %v; want %d", k, at, err, expires.UnixMilli())
		}
	}
}

// TestLeasesWaitForReplicas: with Replicas 1 a lease is granted once the
// replica holds it; without the replica the taking is ErrNotReplicated.
func TestLeasesWaitForReplicas(t *testing.T) {
	master := testredis.Start(t)
	replica := testredis.StartReplica(t, master)
	s := newStore(t, Options{Addresses: []string{master.Addr()}, Timeout: 5 * time.Second,
		Replicas: 1, ReplicaTimeout: time.Second})
	lic := policy.LicenseKey{Issuer: "https://issuer.test", Key: "durable-leases"}
	now := time.Now()
	take := func(hw string) error {
		_, err := s.TakeLeases(context.Background(), &policy.LeaseRequest{License: lic, Hardware: hw, Seats: 2, Limit: -1,
			Items: []policy.LeaseItem{{Item: "word", NewID: "lease-" + hw}}, Until: now.Add(time.Hour), Expires: now.Add(time.Hour), Now: now})
		return err
	}
	if err := take("a"); err != nil {
		t.Fatal(err)
	}
	if n, err := replica.Do("HLEN", s.leaseKeys(lic)[3]); err != nil || n != "1" {
		t.Fatalf("the replica holds %q leases right after the taking (%v), want 1", n, err)
	}
	replica.Kill()
	if err := take("b"); !errors.Is(err, ErrNotReplicated) || !errors.Is(err, policy.ErrStore) {
		t.Fatalf("TakeLeases without the replica = %v, want ErrNotReplicated and ErrStore", err)
	}
}

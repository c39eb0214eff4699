package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
)

// leaseState is what the admin API shows of a license's leases and
// credits: the devices holding a live lease, sorted, and the credits used.
func (s *leaseSite) leaseState(t *testing.T, key string) (devices []string, used int64) {
	t.Helper()
	q := "?iss=" + s.iss
	var list struct {
		Leases []struct{ Hw string }
	}
	if err := json.Unmarshal([]byte(adminDo(t, s.c, http.MethodGet, "/license-gate/licenses/"+escapeKey(key)+"/leases"+q, "", 200)), &list); err != nil {
		t.Fatal(err)
	}
	for _, l := range list.Leases {
		devices = append(devices, l.Hw)
	}
	sort.Strings(devices)
	return devices, decodeView[licenseView](t, adminDo(t, s.c, http.MethodGet, "/license-gate/licenses/"+escapeKey(key)+q, "", 200)).Used
}

// TestALeaseStallAnswered503HoldsNoSeatAndIsNeverCharged: Redis stalls (a
// busy script) while several devices ask /authz/ for a lease; each is
// answered 503 after the store timeout, and the takes, which run once
// Redis resumes, are voided: no device answered 503 holds a lease or a
// seat, and no credit is charged for them. Before, the five 503s held
// five seats and spent five credits.
func TestALeaseStallAnswered503HoldsNoSeatAndIsNeverCharged(t *testing.T) {
	t.Parallel()
	r := testredis.Start(t)
	s := startLeaseSite(t, fmt.Sprintf("redis {\n\t\t\taddresses %s\n\t\t\ttimeout 100ms\n\t\t}", r.Addr()))
	lic := s.license(t, map[string]any{"sub": "u", "items": []string{"word"}, "seats": 6, "credits": 10})
	key := payload(t, lic)["jti"].(string)
	s.lease(t, "word&hw=dev-0", lic)

	// A script that keeps Redis busy for 0.7 s: the takes sent meanwhile
	// run when it ends, after /authz/ gave up.
	stalled := stall(r, 700)
	var wg sync.WaitGroup
	answers := make([]string, 5)
	for i := range answers {
		wg.Go(func() {
			resp, body := s.authz(t, fmt.Sprintf(".json?word&hw=dev-%d", i+1), lic)
			answers[i] = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(body))
		})
	}
	wg.Wait()
	for i, a := range answers {
		if !strings.HasPrefix(a, "503 ") || !strings.Contains(a, `"word_errorCode":"serviceUnavailable"`) {
			t.Fatalf("device %d during the stall: %s, want 503 serviceUnavailable", i+1, a)
		}
	}
	if err := <-stalled; err != nil {
		t.Fatal(err)
	}
	// Redis answers again; the takes ran, and their voids follow them.
	var devices []string
	var used int64
	WaitFor(t, 20*time.Second, "the voided takes to hold nothing", func() bool {
		devices, used = s.leaseState(t, key)
		return len(devices) == 1 && used == 1
	})
	if devices[0] != "dev-0" {
		t.Fatalf("leases held by %v; want only dev-0's, taken before the stall", devices)
	}
	// The seats are free: five more devices get leases, the credits count
	// from 1.
	for i := range 5 {
		if c := s.lease(t, fmt.Sprintf("word&hw=dev-%d", 10+i), lic); c["jti"] == nil {
			t.Fatalf("device %d after the stall: %v", 10+i, c)
		}
	}
	if devices, used = s.leaseState(t, key); len(devices) != 6 || used != 6 {
		t.Fatalf("after the stall: leases of %v, %d credits used; want 6 devices and 6 credits", devices, used)
	}
}

// TestALeaseNotReplicatedIsVoided: with durability replicas 1 and the
// replica gone, a lease is answered 503 although the master recorded it;
// its void waits for the replica too, and once the replica is back the
// device holds no lease, no seat and no credit. Before, the lease kept its
// seat and credit until it ended.
func TestALeaseNotReplicatedIsVoided(t *testing.T) {
	t.Parallel()
	master := testredis.Start(t)
	replica := testredis.StartReplica(t, master)
	s := startLeaseSite(t, fmt.Sprintf("redis {\n\t\t\taddresses %s\n\t\t\ttimeout 1s\n\t\t\tdurability replicas 1 timeout 300ms\n\t\t}", master.Addr()))
	lic := s.license(t, map[string]any{"sub": "u", "items": []string{"word"}, "seats": 1, "credits": 5})
	key := payload(t, lic)["jti"].(string)

	replica.Kill()
	resp, body := s.authz(t, ".json?word&hw=dev-a", lic)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"word_errorCode":"serviceUnavailable"`) {
		t.Fatalf("lease without the replica: %d %s; want 503 serviceUnavailable", resp.StatusCode, body)
	}
	replica.Restart()
	WaitFor(t, 30*time.Second, "the voided take to hold nothing", func() bool {
		devices, used := s.leaseState(t, key)
		return len(devices) == 0 && used == 0
	})
	s.lease(t, "word&hw=dev-b", lic)
}

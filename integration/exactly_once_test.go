package integration

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
)

// metric reads one metric from the admin endpoint's /metrics.
func (c *Caddy) metric(t testing.TB, name string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(c.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return metricValue(string(raw), name)
}

// creditsUsed is the license's credits_used on the admin API.
func (c *Caddy) creditsUsed(t testing.TB, jti string) int64 {
	t.Helper()
	return decodeView[licenseView](t, adminDo(t, c, http.MethodGet, "/license-gate/licenses/"+escapeKey(jti), "", 200)).Used
}

// busyLua keeps Redis busy for ARGV[1] milliseconds, as a slow command or
// a fork can.
const busyLua = `
local t0 = redis.call('TIME')
while true do
  local t = redis.call('TIME')
  if (t[1] - t0[1]) * 1000 + (t[2] - t0[2]) / 1000 >= tonumber(ARGV[1]) then
    return 1
  end
end
`

// stall keeps r busy for ms milliseconds (busyLua) from a goroutine and
// returns once the script has had time to start; the channel gets the
// script's error when it ends. Commands sent meanwhile wait in their
// sockets and run after it, once their senders gave up.
func stall(r *testredis.Server, ms int) <-chan error {
	stalled := make(chan error, 1)
	go func() {
		_, err := r.Do("EVAL", busyLua, "0", strconv.Itoa(ms))
		stalled <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the script start first
	return stalled
}

// TestAStallAnswered503IsNeverCharged: Redis stalls (a busy script) while
// parallel requests wait on their charges; the gate answers 503 after its
// timeout, and the charges, which run once Redis resumes, are voided.
// Before, the five 503s spent five credits.
func TestAStallAnswered503IsNeverCharged(t *testing.T) {
	t.Parallel()
	key := NewRSAKey(t, "k1", "RS256")
	ks := NewKeyServer(t, JWKS(t, key))
	r := testredis.Start(t)
	c := StartCaddy(t, `
	license_gate {
		jwks_url `+ks.JWKSURL()+`
		store redis {
			addresses `+r.Addr()+`
			timeout 100ms
		}
	}
	reverse_proxy `+hostPort(echoUpstream(t).URL), CaddyOptions{Globals: "metrics"})
	claims := Std("credits", 10)
	tok, jti := key.Sign(t, claims), claims["jti"].(string)
	mustPass(t, c, tok)

	// A script that keeps Redis busy for 0.7 s: the charges sent meanwhile
	// run when it ends, after the gate gave up.
	stalled := stall(r, 700)
	var wg sync.WaitGroup
	statuses := make([]int, 5)
	for i := range statuses {
		wg.Go(func() {
			resp, _ := c.Get(t, "/", tok)
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusServiceUnavailable {
			t.Fatalf("request %d during the stall: %d, want 503 (statuses %v)", i, s, statuses)
		}
	}
	// Redis answers again once the script is over; then the voids drain.
	if err := <-stalled; err != nil {
		t.Fatal(err)
	}
	WaitFor(t, 20*time.Second, "the voids to be answered", func() bool {
		v, ok := c.metric(t, "licensegate_store_voids_pending")
		return !ok || v == 0
	})
	if used := c.creditsUsed(t, jti); used != 1 {
		t.Fatalf("credits_used = %d after one 200 and five 503s, want 1", used)
	}
	if _, ok := c.metric(t, "licensegate_store_voids_pending"); !ok {
		t.Error("no licensegate_store_voids_pending metric")
	}
	resp, body := c.Get(t, "/", tok)
	if resp.StatusCode != 200 || resp.Header.Get("X-License-Credits-Remaining") != "8" {
		t.Fatalf("after the stall: %d, remaining %q: %s", resp.StatusCode, resp.Header.Get("X-License-Credits-Remaining"), body)
	}
	if v, _ := c.metric(t, "licensegate_store_voids_dropped_total"); v != 0 {
		t.Errorf("%v voids dropped", v)
	}
}

// hangingUpstream answers nothing until its client goes away; each
// request it got is announced on the channel.
func hangingUpstream(t testing.TB) (*httptest.Server, <-chan struct{}) {
	got := make(chan struct{}, 16)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(s.Close)
	return s, got
}

// TestAClientHangUpIsNoRefund: with refund_on 4xx (or 5xx), a client that
// hangs up while the upstream works is not refunded (Caddy records 499,
// which no upstream answered); refund_on 499 asks for it by name.
func TestAClientHangUpIsNoRefund(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		refundOn string
		used     int64
	}{
		{"4xx 5xx", 1},
		{"499", 0},
	} {
		t.Run("refund_on "+tc.refundOn, func(t *testing.T) {
			t.Parallel()
			key := NewRSAKey(t, "k1", "RS256")
			ks := NewKeyServer(t, JWKS(t, key))
			up, got := hangingUpstream(t)
			c := StartCaddy(t, `
	log
	license_gate {
		jwks_url `+ks.JWKSURL()+`
		refund_on `+tc.refundOn+`
	}
	reverse_proxy `+hostPort(up.URL))
			claims := Std("credits", 5)
			tok, jti := key.Sign(t, claims), claims["jti"].(string)

			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			done := make(chan error, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
				}
				done <- err
			}()
			<-got // the upstream is working on it
			cancel()
			if err := <-done; err == nil {
				t.Fatal("the request was answered although the client hung up")
			}
			WaitFor(t, 10*time.Second, "the access log line of the hung-up request", func() bool {
				for _, l := range c.Logs.logLines("handled request") {
					if l["status"] == 499.0 {
						return true
					}
				}
				return false
			})
			if used := c.creditsUsed(t, jti); used != tc.used {
				t.Fatalf("credits_used = %d after a hang-up with refund_on %s, want %d", used, tc.refundOn, tc.used)
			}
		})
	}
}

// TestDurabilityWaitsForAReplica: with durability replicas 1, a request is
// allowed once the replica has its charge; with the replica gone it is
// answered 503 and its charge, which ran on the master, is voided once the
// replica is back.
func TestDurabilityWaitsForAReplica(t *testing.T) {
	t.Parallel()
	key := NewRSAKey(t, "k1", "RS256")
	ks := NewKeyServer(t, JWKS(t, key))
	master := testredis.Start(t)
	replica := testredis.StartReplica(t, master)
	c := StartCaddy(t, `
	license_gate {
		jwks_url `+ks.JWKSURL()+`
		store redis {
			addresses `+master.Addr()+`
			timeout 1s
			durability replicas 1 timeout 1s
		}
	}
	reverse_proxy `+hostPort(echoUpstream(t).URL), CaddyOptions{Globals: "metrics"})
	claims := Std("credits", 10)
	tok, jti := key.Sign(t, claims), claims["jti"].(string)
	mustPass(t, c, tok)
	mustPass(t, c, tok)

	replica.Kill()
	resp, body := c.Get(t, "/", tok)
	AssertReject(t, resp, body, http.StatusServiceUnavailable, "serviceUnavailable", "")

	replica.Restart()
	WaitFor(t, 30*time.Second, "the void to reach the replica", func() bool {
		v, ok := c.metric(t, "licensegate_store_voids_pending")
		return ok && v == 0
	})
	if used := c.creditsUsed(t, jti); used != 2 {
		t.Fatalf("credits_used = %d after two 200s and a 503, want 2", used)
	}
	resp, body = c.Get(t, "/", tok)
	if resp.StatusCode != 200 || resp.Header.Get("X-License-Credits-Remaining") != "7" {
		t.Fatalf("with the replica back: %d, remaining %q: %s", resp.StatusCode, resp.Header.Get("X-License-Credits-Remaining"), body)
	}
}

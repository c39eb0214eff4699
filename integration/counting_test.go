package integration

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/module/redisstore"
	"github.com/licensegate/licensegate/policy"
)

// storeCase is one counter store configuration for the shared suite.
type storeCase struct {
	name  string
	store func(t *testing.T) string // the store lines of the directive
}

func storeCases() []storeCase {
	return []storeCase{
		{"memory", func(*testing.T) string { return "" }},
		{"redis", func(t *testing.T) string {
			r := testredis.Start(t)
			return "store redis {\n\t\t\taddresses " + r.Addr() + "\n\t\t}"
		}},
	}
}

// gateSite is a site with routes that cost 1 (/) and 3 (/expensive/*), a
// refunding route (/flaky/*) whose upstream answers 502, and a seats route.
func gateSite(jwksURL, store, upstream, failing string, extra string) string {
	return fmt.Sprintf(`
	handle /expensive/* {
		license_gate {
			jwks_url %[1]s
			cost 3
			%[2]s
			%[5]s
		}
		reverse_proxy %[3]s
	}
	handle /flaky/* {
		license_gate {
			jwks_url %[1]s
			refund_on 5xx
			%[2]s
			%[5]s
		}
		reverse_proxy %[4]s
	}
	handle /free/* {
		license_gate {
			jwks_url %[1]s
			cost 0
			%[2]s
			%[5]s
		}
		reverse_proxy %[3]s
	}
	handle {
		license_gate {
			jwks_url %[1]s
			session_ttl 2s
			%[2]s
			%[5]s
		}
		reverse_proxy %[3]s
	}`, jwksURL, store, upstream, failing, extra)
}

// TestCountingBothStores runs the counting rules through real Caddy on the
// in-memory store and on Redis.
func TestCountingBothStores(t *testing.T) {
	t.Parallel()
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			key := NewRSAKey(t, "k1", "RS256")
			ks := NewKeyServer(t, JWKS(t, key))
			up, bad := Upstream(t, http.StatusOK), Upstream(t, http.StatusBadGateway)
			c := StartCaddy(t, gateSite(ks.JWKSURL(), sc.store(t), hostPort(up.URL), hostPort(bad.URL), ""))

			t.Run("credits are used up exactly, then maxUseCountExceed", func(t *testing.T) {
				tok := key.Sign(t, Std("credits", 3))
				for i := 2; i >= 0; i-- {
					resp, body := c.Get(t, "/", tok)
					if resp.StatusCode != 200 {
						t.Fatalf("request with credit left: %d %s", resp.StatusCode, body)
					}
					if got := resp.Header.Get("X-License-Credits-Remaining"); got != strconv.Itoa(i) {
						t.Errorf("remaining %q, want %d", got, i)
					}
					if got := resp.Header.Get("X-License-Credits-Limit"); got != "3" {
						t.Errorf("limit %q", got)
					}
				}
				resp, body := c.Get(t, "/", tok)
				rb := AssertReject(t, resp, body, http.StatusForbidden, "maxUseCountExceed", "")
				if rb.Technical != "used 3 of 3 credits, request costs 1" {
					t.Errorf("technical %q", rb.Technical)
				}
			})
			t.Run("cost above one charges that many and refuses what does not fit", func(t *testing.T) {
				tok := key.Sign(t, Std("credits", 7))
				for i, want := range []int{200, 200, 403} {
					resp, body := c.Get(t, "/expensive/x", tok)
					if resp.StatusCode != want {
						t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
					}
				}
				// One credit is left, enough for the cost-1 route.
				resp, _ := c.Get(t, "/", tok)
				if resp.StatusCode != 200 || resp.Header.Get("X-License-Credits-Remaining") != "0" {
					t.Fatalf("cost-1 request after expensive ones: %d remaining %q", resp.StatusCode, resp.Header.Get("X-License-Credits-Remaining"))
				}
			})
			t.Run("zero credits are refused at once, but a free route passes", func(t *testing.T) {
				tok := key.Sign(t, Std("credits", 0))
				resp, body := c.Get(t, "/", tok)
				AssertReject(t, resp, body, http.StatusForbidden, "maxUseCountExceed", "")
				resp, body = c.Get(t, "/free/x", tok)
				if resp.StatusCode != 200 {
					t.Fatalf("cost 0 route: %d %s", resp.StatusCode, body)
				}
			})
			t.Run("negative or fractional credits are malformed claims", func(t *testing.T) {
				for _, v := range []any{-1, 1.5, "ten"} {
					resp, body := c.Get(t, "/", key.Sign(t, Std("credits", v)))
					rb := AssertReject(t, resp, body, http.StatusUnauthorized, "notAuthorized", "")
					if !strings.Contains(rb.Technical, "credits") {
						t.Errorf("technical %q does not name the claim", rb.Technical)
					}
				}
			})
			t.Run("credits without jti cannot be counted", func(t *testing.T) {
				resp, body := c.Get(t, "/", key.Sign(t, Std("credits", 5, "jti", nil)))
				AssertReject(t, resp, body, http.StatusUnauthorized, "notAuthorized", "")
			})
			t.Run("a failing upstream gets its credit back, exactly once", func(t *testing.T) {
				tok := key.Sign(t, Std("credits", 2))
				for i := 0; i < 5; i++ {
					resp, _ := c.Get(t, "/flaky/x", tok)
					if resp.StatusCode != http.StatusBadGateway {
						t.Fatalf("flaky request %d: %d", i, resp.StatusCode)
					}
				}
				for i := 0; i < 2; i++ {
					if resp, body := c.Get(t, "/", tok); resp.StatusCode != 200 {
						t.Fatalf("credit %d was not refunded: %d %s", i, resp.StatusCode, body)
					}
				}
				resp, body := c.Get(t, "/", tok)
				AssertReject(t, resp, body, http.StatusForbidden, "maxUseCountExceed", "")
			})
			t.Run("seats admit that many hardware ids and lapse after session_ttl", func(t *testing.T) {
				tok := key.Sign(t, Std("seats", 2, "credits", 100))
				for _, hw := range []string{"hw-a", "hw-b", "hw-a"} {
					if resp, body := c.Get(t, "/", tok, "X-Hardware-Id", hw); resp.StatusCode != 200 {
						t.Fatalf("seat for %s: %d %s", hw, resp.StatusCode, body)
					}
				}
				resp, body := c.Get(t, "/", tok, "X-Hardware-Id", "hw-c")
				AssertReject(t, resp, body, http.StatusTooManyRequests, "maxConcurrentSessionsExceed", "")
				ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
				if err != nil || ra < 1 || ra > 2 {
					t.Errorf("Retry-After %q, want 1..2 seconds", resp.Header.Get("Retry-After"))
				}
				// The refused device spent no credit: 3 used of 100.
				resp, _ = c.Get(t, "/", tok, "X-Hardware-Id", "hw-b")
				if got := resp.Header.Get("X-License-Credits-Remaining"); got != "96" {
					t.Errorf("remaining %q after a seats reject, want 96", got)
				}
				resp, body = c.Get(t, "/", tok)
				AssertReject(t, resp, body, http.StatusBadRequest, "licenseAnchorMissing", "")
				WaitFor(t, 5*time.Second, "seats to lapse", func() bool {
					resp, _ := c.Get(t, "/", tok, "X-Hardware-Id", "hw-c")
					return resp.StatusCode == 200
				})
			})
			t.Run("a revoked license is notAuthorized until unrevoked", func(t *testing.T) {
				claims := Std("credits", 10)
				tok := key.Sign(t, claims)
				jti := claims["jti"].(string)
				if resp, _ := c.Get(t, "/", tok); resp.StatusCode != 200 {
					t.Fatalf("before revocation: %d", resp.StatusCode)
				}
				adminDo(t, c, http.MethodPost, "/license-gate/revocations", `{"jti":"`+jti+`"}`, 200)
				resp, body := c.Get(t, "/", tok)
				rb := AssertReject(t, resp, body, http.StatusUnauthorized, "notAuthorized", "")
				if !strings.Contains(rb.Technical, "revoked") {
					t.Errorf("technical %q", rb.Technical)
				}
				adminDo(t, c, http.MethodDelete, "/license-gate/revocations/"+jti, "", 200)
				if resp, body := c.Get(t, "/", tok); resp.StatusCode != 200 {
					t.Fatalf("after unrevoke: %d %s", resp.StatusCode, body)
				}
			})
		})
	}
}

// adminDo calls the admin API and checks the status.
func adminDo(t testing.TB, c *Caddy, method, path, body string, want int) string {
	t.Helper()
	req, err := http.NewRequest(method, c.AdminURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, out := Do(t, req)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, out)
	}
	return string(out)
}

// hammer sends n requests with the token over the gateways, conc at a
// time, and counts the statuses.
func hammer(t *testing.T, gates []*Caddy, tok string, n, conc int) map[int]int {
	t.Helper()
	var mu sync.Mutex
	counts := map[int]int{}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				c := gates[int(i)%len(gates)]
				req, _ := http.NewRequest(http.MethodGet, c.URL+"/", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := httpClient.Do(req)
				status := -1
				if err == nil {
					status = resp.StatusCode
					resp.Body.Close()
				}
				mu.Lock()
				counts[status]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return counts
}

// TestCreditsExactAcrossGateways: one token with C credits, hundreds of
// parallel requests over three gateways sharing one Redis: exactly C pass.
func TestCreditsExactAcrossGateways(t *testing.T) {
	t.Parallel()
	r := testredis.Start(t)
	exactness(t, "store redis {\n\t\t\taddresses "+r.Addr()+"\n\t\t\ttimeout 5s\n\t\t}")
}

// TestCreditsExactOnCluster is the same exactness on a three-master
// Redis Cluster.
func TestCreditsExactOnCluster(t *testing.T) {
	t.Parallel()
	addrs := testredis.StartCluster(t, 3)
	exactness(t, "store redis {\n\t\t\taddresses "+strings.Join(addrs, " ")+"\n\t\t\ttimeout 5s\n\t\t}")
}

// exactness uses a generous store timeout: this is about counting, not
// about timeouts, and the test machine may be busy.
func exactness(t *testing.T, store string) {
	key := NewRSAKey(t, "k1", "RS256")
	ks := NewKeyServer(t, JWKS(t, key))
	up := Upstream(t, http.StatusOK)
	site := `
	license_gate {
		jwks_url ` + ks.JWKSURL() + `
		` + store + `
	}
	reverse_proxy ` + hostPort(up.URL)
	gates := []*Caddy{StartCaddy(t, site), StartCaddy(t, site), StartCaddy(t, site)}
	const credits, requests = 150, 400
	for round := 0; round < 2; round++ { // two tokens: two different hash slots on a cluster
		tok := key.Sign(t, Std("credits", credits))
		counts := hammer(t, gates, tok, requests, 48)
		if counts[200] != credits || counts[403] != requests-credits {
			t.Fatalf("round %d: statuses %v, want %d×200 and %d×403", round, counts, credits, requests-credits)
		}
	}
}

// TestStoreFaults kills Redis under load: fail_closed answers 503 with
// Retry-After, fail_open passes, nothing panics; after a restart requests
// succeed again without a reload.
func TestStoreFaults(t *testing.T) {
	t.Parallel()
	r := testredis.Start(t)
	key := NewRSAKey(t, "k1", "RS256")
	ks := NewKeyServer(t, JWKS(t, key))
	up := Upstream(t, http.StatusOK)
	site := func(mode string) string {
		return `
	license_gate {
		jwks_url ` + ks.JWKSURL() + `
		on_store_error ` + mode + `
		store redis {
			addresses ` + r.Addr() + `
			timeout 200ms
		}
	}
	reverse_proxy ` + hostPort(up.URL)
	}
	closed, open := StartCaddy(t, site("fail_closed")), StartCaddy(t, site("fail_open"))
	tok := key.Sign(t, Std("credits", 1000))
	for _, c := range []*Caddy{closed, open} {
		if resp, body := c.Get(t, "/", tok); resp.StatusCode != 200 {
			t.Fatalf("before the fault: %d %s", resp.StatusCode, body)
		}
	}

	// Load while Redis dies.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad atomic.Int64
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := []*Caddy{closed, open}[w%2]
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, c.URL+"/", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := httpClient.Do(req)
				if err != nil {
					bad.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 200 && resp.StatusCode != 503 {
					bad.Add(1)
				}
			}
		}(w)
	}
	time.Sleep(200 * time.Millisecond)
	r.Kill()
	time.Sleep(300 * time.Millisecond)

	resp, body := closed.Get(t, "/", tok)
	AssertReject(t, resp, body, http.StatusServiceUnavailable, "serviceUnavailable", "")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if resp, body := open.Get(t, "/", tok); resp.StatusCode != 200 {
		t.Fatalf("fail_open while Redis is down: %d %s", resp.StatusCode, body)
	}
	close(stop)
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Errorf("%d requests failed otherwise than 200/503 during the fault", n)
	}
	if len(closed.Logs.logLines("counter store failed")) == 0 {
		t.Error("no ERROR log for the store failure")
	}
	for _, c := range []*Caddy{closed, open} {
		if strings.Contains(c.Logs.String(), "panic") {
			t.Fatalf("panic in logs")
		}
	}

	r.Restart()
	for _, c := range []*Caddy{closed, open} {
		WaitFor(t, 10*time.Second, "requests to succeed after Redis restarts", func() bool {
			resp, _ := c.Get(t, "/", tok)
			return resp.StatusCode == 200
		})
	}
}

// TestCountingThroughSentinel: with master_name the store finds the
// master through a Sentinel; credits stay exact over two gateways.
func TestCountingThroughSentinel(t *testing.T) {
	t.Parallel()
	master := testredis.Start(t)
	sentinel := testredis.StartSentinel(t, master, "mymaster")
	key := NewRSAKey(t, "k1", "RS256")
	ks := NewKeyServer(t, JWKS(t, key))
	up := Upstream(t, http.StatusOK)
	site := `
	license_gate {
		jwks_url ` + ks.JWKSURL() + `
		store redis {
			addresses ` + sentinel.Addr() + `
			master_name mymaster
			timeout 5s
		}
	}
	reverse_proxy ` + hostPort(up.URL)
	gates := []*Caddy{StartCaddy(t, site), StartCaddy(t, site)}
	claims := Std("credits", 40)
	tok := key.Sign(t, claims)
	counts := hammer(t, gates, tok, 100, 16)
	if counts[200] != 40 || counts[403] != 60 {
		t.Fatalf("statuses %v, want 40×200 and 60×403", counts)
	}
	if used, err := master.Do("GET", "lg:{"+redisstore.Tag(policy.LicenseKey{Key: claims["jti"].(string)})+"}:used"); err != nil || used != "40" {
		t.Fatalf("the master holds used = %q, %v; want 40", used, err)
	}
}

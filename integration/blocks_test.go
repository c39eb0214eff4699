package integration

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
)

// Credit blocks through real Caddy and real Redis (README.md, "Credit
// blocks"). The exactness tests of counting_test.go run with blocks on
// too, as it is the default.

// tokenLoad sends requests with one token to gates from conc clients until
// stopped, counting the answers per gateway.
type tokenLoad struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	status  []map[int]int // per gateway
	ok      atomic.Int64  // 200s over all gateways
	lastOK  []time.Time   // per gateway, when its last 200 came
	remains []int64       // per gateway, the last X-License-Credits-Remaining
}

func startTokenLoad(t *testing.T, gates []*Caddy, tok string, conc int, headers ...string) *tokenLoad {
	t.Helper()
	l := &tokenLoad{stop: make(chan struct{}), status: make([]map[int]int, len(gates)),
		lastOK: make([]time.Time, len(gates)), remains: make([]int64, len(gates))}
	for i := range gates {
		l.status[i] = map[int]int{}
	}
	for w := range conc {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			gi := w % len(gates)
			c := gates[gi]
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, c.URL+"/", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				for i := 0; i+1 < len(headers); i += 2 {
					req.Header.Set(headers[i], headers[i+1])
				}
				resp, err := httpClient.Do(req)
				status := -1
				if err == nil {
					status = resp.StatusCode
					resp.Body.Close()
				}
				l.mu.Lock()
				l.status[gi][status]++
				if status == http.StatusOK {
					l.ok.Add(1)
					l.lastOK[gi] = time.Now()
					if n, err := strconv.ParseInt(resp.Header.Get("X-License-Credits-Remaining"), 10, 64); err == nil {
						l.remains[gi] = n
					}
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// end stops the clients and waits for them.
func (l *tokenLoad) end() {
	close(l.stop)
	l.wg.Wait()
}

func (l *tokenLoad) count(gate, status int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status[gate][status]
}

// blocksSite is a site with the gate on Redis (blocks on, the default, or
// the given store options) and the metrics endpoint.
func blocksSite(t *testing.T, addrs []string, storeExtra string) (*Key, string) {
	return storeSite(t, "store redis {\n\t\t\taddresses "+strings.Join(addrs, " ")+"\n\t\t\ttimeout 5s\n\t\t\t"+storeExtra+"\n\t\t}")
}

// redisSetups are the Redis deployments a test runs on: a single node and
// a three-master Cluster.
func redisSetups() []struct {
	name  string
	addrs func(t *testing.T) []string
} {
	return []struct {
		name  string
		addrs func(t *testing.T) []string
	}{
		{"single node", func(t *testing.T) []string { return []string{testredis.Start(t).Addr()} }},
		{"cluster", func(t *testing.T) []string { return testredis.StartCluster(t, 3) }},
	}
}

// hotLicense starts n gateways (metrics on) on Redis at addrs and signs
// a token with a huge budget that each of them has served once (after
// reading the revocations: blocks are served only then).
func hotLicense(t *testing.T, addrs []string, n int) (gates []*Caddy, tok, jti string) {
	t.Helper()
	key, site := blocksSite(t, addrs, "")
	for range n {
		gates = append(gates, StartCaddy(t, site, CaddyOptions{Globals: "metrics"}))
	}
	claims := Std("credits", int64(1)<<40)
	tok, jti = key.Sign(t, claims), claims["jti"].(string)
	for _, c := range gates {
		WaitFor(t, 10*time.Second, "the gateway to serve", func() bool {
			resp, _ := c.Get(t, "/", tok)
			return resp.StatusCode == 200
		})
	}
	return gates, tok, jti
}

// holdBlocks waits until every gateway holds a block.
func holdBlocks(t *testing.T, gates []*Caddy) {
	t.Helper()
	WaitFor(t, 10*time.Second, "every gateway to hold a block", func() bool {
		for _, c := range gates {
			if v, _ := c.metric(t, "licensegate_block_credits_unused"); v <= 0 {
				return false
			}
		}
		return true
	})
}

// view is the license's admin view.
func view(t *testing.T, c *Caddy, jti string) licenseView {
	t.Helper()
	return decodeView[licenseView](t, adminDo(t, c, http.MethodGet, "/license-gate/licenses/"+escapeKey(jti), "", 200))
}

// metricSum adds a metric over gateways.
func metricSum(t *testing.T, gates []*Caddy, name string) float64 {
	t.Helper()
	sum := 0.0
	for _, c := range gates {
		v, ok := c.metric(t, name)
		if !ok {
			t.Fatalf("no %s metric", name)
		}
		sum += v
	}
	return sum
}

func TestAHotTokenIsServedFromBlocksWithFewRoundTrips(t *testing.T) {
	t.Parallel()
	r := testredis.Start(t)
	addrs := []string{r.Addr()}
	gates, tok, jti := hotLicense(t, addrs, 2)

	l := startTokenLoad(t, gates, tok, 16)
	time.Sleep(1500 * time.Millisecond) // to steady load: the rate estimate covers a second
	scripts0, ok0 := scriptCalls(t, addrs), l.ok.Load()
	time.Sleep(2 * time.Second)
	scripts, served := scriptCalls(t, addrs)-scripts0, l.ok.Load()-ok0
	unused := metricSum(t, gates, "licensegate_block_credits_unused")
	l.end()
	t.Logf("steady load: %d requests served with %d store round trips (%.0f requests per round trip)",
		served, scripts, float64(served)/float64(max(scripts, 1)))
	if served < 200 {
		t.Fatalf("only %d requests served in 2 s: too little load to judge", served)
	}
	if scripts*50 > int(served) {
		t.Errorf("%d store round trips for %d requests; want at most one per 50", scripts, served)
	}
	if unused <= 0 {
		t.Errorf("licensegate_block_credits_unused %v under load, want some", unused)
	}
	for i := range gates {
		if n := l.count(i, 200); n == 0 || len(l.status[i]) != 1 {
			t.Errorf("gateway %d answered %v", i+1, l.status[i])
		}
		if l.remains[i] <= 0 || l.remains[i] > int64(1)<<40 {
			t.Errorf("gateway %d's last X-License-Credits-Remaining %d", i+1, l.remains[i])
		}
	}

	// Idle blocks go back: the store then counts exactly what was served.
	total := l.ok.Load() + int64(len(gates)) // the warm-up requests
	WaitFor(t, 20*time.Second, "the idle blocks to be returned", func() bool {
		return view(t, gates[0], jti).Leased == 0
	})
	if v := view(t, gates[1], jti); v.Used != total || v.Leased != 0 {
		t.Errorf("after the blocks went back: credits_used %d, credits_leased %d; served %d", v.Used, v.Leased, total)
	}
	if u := metricSum(t, gates, "licensegate_block_credits_unused"); u != 0 {
		t.Errorf("licensegate_block_credits_unused %v once idle, want 0", u)
	}
	if n := metricSum(t, gates, "licensegate_blocks_taken_total"); n == 0 {
		t.Error("licensegate_blocks_taken_total is 0")
	}
	if n := metricSum(t, gates, "licensegate_blocks_returned_total"); n == 0 {
		t.Error("licensegate_blocks_returned_total is 0")
	}
}

func TestTheLastStretchOfABudgetIsChargedOneByOne(t *testing.T) {
	t.Parallel()
	r := testredis.Start(t)
	addrs := []string{r.Addr()}
	key, site := blocksSite(t, addrs, "")
	gates := []*Caddy{StartCaddy(t, site, CaddyOptions{Globals: "metrics"}), StartCaddy(t, site, CaddyOptions{Globals: "metrics"}),
		StartCaddy(t, site, CaddyOptions{Globals: "metrics"})}
	readRevocations(t, addrs, key.Sign(t, Std()), gates...)
	const credits = 3000
	claims := Std("credits", credits)
	tok, jti := key.Sign(t, claims), claims["jti"].(string)
	counts := hammer(t, gates, tok, 2*credits, 48)
	if counts[200] != credits || counts[403] != credits {
		t.Fatalf("statuses %v, want %d×200 and %d×403", counts, credits, credits)
	}
	if n := metricSum(t, gates, "licensegate_blocks_taken_total"); n == 0 {
		t.Error("no block was taken: the test did not exercise blocks")
	}
	if v := view(t, gates[0], jti); v.Used+v.Leased != credits || v.Left == nil || *v.Left != 0 {
		t.Errorf("admin view %+v, want %d credits used and leased together, none left", v, credits)
	}
}

func TestARefusalForCreditsRecallsTheOtherGatewaysBlocks(t *testing.T) {
	t.Parallel()
	for _, tc := range redisSetups() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addrs := tc.addrs(t)
			key, site := blocksSite(t, addrs, "")
			holder := StartCaddy(t, site, CaddyOptions{Globals: "metrics"})
			other := StartCaddy(t, site, CaddyOptions{Globals: "metrics"})
			readRevocations(t, addrs, key.Sign(t, Std()), holder, other)
			const credits = 400
			claims := Std("credits", credits)
			tok, jti := key.Sign(t, claims), claims["jti"].(string)
			var served atomic.Int64
			get := func(c *Caddy) int {
				resp, _ := c.Get(t, "/", tok)
				if resp.StatusCode == http.StatusOK {
					served.Add(1)
				}
				return resp.StatusCode
			}
			WaitFor(t, 10*time.Second, "the holder to take a block", func() bool {
				get(holder)
				v, _ := holder.metric(t, "licensegate_block_credits_unused")
				return v > 0
			})
			// A request to the holder every 200 ms: its block never idles,
			// so only a recall can bring it back.
			stop, trickled := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(trickled)
				for {
					select {
					case <-stop:
						return
					case <-time.After(200 * time.Millisecond):
						get(holder)
					}
				}
			}()
			for {
				resp, body := other.Get(t, "/", tok)
				if resp.StatusCode != http.StatusOK {
					AssertReject(t, resp, body, http.StatusForbidden, "maxUseCountExceed", "")
					break
				}
				served.Add(1)
			}
			refused := time.Now()
			WaitFor(t, 10*time.Second, "the other gateway to serve again", func() bool {
				return get(other) == http.StatusOK
			})
			t.Logf("refused on one gateway while the other held a block: served again after %v", time.Since(refused))
			if n, _ := other.metric(t, "licensegate_block_recalls_total"); n < 1 {
				t.Errorf("licensegate_block_recalls_total %v on the refusing gateway, want at least 1", n)
			}
			for get(other) == http.StatusOK {
			}
			close(stop)
			<-trickled
			WaitFor(t, 20*time.Second, "the blocks to go back", func() bool {
				return view(t, other, jti).Leased == 0
			})
			for get(other) == http.StatusOK {
			}
			if n := served.Load(); n != credits {
				t.Errorf("served %d, want the %d credits", n, credits)
			}
			if v := view(t, other, jti); v.Used != credits {
				t.Errorf("credits_used %d, want %d", v.Used, credits)
			}
		})
	}
}

func TestARevokedLicenseIsRefusedOnEveryGatewayDespiteItsBlocks(t *testing.T) {
	t.Parallel()
	for _, tc := range redisSetups() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gates, tok, jti := hotLicense(t, tc.addrs(t), 3)
			l := startTokenLoad(t, gates, tok, 12)
			holdBlocks(t, gates)
			start := time.Now()
			adminDo(t, gates[0], http.MethodPost, "/license-gate/revocations", `{"jti":"`+jti+`"}`, 200)
			// The gateway that revoked refuses at once.
			resp, body := gates[0].Get(t, "/", tok)
			AssertReject(t, resp, body, http.StatusUnauthorized, "notAuthorized", "")
			for i, c := range gates {
				d := untilStatus(t, c, tok, http.StatusUnauthorized, start)
				t.Logf("revocation through gateway 1 refused on gateway %d (holding a block, under load) after %v", i+1, d)
			}
			l.end()
			for i, c := range gates {
				for range 20 {
					resp, body := c.Get(t, "/", tok)
					AssertReject(t, resp, body, http.StatusUnauthorized, "notAuthorized", "")
				}
				if v, _ := c.metric(t, "licensegate_block_credits_unused"); v != 0 {
					t.Errorf("gateway %d still holds %v credits of a revoked license", i+1, v)
				}
			}
			// The blocks went back: the store counts what was served.
			served := l.ok.Load() + int64(len(gates))
			if v := view(t, gates[2], jti); v.Used != served || v.Leased != 0 {
				t.Errorf("credits_used %d, credits_leased %d; served %d", v.Used, v.Leased, served)
			}
		})
	}
}

func TestAKilledGatewayStrandsAtMostOneBlock(t *testing.T) {
	t.Parallel()
	r := testredis.Start(t)
	addrs := []string{r.Addr()}
	gates, tok, jti := hotLicense(t, addrs, 2)
	victim, witness := gates[0], gates[1]
	const conc = 8
	l := startTokenLoad(t, []*Caddy{victim}, tok, conc)
	holdBlocks(t, []*Caddy{victim})
	okBefore := l.ok.Load()
	time.Sleep(time.Second)
	lastSecond := l.ok.Load() - okBefore
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	l.end()
	served := l.ok.Load() + 2 // and the warm-up requests
	v := view(t, witness, jti)
	stranded := v.Used + v.Leased - served
	t.Logf("SIGKILL under load: %d requests served, the store counts %d used and %d leased: %d credits stranded (requests in flight: at most %d)",
		served, v.Used, v.Leased, stranded, conc)
	// What the killed gateway held is leased for good (until the token
	// expires); the witness served the token once, which takes no block,
	// so that is one block.
	// Requests in flight at the kill may have been charged unanswered.
	if stranded < 0 || stranded > v.Leased+conc {
		t.Errorf("%d credits stranded, want at most the one block leased (%d) and the %d requests in flight", stranded, v.Leased, conc)
	}
	// A block holds about a second of the license's traffic.
	if v.Leased > 2*lastSecond+conc {
		t.Errorf("%d credits leased, against %d requests served in the last second: more than one block", v.Leased, lastSecond)
	}
}

func TestBlocksOffMakesOneRoundTripPerRequest(t *testing.T) {
	t.Parallel()
	r := testredis.Start(t)
	addrs := []string{r.Addr()}
	key, site := blocksSite(t, addrs, "blocks off")
	c := StartCaddy(t, site)
	tok := key.Sign(t, Std("credits", int64(1)<<40))
	// The first charge loads the script (EVALSHA, then EVAL).
	if resp, body := c.Get(t, "/", tok); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	const n = 200
	before := scriptCalls(t, addrs)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n / 8 {
				if resp, body := c.Get(t, "/", tok); resp.StatusCode != 200 {
					t.Errorf("%d %s", resp.StatusCode, body)
				}
			}
		}()
	}
	wg.Wait()
	if d := scriptCalls(t, addrs) - before; d != n {
		t.Errorf("%d requests with blocks off ran %d scripts; want %d", n, d, n)
	}
}

func TestADeviceHoldingItsSeatRefreshesItAtMostOncePerSecond(t *testing.T) {
	t.Parallel()
	r := testredis.Start(t)
	addrs := []string{r.Addr()}
	key, site := blocksSite(t, addrs, "")
	c := StartCaddy(t, site)
	tok := key.Sign(t, Std("seats", 2))
	readRevocations(t, addrs, key.Sign(t, Std()), c)
	before := scriptCalls(t, addrs)
	start := time.Now()
	const n = 100
	for i := range n {
		if resp, body := c.Get(t, "/", tok, "X-Hardware-Id", "device-a"); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
	}
	elapsed := time.Since(start)
	d := scriptCalls(t, addrs) - before
	t.Logf("%d requests of one device in %v ran %d scripts", n, elapsed, d)
	if limit := 1 + int(elapsed/time.Second) + 1; d < 1 || d > limit {
		t.Errorf("%d requests of one device in %v ran %d scripts; want 1 to %d (one per second at most)", n, elapsed, d, limit)
	}
	// A new device goes to the store at once, and a third is refused.
	before = scriptCalls(t, addrs)
	if resp, body := c.Get(t, "/", tok, "X-Hardware-Id", "device-b"); resp.StatusCode != 200 {
		t.Fatalf("device b: %d %s", resp.StatusCode, body)
	}
	if d := scriptCalls(t, addrs) - before; d != 1 {
		t.Errorf("a new device ran %d scripts, want 1", d)
	}
	resp, body := c.Get(t, "/", tok, "X-Hardware-Id", "device-c")
	AssertReject(t, resp, body, http.StatusTooManyRequests, "maxConcurrentSessionsExceed", "")
}

func TestCreditsChangedThroughTheAdminAPIDropTheBlocks(t *testing.T) {
	t.Parallel()
	for _, tc := range redisSetups() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gates, tok, jti := hotLicense(t, tc.addrs(t), 2)
			l := startTokenLoad(t, gates, tok, 8)
			holdBlocks(t, gates)
			// Under load no block idles: what goes back now goes back for the
			// change, the adjusting gateway's before it, the other's on the
			// store's message.
			returned := metricSum(t, gates, "licensegate_blocks_returned_total")
			adminDo(t, gates[0], http.MethodPost, "/license-gate/licenses/"+escapeKey(jti)+"/credits", `{"add": 10}`, 200)
			WaitFor(t, 10*time.Second, "both gateways to return their block", func() bool {
				return metricSum(t, gates, "licensegate_blocks_returned_total") >= returned+2
			})
			l.end()
			WaitFor(t, 20*time.Second, "the idle blocks to be returned", func() bool {
				return view(t, gates[0], jti).Leased == 0
			})
			served := l.ok.Load() + int64(len(gates))
			if v := view(t, gates[1], jti); v.Used != served-10 || v.Leased != 0 {
				t.Errorf("after a top up of 10: credits_used %d, credits_leased %d; served %d", v.Used, v.Leased, served)
			}
		})
	}
}

func TestAGatewayThatStopsReturnsItsBlocks(t *testing.T) {
	t.Parallel()
	r := testredis.Start(t)
	gates, tok, jti := hotLicense(t, []string{r.Addr()}, 2)
	leaving, witness := gates[0], gates[1]
	l := startTokenLoad(t, []*Caddy{leaving}, tok, 8)
	holdBlocks(t, []*Caddy{leaving})
	if err := leaving.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Caddy unloads its config on SIGTERM: the store goes, its blocks
	// back. The clients stop once it no longer answers.
	WaitFor(t, 20*time.Second, "the gateway to stop", func() bool {
		_, err := http.Get(leaving.AdminURL + "/config/")
		return err != nil
	})
	l.end()
	served := l.ok.Load() + 2
	v := view(t, witness, jti)
	if v.Leased != 0 || v.Used != served {
		t.Errorf("after the gateway stopped: credits_used %d, credits_leased %d; served %d", v.Used, v.Leased, served)
	}
}

func TestAConfigReloadKeepsTheBlocks(t *testing.T) {
	t.Parallel()
	r := testredis.Start(t)
	gates, tok, _ := hotLicense(t, []string{r.Addr()}, 1)
	c := gates[0]
	l := startTokenLoad(t, gates, tok, 8)
	defer l.end()
	holdBlocks(t, gates)
	returned := metricSum(t, gates, "licensegate_blocks_returned_total")
	cfg := adminDo(t, c, http.MethodGet, "/config/", "", 200)
	req, err := http.NewRequest(http.MethodPost, c.AdminURL+"/load", strings.NewReader(cfg))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Cache-Control", "must-revalidate") // reload even though nothing changed
	if resp, body := Do(t, req); resp.StatusCode != 200 {
		t.Fatalf("reload: %d %s", resp.StatusCode, body)
	}
	before := l.ok.Load()
	WaitFor(t, 10*time.Second, "requests after the reload", func() bool { return l.ok.Load() > before+100 })
	if n := metricSum(t, gates, "licensegate_blocks_returned_total"); n != returned {
		t.Errorf("the reload returned %v blocks, want none", n-returned)
	}
	if n := len(c.Logs.logLines("load complete")); n != 1 {
		t.Errorf("%d reloads in the log, want 1", n)
	}
}

package module

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
)

// blockStore is an in-test store of credits with blocks, as the shared
// spec states them (the real one is the Redis store; the end-to-end tests
// use it): only what the block table's logic needs, to test it alone.
type blockStore struct {
	mu      sync.Mutex
	used    map[policy.LicenseKey]int64
	leased  map[policy.LicenseKey]int64
	revoked map[policy.LicenseKey]bool
	charges atomic.Int64
	returns atomic.Int64 // blocks returned
	batches atomic.Int64 // ReturnBlocks calls: round trips
	recalls atomic.Int64 // RecallBlocks calls
	// recalled are the recalls not yet delivered (deliverRecalls).
	recalled []policy.LicenseKey
	fail     error // Charge fails with it, counting nothing
	// failReturn: the returns of these licenses fail, changing nothing.
	failReturn map[policy.LicenseKey]bool
	undos      []policy.Undo
	watches    []func(policy.LicenseKey) // every table's WatchCredits
}

func newBlockStore() *blockStore {
	return &blockStore{used: map[policy.LicenseKey]int64{}, leased: map[policy.LicenseKey]int64{},
		revoked: map[policy.LicenseKey]bool{}}
}

func (s *blockStore) Charge(_ context.Context, c *policy.Charge) (policy.Result, error) {
	s.charges.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return policy.Result{}, s.fail
	}
	// The ending block leaves leased whatever the outcome.
	s.leased[c.Key] = max(0, s.leased[c.Key]-c.EndBlock)
	if s.revoked[c.Key] {
		return policy.Result{Outcome: policy.Revoked}, nil
	}
	used := s.used[c.Key]
	if c.Limit >= 0 && c.Cost > c.Limit-used {
		return policy.Result{Outcome: policy.CreditsExhausted, Used: used, Held: s.leased[c.Key] > 0}, nil
	}
	used += c.Cost
	var granted int64
	if c.Block > 0 && policy.BlockGrantable(c.Limit-used, s.leased[c.Key], c.Block) {
		granted = c.Block
		used += granted
		s.leased[c.Key] += granted
	}
	s.used[c.Key] = used
	return policy.Result{Outcome: policy.Allowed, Used: used, Block: granted}, nil
}

func (s *blockStore) ReturnBlock(_ context.Context, key policy.LicenseKey, size, unused int64) error {
	s.returns.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used[key] -= unused
	s.leased[key] = max(0, s.leased[key]-size)
	return nil
}

func (s *blockStore) ReturnBlocks(ctx context.Context, rs []policy.BlockReturn) []error {
	s.batches.Add(1)
	errs := make([]error, len(rs))
	for i, r := range rs {
		s.mu.Lock()
		fail := s.failReturn[r.Key]
		s.mu.Unlock()
		if fail {
			errs[i] = policy.ErrStore
			continue
		}
		errs[i] = s.ReturnBlock(ctx, r.Key, r.Size, r.Unused)
	}
	return errs
}

func (s *blockStore) WatchCredits(f func(policy.LicenseKey)) (stop func()) {
	s.mu.Lock()
	s.watches = append(s.watches, f)
	s.mu.Unlock()
	return func() {}
}

// RecallBlocks keeps the recall for deliverRecalls, which the test calls
// when the store's message should arrive.
func (s *blockStore) RecallBlocks(_ context.Context, key policy.LicenseKey) error {
	s.recalls.Add(1)
	s.mu.Lock()
	s.recalled = append(s.recalled, key)
	s.mu.Unlock()
	return nil
}

// deliverRecalls delivers the recalls kept so far to every watching
// table, as the store's message would.
func (s *blockStore) deliverRecalls() {
	s.mu.Lock()
	keys := s.recalled
	s.recalled = nil
	s.mu.Unlock()
	for _, k := range keys {
		s.changed(k)
	}
}

// changed tells every watching table that key's credits changed.
func (s *blockStore) changed(key policy.LicenseKey) {
	s.mu.Lock()
	fs := s.watches
	s.mu.Unlock()
	for _, f := range fs {
		f(key)
	}
}

func (s *blockStore) IsRevoked(key policy.LicenseKey, _ time.Time) (revoked, known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revoked[key], true
}

func (s *blockStore) counts(key policy.LicenseKey) (used, leased int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used[key], s.leased[key]
}

var testLicense = policy.LicenseKey{Issuer: "https://iss", Key: "lic-1"}

// request runs one request through the table as charge() does: served
// from the block, or charged in the store. It reports whether it was
// allowed and whether it went to the store.
func request(t *testing.T, tb *blockTable, s *blockStore, a chargeAsk) (allowed, roundTrip bool, plan blockPlan) {
	t.Helper()
	plan = tb.begin(&a)
	if plan.served {
		return true, false, plan
	}
	c := policy.Charge{Key: a.key, Cost: a.cost, Limit: a.limit, Seats: a.seats, Hardware: a.hw,
		Block: plan.ask, EndBlock: plan.end}
	res, err := s.Charge(context.Background(), &c)
	tb.finish(&a, plan, res, err, true)
	return err == nil && res.Outcome == policy.Allowed, true, plan
}

// serveFirstBlock takes a's first block and serves all of it, none of
// those requests going to the store, and returns its size.
func serveFirstBlock(t *testing.T, tb *blockTable, s *blockStore, a chargeAsk) int64 {
	t.Helper()
	block := firstBlock(t, tb, s, a)
	for range block {
		if _, trip, _ := request(t, tb, s, a); trip {
			t.Fatal("a request of the block went to the store")
		}
	}
	return block
}

// firstBlock sends a's requests until one asks a block, and returns its
// size.
func firstBlock(t *testing.T, tb *blockTable, s *blockStore, a chargeAsk) int64 {
	t.Helper()
	for range 1000 {
		if _, _, plan := request(t, tb, s, a); plan.ask > 0 {
			return plan.ask
		}
	}
	t.Fatal("no block asked in 1000 requests")
	return 0
}

// newTestTable is a table over s whose tests sweep on their own clocks:
// the background sweeper (started by the first request) sweeps at the
// epoch, before any test's clock, so it never finds a block idle, even
// when a slow run lets it tick. The table is closed when the test ends,
// so that no block stays counted in blockUnused for later tests.
func newTestTable(t testing.TB, s *blockStore) *blockTable {
	tb := newBlockTable(s, s, time.Second)
	tb.now = func() time.Time { return time.Unix(0, 0) }
	t.Cleanup(func() { tb.close(time.Second) })
	return tb
}

func TestABusyLicenseIsServedFromItsBlockWithFewRoundTrips(t *testing.T) {
	s := newBlockStore()
	tb := newTestTable(t, s)
	now := time.Unix(1_000_000, 0)
	a := chargeAsk{key: testLicense, cost: 1, limit: 1 << 40, now: now}
	trips := 0
	for i := range 5000 {
		a.now = now.Add(time.Duration(i) * time.Millisecond / 5) // 5000 requests a second
		ok, trip, _ := request(t, tb, s, a)
		if !ok {
			t.Fatalf("request %d refused", i)
		}
		if trip {
			trips++
		}
	}
	if trips*50 > 5000 {
		t.Errorf("%d store round trips for 5000 requests, want at most one per 50", trips)
	}
	tb.close(time.Second)
	used, leased := s.counts(testLicense)
	if used != 5000 || leased != 0 {
		t.Errorf("after close the store holds used %d, leased %d; want 5000 and 0", used, leased)
	}
}

func TestALicenseAsksABlockOnlyOnceItShowedTwoRequestsInFourSeconds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		every time.Duration
		asks  bool
	}{
		{"one request every 5 s asks none", 5 * time.Second, false},
		{"one request every 4.5 s asks none", 4500 * time.Millisecond, false},
		{"one request every 2.5 s asks one", 2500 * time.Millisecond, true},
		{"two requests a second ask one", 500 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newBlockStore()
			tb := newTestTable(t, s)
			now := time.Unix(1_000_000, 0)
			a := chargeAsk{key: testLicense, cost: 1, limit: 1 << 40}
			var asked int64
			for i := range 20 {
				a.now = now.Add(time.Duration(i) * tc.every)
				// Idle blocks go back as the sweeper would return them.
				tb.sweep(a.now)
				ok, _, plan := request(t, tb, s, a)
				if !ok {
					t.Fatalf("request %d refused", i)
				}
				if plan.ask > 0 && asked == 0 {
					asked = plan.ask
				}
			}
			if asks := asked > 0; asks != tc.asks {
				t.Fatalf("asked a block of %d; want one asked: %v", asked, tc.asks)
			}
			if tc.asks && asked != blockMinRequests {
				t.Errorf("the first block asked is %d, want the least, %d", asked, blockMinRequests)
			}
		})
	}
}

func TestTheBlockAskedIsAboutOneSecondOfTrafficAndFitsWhatIsLeft(t *testing.T) {
	for _, tc := range []struct {
		name              string
		rate, long, limit int64
		used, cost        int64
		cap               int64
		want              int64
	}{
		{"a second's worth of requests", 100, 400, 1 << 40, 0, 1, 0, 100},
		{"in credits, at cost 3", 100, 400, 1 << 40, 0, 3, 0, 300},
		{"a quiet license's two requests in four seconds ask the least block", 1, blockLowRequests, 1 << 40, 0, 1, 0, blockMinRequests},
		{"the least block in credits, at cost 3", 1, 3, 1 << 40, 0, 3, 0, 3 * blockMinRequests},
		{"one request in four seconds asks none", 1, blockLowRequests - 1, 1 << 40, 0, 1, 0, 0},
		{"a busy license below the least block asks the least", blockMinRate, 4 * blockMinRate, 1 << 40, 0, 1, 0, blockMinRequests},
		{"at most what leaves ten times as much unreserved", 1000, 4000, 1100, 0, 1, 0, 99},
		{"the least block gives way to what is left", 1, 2, 56, 0, 1, 0, 5},
		{"none in the last stretch", 1000, 4000, 1000, 990, 1, 0, 0},
		{"none in a quiet license's last stretch", 1, 3, 1000, 980, 1, 0, 0},
		{"within a refusal's cap", 1000, 4000, 1 << 40, 0, 1, 40, 40},
		{"a quiet license's within a refusal's cap", 1, 2, 1 << 40, 0, 1, 4, 4},
		{"none when a single request would be all", 1000, 4000, 1 << 40, 0, 1, 1, 0},
		{"at most MaxBlock", 1 << 40, 1 << 42, 1 << 62, 0, 1, 0, policy.MaxBlock},
		{"none for a free request", 100, 400, 1 << 40, 0, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &licenseBlock{used: tc.used, hasUsed: true, cap: tc.cap}
			if got := e.want(tc.rate, tc.long, tc.cost, tc.limit); got != tc.want {
				t.Errorf("want(%d, %d, %d, %d) = %d, want %d", tc.rate, tc.long, tc.cost, tc.limit, got, tc.want)
			}
		})
	}
}

func TestTheRateEstimateCountsTheLastSecond(t *testing.T) {
	e := &licenseBlock{}
	now := time.Unix(1_000_000, 0)
	var r int64
	for i := range 100 {
		r, _ = e.hit(now.Add(time.Duration(i) * 10 * time.Millisecond).UnixNano())
	}
	if r != 100 {
		t.Fatalf("after 100 requests in a second the rate is %d", r)
	}
	// Half a second on, half of the last window still counts.
	if r, _ = e.hit(now.Add(1500 * time.Millisecond).UnixNano()); r < 45 || r > 55 {
		t.Errorf("rate %d half a window later, want about 51", r)
	}
	if r, _ = e.hit(now.Add(10 * time.Second).UnixNano()); r != 1 {
		t.Errorf("rate %d after a long pause, want 1", r)
	}
}

func TestAFullyServedBlockIsEndedByTheNextReservation(t *testing.T) {
	s := newBlockStore()
	tb := newTestTable(t, s)
	now := time.Unix(1_000_000, 0)
	a := chargeAsk{key: testLicense, cost: 1, limit: 1 << 40, now: now}
	var asked []blockPlan
	for range 1000 {
		if _, trip, plan := request(t, tb, s, a); trip && plan.ask > 0 {
			asked = append(asked, plan)
		}
	}
	if len(asked) < 2 {
		t.Fatalf("only %d reservations", len(asked))
	}
	if asked[0].end != 0 {
		t.Errorf("the first reservation ends a block of %d", asked[0].end)
	}
	for i, p := range asked[1:] {
		if p.end != asked[i].ask {
			t.Errorf("reservation %d ends %d, want the block before it, %d", i+1, p.end, asked[i].ask)
		}
	}
}

func TestAnIdleBlockIsReturnedWithItsUnusedCredits(t *testing.T) {
	s := newBlockStore()
	tb := newTestTable(t, s)
	now := time.Unix(1_000_000, 0)
	a := chargeAsk{key: testLicense, cost: 1, limit: 1 << 40, now: now}
	served := int64(0)
	for range 30 {
		if ok, _, _ := request(t, tb, s, a); ok {
			served++
		}
	}
	if _, leased := s.counts(testLicense); leased == 0 {
		t.Fatal("no block was granted")
	}
	before := metricNow(blocksReturned)
	tb.sweep(now.Add(blockIdle - time.Millisecond))
	if s.returns.Load() != 0 {
		t.Fatal("a block was returned before it idled")
	}
	tb.sweep(now.Add(blockIdle))
	used, leased := s.counts(testLicense)
	if used != served || leased != 0 {
		t.Errorf("after the idle return the store holds used %d, leased %d; want %d and 0", used, leased, served)
	}
	if got := metricNow(blocksReturned) - before; got != 1 {
		t.Errorf("licensegate_blocks_returned_total rose by %v, want 1", got)
	}
	// Forgotten once idle long enough, so the table stays bounded: each
	// sweep looks at one shard of blockForgetEvery.
	for range blockForgetEvery {
		tb.sweep(now.Add(blockEntryIdle))
	}
	if n := tb.count.Load(); n != 0 {
		t.Errorf("%d licenses still tracked", n)
	}
}

func TestAFullyServedBlockIdleIsEndedWithNothingUnused(t *testing.T) {
	s := newBlockStore()
	tb := newTestTable(t, s)
	now := time.Unix(1_000_000, 0)
	a := chargeAsk{key: testLicense, cost: 1, limit: 1 << 40, now: now}
	block := serveFirstBlock(t, tb, s, a)
	used, leased := s.counts(testLicense)
	tb.sweep(now.Add(blockIdle))
	used2, leased2 := s.counts(testLicense)
	if leased != block || leased2 != 0 || used2 != used {
		t.Errorf("leased %d → %d, used %d → %d; want the block's %d ended with nothing unused", leased, leased2, used, used2, block)
	}
}

func TestRefundsGoBackToTheirLiveBlockOnly(t *testing.T) {
	s := newBlockStore()
	tb := newTestTable(t, s)
	now := time.Unix(1_000_000, 0)
	a := chargeAsk{key: testLicense, cost: 1, limit: 1 << 40, now: now}
	var served blockPlan
	for !served.served {
		_, _, served = request(t, tb, s, a)
	}
	if !tb.refund(testLicense, served.gen, 1) {
		t.Fatal("a refund to the live block was refused")
	}
	if tb.refund(testLicense, served.gen, 1<<20) {
		t.Error("a refund beyond the block's size was taken")
	}
	if tb.refund(testLicense, served.gen+1, 1) {
		t.Error("a refund to another generation was taken")
	}
	tb.sweep(now.Add(blockIdle))
	if tb.refund(testLicense, served.gen, 1) {
		t.Error("a refund to a returned block was taken")
	}
}

func TestACreditsChangeOrARevocationDropsTheBlock(t *testing.T) {
	for _, tc := range []struct {
		name string
		drop func(tb *blockTable, s *blockStore)
	}{
		{"a credits change another gateway made", func(tb *blockTable, s *blockStore) {
			s.changed(testLicense)
			tb.pending.Wait()
		}},
		{"the admin API's own change", func(tb *blockTable, _ *blockStore) { tb.drop(context.Background(), testLicense) }},
		{"a revocation the sweeper sees", func(tb *blockTable, s *blockStore) {
			s.mu.Lock()
			s.revoked[testLicense] = true
			s.mu.Unlock()
			// The sweeper asks the revocations every blockRevokedEvery
			// sweeps.
			for range blockRevokedEvery {
				tb.sweep(time.Unix(1_000_000, 0))
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newBlockStore()
			tb := newTestTable(t, s)
			tb.start()
			defer tb.close(time.Second)
			a := chargeAsk{key: testLicense, cost: 1, limit: 1 << 40, now: time.Unix(1_000_000, 0)}
			n := int64(0)
			for {
				request(t, tb, s, a)
				n++
				if _, leased := s.counts(testLicense); leased > 0 {
					break
				}
			}
			tc.drop(tb, s)
			used, leased := s.counts(testLicense)
			if used != n || leased != 0 {
				t.Errorf("after the drop the store holds used %d, leased %d; want %d and 0", used, leased, n)
			}
		})
	}
}

func TestASeatConfirmedLatelyIsNotRefreshed(t *testing.T) {
	s := newBlockStore()
	tb := newTestTable(t, s)
	now := time.Unix(1_000_000, 0)
	fresh := min(maxSeatFresh, 2*time.Second/4)
	a := chargeAsk{key: testLicense, cost: 0, limit: -1, seats: 2, hw: "dev-a", fresh: fresh, now: now}
	for _, step := range []struct {
		name  string
		at    time.Duration
		hw    string
		store bool
	}{
		{"a new device goes to the store", 0, "dev-a", true},
		{"the same device just after does not", fresh / 2, "dev-a", false},
		{"another device goes to the store", fresh / 2, "dev-b", true},
		{"the first device once stale does", fresh, "dev-a", true},
		{"and is fresh again after", fresh + time.Millisecond, "dev-a", false},
	} {
		a.now, a.hw = now.Add(step.at), step.hw
		ok, trip, _ := request(t, tb, s, a)
		if !ok || trip != step.store {
			t.Errorf("%s: allowed %v, round trip %v", step.name, ok, trip)
		}
	}
}

func TestAFullTableChargesNewLicensesPerRequest(t *testing.T) {
	s := newBlockStore()
	tb := newTestTable(t, s)
	tb.max = 1
	now := time.Unix(1_000_000, 0)
	other := policy.LicenseKey{Issuer: "https://iss", Key: "lic-2"}
	request(t, tb, s, chargeAsk{key: testLicense, cost: 1, limit: 100, now: now})
	for range 50 {
		_, trip, plan := request(t, tb, s, chargeAsk{key: other, cost: 1, limit: 1 << 40, seats: 1, hw: "d", fresh: time.Second, now: now})
		if !trip || plan.ask != 0 {
			t.Fatalf("a license beyond the table's room: round trip %v, asked %d", trip, plan.ask)
		}
	}
}

func TestAChargeThatNeverReachedTheStoreKeepsTheEndedBlock(t *testing.T) {
	s := newBlockStore()
	tb := newTestTable(t, s)
	now := time.Unix(1_000_000, 0)
	a := chargeAsk{key: testLicense, cost: 1, limit: 1 << 40, now: now}
	block := firstBlock(t, tb, s, a)
	for range block {
		request(t, tb, s, a)
	}
	plan := tb.begin(&a)
	if plan.end != block || plan.ask == 0 {
		t.Fatalf("plan %+v, want a reservation ending %d", plan, block)
	}
	tb.finish(&a, plan, policy.Result{}, errors.Join(policy.ErrStore, policy.ErrNotSent), false)
	if again := tb.begin(&a); again.end != block {
		t.Errorf("the next reservation ends %d, want %d again", again.end, block)
	}
}

func TestBlocksNeverServeMoreThanTheCreditsUnderConcurrency(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int64
		cost  int64
	}{
		{"a budget much larger than the load", 1 << 40, 1},
		{"a budget the load spends", 20000, 1},
		{"a budget the load spends at cost 3", 30001, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newBlockStore()
			// Three gateways on one store.
			tables := []*blockTable{newTestTable(t, s), newTestTable(t, s), newTestTable(t, s)}
			now := time.Unix(1_000_000, 0)
			var served atomic.Int64
			var wg sync.WaitGroup
			for g := range 24 {
				tb := tables[g%len(tables)]
				wg.Add(1)
				go func() {
					defer wg.Done()
					a := chargeAsk{key: testLicense, cost: tc.cost, limit: tc.limit, now: now}
					for i := range 1500 {
						a.now = now.Add(time.Duration(i) * time.Millisecond)
						if ok, _, p := request(t, tb, s, a); ok {
							served.Add(tc.cost)
							if i%7 == 0 && p.served && tb.refund(a.key, p.gen, tc.cost) {
								served.Add(-tc.cost)
							}
						}
					}
				}()
			}
			wg.Wait()
			for _, tb := range tables {
				tb.close(time.Second)
			}
			used, leased := s.counts(testLicense)
			if used != served.Load() || leased != 0 {
				t.Errorf("store used %d, leased %d; served %d", used, leased, served.Load())
			}
			if used > tc.limit {
				t.Errorf("served %d of %d credits", used, tc.limit)
			}
			if tc.limit > 24*1500*tc.cost {
				return
			}
			// What the blocks held came back: the rest of the budget is
			// there to the last credit.
			for {
				res, _ := s.Charge(context.Background(), &policy.Charge{Key: testLicense, Cost: tc.cost, Limit: tc.limit})
				if res.Outcome != policy.Allowed {
					break
				}
				served.Add(tc.cost)
			}
			if got, want := served.Load(), tc.limit-tc.limit%tc.cost; got != want {
				t.Errorf("served %d credits in all, want %d", got, want)
			}
		})
	}
}

// The rest of policy.Counters, for a gate in front of a blockStore.

func (s *blockStore) Refund(_ context.Context, key policy.LicenseKey, cost int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used[key] -= cost
	return nil
}

func (s *blockStore) Undo(_ context.Context, u *policy.Undo) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.undos = append(s.undos, *u)
	if u.Ran {
		s.used[u.Key] -= u.Cost
	}
	return nil
}

func (s *blockStore) Revoke(_ context.Context, key policy.LicenseKey, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[key] = true
	return nil
}

func (s *blockStore) Unrevoke(_ context.Context, key policy.LicenseKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.revoked, key)
	return nil
}

func (s *blockStore) Usage(_ context.Context, key policy.LicenseKey, _ time.Time) (policy.Usage, error) {
	used, leased := s.counts(key)
	return policy.Usage{Key: key.Key, Used: used - leased, Leased: leased}, nil
}

func (s *blockStore) AdjustCredits(_ context.Context, key policy.LicenseKey, add int64, _ bool, _ time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used[key] -= add
	return s.used[key], nil
}

func TestAReturnBeyondMaxBlockGoesInSeveral(t *testing.T) {
	s := newBlockStore()
	tb := newTestTable(t, s)
	s.used[testLicense], s.leased[testLicense] = 3*policy.MaxBlock, 3*policy.MaxBlock
	tb.send(context.Background(), testLicense, blockReturn{size: 2*policy.MaxBlock + 5, unused: 7})
	used, leased := s.counts(testLicense)
	if n := s.returns.Load(); n != 3 || used != 3*policy.MaxBlock-7 || leased != policy.MaxBlock-5 {
		t.Errorf("%d returns left used %d, leased %d", n, used, leased)
	}
}

func TestARefusedBlockIsAskedSmallerThenAgainInFull(t *testing.T) {
	s := newBlockStore()
	tb := newTestTable(t, s)
	now := time.Unix(1_000_000, 0)
	// Other gateways' blocks leave too little for any block.
	a := chargeAsk{key: testLicense, cost: 1, limit: 100_000, now: now}
	for range 10 {
		request(t, tb, s, a)
	}
	s.mu.Lock()
	s.leased[testLicense] += 9100
	s.used[testLicense] += 9100
	s.mu.Unlock()
	var asks []int64
	for range 400 {
		if _, _, p := request(t, tb, s, a); p.ask > 0 {
			asks = append(asks, p.ask)
		}
	}
	if len(asks) < 2 || len(asks) > 20 {
		t.Fatalf("asks %v: want each refusal to halve the next, down to none", asks)
	}
	for i := 1; i < len(asks); i++ {
		if asks[i] > asks[i-1]/2 {
			t.Fatalf("asks %v: want each refusal to halve the next", asks)
		}
	}
	// Once the other gateway's block went back, a refusal no longer
	// holds the size down.
	s.mu.Lock()
	s.leased[testLicense] -= 9100
	s.used[testLicense] -= 9100
	s.mu.Unlock()
	a.now = now.Add(blockIdle)
	for range 200 {
		request(t, tb, s, a)
	}
	if _, leased := s.counts(testLicense); leased < 100 {
		t.Errorf("leased %d after the refusals lapsed, want a full block", leased)
	}
}

func TestIdleBlocksGoBackInOnePipelinePerSweepAndAFailedReturnStrandsItsBlockOnce(t *testing.T) {
	s := newBlockStore()
	tb := newTestTable(t, s)
	now := time.Unix(1_000_000, 0)
	const licenses = 50
	key := func(i int) policy.LicenseKey {
		return policy.LicenseKey{Issuer: "https://iss", Key: "lic-" + strconv.Itoa(i)}
	}
	failing := key(7)
	s.failReturn = map[policy.LicenseKey]bool{failing: true}
	served := map[policy.LicenseKey]int64{}
	for i := range licenses {
		a := chargeAsk{key: key(i), cost: 1, limit: 1 << 40, now: now}
		for range 3 {
			if ok, _, _ := request(t, tb, s, a); ok {
				served[a.key]++
			}
		}
		if _, leased := s.counts(a.key); leased == 0 {
			t.Fatalf("license %d holds no block", i)
		}
	}
	_, failedLeased := s.counts(failing)
	strandedBefore := metricNow(blockCreditsStranded)
	tb.sweep(now.Add(blockIdle))
	if b, r := s.batches.Load(), s.returns.Load(); b != 1 || r != licenses-1 {
		t.Fatalf("%d round trips returned %d blocks; want 1 returning %d", b, r, licenses-1)
	}
	unused := failedLeased - 1 // the block served one request of the three
	for k, n := range served {
		used, leased := s.counts(k)
		switch {
		case k == failing && (leased != failedLeased || used != n+unused):
			t.Errorf("the failed return's license: used %d, leased %d; want its block stranded, %d", used, leased, failedLeased)
		case k != failing && (used != n || leased != 0):
			t.Errorf("%s: used %d, leased %d; want %d and 0", k.Key, used, leased, n)
		}
	}
	if got := metricNow(blockCreditsStranded) - strandedBefore; got != float64(unused) {
		t.Errorf("licensegate_block_credits_stranded_total rose by %v, want %d", got, unused)
	}
	// Never sent again: it may have run.
	tb.sweep(now.Add(2 * blockIdle))
	tb.close(time.Second)
	if b, r := s.batches.Load(), s.returns.Load(); b != 1 || r != licenses-1 {
		t.Errorf("after another sweep and close: %d round trips, %d returns; want the failed one not retried", b, r)
	}
}

func TestTheCreditsUsedShownNeverFallBehindWhatWasServed(t *testing.T) {
	// Two charges in flight at once: one asks a block, the other is
	// charged alone. The store runs them in one order, their replies come
	// back in either; a request then served from the block must show every
	// credit served so far.
	for _, tt := range []struct {
		name            string
		plainFirst      bool // the plain charge runs in the store before the grant
		grantReplyFirst bool
	}{
		{"the plain charge runs first and its reply comes last", true, true},
		{"the plain charge runs last and its reply comes first", false, false},
		{"the plain charge runs first and its reply comes first", true, false},
		{"the plain charge runs last and its reply comes last", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newBlockStore()
			tb := newTestTable(t, s)
			now := time.Unix(1_000_000, 0)
			a := chargeAsk{key: testLicense, cost: 1, limit: 1 << 40, now: now}
			// Requests charged alone until the next one would ask a block.
			served := int64(0)
			for {
				ask := a
				plan := tb.begin(&ask)
				if plan.served {
					t.Fatal("served from a block before any was granted")
				}
				c := policy.Charge{Key: a.key, Cost: a.cost, Limit: a.limit, Block: plan.ask, EndBlock: plan.end}
				if plan.ask > 0 {
					// In flight with a plain charge.
					other := a
					otherPlan := tb.begin(&other)
					if otherPlan.served || otherPlan.ask > 0 {
						t.Fatalf("a second request during the reservation: %+v", otherPlan)
					}
					oc := policy.Charge{Key: a.key, Cost: a.cost, Limit: a.limit}
					var grant, plain policy.Result
					if tt.plainFirst {
						plain, _ = s.Charge(context.Background(), &oc)
						grant, _ = s.Charge(context.Background(), &c)
					} else {
						grant, _ = s.Charge(context.Background(), &c)
						plain, _ = s.Charge(context.Background(), &oc)
					}
					if grant.Block == 0 {
						t.Fatal("no block granted")
					}
					var shown [2]int64
					if tt.grantReplyFirst {
						shown[0] = tb.finish(&ask, plan, grant, nil, true)
						shown[1] = tb.finish(&other, otherPlan, plain, nil, true)
					} else {
						shown[1] = tb.finish(&other, otherPlan, plain, nil, true)
						shown[0] = tb.finish(&ask, plan, grant, nil, true)
					}
					// Each reply shows at least its own request; at most
					// both, and the block when its reply is not in yet
					// (credits in blocks count as used).
					for i, u := range shown {
						if u < served+1 || u > served+2+grant.Block {
							t.Errorf("reply %d shows %d credits used, want %d to %d", i, u, served+1, served+2+grant.Block)
						}
					}
					served += 2
					break
				}
				res, err := s.Charge(context.Background(), &c)
				tb.finish(&ask, plan, res, err, true)
				served++
			}
			next := a
			p := tb.begin(&next)
			if !p.served {
				t.Fatal("not served from the block")
			}
			served++
			if p.used != served {
				t.Errorf("the headers show %d credits used after %d served", p.used, served)
			}
			// An idle return gives the unused credits back: the figure
			// stays exact after it.
			tb.sweep(now.Add(blockIdle))
			used, _ := s.counts(testLicense)
			after := a
			after.now = now.Add(blockIdle)
			if _, _, p := request(t, tb, s, after); p.served || used != served {
				t.Errorf("after the return the store holds %d used (want %d)", used, served)
			}
		})
	}
}

func TestTheSweeperReturnsAnEndedBlockKeptAfterAChargeThatNeverLeft(t *testing.T) {
	// A fully served block is ended by the next reservation; when that
	// charge surely never reached the store, the table keeps the ended
	// block, and the sweeper, which visits only the licenses holding one,
	// must still return it, even after sweeps that ran while the
	// reservation was in flight.
	s := newBlockStore()
	tb := newTestTable(t, s)
	now := time.Unix(1_000_000, 0)
	a := chargeAsk{key: testLicense, cost: 1, limit: 1 << 40, now: now}
	block := serveFirstBlock(t, tb, s, a)
	p := tb.begin(&a)
	if p.served || p.ask == 0 || p.end != block {
		t.Fatalf("the request after the block: %+v; want a new block asked and %d ended", p, block)
	}
	for range blockForgetEvery {
		tb.sweep(now.Add(blockEntryIdle))
	}
	tb.finish(&a, p, policy.Result{}, errors.New("never sent"), false)
	if _, leased := s.counts(testLicense); leased != block {
		t.Fatalf("leased %d before the sweep, want the ended block, %d", leased, block)
	}
	tb.sweep(now.Add(blockIdle))
	if _, leased := s.counts(testLicense); leased != 0 {
		t.Errorf("after the idle sweep the store holds leased %d, want 0", leased)
	}
}

func TestTheSweeperVisitsTheLicensesHoldingABlockAndGivesTheirListBack(t *testing.T) {
	s := newBlockStore()
	tb := newTestTable(t, s)
	tb.startOnce.Do(func() {}) // no background sweeper: the test reads the lists
	now := time.Unix(1_000_000, 0)
	const licenses = 20000
	for i := range licenses {
		a := chargeAsk{key: policy.LicenseKey{Issuer: "https://iss", Key: "lic-" + strconv.Itoa(i)}, cost: 1, limit: 1 << 40, now: now}
		for range 3 {
			request(t, tb, s, a)
		}
	}
	// A license seen once holds no block and is not listed.
	quiet := chargeAsk{key: policy.LicenseKey{Issuer: "https://iss", Key: "quiet"}, cost: 1, limit: 1 << 40, now: now}
	request(t, tb, s, quiet)
	listed, capacity := 0, 0
	for i := range tb.shards {
		listed += len(tb.shards[i].live)
	}
	if listed != licenses {
		t.Fatalf("%d licenses listed, want the %d holding a block", listed, licenses)
	}
	tb.sweep(now.Add(blockIdle))
	listed = 0
	for i := range tb.shards {
		listed += len(tb.shards[i].live)
		capacity += cap(tb.shards[i].live)
	}
	if r := s.returns.Load(); r != licenses || listed != 0 {
		t.Fatalf("after the idle sweep: %d returns, %d still listed; want %d and 0", r, listed, licenses)
	}
	if capacity > licenses/4 {
		t.Errorf("the emptied lists keep room for %d entries", capacity)
	}
	if n := tb.count.Load(); n != licenses+1 {
		t.Errorf("%d licenses tracked before they idled out, want %d", n, licenses+1)
	}
}

func TestARefusalForCreditsRecallsTheOtherGatewaysBlocks(t *testing.T) {
	s := newBlockStore()
	holder, other := newTestTable(t, s), newTestTable(t, s)
	now := time.Unix(1_000_000, 0)
	const limit = 1000
	a := chargeAsk{key: testLicense, cost: 1, limit: limit, now: now}
	block := firstBlock(t, holder, s, a)
	if used, leased := s.counts(testLicense); leased != block {
		t.Fatalf("the holder asked a block of %d; the store holds used %d, leased %d", block, used, leased)
	}
	// The other gateway charges all that is left unreserved, then is
	// refused: what is left sits in the holder's block, which no sweep
	// returns (the clock stands still) and no request of the holder ends.
	used, _ := s.counts(testLicense)
	b := a
	b.cost = limit - used
	if ok, _, _ := request(t, other, s, b); !ok {
		t.Fatal("the last unreserved credits were refused")
	}
	b.cost = 1
	for i := range 3 {
		b.now = now.Add(time.Duration(i) * blockRecallEvery / 4)
		if ok, _, _ := request(t, other, s, b); ok {
			t.Fatal("a request was served beyond the credits")
		}
	}
	other.pending.Wait()
	if n := s.recalls.Load(); n != 1 {
		t.Errorf("%d recalls for three refusals within %v, want 1", n, blockRecallEvery)
	}
	s.deliverRecalls()
	other.pending.Wait()
	holder.pending.Wait()
	if used, leased := s.counts(testLicense); leased != 0 || used != limit-block {
		t.Fatalf("after the recall the store holds used %d, leased %d; want %d, 0", used, leased, limit-block)
	}
	// The block's credits are back: the refused client's retry is served,
	// and so is every credit, none twice.
	served := 0
	for {
		b.now = b.now.Add(time.Millisecond)
		ok, _, _ := request(t, other, s, b)
		if !ok {
			break
		}
		served++
	}
	if served != int(block) {
		t.Errorf("served %d after the recall, want the block's %d", served, block)
	}
	// Refused with nothing in blocks (the other gateway's own blocks of
	// the last stretch, served out, ended in its charges): no recall.
	other.pending.Wait()
	if _, leased := s.counts(testLicense); leased != 0 {
		t.Fatalf("leased %d once every credit was served", leased)
	}
	b.now = b.now.Add(blockRecallEvery)
	if ok, _, _ := request(t, other, s, b); ok {
		t.Fatal("a request was served beyond the credits")
	}
	other.pending.Wait()
	if n := s.recalls.Load(); n != 1 {
		t.Errorf("%d recalls, want still 1: no block held any credits", n)
	}
}

func TestABlockGrantedWhileItsLicenseWasRecalledGoesBackAtOnce(t *testing.T) {
	s := newBlockStore()
	tb := newTestTable(t, s)
	now := time.Unix(1_000_000, 0)
	a := chargeAsk{key: testLicense, cost: 1, limit: 1 << 40, now: now}
	request(t, tb, s, a) // the first request is charged alone
	a.now = now.Add(time.Millisecond)
	plan := tb.begin(&a)
	if plan.ask == 0 {
		t.Fatal("the second request asked no block")
	}
	// The reservation is in flight when the recall (or a credits change)
	// arrives; its reply, with the block granted, comes after.
	c := policy.Charge{Key: a.key, Cost: a.cost, Limit: a.limit, Block: plan.ask, EndBlock: plan.end}
	res, err := s.Charge(context.Background(), &c)
	if err != nil || res.Block != plan.ask {
		t.Fatalf("charge: %+v, %v", res, err)
	}
	s.changed(testLicense)
	tb.pending.Wait()
	used := tb.finish(&a, plan, res, nil, true)
	tb.pending.Wait()
	if su, leased := s.counts(testLicense); leased != 0 || su != 2 {
		t.Errorf("the store holds used %d, leased %d; want 2, 0: the block went back unused", su, leased)
	}
	if used != 2 {
		t.Errorf("the credits used shown are %d, want 2", used)
	}
	if _, trip, _ := request(t, tb, s, a); !trip {
		t.Error("a request was served from a block given back")
	}
}

// A license whose key hash another license's entry holds (forced here
// through chargeAsk.hash; a real pair is 2⁻⁶⁴) is charged in the store
// per request, exactly, while the other keeps its block.
func TestALicenseWhoseKeyHashIsTakenIsChargedPerRequest(t *testing.T) {
	s := newBlockStore()
	tb := newTestTable(t, s)
	now := time.Unix(1_000_000, 0)
	other := policy.LicenseKey{Issuer: testLicense.Issuer, Key: "other"}
	a := chargeAsk{key: testLicense, hash: 42, cost: 1, limit: 1 << 40, now: now}
	b := chargeAsk{key: other, hash: 42, cost: 1, limit: 1 << 40, now: now}
	tripsA, tripsB := 0, 0
	for i := range 1000 {
		a.now = now.Add(time.Duration(i) * time.Millisecond)
		b.now = a.now
		for _, c := range []struct {
			ask   chargeAsk
			trips *int
		}{{a, &tripsA}, {b, &tripsB}} {
			ok, trip, _ := request(t, tb, s, c.ask)
			if !ok {
				t.Fatalf("request %d of %s refused", i, c.ask.key.Key)
			}
			if trip {
				*c.trips++
			}
		}
	}
	if tripsA*50 > 1000 || tripsB != 1000 {
		t.Errorf("store round trips: %d for the first license, %d for the other; want at most 20 and 1000", tripsA, tripsB)
	}
	tb.close(time.Second)
	for _, key := range []policy.LicenseKey{testLicense, other} {
		if used, leased := s.counts(key); used != 1000 || leased != 0 {
			t.Errorf("%s: the store holds used %d, leased %d; want 1000 and 0", key.Key, used, leased)
		}
	}
}

package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/policy"
)

func TestTheChargeScriptGrantsExactlyByBlockGrantable(t *testing.T) {
	srv := testredis.Start(t)
	s := newStore(t, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second})
	raw := rawClient(t, srv.Addr())
	ctx := context.Background()
	now := time.Now()
	const big = policy.MaxCredits
	for i, tc := range []struct {
		name                             string
		limit, used, leased, cost, block int64
		grant                            bool
	}{
		{"ten times the block left after it grants", 1100, 0, 0, 0, 100, true},
		{"one credit less refuses", 1099, 0, 0, 0, 100, false},
		{"the charge's cost counts before the block", 1100, 0, 0, 1, 100, false},
		{"credits used count", 1200, 100, 0, 0, 100, true},
		{"credits used count, one more refuses", 1200, 101, 0, 0, 100, false},
		{"leased credits count ten times", 2100, 0, 100, 0, 100, true},
		{"leased credits count ten times, one more refuses", 2100, 0, 101, 0, 100, false},
		{"rounding down the tenth refuses", 1109, 0, 0, 0, 101, false},
		{"a block of one needs eleven credits", 11, 0, 0, 0, 1, true},
		{"a block of one with ten credits is refused", 10, 0, 0, 0, 1, false},
		{"a top up counts as credits left", 100, -1000, 0, 0, 100, true},
		{"MaxBlock is granted", big, 0, 0, 0, policy.MaxBlock, true},
		{"beyond MaxBlock is refused", big, 0, 0, 0, policy.MaxBlock + 1, false},
		{"a huge budget beyond 2^53 grants", big, -(1 << 61), 1 << 40, 1, policy.MaxBlock, true},
		{"nothing left refuses", 100, 99, 0, 1, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := policy.BlockGrantable(tc.limit-tc.used-tc.cost, tc.leased, tc.block); got != tc.grant {
				t.Fatalf("policy.BlockGrantable = %v, the table says %v", got, tc.grant)
			}
			key := lk("grant-" + strconv.Itoa(i))
			k := s.keys(key)
			raw.Set(ctx, k[0], tc.used, 0)
			if tc.leased > 0 {
				raw.Set(ctx, k[6], tc.leased, 0)
			}
			r, err := s.Charge(ctx, &policy.Charge{Key: key, Cost: tc.cost, Limit: tc.limit, Block: tc.block,
				Now: now, Expires: now.Add(time.Hour)})
			if err != nil || r.Outcome != policy.Allowed {
				t.Fatalf("Charge = %+v, %v", r, err)
			}
			want, wantUsed, wantLeased := int64(0), tc.used+tc.cost, tc.leased
			if tc.grant {
				want, wantUsed, wantLeased = tc.block, wantUsed+tc.block, wantLeased+tc.block
			}
			if r.Block != want || r.Used != wantUsed {
				t.Fatalf("Charge = block %d used %d, want block %d used %d", r.Block, r.Used, want, wantUsed)
			}
			leased, _ := raw.Get(ctx, k[6]).Int64()
			if leased != wantLeased {
				t.Fatalf("leased = %d, want %d", leased, wantLeased)
			}
		})
	}
}

func TestALicenseWithoutBlocksKeepsNoLeasedKey(t *testing.T) {
	srv := testredis.Start(t)
	s := newStore(t, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second})
	raw := rawClient(t, srv.Addr())
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	key := lk("no-leased")
	leasedKey := s.keys(key)[6]
	charge := func(c policy.Charge) policy.Result {
		t.Helper()
		c.Key, c.Now, c.Expires = key, now, now.Add(time.Hour)
		r, err := s.Charge(ctx, &c)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	exists := func() bool {
		n, err := raw.Exists(ctx, leasedKey).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	charge(block(1, 100, 50, 0)) // refused: too large
	if exists() {
		t.Fatal("a refused block created the leased key")
	}
	if r := charge(block(1, 1000, 20, 0)); r.Block != 20 {
		t.Fatalf("Block = %d, want 20", r.Block)
	}
	if ms, _ := raw.Do(ctx, "pexpiretime", leasedKey).Int64(); ms != now.Add(time.Hour).UnixMilli() {
		t.Fatalf("the leased key expires at %d, want the token's expiry %d", ms, now.Add(time.Hour).UnixMilli())
	}
	charge(block(1, 1000, 0, 20))
	if exists() {
		t.Fatal("the leased key outlived the last block")
	}
}

func TestCreditMessagesCarryTheWholeLicenseAndRevocationParsingSkipsThem(t *testing.T) {
	for _, k := range []policy.LicenseKey{
		{},
		{Key: "lic-1"},
		{Issuer: "https://iss.example", Key: "k y"},
		{Issuer: "12 x", Key: "credits 3 abc"},
		{Issuer: hostileKeys["a NUL and newlines"], Key: hostileKeys["10 KB of unicode"]},
	} {
		msg := creditsMessage(k)
		got, ok := parseCredits(msg)
		if !ok || got != k {
			t.Errorf("parseCredits(creditsMessage(%.30q)) = %.30q, %v", k, got, ok)
		}
		if _, _, ok := parseRevocation(msg); ok {
			t.Errorf("parseRevocation read the credits message %.40q", msg)
		}
	}
	for _, msg := range []string{
		"", "credits", "credits ", "credits x abc", "credits -1 abc", "credits 4 abc", "credits 01 ab",
		"1700000000000 " + Tag(lk("x")), "0 " + Tag(lk("x")) + " origin", "Credits 1 ab",
	} {
		if k, ok := parseCredits(msg); ok {
			t.Errorf("parseCredits(%q) = %+v, want it refused", msg, k)
		}
	}
}

// numSub is how many subscribers the revocation channel has on addrs
// (summed over a Cluster's nodes).
func numSub(t *testing.T, addrs []string) int {
	t.Helper()
	n := 0
	for _, a := range addrs {
		reply, err := testredis.Command(a, "pubsub", "numsub", DefaultPrefix+revocationsName)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(reply, "\n")
		c, _ := strconv.Atoi(strings.TrimSpace(lines[len(lines)-1]))
		n += c
	}
	return n
}

// creditLog collects what a WatchCredits delivers.
type creditLog struct {
	mu   sync.Mutex
	keys []policy.LicenseKey
}

func (l *creditLog) add(k policy.LicenseKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keys = append(l.keys, k)
}

func (l *creditLog) has(k policy.LicenseKey) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, got := range l.keys {
		if got == k {
			return true
		}
	}
	return false
}

func TestWatchCreditsDeliversEveryGatewaysTopUpsResetsAndRecalls(t *testing.T) {
	for _, tc := range []struct {
		name  string
		addrs func(t *testing.T) []string
	}{
		{"one node", func(t *testing.T) []string { return []string{testredis.Start(t).Addr()} }},
		{"Cluster", func(t *testing.T) []string { return testredis.StartCluster(t, 3) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addrs := tc.addrs(t)
			o := Options{Addresses: addrs, Timeout: 5 * time.Second}
			adjuster, watcher := newStore(t, o), newStore(t, o)
			var own, other creditLog
			stopOwn := adjuster.WatchCredits(own.add)
			defer stopOwn()
			watcher.WatchCredits(other.add) // stopped by Close
			waitUntil(t, "both watches to subscribe", func() bool { return numSub(t, addrs) == 2 })

			ctx := context.Background()
			topUp := policy.LicenseKey{Issuer: "https://iss.example", Key: "top up " + tc.name}
			reset := policy.LicenseKey{Issuer: "https://other.example", Key: hostileKeys["braces reversed"]}
			if _, err := adjuster.AdjustCredits(ctx, topUp, 10, false, time.Time{}); err != nil {
				t.Fatal(err)
			}
			if _, err := adjuster.AdjustCredits(ctx, reset, 0, true, time.Time{}); err != nil {
				t.Fatal(err)
			}
			recalled := policy.LicenseKey{Issuer: "https://iss.example", Key: "recalled " + tc.name}
			if err := adjuster.RecallBlocks(ctx, recalled); err != nil {
				t.Fatal(err)
			}
			for _, k := range []policy.LicenseKey{topUp, reset, recalled} {
				waitUntil(t, fmt.Sprintf("the other gateway to learn of %q", k.Key), func() bool { return other.has(k) })
				waitUntil(t, fmt.Sprintf("the adjusting gateway to learn of %q", k.Key), func() bool { return own.has(k) })
			}
			// A revocation on the same channel is no credit change.
			if err := adjuster.Revoke(ctx, lk("revoked"), time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			stopOwn()
			stopOwn() // twice is harmless
			waitUntil(t, "the stopped watch to unsubscribe", func() bool { return numSub(t, addrs) == 1 })
			if other.has(lk("revoked")) {
				t.Fatal("a revocation was delivered as a credit change")
			}
		})
	}
}

func TestCloseStopsTheCreditWatches(t *testing.T) {
	srv := testredis.Start(t)
	s, err := New(Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var log creditLog
	stop := s.WatchCredits(log.add)
	s.WatchCredits(log.add)
	waitUntil(t, "the watches to subscribe", func() bool { return numSub(t, []string{srv.Addr()}) == 2 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	stop() // after Close: returns at once
	waitUntil(t, "the watches to unsubscribe", func() bool { return numSub(t, []string{srv.Addr()}) == 0 })
}

// gateway is one gateway of TestBlocksStayExactAcrossGatewaysUnderLoad:
// it serves a license's requests from its block while it has one, and asks
// the store otherwise.
type gateway struct {
	s            *Store
	size, unused int64 // the block held (size 0: none)
	served       int64
}

func TestBlocksStayExactAcrossGatewaysUnderLoad(t *testing.T) {
	srv := testredis.Start(t)
	stores := make([]*Store, 3)
	for i := range stores {
		stores[i] = newStore(t, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second})
	}
	const (
		limit    = 6000
		perStore = 6 // gateways (goroutines) per Store instance
		want     = 25
	)
	key := lk("blocks-under-load")
	ctx := context.Background()
	now := time.Now()
	var voided, grants, returns, ended, ids atomic.Int64
	gateways := make([]*gateway, 0, len(stores)*perStore)
	var wg sync.WaitGroup
	for i := range cap(gateways) {
		g := &gateway{s: stores[i%len(stores)]}
		gateways = append(gateways, g)
		wg.Go(func() {
			for n := 0; ; n++ {
				if i%2 == 1 && g.unused > 0 && n%23 == 22 {
					// As if the block idled: what is left goes back.
					// (Even gateways serve their blocks whole and end
					// them with their next charge.)
					if err := g.s.ReturnBlock(ctx, key, g.size, g.unused); err != nil {
						t.Error(err)
						return
					}
					returns.Add(1)
					g.size, g.unused = 0, 0
				}
				if g.unused > 0 { // served in process
					g.unused--
					g.served++
					continue
				}
				c := policy.Charge{Key: key, Cost: 1, Limit: limit, Block: want, EndBlock: g.size,
					Request: strconv.FormatInt(ids.Add(1), 10), Now: now, Expires: now.Add(time.Hour)}
				r, err := g.s.Charge(ctx, &c)
				if err != nil {
					t.Error(err)
					return
				}
				if g.size > 0 {
					ended.Add(1)
				}
				g.size = 0
				if n%17 == 16 && r.Outcome == policy.Allowed {
					// As if the reply were lost: the request is not
					// served, and the void takes back whatever it got.
					err := g.s.Undo(ctx, &policy.Undo{Key: key, Request: c.Request, Cost: c.Cost, Block: c.Block, Now: now})
					if err != nil {
						t.Error(err)
						return
					}
					voided.Add(1)
					continue
				}
				if r.Outcome != policy.Allowed {
					return // nothing left unreserved, and no block here
				}
				g.served++
				if r.Block > 0 {
					grants.Add(1)
					g.size, g.unused = r.Block, r.Block
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	var served int64
	for _, g := range gateways {
		served += g.served
		if g.size > 0 {
			if err := g.s.ReturnBlock(ctx, key, g.size, g.unused); err != nil {
				t.Fatal(err)
			}
		}
	}
	u, err := stores[0].Usage(ctx, key, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("served %d of %d credits; %d blocks granted, %d returned early, %d ended served, %d charges voided",
		served, limit, grants.Load(), returns.Load(), ended.Load(), voided.Load())
	if served > limit {
		t.Fatalf("served %d, more than the %d credits", served, limit)
	}
	if u.Used != served || u.Leased != 0 {
		t.Fatalf("Usage = used %d, leased %d after every block ended; want used %d (served), leased 0", u.Used, u.Leased, served)
	}
	if grants.Load() == 0 || voided.Load() == 0 || returns.Load() == 0 || ended.Load() == 0 {
		t.Fatalf("%d grants, %d returns, %d ends and %d voids: a path was not exercised",
			grants.Load(), returns.Load(), ended.Load(), voided.Load())
	}
}

func TestDurabilityCoversBlocks(t *testing.T) {
	master := testredis.Start(t)
	replica := testredis.StartReplica(t, master)
	s := newStore(t, Options{Addresses: []string{master.Addr()}, Timeout: 5 * time.Second,
		Replicas: 1, ReplicaTimeout: time.Second})
	ctx := context.Background()
	now := time.Now()
	key := lk("durable-blocks")
	charge := func(id string, end int64) (policy.Result, error) {
		return s.Charge(ctx, &policy.Charge{Key: key, Cost: 1, Limit: 10000, Block: 100, EndBlock: end,
			Expires: now.Add(time.Hour), Now: now, Request: id})
	}
	on := func(srv *testredis.Server) (used, leased string) {
		t.Helper()
		k := s.keys(key)
		used, err1 := srv.Do("GET", k[0])
		leased, err2 := srv.Do("GET", k[6])
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		return used, leased
	}
	if r, err := charge("r1", 0); err != nil || r.Block != 100 {
		t.Fatalf("Charge with the replica up = %+v, %v", r, err)
	}
	if used, leased := on(replica); used != "101" || leased != "100" {
		t.Fatalf("the replica holds used %q, leased %q right after the grant; want 101, 100", used, leased)
	}

	replica.Kill()
	// The first block was served whole; the next charge ends it and is
	// granted another on the master, unacknowledged.
	if _, err := charge("r2", 100); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("Charge without the replica = %v, want ErrNotReplicated", err)
	}
	if used, leased := on(master); used != "202" || leased != "100" {
		t.Fatalf("the master holds used %q, leased %q; want 202, 100", used, leased)
	}
	// The gateway voids it, block and all, until acknowledged.
	undo := &policy.Undo{Key: key, Request: "r2", Cost: 1, Block: 100, Now: now}
	replica.Restart()
	undoUntilAcknowledged(t, s, undo)
	// Used keeps the first block (served) and its charge; the ended
	// block's lease stays ended.
	if used, leased := on(replica); used != "101" || leased != "" {
		t.Fatalf("the replica holds used %q, leased %q after the void; want 101 and no leased key", used, leased)
	}
}

func TestReturnBlocksRunsEachReturnOnceAndAFailedOneStrandsItsBlock(t *testing.T) {
	srv := testredis.Start(t)
	s := newStore(t, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second})
	raw := rawClient(t, srv.Addr())
	ctx := context.Background()
	now := time.Now()
	keys := []policy.LicenseKey{lk("batch-a"), lk("batch-b"), lk("batch-c")}
	for _, k := range keys {
		r, err := s.Charge(ctx, &policy.Charge{Key: k, Cost: 1, Limit: 10000, Block: 100, Now: now, Expires: now.Add(time.Hour)})
		if err != nil || r.Block != 100 {
			t.Fatalf("Charge = %+v, %v; want a block of 100", r, err)
		}
	}
	// b's used key is of the wrong type: its script fails before it
	// changes anything. And the scripts are flushed, so the batch goes
	// through NOSCRIPT and is sent again with EVAL.
	kb := s.keys(keys[1])
	raw.Del(ctx, kb[0])
	raw.RPush(ctx, kb[0], "x")
	if err := raw.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	errs := s.ReturnBlocks(ctx, []policy.BlockReturn{
		{Key: keys[0], Size: 100, Unused: 30},
		{Key: keys[1], Size: 100, Unused: 30},
		{Key: keys[2], Size: 100, Unused: 30},
	})
	if len(errs) != 3 || errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], policy.ErrStore) {
		t.Fatalf("ReturnBlocks = %v; want only b's to fail, as a store error", errs)
	}
	for i, want := range []struct{ used, leased int64 }{{71, 0}, {-1, 100}, {71, 0}} {
		k := s.keys(keys[i])
		leased, _ := raw.Get(ctx, k[6]).Int64()
		if leased != want.leased {
			t.Errorf("%s: leased %d, want %d", keys[i].Key, leased, want.leased)
		}
		if want.used < 0 {
			continue
		}
		// Once each: after NOSCRIPT the return ran by EVAL, not twice.
		if used, _ := raw.Get(ctx, k[0]).Int64(); used != want.used {
			t.Errorf("%s: used %d, want %d", keys[i].Key, used, want.used)
		}
	}
	t.Run("a context already done sends nothing", func(t *testing.T) {
		done, cancel := context.WithCancel(ctx)
		cancel()
		errs := s.ReturnBlocks(done, []policy.BlockReturn{{Key: keys[0], Size: 1, Unused: 1}})
		if len(errs) != 1 || !errors.Is(errs[0], policy.ErrNotSent) {
			t.Fatalf("ReturnBlocks = %v, want not sent", errs)
		}
		if used, _ := raw.Get(ctx, s.keys(keys[0])[0]).Int64(); used != 71 {
			t.Errorf("used %d, want 71", used)
		}
	})
}

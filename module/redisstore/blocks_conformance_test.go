package redisstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/policy"
)

// The block cases of the conformance suite: they run against every store
// that implements policy.Blocks (the Redis store, on one node and on a
// Cluster); the memory store grants nothing (TestTheMemoryStoreGrantsNoBlock).

// blocks is the fixture's store as policy.Blocks.
func (f *fixture) blocks() policy.Blocks {
	f.t.Helper()
	b, ok := f.s.(policy.Blocks)
	if !ok {
		f.t.Fatalf("%T does not implement policy.Blocks", f.s)
	}
	return b
}

// granted charges c and checks the outcome, the store's used (blocks
// included) and the block granted.
func (f *fixture) granted(at time.Duration, c policy.Charge, outcome policy.Outcome, used, block int64) {
	f.t.Helper()
	r := f.charge(at, c)
	if r.Outcome != outcome || r.Used != used || r.Block != block {
		f.t.Fatalf("at +%v Charge(cost %d, limit %d, block %d, end %d) = %s used %d block %d; want %s used %d block %d",
			at, c.Cost, c.Limit, c.Block, c.EndBlock, outcomeName(r.Outcome), r.Used, r.Block,
			outcomeName(outcome), used, block)
	}
}

// held checks Usage's used (blocks apart), leased and left.
func (f *fixture) held(at time.Duration, used, leased, left int64) {
	f.t.Helper()
	u := f.usage(at)
	if u.Used != used || u.Leased != leased || u.Left != left {
		f.t.Fatalf("Usage = used %d, leased %d, left %d; want used %d, leased %d, left %d",
			u.Used, u.Leased, u.Left, used, leased, left)
	}
}

func (f *fixture) returnBlock(size, unused int64) {
	f.t.Helper()
	if err := f.returnOne(size, unused); err != nil {
		f.t.Fatalf("ReturnBlock(%d, %d): %v", size, unused, err)
	}
}

// returnOne ends one block through policy.Blocks.ReturnBlocks.
func (f *fixture) returnOne(size, unused int64) error {
	return f.blocks().ReturnBlocks(context.Background(), []policy.BlockReturn{{Key: f.key, Size: size, Unused: unused}})[0]
}

// block is a Charge of cost against limit asking a block of want credits
// and ending one of end.
func block(cost, limit, want, end int64) policy.Charge {
	return policy.Charge{Cost: cost, Limit: limit, Block: want, EndBlock: end}
}

var blockConformance = []struct {
	name string
	run  func(f *fixture)
}{
	{"a block is granted while ten times all leased credits stay unreserved", func(f *fixture) {
		// 1100 - 1 charged - 99 = 1000 left, 1000/10 ≥ 99.
		f.granted(0, block(1, 1100, 99, 0), policy.Allowed, 100, 99)
		f.held(0, 1, 99, 1000)
		// A second gateway's: 999 - 99 = 900 left, 90 < 99 + 99.
		f.granted(0, block(1, 1100, 99, 0), policy.Allowed, 101, 0)
		// Nor a smaller one: 998 - 9 = 989 left, 98 < 99 + 9.
		f.granted(0, block(1, 1100, 9, 0), policy.Allowed, 102, 0)
		// Once the first block is returned unused, the second can be had.
		f.returnBlock(99, 99)
		f.held(0, 3, 0, 1097)
		f.granted(0, block(1, 1100, 99, 0), policy.Allowed, 103, 99)
	}},
	{"a block is all or nothing", func(f *fixture) {
		// 100 - 1 - 50 = 49 left: 4 < 50, so none of the 50, not a part.
		f.granted(0, block(1, 100, 50, 0), policy.Allowed, 1, 0)
		f.granted(0, block(1, 100, 8, 0), policy.Allowed, 10, 8)
		f.held(0, 2, 8, 90)
	}},
	{"a block larger than MaxBlock is never granted", func(f *fixture) {
		f.granted(0, block(0, policy.MaxCredits, policy.MaxBlock+1, 0), policy.Allowed, 0, 0)
		f.granted(0, block(0, policy.MaxCredits, policy.MaxBlock, 0), policy.Allowed, policy.MaxBlock, policy.MaxBlock)
	}},
	{"a block is never granted without a limit, nor to a refused or duplicate charge", func(f *fixture) {
		f.granted(0, block(1, -1, 10, 0), policy.Allowed, 0, 0)
		f.granted(0, block(5, 4, 10, 0), policy.CreditsExhausted, 0, 0)
		f.undo(0, policy.Undo{Request: "voided", Cost: 1, Block: 10})
		f.granted(0, req("voided", block(1, 1000, 10, 0)), policy.Duplicate, 0, 0)
		f.revoke(f.base.Add(time.Hour))
		f.granted(0, block(1, 1000, 10, 0), policy.Revoked, 0, 0)
		f.held(0, 0, 0, 0) // no limit known either: nothing was charged
	}},
	{"a charge ending a served block drops it from leased, whatever its outcome", func(f *fixture) {
		f.granted(0, block(1, 1000, 20, 0), policy.Allowed, 21, 20)
		f.held(0, 1, 20, 979)
		// The 20 were served: they stay used, and leave leased.
		f.granted(0, block(1, 1000, 0, 20), policy.Allowed, 22, 0)
		f.held(0, 22, 0, 978)
		f.granted(0, block(1, 1000, 30, 0), policy.Allowed, 53, 30)
		f.revoke(f.base.Add(time.Hour))
		f.granted(0, block(1, 1000, 0, 30), policy.Revoked, 0, 0)
		f.held(0, 53, 0, 947)
	}},
	{"a refusal for credits tells whether blocks hold some of them", func(f *fixture) {
		f.granted(0, block(1, 1100, 99, 0), policy.Allowed, 100, 99)
		held := func(c policy.Charge, want bool) {
			f.t.Helper()
			if r := f.charge(0, c); r.Outcome != policy.CreditsExhausted || r.Held != want || r.Block != 0 {
				f.t.Fatalf("Charge(cost %d, end %d) = %s, held %v, block %d; want refused, held %v",
					c.Cost, c.EndBlock, outcomeName(r.Outcome), r.Held, r.Block, want)
			}
		}
		held(credits(1001, 1100), true)
		// Not when even all blocks back would leave too little.
		held(credits(1100, 1100), false)
		// Allowed charges never say it.
		if r := f.charge(0, credits(1, 1100)); r.Outcome != policy.Allowed || r.Held {
			f.t.Fatalf("an allowed charge: %s, held %v", outcomeName(r.Outcome), r.Held)
		}
		// The block ends in the refused charge itself: nothing held.
		held(block(1001, 1100, 0, 99), false)
		f.granted(0, block(1, 1100, 90, 0), policy.Allowed, 192, 90)
		f.returnBlock(90, 90)
		held(credits(1000, 1100), false)
	}},
	{"a block that ends is dropped before the next one is weighed", func(f *fixture) {
		f.granted(0, block(0, 1000, 90, 0), policy.Allowed, 90, 90)
		// 910 - 80 = 830 left: 83 ≥ 80 once the 90 ended, but 83 < 90 + 80
		// were they weighed still leased.
		f.granted(0, block(0, 1000, 80, 90), policy.Allowed, 170, 80)
		f.held(0, 90, 80, 830)
	}},
	{"ending more than is leased stops at zero", func(f *fixture) {
		f.granted(0, block(1, 1000, 10, 0), policy.Allowed, 11, 10)
		f.granted(0, block(1, 1000, 0, 500), policy.Allowed, 12, 0)
		f.returnBlock(10, 0)
		f.held(0, 12, 0, 988)
	}},
	{"returning a block gives back what was not served", func(f *fixture) {
		f.granted(0, block(1, 1000, 50, 0), policy.Allowed, 51, 50)
		f.returnBlock(50, 20)
		f.held(0, 31, 0, 969)
		f.granted(0, credits(1, 1000), policy.Allowed, 32, 0)
	}},
	{"a return outside 0 ≤ unused ≤ size changes nothing", func(f *fixture) {
		f.granted(0, block(1, 1000, 50, 0), policy.Allowed, 51, 50)
		for _, r := range [][2]int64{{50, 51}, {50, -1}, {-1, -1}, {policy.MaxBlock + 1, 0}} {
			err := f.returnOne(r[0], r[1])
			if err == nil {
				f.t.Fatalf("ReturnBlock(%d, %d) = nil, want ErrBlockReturn", r[0], r[1])
			}
		}
		f.held(0, 1, 50, 949)
	}},
	{"a void after the charge gives back its cost and its block, once", func(f *fixture) {
		f.granted(0, req("r1", block(2, 1000, 40, 0)), policy.Allowed, 42, 40)
		f.granted(0, req("r2", credits(1, 1000)), policy.Allowed, 43, 0)
		for range 2 {
			f.undo(time.Second, policy.Undo{Request: "r1", Cost: 2, Block: 40})
		}
		f.held(time.Second, 1, 0, 999)
		f.granted(0, req("r1", block(2, 1000, 40, 0)), policy.Duplicate, 1, 0)
	}},
	{"a void before the charge leaves nothing granted", func(f *fixture) {
		f.undo(0, policy.Undo{Request: "late", Charged: f.base.Add(time.Second), Cost: 1, Block: 40})
		f.granted(time.Second, req("late", block(1, 1000, 40, 0)), policy.Duplicate, 0, 0)
		f.undo(2*time.Second, policy.Undo{Request: "late", Cost: 1, Block: 40})
		f.held(2*time.Second, 0, 0, 0)
	}},
	{"a void of a charge whose block was refused gives back the cost only", func(f *fixture) {
		f.granted(0, block(0, 1000, 90, 0), policy.Allowed, 90, 90)
		// 1000 - 93 - 100 = 807 left: 80 < 90 + 100.
		f.granted(0, req("r1", block(3, 1000, 100, 0)), policy.Allowed, 93, 0)
		f.undo(time.Second, policy.Undo{Request: "r1", Cost: 3, Block: 100})
		f.held(time.Second, 0, 90, 910)
	}},
	{"a refund keeps the block, and a later void gives nothing more", func(f *fixture) {
		f.granted(0, req("r1", block(2, 1000, 40, 0)), policy.Allowed, 42, 40)
		f.undo(time.Second, policy.Undo{Request: "r1", Cost: 2, Ran: true})
		f.undo(time.Second, policy.Undo{Request: "r1", Cost: 2, Block: 40})
		f.held(time.Second, 0, 40, 960)
	}},
	{"a void gives back the block and the new seat together", func(f *fixture) {
		c := policy.Charge{Cost: 1, Limit: 1000, Block: 40, Seats: 1, Hardware: "a", SessionTTL: ttl}
		f.granted(0, req("r1", c), policy.Allowed, 41, 40)
		f.undo(time.Second, policy.Undo{Request: "r1", Cost: 1, Block: 40, Hardware: "a", Seat: true})
		f.held(time.Second, 0, 0, 1000)
		if u := f.usage(time.Second); u.Seats != 0 {
			f.t.Fatalf("Usage.Seats = %d after the void, want 0", u.Seats)
		}
	}},
	{"a reset keeps the credits leased in blocks counted", func(f *fixture) {
		f.granted(0, block(1, 1000, 60, 0), policy.Allowed, 61, 60)
		f.granted(0, credits(5, 1000), policy.Allowed, 66, 0)
		if used := f.adjust(0, true); used != 0 {
			f.t.Fatalf("AdjustCredits(reset) = %d, want 0 (the block apart)", used)
		}
		f.held(0, 0, 60, 940)
		f.granted(0, credits(1, 1000), policy.Allowed, 61, 0)
		// The block's gateway served 10 of it and returns the rest.
		f.returnBlock(60, 50)
		f.held(0, 11, 0, 989)
		if used := f.adjust(100, true); used != -100 {
			f.t.Fatalf("AdjustCredits(reset, +100) = %d, want -100", used)
		}
	}},
	{"a top up leaves blocks as they are", func(f *fixture) {
		f.granted(0, block(1, 1000, 60, 0), policy.Allowed, 61, 60)
		if used := f.adjust(10, false); used != -9 {
			f.t.Fatalf("AdjustCredits(+10) = %d, want -9 (the block apart)", used)
		}
		f.held(0, -9, 60, 949)
	}},
	{"the last credits are charged one by one, never in a block", func(f *fixture) {
		// 100 credits: a block of b needs (99 - b)/10 ≥ b, so b ≤ 9.
		f.granted(0, block(1, 100, 9, 0), policy.Allowed, 10, 9)
		f.returnBlock(9, 0)
		for used := int64(11); used <= 100; used++ {
			f.granted(0, block(1, 100, 9, 0), policy.Allowed, used, 0)
		}
		f.granted(0, block(1, 100, 9, 0), policy.CreditsExhausted, 100, 0)
	}},
	{"ReturnBlocks ends several licenses' blocks in one call, a return out of bounds alone refused", func(f *fixture) {
		// Three licenses (on a Cluster, most likely on several nodes).
		keys := []policy.LicenseKey{f.key, {Issuer: f.key.Issuer + "/b", Key: f.key.Key}, {Issuer: f.key.Issuer + "/c", Key: f.key.Key}}
		for _, k := range keys {
			g := *f
			g.key = k
			g.granted(0, block(1, 10000, 100, 0), policy.Allowed, 101, 100)
		}
		errs := f.blocks().ReturnBlocks(context.Background(), []policy.BlockReturn{
			{Key: keys[0], Size: 100, Unused: 40},
			{Key: keys[1], Size: 100, Unused: 101},
			{Key: keys[2], Size: 100, Unused: 0},
		})
		if len(errs) != 3 || errs[0] != nil || !errors.Is(errs[1], ErrBlockReturn) || errs[2] != nil {
			f.t.Fatalf("ReturnBlocks = %v; want nil, ErrBlockReturn, nil", errs)
		}
		for i, want := range [][3]int64{{61, 0, 9939}, {1, 100, 9899}, {101, 0, 9899}} {
			g := *f
			g.key = keys[i]
			g.held(0, want[0], want[1], want[2])
		}
	}},
	{"leased credits are forgotten with the license's counters", func(f *fixture) {
		c := block(1, 1000, 50, 0)
		c.Expires = f.base.Add(time.Hour)
		f.granted(0, c, policy.Allowed, 51, 50)
		f.held(time.Hour+time.Millisecond, 0, 0, 0)
		c.Expires = f.base.Add(2 * time.Hour)
		f.granted(time.Hour+time.Millisecond, c, policy.Allowed, 51, 50)
		f.held(time.Hour+time.Millisecond, 1, 50, 949)
	}},
}

func TestBlockConformance(t *testing.T) {
	srv := testredis.Start(t)
	s := newStore(t, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second})
	base := time.Now().Truncate(time.Second)
	for _, tc := range blockConformance {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(&fixture{t: t, s: s, key: lk(t.Name()), base: base, expires: base.Add(24 * time.Hour)})
		})
	}
}

func TestTheMemoryStoreGrantsNoBlock(t *testing.T) {
	m := policy.NewMemory()
	if _, ok := any(m).(policy.Blocks); ok {
		t.Fatal("policy.Memory implements policy.Blocks; it is one gateway's store and grants no block")
	}
	now := time.Now()
	f := &fixture{t: t, s: m, key: lk("memory"), base: now, expires: now.Add(time.Hour)}
	f.granted(0, req("r1", block(1, policy.MaxCredits, 10, 5)), policy.Allowed, 1, 0)
	f.undo(0, policy.Undo{Request: "r1", Cost: 1, Block: 10})
	f.held(0, 0, 0, policy.MaxCredits)
}

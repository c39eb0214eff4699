package module

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/licensegate/licensegate/policy"
)

// Credit blocks, the gateway's side (see policy.Blocks and README.md,
// "Credit blocks"). A busy license's requests are served from a block of
// credits this gateway reserved in the store, with no round trip: the
// block is counted as used in the store from the moment it is granted, so
// whatever this gateway serves from it was charged beforehand. The table
// lives with the pooled store, so a config reload keeps its blocks.
//
// Per license the table holds at most one block (its size, the credits
// left, a generation that refunds check), the last credits-used figure
// the store gave, an estimate of the license's request rate here (which
// sizes the next block), and the devices whose seat the store confirmed
// lately (so that a device holding its seat refreshes it at most once per
// seatFresh). At most one block reservation per license is in flight;
// meanwhile other requests are charged in the store one by one.

// Tuning of the block table.
const (
	// blockIdle: a block that served nothing for this long is returned.
	// At the end of a budget, where it matters, blocks come back sooner:
	// a refusal for credits while blocks hold some recalls them.
	blockIdle = 5 * time.Second
	// blockRecallEvery: a gateway recalls a license's blocks at most
	// this often (a client retrying its refused request recalls again if
	// a message was lost).
	blockRecallEvery = time.Second
	// blockEntryIdle: a license with no block and no request for this
	// long leaves the table.
	blockEntryIdle = 10 * time.Second
	// blockSweepEvery is how often the sweeper looks for idle blocks.
	blockSweepEvery = 250 * time.Millisecond
	// blockRevokedEvery: every this many sweeps the sweeper also asks the
	// revocations about the licenses holding a block (a request of a
	// revoked license drops its block at once; this returns the blocks of
	// revoked licenses that see no request, within about a second).
	blockRevokedEvery = 4
	// blockForgetEvery: each sweep looks for licenses to forget in one
	// shard of this many, so every shard once in this many sweeps (2 s).
	blockForgetEvery = 8
	// blockMinRate: at this many requests per second or more at this
	// gateway, a license asks a block of about one blockWindow of its
	// traffic.
	blockMinRate = 4
	// blockWindow is the rate estimate's window: a busy license's block
	// holds about this much of its traffic.
	blockWindow = time.Second
	// blockLowRequests, blockLongWindow: a quieter license asks a block
	// once it showed this many requests (the one asking included) within
	// the long window, about 0.5 requests a second or more. Below, most
	// blocks would idle out before a second request came.
	blockLowRequests = 2
	blockLongWindow  = 4 * time.Second
	// blockMinRequests is the least block asked, in requests: at 0.5 to
	// 32 requests a second a block of one window's traffic would be 1 to
	// 32 requests, mostly ended by the next reservation or the idle
	// return before it saved many round trips. At 1 request a second a
	// license pauses for blockIdle about once in 150 requests, so a block
	// of 32 is served out about 5 times in 6 before it idles; 32 requests
	// is also the most a crash strands of such a license.
	blockMinRequests = 32
	// blockReturnBatch bounds the returns sent in one pipeline.
	blockReturnBatch = 1000
	// DefaultBlockTable bounds the licenses the table tracks; a license
	// that does not fit is charged per request.
	DefaultBlockTable = 65536
	// blockSeatsPerLicense bounds the devices remembered per license.
	blockSeatsPerLicense = 64
	// blockCloseTimeout bounds the return of every block when the store
	// is destructed (config unload, shutdown).
	blockCloseTimeout = 2 * time.Second
	// maxSeatFresh: a seat confirmed by the store at most this long ago
	// (and at most a quarter of session_ttl) is not refreshed again.
	maxSeatFresh = time.Second
)

// blockShards splits the table so that licenses rarely share a lock.
const blockShards = 64

// blockTable is a pooled store's blocks: at most one per license.
type blockTable struct {
	blocks  policy.Blocks
	view    policy.RevocationView
	timeout time.Duration // per store call of the sweeper
	now     func() time.Time
	max     int64
	count   atomic.Int64
	gens    atomic.Uint64 // the last block generation given out
	shards  [blockShards]blockShard
	sweeps  atomic.Uint64 // sweeps begun

	startOnce sync.Once
	stopWatch func()
	stop      chan struct{}
	done      chan struct{}
	closed    atomic.Bool
	closeOnce sync.Once
	pending   sync.WaitGroup // returns under way in the background
}

type blockShard struct {
	mu sync.Mutex
	// m is keyed by the license key's hash (policy.KeyHash), which the
	// verified-token cache keeps beside each token: a request's lookup
	// then neither reads nor hashes the key's bytes. Two keys of one hash
	// (2⁻⁶⁴ a pair) share nothing: the entry holds its key, and the
	// other license is charged per request.
	m map[uint64]*licenseBlock
	// live lists the entries that hold a block or an ended one (and maybe
	// some that no longer do, dropped by the next sweep), so that a sweep
	// visits those, not every license the shard knows.
	live []*licenseBlock
}

// licenseBlock is one license's state at this gateway; its shard's lock
// guards it. Times are unix nanoseconds (8 bytes, not a time.Time's 24),
// and what a request served from the block reads comes first: at a pool
// of thousands of licenses an entry is rarely in the CPU's caches, and
// the served path then touches two of its three 64-byte lines.
type licenseBlock struct {
	key        policy.LicenseKey
	size, left int64  // the live block (size 0: none)
	gen        uint64 // the live block's generation
	lastServe  int64
	// The rate estimates: over blockWindow and blockLongWindow.
	short, long rateWindow
	lastSeen    int64
	// used is the highest credits-used figure the store gave since the
	// license's counts last changed outside this gateway's charges (see
	// noteUsed), less what its returns gave back.
	used int64
	// end is a block fully served whose size the store still counts as
	// leased: the next reservation ends it (Charge.EndBlock), or the
	// sweeper returns it (a BlockReturn with nothing unused).
	end      int64
	endedAt  int64
	cap      int64            // halved when the store refuses a block, 0: none
	capUntil int64            // when cap lapses: other gateways' blocks change
	seats    map[string]int64 // device → when the store confirmed its seat
	recalled int64            // when this gateway last recalled the license's blocks
	hasUsed  bool
	// reserving: a charge asking a block is in flight; dropGrant: the
	// block it brings goes back at once (dropped meanwhile).
	reserving, dropGrant bool
	listed               bool // in its shard's live list
}

// blockUnused is the credits leased in blocks and not yet served at this
// gateway, over all tables (the licensegate_block_credits_unused gauge).
var blockUnused atomic.Int64

func newBlockTable(b policy.Blocks, view policy.RevocationView, timeout time.Duration) *blockTable {
	t := &blockTable{blocks: b, view: view, timeout: timeout, now: time.Now, max: DefaultBlockTable,
		stop: make(chan struct{}), done: make(chan struct{})}
	for i := range t.shards {
		t.shards[i].m = map[uint64]*licenseBlock{}
	}
	return t
}

// start begins sweeping and watching credit changes, once, with the
// first request: a table no gate uses (every gate says blocks off, or
// only license_issuer shares the store) never starts.
func (t *blockTable) start() {
	t.startOnce.Do(func() {
		t.stopWatch = t.blocks.WatchCredits(func(k policy.LicenseKey) { t.dropAsync(k) })
		go t.sweeper()
	})
}

func (t *blockTable) sweeper() {
	defer close(t.done)
	tick := time.NewTicker(blockSweepEvery)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			t.sweep(t.now())
		}
	}
}

// shard is the shard of the license key of hash h.
func (t *blockTable) shard(h uint64) *blockShard {
	return &t.shards[h%blockShards]
}

// locate is key's shard and policy.KeyHash, for the calls that come
// without the hash (refunds, drops).
func (t *blockTable) locate(key policy.LicenseKey) (*blockShard, uint64) {
	h := policy.KeyHash(key)
	return t.shard(h), h
}

// entry is key's state (h its hash), made when add is set and the table
// has room; the shard's lock is held. A key whose hash another key's
// entry holds has none.
func (t *blockTable) entry(s *blockShard, key policy.LicenseKey, h uint64, add bool) *licenseBlock {
	if e := s.m[h]; e != nil || !add {
		if e != nil && e.key != key {
			return nil
		}
		return e
	}
	if t.count.Add(1) > t.max {
		t.count.Add(-1)
		return nil
	}
	e := &licenseBlock{key: key}
	s.m[h] = e
	return e
}

// chargeAsk is one request's counting request to the table.
type chargeAsk struct {
	key   policy.LicenseKey
	hash  uint64 // policy.KeyHash(key); 0: not computed yet (see keyHash)
	cost  int64
	limit int64 // -1: the token has no credits
	seats int64
	hw    string
	fresh time.Duration // how long a confirmed seat needs no refresh
	now   time.Time
}

// keyHash is policy.KeyHash(a.key), computed once.
func (a *chargeAsk) keyHash() uint64 {
	if a.hash == 0 {
		a.hash = policy.KeyHash(a.key)
	}
	return a.hash
}

// blockPlan is the table's answer: either served (nothing to ask the
// store) or what the store charge should carry.
type blockPlan struct {
	served bool
	gen    uint64 // the block served from (0: none, nothing charged)
	used   int64  // the credits used as this gateway knows them, for headers
	ask    int64  // Charge.Block
	end    int64  // Charge.EndBlock
}

// begin decides a request: served from the license's block (and its seat
// fresh), or sent to the store, asking a block when this gateway sees
// enough of the license's traffic and no reservation is in flight.
func (t *blockTable) begin(a *chargeAsk) blockPlan {
	if t.closed.Load() {
		return blockPlan{}
	}
	t.start()
	h, now := a.keyHash(), a.now.UnixNano()
	s := t.shard(h)
	s.mu.Lock()
	e := t.entry(s, a.key, h, true)
	if e == nil {
		s.mu.Unlock()
		return blockPlan{}
	}
	rate, long := e.hit(now)
	seatOK := a.seats == 0 || e.seatFresh(a.hw, now, a.fresh)
	if a.limit < 0 {
		s.mu.Unlock()
		return blockPlan{served: seatOK && a.seats > 0}
	}
	if e.size > 0 && e.left < a.cost {
		// What is left does not pay for this request (another route costs
		// more): give it back.
		t.returnLater(a.key, e.detach())
	}
	if seatOK && e.size > 0 {
		e.left -= a.cost
		blockUnused.Add(-a.cost)
		e.lastServe = now
		p := blockPlan{served: true, gen: e.gen, used: e.used - e.left}
		if e.left == 0 {
			e.end, e.endedAt = e.end+e.size, now
			e.size = 0
		}
		s.mu.Unlock()
		return p
	}
	var p blockPlan
	if e.cap > 0 && now >= e.capUntil {
		e.cap = 0
	}
	if !e.reserving && e.size == 0 && e.hasUsed {
		if want := e.want(rate, long, a.cost, a.limit); want > 0 {
			e.reserving = true
			p.ask = want
		}
	}
	// A block served out is ended in the next charge sent, whatever it
	// is: it leaves the entry with that one charge, so the store stops
	// counting it as leased (a refusal then tells Held only of credits a
	// recall can bring back).
	p.end, e.end = e.end, 0
	s.mu.Unlock()
	return p
}

// hit counts a request in the rate estimates and returns them: requests
// in the last blockWindow and in the last blockLongWindow.
func (e *licenseBlock) hit(now int64) (rate, long int64) {
	e.lastSeen = now
	return e.short.hit(now, blockWindow), e.long.hit(now, blockLongWindow)
}

// rateWindow estimates the requests of a sliding window from two fixed
// intervals of its length: the current one's count, and the one before's
// weighted by how much of it the window still covers.
type rateWindow struct {
	start     int64 // unix nanoseconds
	cur, prev int64
}

// hit counts a request at now (unix nanoseconds) and returns the
// estimate over length.
func (w *rateWindow) hit(now int64, length time.Duration) int64 {
	n := int64(length)
	el := now - w.start
	if el >= n || el < 0 {
		if el < 2*n && el >= 0 {
			w.prev = w.cur
			w.start += n
		} else {
			w.prev = 0
			w.start = now
		}
		w.cur = 0
		el = now - w.start
	}
	w.cur++
	return w.cur + w.prev*(n-el)/n
}

// want is the block to ask for, in whole requests' credits: for a license
// at blockMinRate or more, the requests of the last blockWindow; for a
// quieter one, once it showed blockLowRequests within blockLongWindow; at
// least blockMinRequests either way; and small enough for the store to
// grant it by what the last figure says is left (so the least block gives
// way to what is left, and in the last stretch there is none).
func (e *licenseBlock) want(rate, long, cost, limit int64) int64 {
	if (rate < blockMinRate && long < blockLowRequests) || cost <= 0 {
		return 0
	}
	n := min(max(rate, blockMinRequests), policy.MaxBlock/cost)
	if e.cap > 0 {
		n = min(n, e.cap/cost)
	}
	// After this request's cost, a block b is grantable only when
	// (left - b) / BlockFactor ≥ leased + b: at most left / (factor+1).
	left := limit - e.used - cost
	if left <= 0 {
		return 0
	}
	n = min(n, left/(policy.BlockFactor+1)/cost)
	if n < 2 {
		// A block of one request saves nothing.
		return 0
	}
	return n * cost
}

// seatFresh reports whether the store confirmed hw's seat less than
// fresh ago.
func (e *licenseBlock) seatFresh(hw string, now int64, fresh time.Duration) bool {
	at, ok := e.seats[hw]
	return ok && fresh > 0 && now-at < int64(fresh) && now >= at
}

// holds reports whether e holds a block, live or ended, that the store
// still counts as leased.
func (e *licenseBlock) holds() bool { return e.size > 0 || e.end > 0 }

// idleSince is when e's block last served a request: the live block's
// last request, or when the ended one was served out.
func (e *licenseBlock) idleSince() int64 {
	if e.size > 0 {
		return e.lastServe
	}
	return e.endedAt
}

// detach ends the live block and the ended one, returning what the store
// must be told; the shard's lock is held.
func (e *licenseBlock) detach() blockReturn {
	r := blockReturn{size: e.size + e.end, unused: e.left}
	if e.size > 0 {
		blockUnused.Add(-e.left)
		e.used -= e.left // what the return gives back
	}
	e.size, e.left, e.end = 0, 0, 0
	return r
}

// blockReturn is what a return must tell the store: the sizes of the
// blocks ended and their credits not served.
type blockReturn struct{ size, unused int64 }

// finish takes in the store's answer to a charge that begin sent on
// (sent is false when the charge surely never reached the store). It
// returns the credits used as this gateway knows them after an allowed
// charge: the store's figure less what this gateway's block still holds.
func (t *blockTable) finish(a *chargeAsk, p blockPlan, res policy.Result, err error, sent bool) (used int64) {
	used = res.Used
	h, now := a.keyHash(), a.now.UnixNano()
	s := t.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := t.entry(s, a.key, h, err == nil && (res.Outcome == policy.Allowed || res.Held))
	if e == nil {
		return used
	}
	if e.lastSeen == 0 {
		e.lastSeen = now // made here: forgotten when idle, as any
	}
	defer func() {
		if e.size > 0 {
			// A reply that ran before the block's grant may come after it:
			// the table's figure is the latest (see noteUsed).
			used = max(used, e.used) - e.left
		}
		// A grant, or an ended block kept after a charge that never left
		// (the only ways an entry comes to hold a block): the sweeper must
		// see it.
		if e.holds() && !e.listed {
			e.listed = true
			s.live = append(s.live, e)
		}
	}()
	if err != nil && !sent {
		// The charge never reached the store: the ended block is still
		// leased there.
		e.end += p.end
	}
	// A charge in doubt is voided with its Block (the store gives a
	// granted block back): its EndBlock may or may not have run, so it
	// is not sent again, leaving at worst credits counted as leased
	// until the counters expire.
	drop := false
	if p.ask > 0 {
		e.reserving = false
		drop, e.dropGrant = e.dropGrant, false
	}
	if err != nil {
		return used
	}
	switch res.Outcome {
	case policy.Allowed:
		e.noteUsed(res.Used)
		if a.seats > 0 {
			e.confirmSeat(a.hw, now)
		}
		if p.ask > 0 {
			if res.Block > 0 {
				if t.closed.Load() || drop {
					// Given back at once: the table closed, or the
					// license's blocks were dropped (a recall, a credits
					// change) while this reservation was in flight.
					e.used -= res.Block
					t.returnLater(a.key, blockReturn{size: res.Block, unused: res.Block})
					return used - res.Block
				}
				// Generations are unique in the table, so a refund never
				// mistakes a later entry's block for its own.
				e.size, e.left = res.Block, res.Block
				e.gen = t.gens.Add(1)
				e.lastServe = now
				if e.cap > 0 {
					// Grants again: let blocks grow back.
					e.cap *= 2
					if e.cap >= policy.MaxBlock {
						e.cap = 0
					}
				}
				blockUnused.Add(res.Block)
				blocksTaken.Inc()
			} else {
				e.cap, e.capUntil = p.ask/2, now+int64(blockIdle)
			}
		}
	case policy.CreditsExhausted:
		e.noteUsed(res.Used)
		// (Never recalled: recalled is 0, decades before now.)
		if res.Held && now-e.recalled >= int64(blockRecallEvery) {
			e.recalled = now
			t.recallLater(a.key)
		}
	case policy.Revoked:
		t.returnLater(a.key, e.detach())
	case policy.SeatsFull:
		delete(e.seats, a.hw)
	}
	return used
}

// noteUsed takes in a credits-used figure from the store's reply to one
// of this gateway's charges. Replies to concurrent charges of a license
// come back in any order, but the store ran them one after the other and
// its figure only grew meanwhile (the credits of this gateway's returns
// are taken off as they are sent): the highest figure is the latest.
// Keeping the last reply's instead would let a charge that ran before a
// block's grant, answered after it, hide the block, and the headers
// would show fewer credits used than were served. A change made
// elsewhere (a top up, a reset) drops the block and the figure
// (hasUsed), so the next reply sets it again.
func (e *licenseBlock) noteUsed(used int64) {
	if !e.hasUsed || used > e.used {
		e.used = used
	}
	e.hasUsed = true
}

// confirmSeat notes that the store confirmed hw's seat at now; the
// shard's lock is held.
func (e *licenseBlock) confirmSeat(hw string, now int64) {
	if e.seats == nil {
		e.seats = map[string]int64{}
	}
	if _, ok := e.seats[hw]; !ok && len(e.seats) >= blockSeatsPerLicense {
		for d, at := range e.seats {
			if now-at >= int64(maxSeatFresh) {
				delete(e.seats, d)
			}
		}
		if len(e.seats) >= blockSeatsPerLicense {
			return
		}
	}
	e.seats[hw] = now
}

// refund gives cost back to the block of generation gen when it still
// lives; false when it does not (the store must refund).
func (t *blockTable) refund(key policy.LicenseKey, gen uint64, cost int64) bool {
	s, h := t.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := t.entry(s, key, h, false)
	if e == nil || e.size == 0 || e.gen != gen || e.left+cost > e.size {
		return false
	}
	e.left += cost
	blockUnused.Add(cost)
	return true
}

// drop returns key's block, if any, and waits for the store's answer
// (the admin API, before it changes the license's credits).
func (t *blockTable) drop(ctx context.Context, key policy.LicenseKey) {
	s, h := t.locate(key)
	s.mu.Lock()
	r := t.forget(s, key, h)
	s.mu.Unlock()
	t.send(ctx, key, r)
}

// dropAsync returns key's block in the background (a credits change
// another gateway made, or a revocation). The return starts under the
// shard's lock, so that close, which takes every shard's lock, waits
// for it.
func (t *blockTable) dropAsync(key policy.LicenseKey) {
	s, h := t.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	t.returnLater(key, t.forget(s, key, h))
}

// forget ends key's blocks and forgets what the table knew of its counts
// (they changed elsewhere), returning what the store must be told; the
// shard's lock is held.
func (t *blockTable) forget(s *blockShard, key policy.LicenseKey, h uint64) blockReturn {
	e := t.entry(s, key, h, false)
	if e == nil {
		return blockReturn{}
	}
	e.hasUsed, e.cap = false, 0
	if e.reserving {
		// The block that reservation may bring is dropped too.
		e.dropGrant = true
	}
	return e.detach()
}

// recallLater asks every gateway, in the background, to give key's block
// back (policy.Blocks.RecallBlocks). A recall that fails is not retried:
// the next refusal recalls again, and the blocks go back when idle anyway.
func (t *blockTable) recallLater(key policy.LicenseKey) {
	if t.closed.Load() {
		return
	}
	blockRecalls.Inc()
	t.later(func(ctx context.Context) { _ = t.blocks.RecallBlocks(ctx, key) })
}

// returnLater sends r in the background.
func (t *blockTable) returnLater(key policy.LicenseKey, r blockReturn) {
	if r.size == 0 {
		return
	}
	t.later(func(ctx context.Context) { t.send(ctx, key, r) })
}

// later runs f in the background within the table's timeout; close
// waits for it (pending).
func (t *blockTable) later(f func(ctx context.Context)) {
	t.pending.Add(1)
	go func() {
		defer t.pending.Done()
		ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
		defer cancel()
		f(ctx)
	}()
}

// pieces appends r's returns to out: each of at most policy.MaxBlock
// credits (a live block and ended ones may hold more together).
func (r blockReturn) pieces(key policy.LicenseKey, out []policy.BlockReturn) []policy.BlockReturn {
	left, unusedLeft := r.size, r.unused
	for left > 0 {
		size := min(left, policy.MaxBlock)
		unused := min(unusedLeft, size)
		left, unusedLeft = left-size, unusedLeft-unused
		out = append(out, policy.BlockReturn{Key: key, Size: size, Unused: unused})
	}
	return out
}

// send tells the store that blocks of r.size credits ended with r.unused
// of them not served (see returnAll).
func (t *blockTable) send(ctx context.Context, key policy.LicenseKey, r blockReturn) {
	t.returnAll(ctx, r.pieces(key, nil))
}

// returnAll tells the store that each of rs ended, once, in pipelines of
// at most blockReturnBatch returns (one round trip each), each within the
// table's timeout. A return that fails strands its unused credits
// (counted as used) until the license's counters expire: it may have run,
// so it is never sent again.
func (t *blockTable) returnAll(ctx context.Context, rs []policy.BlockReturn) {
	for len(rs) > 0 {
		batch := rs[:min(len(rs), blockReturnBatch)]
		rs = rs[len(batch):]
		bctx, cancel := context.WithTimeout(ctx, t.timeout)
		errs := t.blocks.ReturnBlocks(bctx, batch)
		cancel()
		blocksReturned.Add(float64(len(batch)))
		var failed, stranded int64
		var first error
		var firstKey policy.LicenseKey
		for i, r := range batch {
			err := errNoAnswer
			if i < len(errs) {
				err = errs[i]
			}
			if err == nil {
				continue
			}
			failed++
			stranded += r.Unused
			if first == nil {
				first, firstKey = err, r.Key
			}
		}
		if failed > 0 {
			blockCreditsStranded.Add(float64(stranded))
			caddy.Log().Named("http.handlers.license_gate").Warn("credit blocks not returned: their unused credits stay counted until the licenses' counters expire",
				zap.Int64("returns", failed), zap.Int64("credits", stranded),
				zap.String("iss", firstKey.Issuer), zap.String("key", firstKey.Key), zap.Error(first))
		}
	}
}

// errNoAnswer stands for the error of a return the store left unanswered.
var errNoAnswer = errors.New("the store gave no answer for this return")

// sweep returns blocks idle since blockIdle and, every blockRevokedEvery
// sweeps, blocks of revoked licenses; it forgets licenses idle since
// blockEntryIdle in one shard of blockForgetEvery. Its cost grows with
// the licenses holding a block, not with all the table knows.
func (t *blockTable) sweep(now time.Time) {
	ns := now.UnixNano()
	n := t.sweeps.Add(1)
	checkRevoked := n%blockRevokedEvery == 0
	var out []policy.BlockReturn
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		kept := s.live[:0]
		for _, e := range s.live {
			if !e.reserving && e.holds() {
				revoked := false
				if checkRevoked {
					revoked, _ = t.view.IsRevoked(e.key, now)
				}
				if revoked || ns-e.idleSince() >= int64(blockIdle) {
					out = e.detach().pieces(e.key, out)
				}
			}
			// An entry with a reservation in flight stays (its charge will
			// likely bring a block); finish lists any other entry that
			// comes to hold one.
			if e.holds() || e.reserving {
				kept = append(kept, e)
			} else {
				e.listed = false
			}
		}
		clear(s.live[len(kept):])
		s.live = kept
		if cap(kept) > 256 && len(kept) < cap(kept)/4 {
			// Most blocks went back: give the list's memory back too.
			s.live = slices.Clone(kept)
		}
		if uint64(i)%blockForgetEvery == n%blockForgetEvery {
			for k, e := range s.m {
				if !e.reserving && !e.listed && !e.holds() && ns-e.lastSeen >= int64(blockEntryIdle) {
					delete(s.m, k)
					t.count.Add(-1)
				}
			}
		}
		s.mu.Unlock()
	}
	t.returnAll(context.Background(), out)
}

// close stops serving from blocks and returns every one, all within
// timeout, then waits for returns under way.
func (t *blockTable) close(timeout time.Duration) {
	t.closeOnce.Do(func() {
		t.closed.Store(true)
		t.startOnce.Do(func() {}) // a table never started stays so
		if t.stopWatch != nil {
			t.stopWatch()
			close(t.stop)
			<-t.done
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var out []policy.BlockReturn
		for i := range t.shards {
			s := &t.shards[i]
			s.mu.Lock()
			for _, e := range s.m {
				out = e.detach().pieces(e.key, out)
			}
			s.mu.Unlock()
		}
		t.returnAll(ctx, out)
		t.pending.Wait()
	})
}

package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/policy"
)

// Credit blocks (policy.Blocks). A charge may ask a block beside its cost
// (Charge.Block); chargeLua grants it, all or nothing, by
// policy.BlockGrantable, adding it to the license's used key at once and to
// its leased key (created only then, so a license without blocks costs no
// memory more). A gateway ends a block it served whole in its next charge
// (Charge.EndBlock) and one it did not with ReturnBlock; a void gives back
// a block its charge was granted (undoLua). AdjustCredits publishes the
// change on the revocation channel, and WatchCredits delivers it.

// returnBlockLua ends a block: KEYS[1] used drops by ARGV[2] (the credits
// not served), only when it exists (the counters may have expired with
// the token), and KEYS[2] leased by ARGV[1] (the block's size), never
// below 0. Returns 0.
const returnBlockLua = unleaseLua + `
if ARGV[2] ~= '0' and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DECRBY', KEYS[1], ARGV[2])
end
unlease(KEYS[2], ARGV[1])
return 0
`

// ErrBlockReturn is returned, changing nothing, by ReturnBlock for a size
// or an unused count outside 0 ≤ unused ≤ size ≤ policy.MaxBlock: giving
// back more than was granted would grant credits the license never had.
var ErrBlockReturn = errors.New("redisstore: a block's return outside 0 ≤ unused ≤ size ≤ MaxBlock")

// ReturnBlock ends one block in one round trip (see returnBlockLua), as
// ReturnBlocks does each of its returns. It is never retried: a return that may have run must
// not give the credits back twice; one that failed leaves them reserved.
func (s *Store) ReturnBlock(ctx context.Context, key policy.LicenseKey, size, unused int64) error {
	if unused < 0 || size < unused || size > policy.MaxBlock {
		return fmt.Errorf("%w: size %d, unused %d", ErrBlockReturn, size, unused)
	}
	if size == 0 {
		return nil
	}
	k := s.keys(key)
	if _, err := s.runOnce(ctx, returnScript, []string{k[0], k[6]}, size, unused); err != nil {
		return storeErr("return block", err)
	}
	return nil
}

// ReturnBlocks implements policy.Blocks: every return's returnBlockLua in
// one pipeline (go-redis splits it per node on a Cluster), EVALSHA first
// and EVAL again for those Redis answered NOSCRIPT (which did not run).
// Like ReturnBlock it never retries a return that may have run: each
// command is an onceCmd, and go-redis retries no pipeline holding one.
// A return outside its bounds fails alone with ErrBlockReturn.
func (s *Store) ReturnBlocks(ctx context.Context, returns []policy.BlockReturn) []error {
	errs := make([]error, len(returns))
	if err := ctx.Err(); err != nil {
		for i := range errs {
			errs[i] = storeErr("return blocks", fmt.Errorf("%w: %w", errContextDone, err))
		}
		return errs
	}
	cmds := make([]onceCmd, len(returns))
	keys := make([][]string, len(returns))
	var send []int
	for i, r := range returns {
		if r.Unused < 0 || r.Size < r.Unused || r.Size > policy.MaxBlock {
			errs[i] = fmt.Errorf("%w: size %d, unused %d", ErrBlockReturn, r.Size, r.Unused)
			continue
		}
		if r.Size == 0 {
			continue
		}
		k := s.keys(r.Key)
		keys[i] = []string{k[0], k[6]}
		send = append(send, i)
	}
	run := func(name, script string, which []int) {
		pipe := s.client.Pipeline()
		for _, i := range which {
			cmds[i] = onceCmd{redis.NewCmd(ctx, evalArgs(name, script, keys[i], []any{returns[i].Size, returns[i].Unused})...)}
			_ = pipe.Process(ctx, cmds[i])
		}
		_, _ = pipe.Exec(ctx)
	}
	if len(send) == 0 {
		return errs
	}
	run("evalsha", returnScript.Hash(), send)
	var again []int
	for _, i := range send {
		if err := cmds[i].Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		run("eval", returnBlockLua, again)
	}
	for _, i := range send {
		if err := cmds[i].Err(); err != nil {
			errs[i] = storeErr("return block", err)
		}
	}
	return errs
}

// creditsWord starts a credits-changed message on the revocation channel:
// "credits <issuer length> <issuer><key>". The license travels whole (a
// tag would not tell a gateway which of its blocks it names), its issuer
// prefixed by its length, so either part may hold any byte.
const creditsWord = "credits "

// creditsMessage is the channel message for a credit change of k.
func creditsMessage(k policy.LicenseKey) string {
	n := strconv.Itoa(len(k.Issuer))
	var b strings.Builder
	b.Grow(len(creditsWord) + len(n) + 1 + len(k.Issuer) + len(k.Key))
	b.WriteString(creditsWord)
	b.WriteString(n)
	b.WriteByte(' ')
	b.WriteString(k.Issuer)
	b.WriteString(k.Key)
	return b.String()
}

// parseCredits reads a credits-changed message; ok is false for any other
// message (a revocation's) or a malformed one.
func parseCredits(msg string) (k policy.LicenseKey, ok bool) {
	rest, found := strings.CutPrefix(msg, creditsWord)
	if !found {
		return k, false
	}
	n, rest, found := strings.Cut(rest, " ")
	if !found || n == "" || (len(n) > 1 && n[0] == '0') {
		return k, false
	}
	size, err := strconv.Atoi(n)
	if err != nil || size < 0 || size > len(rest) {
		return k, false
	}
	return policy.LicenseKey{Issuer: rest[:size], Key: rest[size:]}, true
}

// publishCredits tells every watching gateway (WatchCredits) that k's
// credits changed. A message lost (PUBLISH failed, a gateway was not
// subscribed) costs no exactness: blocks are counted as used, a reset
// keeps them counted, and a gateway that keeps its block after a top up
// only serves from it until it is spent or idle.
func (s *Store) publishCredits(ctx context.Context, k policy.LicenseKey) error {
	return s.client.Publish(ctx, s.revocationsKey(), creditsMessage(k)).Err()
}

// RecallBlocks implements policy.Blocks: the same message as a change of
// key's credits, so every gateway, this one included, returns its block.
func (s *Store) RecallBlocks(ctx context.Context, key policy.LicenseKey) error {
	if err := s.publishCredits(ctx, key); err != nil {
		return storeErr("recall blocks", err)
	}
	return nil
}

// creditWatches are a Store's running WatchCredits, stopped by Close.
type creditWatches struct {
	mu    sync.Mutex
	stops map[*creditWatch]struct{}
}

// creditWatch is one WatchCredits: its subscription and goroutine.
type creditWatch struct {
	ps      *redis.PubSub
	stop    chan struct{}
	stopped sync.Once
	done    chan struct{}
}

// WatchCredits implements policy.Blocks: it subscribes to the revocation
// channel (on a connection of its own) and calls f, from one goroutine,
// with the license of each credits-changed message, this store's own
// included, until stop is called or the store is closed. Messages
// published while it was not subscribed (Redis down, reconnecting) are
// lost; see publishCredits for why that is safe.
func (s *Store) WatchCredits(f func(policy.LicenseKey)) (stop func()) {
	w := &creditWatch{ps: s.client.Subscribe(context.Background()),
		stop: make(chan struct{}), done: make(chan struct{})}
	s.credits.mu.Lock()
	if s.credits.stops == nil {
		s.credits.stops = map[*creditWatch]struct{}{}
	}
	s.credits.stops[w] = struct{}{}
	s.credits.mu.Unlock()
	go func() {
		defer close(w.done)
		receive(w.ps, s.revocationsKey(), DefaultRevocationSync, w.stop, nil, func(payload string) {
			if k, ok := parseCredits(payload); ok {
				f(k)
			}
		})
	}()
	return func() {
		s.credits.mu.Lock()
		delete(s.credits.stops, w)
		s.credits.mu.Unlock()
		w.end()
	}
}

// end stops the watch and waits for its goroutine.
func (w *creditWatch) end() {
	w.stopped.Do(func() {
		close(w.stop)
		// Closing the PubSub ends a receive that is waiting.
		_ = w.ps.Close()
	})
	<-w.done
}

// stopAll ends every watch still running.
func (c *creditWatches) stopAll() {
	c.mu.Lock()
	all := c.stops
	c.stops = nil
	c.mu.Unlock()
	for w := range all {
		w.end()
	}
}

var _ policy.Blocks = (*Store)(nil)

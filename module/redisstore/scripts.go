package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// The scripts take the keys of one license, always in this order:
// KEYS[1] used (string, an integer), KEYS[2] seats (sorted set: member the
// hardware id, score the last request in unix ms), KEYS[3] revoked (string,
// the revocation's end in unix ms), KEYS[4] seats_ttl (string, the
// SessionTTL in ms of the last seat taken, for Usage), KEYS[5] limit
// (string, the credits of the last token charged, for Usage), KEYS[6] req
// (hash, one per license and 100 ms of charges' time, see reqBucket: field
// a request id, value its flags: 1 credits charged and not given back, 2
// a new seat taken and not given back, 4 a block granted and not given
// back; 0 a tombstone or a record whose flags were given back, -1 a
// tombstone left after the record was forgotten; see policy.Undo. It
// expires once, at the bucket's end plus policy.UndoWindow), KEYS[7] leased (string, the credits reserved in gateways'
// blocks and not yet returned, see policy.Blocks; it exists only while a
// block is out, and expires with the used key). Times come from the
// caller (Go), never from Redis's TIME, so a gateway's clock (or a
// test's) decides.
//
// Credits in blocks count in used from their grant on, so every check of
// used against a limit (this charge's, a lease's) counts them as spent;
// leased only tells how many of them gateways still hold, for the grant
// rule (policy.BlockGrantable), a reset (AdjustCredits) and Usage.
//
// Numbers: Lua numbers are doubles. Credit counts are passed as decimal
// strings and handed to INCRBY/DECRBY unchanged, and counts are returned as
// the strings GET reads, so nothing is rounded on the way. The one
// comparison done in Lua, cost > limit - used, is exact for limit and cost
// in [0, policy.MaxCredits] and any used: with both operands at most 2^53
// the subtraction is exact where it matters, and beyond that the rounded
// result stays on the same side of cost. The grant rule's figures are
// exact too where they decide (a left credit count near the block's size
// is small); a huge left (after top ups) grants either way.

// unleaseLua defines unlease(n): the leased key (KEYS[7] in the charge,
// the last key elsewhere, passed as k) drops by n credits, never below 0;
// at 0 it is deleted, so that a license without blocks keeps no such key.
const unleaseLua = `
local function unlease(k, n)
  local l = redis.call('GET', k)
  if l then
    if tonumber(l) > tonumber(n) then
      redis.call('DECRBY', k, n)
    else
      redis.call('DEL', k)
    end
  end
end
`

// chargeLua is the whole of a Charge.
//
// ARGV: 1 now ms, 2 cost, 3 limit (-1: no credits), 4 seats (0: no limit),
// 5 hardware id, 6 session ttl ms, 7 seat cutoff ms (now - ttl),
// 8 expires ms (0: never), 9 request id (”: none), 10 the ms at which
// the req bucket is forgotten (its end plus policy.UndoWindow), 11 the
// block asked (0: none), 12 the size of a block that ends (0: none).
//
// A request id costs one HEXISTS, and, for a charge that counted, one
// HSET and a PEXPIREAT NX (which sets the bucket's expiry when the
// charge created it and does nothing after): no trimming, as a bucket
// expires whole.
//
// The ending block (ARGV[12]) leaves leased first, whatever the outcome:
// the gateway served all of it, and learns nothing of this charge when it
// times out. Then, after an allowed charge with a limit, a block of
// ARGV[11] credits is granted when policy.BlockGrantable says so (stated
// again below): used and leased both grow by it, and the request's record
// gets flag 4, so that a void gives it back.
//
// Returns {outcome, used, retry_ms, block}: outcome 0 allowed, 1 revoked,
// 2 credits exhausted, 3 seats full, 4 duplicate (the request id was
// undone or charged before); used the credits used after the charge and
// the block granted (before it when refused; "0" when revoked), as a
// decimal string; retry_ms, for seats full, the milliseconds until the
// oldest seat lapses (otherwise 0); block the credits granted (0: none),
// or, for credits exhausted, 1 when gateways' blocks hold enough of the
// license's credits that their return could let the charge through
// (cost ≤ limit - used + leased), else 0.
const chargeLua = unleaseLua + `
local now = tonumber(ARGV[1])

-- Forget k when its expiry has passed by the caller's clock (Redis
-- forgets it by its own clock anyway).
local function lapse(k)
  local at = redis.call('PEXPIRETIME', k)
  if at >= 0 and now > at then
    redis.call('DEL', k)
  end
end

-- Make k live at least until ARGV[8]; a key without expiry gets one.
local function extend(k)
  if ARGV[8] ~= '0' then
    local at = redis.call('PEXPIRETIME', k)
    if at < 0 or at < tonumber(ARGV[8]) then
      redis.call('PEXPIREAT', k, ARGV[8])
    end
  end
end

if ARGV[12] ~= '0' then
  unlease(KEYS[7], ARGV[12])
end

local req = ARGV[9]
if req ~= '' then
  if redis.call('HEXISTS', KEYS[6], req) == 1 then
    lapse(KEYS[1])
    return {4, redis.call('GET', KEYS[1]) or '0', 0, 0}
  end
end

local revoked = redis.call('GET', KEYS[3])
if revoked and tonumber(revoked) > now then
  return {1, '0', 0, 0}
end

lapse(KEYS[1])
local used = redis.call('GET', KEYS[1]) or '0'

local flags = 0
local seats = tonumber(ARGV[4])
if seats > 0 then
  lapse(KEYS[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[7])
  if not redis.call('ZSCORE', KEYS[2], ARGV[5]) then
    if redis.call('ZCARD', KEYS[2]) >= seats then
      local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
      return {3, used, tonumber(oldest[2]) + tonumber(ARGV[6]) - now, 0}
    end
    flags = 2
  end
end

local granted = 0
local limit = tonumber(ARGV[3])
if limit >= 0 then
  if tonumber(ARGV[2]) > limit - tonumber(used) then
    -- Held: blocks hold enough of the license's credits that giving
    -- them back could let this charge through.
    lapse(KEYS[7])
    local held = 0
    local leased = redis.call('GET', KEYS[7])
    if leased and tonumber(ARGV[2]) <= limit - tonumber(used) + tonumber(leased) then
      held = 1
    end
    return {2, used, 0, held}
  end
  if ARGV[2] ~= '0' then
    flags = flags + 1
  end
  redis.call('INCRBY', KEYS[1], ARGV[2])
  if ARGV[11] ~= '0' then
    -- policy.BlockGrantable(left, leased, want), left counting this
    -- charge: after the grant, 10 (policy.BlockFactor) times all
    -- credits leased, the new block's included, must stay unreserved;
    -- a block is at most 2^32 (policy.MaxBlock).
    local want = tonumber(ARGV[11])
    lapse(KEYS[7])
    local leased = tonumber(redis.call('GET', KEYS[7]) or '0')
    local after = limit - tonumber(used) - tonumber(ARGV[2]) - want
    if want > 0 and want <= 4294967296 and leased >= 0 and after >= 0
        and math.floor(after / 10) >= leased + want then
      redis.call('INCRBY', KEYS[1], ARGV[11])
      redis.call('INCRBY', KEYS[7], ARGV[11])
      extend(KEYS[7])
      granted = want
      flags = flags + 4
    end
  end
  used = redis.call('GET', KEYS[1])
  extend(KEYS[1])
  redis.call('SET', KEYS[5], ARGV[3], 'KEEPTTL')
  extend(KEYS[5])
end

if seats > 0 then
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[5])
  extend(KEYS[2])
  redis.call('SET', KEYS[4], ARGV[6], 'KEEPTTL')
  extend(KEYS[4])
end

if req ~= '' and flags > 0 then
  redis.call('HSET', KEYS[6], req, flags)
  redis.call('PEXPIREAT', KEYS[6], ARGV[10], 'NX')
end
return {0, used, 0, granted}
`

// undoLua is the whole of a policy.Undo. KEYS: used, seats, req (the
// bucket of the charge's time), leased (as for chargeLua).
//
// ARGV: 1 request id, 2 cost, 3 hardware id, 4 '1' to give back a new
// seat too, 5 the charge's unix ms (policy.Undo.Charged), 6 the ms until
// which the req bucket must live when a tombstone is written (its end
// plus policy.UndoWindow, and at least now plus policy.UndoWindow), 7 '1'
// when the charge is known to have run (a refund: with its record gone,
// the credits are given back anyway), 8 the block the charge asked (0:
// none), 9 '1' when the bucket's records are forgotten by the caller's
// clock (now at or after the bucket's end plus policy.UndoWindow).
//
// A request id not seen (or whose charge's record is forgotten) is left
// as a tombstone (flags 0, or -1 when forgotten: a tombstone that a later
// undo still finds), so its charge counts nothing should it come later,
// and a second refund gives nothing. One seen gives back what its flags
// still hold: the credits (when the counter still exists); for a void
// (not ARGV[7]) the block it was granted too, to used and to leased; and,
// with ARGV[4], the seat if it is still held since that very charge (its
// score the charge's ms). A refund keeps the block: the gateway that
// asked got it. Either way the flags are cleared (but a seat kept), so
// nothing is given back twice. Returns 1 when a charge was taken back, 0
// otherwise.
const undoLua = unleaseLua + `
local f = redis.call('HGET', KEYS[3], ARGV[1])
if f and ARGV[9] == '1' and f ~= '-1' then
  f = nil
end
if not f then
  if ARGV[7] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('DECRBY', KEYS[1], ARGV[2])
  end
  local tomb = 0
  if ARGV[9] == '1' then
    tomb = -1
  end
  redis.call('HSET', KEYS[3], ARGV[1], tomb)
  local at = redis.call('PEXPIRETIME', KEYS[3])
  if at < 0 or at < tonumber(ARGV[6]) then
    redis.call('PEXPIREAT', KEYS[3], ARGV[6])
  end
  return 0
end
local flags = tonumber(f)
if flags <= 0 then
  return 0
end
local exists = redis.call('EXISTS', KEYS[1]) == 1
if flags % 2 == 1 and exists then
  redis.call('DECRBY', KEYS[1], ARGV[2])
end
if flags >= 4 and ARGV[7] ~= '1' and ARGV[8] ~= '0' then
  if exists then
    redis.call('DECRBY', KEYS[1], ARGV[8])
  end
  unlease(KEYS[4], ARGV[8])
end
local keep = 0
if flags % 4 >= 2 then
  keep = 2
  if ARGV[4] == '1' then
    keep = 0
    local seen = redis.call('ZSCORE', KEYS[2], ARGV[3])
    if seen and tonumber(seen) == tonumber(ARGV[5]) then
      redis.call('ZREM', KEYS[2], ARGV[3])
    end
  end
end
redis.call('HSET', KEYS[3], ARGV[1], keep)
return 1
`

// refundLua gives ARGV[1] credits back to KEYS[1], only when it exists
// (the counter may have expired with its token). It keeps the expiry.
const refundLua = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DECRBY', KEYS[1], ARGV[1])
end
return 0
`

// adjustLua changes KEYS[1] (used): with ARGV[2] == '1' it first resets
// it to the credits leased in blocks (KEYS[2]; 0 without), which gateways
// may still serve and so stay counted, then it subtracts ARGV[1], and
// makes the key live at least until ARGV[3] ms (0: leave the expiry). A
// result beyond ±ARGV[4] (MaxUsed) is refused with the error reply "out
// of range" before anything changes. Returns {used, leased}: the new
// used (blocks included) and the credits leased, as strings.
const adjustLua = `
local base = 0
if ARGV[2] == '1' then
  base = tonumber(redis.call('GET', KEYS[2]) or '0')
else
  base = tonumber(redis.call('GET', KEYS[1]) or '0')
end
local bound = tonumber(ARGV[4])
local after = base - tonumber(ARGV[1])
if after > bound or after < -bound then
  return redis.error_reply('out of range')
end
if ARGV[2] == '1' then
  redis.call('SET', KEYS[1], redis.call('GET', KEYS[2]) or '0', 'KEEPTTL')
end
redis.call('DECRBY', KEYS[1], ARGV[1])
local used = redis.call('GET', KEYS[1])
if ARGV[3] ~= '0' then
  local at = redis.call('PEXPIRETIME', KEYS[1])
  if at < 0 or at < tonumber(ARGV[3]) then
    redis.call('PEXPIREAT', KEYS[1], ARGV[3])
  end
end
return {used, redis.call('GET', KEYS[2]) or '0'}
`

// usageLua reads what is held for a license at ARGV[1] (now ms), forgetting
// (without deleting) what has expired by that clock. Seats count when seen
// within the SessionTTL of the last seat taken (as policy.Memory does).
//
// Returns {used, seats, revoked_until, limit, leased}: used (blocks
// included) as a string, seats an integer, revoked_until the revocation's
// end in ms as a string ("0" when none), limit the credits of the last
// token charged ("-1" when unknown), leased the credits in blocks as a
// string.
const usageLua = `
local now = tonumber(ARGV[1])
local function live(k)
  local at = redis.call('PEXPIRETIME', k)
  return at < 0 or now <= at
end
local used = '0'
if live(KEYS[1]) then
  used = redis.call('GET', KEYS[1]) or '0'
end
local seats = 0
if live(KEYS[2]) then
  local ttl = tonumber(redis.call('GET', KEYS[4]) or '0')
  seats = redis.call('ZCOUNT', KEYS[2], string.format('(%d', now - ttl), '+inf')
end
local revoked = redis.call('GET', KEYS[3])
if not revoked or tonumber(revoked) <= now then
  revoked = '0'
end
local limit = '-1'
if live(KEYS[5]) then
  limit = redis.call('GET', KEYS[5]) or '-1'
end
local leased = '0'
if live(KEYS[7]) then
  leased = redis.call('GET', KEYS[7]) or '0'
end
return {used, seats, revoked, limit, leased}
`

// The scripts, hashed once.
var (
	chargeScript = redis.NewScript(chargeLua)
	refundScript = redis.NewScript(refundLua)
	adjustScript = redis.NewScript(adjustLua)
	undoScript   = redis.NewScript(undoLua)
	usageScript  = redis.NewScript(usageLua)
	returnScript = redis.NewScript(returnBlockLua)

	scriptSource = map[*redis.Script]string{
		chargeScript: chargeLua,
		refundScript: refundLua,
		adjustScript: adjustLua,
		undoScript:   undoLua,
		usageScript:  usageLua,
		returnScript: returnBlockLua,
	}
)

// errContextDone marks a command not sent because its context was done.
var errContextDone = errors.New("context done before sending")

// onceCmd is a command go-redis must send at most once. go-redis retries a
// command whose reply timed out or whose connection broke (and a Cluster
// client tries it again on the same and then another node). For a script
// that counts, the first attempt may well have run: a retry would charge
// the request twice and later refuse one that had credit left. Dial
// failures, MOVED and ASK are still followed, as the command was not run.
type onceCmd struct{ *redis.Cmd }

func (onceCmd) NoRetry() bool { return true }

// runOnce runs a writing script like redis.Script.Run (EVALSHA, then EVAL
// when Redis answers NOSCRIPT, as after a restart or SCRIPT FLUSH) but is
// never retried after it may have run.
func (s *Store) runOnce(ctx context.Context, sc *redis.Script, keys []string, args ...any) (any, error) {
	if s.replicas > 0 && (sc == chargeScript || sc == undoScript || sc == takeLeasesScript || sc == releaseLeaseScript || sc == undoLeasesScript) {
		return s.runDurable(ctx, sc, keys, args...)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", errContextDone, err)
	}
	process := s.client.Process
	if s.ap != nil {
		// The autopipeliner keeps NoRetry: a batch holding such commands
		// is never re-sent.
		process = s.ap.Process
	}
	cmd := onceCmd{redis.NewCmd(ctx, evalArgs("evalsha", sc.Hash(), keys, args)...)}
	_ = process(ctx, cmd)
	if err := cmd.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		cmd = onceCmd{redis.NewCmd(ctx, evalArgs("eval", scriptSource[sc], keys, args)...)}
		_ = process(ctx, cmd)
	}
	return cmd.Result()
}

// runDurable runs a writing script as runOnce does, followed on the same
// connection by WAIT for s.replicas replicas: one round trip, never
// retried. The script's reply counts only when enough replicas have it.
func (s *Store) runDurable(ctx context.Context, sc *redis.Script, keys []string, args ...any) (_ any, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", errContextDone, err)
	}
	var node redis.Cmdable = s.client
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		// WAIT has no key: it must go to the master holding the keys,
		// on the connection that ran the script. That bypasses the
		// cluster client's own redirects, so a failure (the master gone,
		// MOVED after a failover) has it reload the slots for next time.
		n, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			cc.ReloadState(ctx)
			return nil, err
		}
		node = n
		defer func() {
			if err != nil && !isScriptReply(err) {
				cc.ReloadState(ctx)
			}
		}()
	}
	send := func(name, script string) (onceCmd, *redis.IntCmd) {
		cmd := onceCmd{redis.NewCmd(ctx, evalArgs(name, script, keys, args)...)}
		wait := redis.NewIntCmd(ctx, "wait", s.replicas, s.replicaTimeout.Milliseconds())
		pipe := node.Pipeline()
		_ = pipe.Process(ctx, cmd)
		_ = pipe.Process(ctx, wait)
		_, _ = pipe.Exec(ctx)
		return cmd, wait
	}
	cmd, wait := send("evalsha", sc.Hash())
	if cc, ok := s.client.(*redis.ClusterClient); ok && cmd.Err() != nil {
		// MOVED: the script did not run; the slot is served elsewhere
		// (after a failover). Follow it once, as the cluster client would.
		if addr, moved := strings.CutPrefix(cmd.Err().Error(), "MOVED "); moved {
			if _, addr, ok := strings.Cut(addr, " "); ok {
				if n := nodeAt(ctx, cc, addr); n != nil {
					node = n
					cmd, wait = send("evalsha", sc.Hash())
				}
			}
		}
	}
	if err := cmd.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		cmd, wait = send("eval", scriptSource[sc])
	}
	if err = cmd.Err(); err != nil {
		return nil, err
	}
	n, err := wait.Result()
	if err != nil {
		return nil, err
	}
	if n < int64(s.replicas) {
		return nil, fmt.Errorf("%w: %d of %d within %v", ErrNotReplicated, n, s.replicas, s.replicaTimeout)
	}
	return cmd.Result()
}

// nodeAt is the cluster client's connection pool for the node at addr,
// or nil when it knows no such node.
func nodeAt(ctx context.Context, cc *redis.ClusterClient, addr string) *redis.Client {
	var mu sync.Mutex
	var found *redis.Client
	_ = cc.ForEachShard(ctx, func(_ context.Context, c *redis.Client) error {
		if c.Options().Addr == addr {
			mu.Lock()
			found = c
			mu.Unlock()
		}
		return nil
	})
	return found
}

// isScriptReply tells an error the script itself answered (such as "out
// of range") from a failure to reach the right node.
func isScriptReply(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	for _, p := range []string{"MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN", "READONLY", "LOADING", "MASTERDOWN"} {
		if strings.HasPrefix(msg, p) {
			return false
		}
	}
	return true
}

// evalArgs lays out EVAL/EVALSHA as go-redis does, so that a Cluster
// client finds the first key (and so the slot) at position 3. The keys go
// in as pointers into keys, which go-redis reads as their strings (for
// the wire and for the slot) and which, unlike a string in an interface,
// cost no allocation each.
func evalArgs(name, script string, keys []string, args []any) []any {
	a := make([]any, 0, 3+len(keys)+len(args))
	a = append(a, name, script, len(keys))
	for i := range keys {
		a = append(a, &keys[i])
	}
	return append(a, args...)
}

package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/policy"
)

// Charge implements policy.Counters in one round trip (see chargeLua).
func (s *Store) Charge(ctx context.Context, c *policy.Charge) (policy.Result, error) {
	now := c.Now.UnixMilli()
	ttl := c.SessionTTL.Milliseconds()
	bucket := reqBucket(now)
	// The hardware and request ids go in as pointers, as the keys do
	// (see evalArgs): no allocation each.
	v, err := s.runOnce(ctx, chargeScript, s.keysAt(c.Key, bucket),
		now, c.Cost, c.Limit, c.Seats, &c.Hardware, ttl, now-ttl, expiresMs(c.Expires),
		&c.Request, reqForget(bucket), max(c.Block, 0), max(c.EndBlock, 0))
	if err != nil {
		return policy.Result{}, storeErr("charge", err)
	}
	r, ok := v.([]any)
	if !ok || len(r) != 4 {
		return policy.Result{}, storeErr("charge", fmt.Errorf("unexpected reply %v", v))
	}
	code, ok1 := r[0].(int64)
	used, err := parseCount(r[1])
	retry, ok2 := r[2].(int64)
	block, ok3 := r[3].(int64)
	if !ok1 || !ok2 || !ok3 || err != nil {
		return policy.Result{}, storeErr("charge", fmt.Errorf("unexpected reply %v", v))
	}
	res := policy.Result{Used: used}
	switch code {
	case 0:
		res.Outcome = policy.Allowed
		res.Block = block
	case 1:
		res.Outcome = policy.Revoked
	case 2:
		res.Outcome = policy.CreditsExhausted
		res.Held = block != 0
	case 3:
		res.Outcome = policy.SeatsFull
		res.RetryAfter = time.Duration(retry) * time.Millisecond
	case 4:
		res.Outcome = policy.Duplicate
	default:
		return policy.Result{}, storeErr("charge", fmt.Errorf("unexpected outcome %d", code))
	}
	return res, nil
}

// Refund implements policy.Counters. A counter that has expired (or never
// was) is left alone.
func (s *Store) Refund(ctx context.Context, key policy.LicenseKey, cost int64) error {
	if cost == 0 {
		return nil
	}
	if _, err := s.runOnce(ctx, refundScript, s.keys(key)[:1], cost); err != nil {
		return storeErr("refund", err)
	}
	return nil
}

// Undo implements policy.Counters in one round trip (see undoLua). It is
// idempotent, so a caller may send it again until it is answered. It
// looks for the charge's record in the time bucket of u.Charged (u.Now
// when zero), where the charge wrote it or will look for a tombstone.
func (s *Store) Undo(ctx context.Context, u *policy.Undo) error {
	charged := u.Charged
	if charged.IsZero() {
		charged = u.Now
	}
	bucket := reqBucket(charged.UnixMilli())
	k := s.keysAt(u.Key, bucket)
	seat := 0
	if u.Seat {
		seat = 1
	}
	block := max(u.Block, 0)
	if u.Ran {
		block = 0 // a refund never touches blocks
	}
	// By the caller's clock, the bucket's records are forgotten from
	// reqForget on (Redis forgets them by its own clock anyway); a
	// tombstone written then lives UndoWindow from now.
	now, forget := u.Now.UnixMilli(), reqForget(bucket)
	_, err := s.runOnce(ctx, undoScript, []string{k[0], k[1], k[reqIndex], k[6]},
		u.Request, u.Cost, u.Hardware, seat, charged.UnixMilli(),
		max(forget, now+policy.UndoWindow.Milliseconds()), boolArg(u.Ran), block, boolArg(now >= forget))
	if err != nil {
		return storeErr("undo", err)
	}
	return nil
}

// boolArg is a flag as the scripts take it.
func boolArg(b bool) int {
	if b {
		return 1
	}
	return 0
}

// reqBucketMs is the width of a req bucket in ms. Each charge with a
// request id writes its record to the bucket of its own time
// (req:<bucket>, a hash: request id -> flags), which expires once, when
// its last record has had its policy.UndoWindow: no trimming per charge.
// 100 ms keeps a bucket a compact listpack (Redis's
// hash-max-listpack-entries, 128) up to about 1,280 charges per second
// of one license, while the key's own cost (about 80 bytes) is shared by
// the records of 100 ms; see BenchmarkChargeRequestID for the figures.
const reqBucketMs = 100

// reqBucket is the req bucket of a charge at unix ms ms (times before
// 1970 share bucket 0).
func reqBucket(ms int64) int64 {
	return max(ms, 0) / reqBucketMs
}

// reqForget is the unix ms at which bucket's records are forgotten: the
// end of the bucket plus policy.UndoWindow.
func reqForget(bucket int64) int64 {
	return (bucket+1)*reqBucketMs + policy.UndoWindow.Milliseconds()
}

// Revoke implements policy.Counters. The revocation key holds its end in
// unix ms and expires then; a zero until lifts the revocation.
func (s *Store) Revoke(ctx context.Context, key policy.LicenseKey, until time.Time) error {
	if until.After(policy.MaxTime) {
		return policy.ErrOutOfRange
	}
	ms := until.UnixMilli()
	if until.IsZero() || ms <= 0 {
		return s.Unrevoke(ctx, key)
	}
	k := s.keys(key)[2]
	// Idempotent, so go-redis may retry it.
	if err := s.client.Do(ctx, "set", k, ms, "pxat", ms).Err(); err != nil {
		return storeErr("revoke", err)
	}
	if err := s.publishRevocation(ctx, key, ms); err != nil {
		return storeErr("revoke", err)
	}
	return nil
}

// Unrevoke implements policy.Counters.
func (s *Store) Unrevoke(ctx context.Context, key policy.LicenseKey) error {
	if err := s.client.Del(ctx, s.keys(key)[2]).Err(); err != nil {
		return storeErr("unrevoke", err)
	}
	if err := s.publishRevocation(ctx, key, 0); err != nil {
		return storeErr("unrevoke", err)
	}
	return nil
}

// Usage implements policy.Counters. Seats count when seen within the
// SessionTTL of the last seat taken.
func (s *Store) Usage(ctx context.Context, key policy.LicenseKey, now time.Time) (policy.Usage, error) {
	u := policy.Usage{Issuer: key.Issuer, Key: key.Key}
	// Read only, so go-redis's retries are harmless.
	v, err := usageScript.Run(ctx, s.client, s.keys(key), now.UnixMilli()).Result()
	if err != nil {
		return u, storeErr("usage", err)
	}
	r, ok := v.([]any)
	if !ok || len(r) != 5 {
		return u, storeErr("usage", fmt.Errorf("unexpected reply %v", v))
	}
	used, err1 := parseCount(r[0])
	seats, ok := r[1].(int64)
	until, err2 := parseCount(r[2])
	limit, err3 := parseCount(r[3])
	leased, err4 := parseCount(r[4])
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || !ok {
		return u, storeErr("usage", fmt.Errorf("unexpected reply %v", v))
	}
	// The store's used holds the blocks; Usage reports them apart.
	u.Used, u.Leased, u.Seats = used-leased, leased, seats
	u.SetLimit(limit)
	if until > 0 {
		u.Revoked, u.RevokedUntil = true, time.UnixMilli(until).Unix()
	}
	return u, nil
}

// AdjustCredits implements policy.Counters, atomically (see adjustLua). A
// reset sets the store's used to the credits leased in blocks, not to 0:
// gateways may still serve them (Usage, which reports blocks apart, shows
// 0 used). The result is the used Usage would report. The change is then
// published (see WatchCredits), so that gateways drop their blocks and
// take fresh ones.
func (s *Store) AdjustCredits(ctx context.Context, key policy.LicenseKey, add int64, reset bool, expires time.Time) (int64, error) {
	r := 0
	if reset {
		r = 1
	}
	k := s.keys(key)
	v, err := s.runOnce(ctx, adjustScript, []string{k[0], k[6]}, add, r, expiresMs(expires), int64(policy.MaxUsed))
	if err != nil {
		// The script's own refusal ("out of range", "ERR out of range"
		// on some versions), not a failure of the store.
		if rerr, ok := errors.AsType[redis.Error](err); ok && strings.HasSuffix(rerr.Error(), "out of range") {
			return 0, policy.ErrOutOfRange
		}
		return 0, storeErr("adjust credits", err)
	}
	reply, ok := v.([]any)
	if !ok || len(reply) != 2 {
		return 0, storeErr("adjust credits", fmt.Errorf("unexpected reply %v", v))
	}
	used, err1 := parseCount(reply[0])
	leased, err2 := parseCount(reply[1])
	if err1 != nil || err2 != nil {
		return 0, storeErr("adjust credits", fmt.Errorf("unexpected reply %v", v))
	}
	_ = s.publishCredits(ctx, key)
	// As Usage reports it: blocks apart.
	return used - leased, nil
}

// expiresMs is t in unix ms, or 0 (never) for the zero time.
func expiresMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	if ms := t.UnixMilli(); ms > 0 {
		return ms
	}
	// Before 1970: already past; 1 ms makes PEXPIREAT drop the key.
	return 1
}

// parseCount reads a count the scripts return as a decimal string, so
// that values beyond 2^53 arrive exact.
func parseCount(v any) (int64, error) {
	switch x := v.(type) {
	case string:
		return strconv.ParseInt(x, 10, 64)
	case int64:
		return x, nil
	default:
		return 0, fmt.Errorf("unexpected count %v (%T)", v, v)
	}
}

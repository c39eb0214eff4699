package policy

import (
	"context"
	"errors"
	"hash/maphash"
	"time"
)

// LicenseKey addresses one license's counters in a store: the issuer of
// its tokens (their iss, empty when they have none) and the counting key
// (the credits_key claim, jti by default). Two issuers' tokens with the
// same counting key never share credits, seats or a revocation.
type LicenseKey struct {
	Issuer string
	Key    string
}

// keySeed seeds KeyHash for the life of the process.
var keySeed = maphash.MakeSeed()

// KeyHash is a hash of key, the same for the life of the process (and
// different in each). A caller that sees a license often can compute it
// once and pass it with each charge (Charge.KeyHash), so that a store
// keyed by it finds the license without reading the key's bytes again.
func KeyHash(key LicenseKey) uint64 { return maphash.Comparable(keySeed, key) }

// Charge is one request's counting work: check revocation, take a seat
// and charge credits, atomically.
type Charge struct {
	// Key identifies the license in the store. Revocation is looked up
	// under the same key.
	Key LicenseKey
	// KeyHash is KeyHash(Key), or 0 when the caller did not compute it
	// (a store that wants it then does). Anything else is a caller's bug.
	KeyHash uint64
	// Cost is the number of credits the request costs (≥ 0).
	Cost int64
	// Limit is the token's credits, or -1 when the token has none (then
	// nothing is charged).
	Limit int64
	// Seats is the most distinct hardware ids at once, 0 for no limit.
	Seats int64
	// Hardware is the client's hardware id, for seats.
	Hardware string
	// SessionTTL is how long a seat is held after its last request.
	SessionTTL time.Duration
	// Expires is when the counters may be forgotten (exp plus leeway).
	Expires time.Time
	// Now is the time of the request.
	Now time.Time
	// Request identifies the request, unique per license (empty: none).
	// A charge with an id is remembered for UndoWindow, so that Undo can
	// take it back, and counts nothing when its id was undone (or
	// charged) before. A store may remember it under Now: an Undo then
	// finds it by Undo.Charged, and a second Charge with the same id
	// counts nothing only when it carries the same Now. See Undo.
	Request string
	// Block asks the store to reserve, beside Cost, a block of credits
	// that this gateway then serves in process, with no round trip (0:
	// none; only with a Limit, only from a store that implements Blocks).
	// The store grants all of it or nothing, by BlockGrantable, and says
	// which in Result.Block. Reserved credits count as used at once.
	Block int64
	// EndBlock ends, in the same round trip, this gateway's previous
	// block under Key, all of it served: its size, dropped from the
	// credits leased (0: none). A block with credits left ends by
	// Blocks.ReturnBlocks instead.
	EndBlock int64
}

// UndoWindow is how long a store remembers a charged request id (and an
// undone one) for Undo: a void or refund arriving later finds nothing to
// give back. (A store may keep records a little longer: the Redis store
// forgets them with their 100 ms bucket, by its end plus UndoWindow.)
const UndoWindow = time.Minute

// Undo takes back one request's charge, by its id. Stores apply it once
// whatever the order: an Undo reaching the store before its Charge leaves a
// tombstone, and the Charge then counts nothing (outcome Duplicate); an
// Undo after the Charge gives back the credits it charged; a second Undo
// does nothing. The gate voids a charge whose reply it gave up waiting for
// (the request was answered 503, so it must not be charged), and refunds
// one whose upstream failed.
type Undo struct {
	Key LicenseKey
	// Request is the Charge's Request.
	Request string
	// Charged is the Charge's Now. A store may keep a charge's record
	// under its time (the Redis store does, in buckets of 100 ms), so
	// that an Undo, whenever it comes, finds the record or leaves its
	// tombstone where the Charge looks: an Undo must carry its Charge's
	// Now, also when it comes first. Zero means Now (for a store that
	// ignores it, such as Memory).
	Charged time.Time
	// Cost is the credits the Charge charged (when it did).
	Cost int64
	// Hardware is the Charge's hardware id.
	Hardware string
	// Seat gives back the seat too, when the Charge took a new one and no
	// later request has refreshed it (a void); a refund keeps the seat, as
	// the client did use it.
	Seat bool
	// Block is the Charge's Block: a void gives it back too (and ends it)
	// when the store granted it, as the gateway that asked never learned
	// of it. A refund leaves it (0).
	Block int64
	// Ran tells that the Charge is known to have run (its reply came: a
	// refund). Should its record be gone (older than UndoWindow, as
	// after a slow upstream), the credits are given back all the same.
	Ran bool
	// Now is the time of the Undo.
	Now time.Time
}

// Outcome is the store's verdict on a Charge.
type Outcome int

// The outcomes of a Charge.
const (
	Allowed Outcome = iota
	Revoked
	CreditsExhausted
	SeatsFull
	// Duplicate: the Charge's Request was undone (or charged) before; it
	// counted nothing.
	Duplicate
)

// Result is what a Charge did.
type Result struct {
	Outcome Outcome
	// Used is the credits used after the charge (or, when exhausted, before).
	Used int64
	// RetryAfter is, for SeatsFull, the time until the oldest seat lapses.
	RetryAfter time.Duration
	// Block is the block of credits granted (Charge.Block, or 0).
	Block int64
	// Held tells, for CreditsExhausted, that gateways' blocks hold some
	// of the license's credits (a store with Blocks only): the caller
	// may recall them (Blocks.RecallBlocks).
	Held bool
}

// Usage is what the store holds about one license, for the admin API.
type Usage struct {
	Issuer       string `json:"iss,omitempty"`
	Key          string `json:"key"`
	Used         int64  `json:"credits_used"`
	Revoked      bool   `json:"revoked"`
	RevokedUntil int64  `json:"revoked_until,omitempty"`
	Seats        int64  `json:"seats_in_use"`
	// Leased is the credits reserved in gateways' blocks (see Blocks)
	// and not yet returned: some may have been served already. Used
	// does not include them; Left excludes them.
	Leased int64 `json:"credits_leased"`
	// HasLimit tells whether a charge was seen: Limit is then the credits
	// of the last token charged under the key, and Left what remains.
	HasLimit bool  `json:"-"`
	Limit    int64 `json:"credits_limit"`
	Left     int64 `json:"credits_left"`
}

// SetLimit records a known limit (a negative one is unknown) and derives
// Left from Used and Leased.
func (u *Usage) SetLimit(limit int64) {
	if limit < 0 {
		u.HasLimit, u.Limit, u.Left = false, 0, 0
		return
	}
	u.HasLimit, u.Limit, u.Left = true, limit, Remaining(limit, u.Used+u.Leased)
}

// ErrOutOfRange is returned, before any change, by Revoke for an end
// after MaxTime and by AdjustCredits when the used count would leave
// [-MaxUsed, MaxUsed].
var ErrOutOfRange = errors.New("out of range")

// MaxTime is the latest time a store keeps (the end of year 9999, as far as
// RFC 3339 goes); later revocation ends are refused.
var MaxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// MaxUsed bounds a license's used count either way (top ups make it
// negative); it leaves room below int64's limits. Redis checks it with
// Lua's doubles, so there the bound holds to within a few thousand.
const MaxUsed = 1 << 62

// ErrStore is wrapped by every error of a store that could not be reached
// or did not answer; the gate then fails closed or open.
var ErrStore = errors.New("counter store unavailable")

// ErrNotSent is wrapped (beside ErrStore) by an error of a store that
// surely never received the operation (it could not connect): a Charge
// that failed so needs no void.
var ErrNotSent = errors.New("not sent")

// Counters is a counter store. Implementations must be exact under
// concurrency: across any number of callers (and, for shared stores, of
// gateway instances) no more than Limit credits are ever charged, and no
// request is refused while credit remains.
type Counters interface {
	// Charge checks revocation, then the seat, then the credits, and
	// records the charge and the seat only when all pass.
	Charge(ctx context.Context, c *Charge) (Result, error)
	// Refund gives back cost credits charged to key.
	Refund(ctx context.Context, key LicenseKey, cost int64) error
	// Undo takes back a request's Charge, exactly once (see Undo).
	Undo(ctx context.Context, u *Undo) error
	// Revoke makes key rejected until the given time (at most MaxTime,
	// otherwise ErrOutOfRange).
	Revoke(ctx context.Context, key LicenseKey, until time.Time) error
	// Unrevoke lifts a revocation.
	Unrevoke(ctx context.Context, key LicenseKey) error
	// Usage reports what is stored for key.
	Usage(ctx context.Context, key LicenseKey, now time.Time) (Usage, error)
	// AdjustCredits changes key's used count: with reset, used becomes 0;
	// otherwise used decreases by add (a top up; used may go negative,
	// granting more than the token's credits). It returns the new used, or
	// ErrOutOfRange, changing nothing, when that would leave
	// [-MaxUsed, MaxUsed].
	AdjustCredits(ctx context.Context, key LicenseKey, add int64, reset bool, expires time.Time) (int64, error)
}

// Remaining is the credits left for a token with the given limit.
func Remaining(limit, used int64) int64 {
	if r := limit - used; r > 0 {
		return r
	}
	return 0
}

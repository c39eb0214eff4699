package policy

import (
	"context"
	"time"
)

// A lease is one device's hold on one licensed item of a license, as
// 10Duke's license consumption (/authz/) hands them out: while it lasts,
// its device holds one of the license's seats (however many items it
// leases), and it can be renewed (same id, later end) or released (its
// seat is free at once).
//
// Leases count against the license's seats apart from the gate's seats: a
// lease holds its seat until a fixed end or an explicit release, whereas a
// gate's seat slides with each request by that gate's session_ttl (see
// README.md, "Leases", for why the two are kept apart). Credits and
// revocation are shared: a lease's cost is charged to the same counter the
// gate charges, and a revoked license gets no lease.

// Lease is one live lease.
type Lease struct {
	// ID is the lease id (the lease token's jti), unique per license.
	ID string `json:"lease_id"`
	// Item is the licensed item leased.
	Item string `json:"item"`
	// Hardware is the device holding the lease.
	Hardware string `json:"hw"`
	// Until is when the lease ends unless renewed.
	Until time.Time `json:"-"`
	// Issuer is the iss of the lease's token (the issuer that leased it),
	// under which a release or replacement revokes that token. Empty for a
	// lease recorded before issuers were kept: its license's issuer then.
	Issuer string `json:"-"`
}

// LeaseItem is one item of a lease request.
type LeaseItem struct {
	// Item is the licensed item.
	Item string
	// LeaseID, when set, renews that lease: it must be a live lease of
	// this device for this item.
	LeaseID string
	// NewID is the id a new lease gets (the caller makes it unique).
	NewID string
	// Cost is the credits this item charges when granted (≥ 0).
	Cost int64
}

// LeaseRequest takes, renews or checks the leases of one device on one
// license, for one or several items, atomically.
type LeaseRequest struct {
	// License is the license's counting key; its credits and revocation
	// are the ones the gate uses.
	License LicenseKey
	// Hardware is the device (10Duke's hw); the seat is keyed by it.
	Hardware string
	// Seats is the most devices holding leases at once, 0 for no limit.
	Seats int64
	// Limit is the license's credits, or -1 when it has none (then nothing
	// is charged).
	Limit int64
	// Items are processed in order; each gets its own LeaseResult.
	Items []LeaseItem
	// Until is when granted and renewed leases end.
	Until time.Time
	// Expires is when the license's counters may be forgotten (its exp
	// plus leeway); the lease records live at least until Until.
	Expires time.Time
	// Now is the time of the request.
	Now time.Time
	// CheckOnly (10Duke's doConsume=false) answers as a consumption would
	// but records nothing and charges nothing.
	CheckOnly bool
	// Issuer is the iss of the lease tokens, kept with each lease (see
	// Lease.Issuer).
	Issuer string
	// Request identifies the request, unique per license (empty: none).
	// A store that may lose a reply (Redis) remembers it for UndoWindow
	// so that UndoLeases can take the request back, and counts nothing
	// for a request undone before it ran. See LeaseUndo.
	Request string
}

// LeaseUndo takes back one TakeLeases by its Request id, under the rule of
// Undo: exactly once whatever the order. After the take it gives back the
// credits the take charged, drops the leases it took (so a device left
// without lease frees its seat), puts back the earlier end of the leases
// it renewed and the leases it replaced, unless a later request changed
// them since; before the take it leaves a tombstone, and the take then
// counts nothing and fails. /authz/ undoes a take whose reply it gave up
// on (it answered 503).
type LeaseUndo struct {
	License LicenseKey
	// Request is the LeaseRequest's Request.
	Request string
	// Now is the time of the undo.
	Now time.Time
}

// LeaseUndoer is a lease store that can take back a TakeLeases whose
// reply was lost. A store that answers every call (Memory) needs none:
// its takes are never in doubt.
type LeaseUndoer interface {
	// UndoLeases applies u; it is idempotent, so a caller may send it
	// again until it is answered.
	UndoLeases(ctx context.Context, u *LeaseUndo) error
}

// LeaseOutcome is the store's verdict on one item of a LeaseRequest.
type LeaseOutcome int

// The outcomes of a lease item.
const (
	// LeaseGranted: a new lease was taken, or the given one renewed.
	LeaseGranted LeaseOutcome = iota
	// LeaseRevoked: the license is revoked.
	LeaseRevoked
	// LeaseCreditsExhausted: the item's cost exceeds the credits left.
	LeaseCreditsExhausted
	// LeaseSeatsFull: the device holds no seat and all are taken.
	LeaseSeatsFull
	// LeaseNotMatching: the LeaseID is not a live lease of this device
	// for this item.
	LeaseNotMatching
)

// LeaseResult is what one item of a LeaseRequest did.
type LeaseResult struct {
	Outcome LeaseOutcome
	// Lease is the granted or renewed lease (the id it would get for a
	// CheckOnly request).
	Lease Lease
	// Used is the credits used after this item (before it when refused).
	Used int64
	// RetryAfter is, for LeaseSeatsFull, the time until the first seat
	// frees by itself.
	RetryAfter time.Duration
	// Replaced is, for a new lease of an item the device already leased,
	// the lease it replaced (zero otherwise): that lease has ended, and
	// the caller revokes its token as a release does.
	Replaced Lease
}

// Leases is a lease store. Like Counters, it must be exact under
// concurrency: however many devices race, no more than Seats hold a lease
// at once, and credits are never overspent.
type Leases interface {
	// TakeLeases processes the request's items in one atomic step.
	TakeLeases(ctx context.Context, r *LeaseRequest) ([]LeaseResult, error)
	// ReleaseLease ends the lease at once and frees its device's seat
	// when the device holds no other lease. It reports false when no live
	// lease has that id (already released, expired or never taken).
	ReleaseLease(ctx context.Context, license LicenseKey, id string, now time.Time) (Lease, bool, error)
	// LiveLeases lists the license's live leases, for the admin API.
	LiveLeases(ctx context.Context, license LicenseKey, now time.Time) ([]Lease, error)
}

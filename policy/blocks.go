package policy

import "context"

// Blocks is implemented by a shared counter store whose charges can
// reserve blocks of credits (Charge.Block): a gateway then serves a busy
// license's requests from its block in process and goes to the store
// about once per block instead of once per request. Exactness holds as
// reserved credits count as used in the store from the moment they are
// granted; what a gateway does not serve it gives back.
//
// A gateway holds at most one block per license. A block is granted only
// while the credits left unreserved stay well above all credits leased
// (BlockGrantable), so the last stretch of a budget is charged one request
// at a time, exactly as without blocks.
type Blocks interface {
	// ReturnBlocks ends blocks, in one round trip where the store can (a
	// pipeline; on a Cluster, one per node). It returns one error per
	// return, nil for each that ran. A return that fails leaves its
	// unused credits reserved (stranded) until the license's counters
	// expire, never more served than granted; it is never retried (it
	// may have run), so nothing is given back twice.
	ReturnBlocks(ctx context.Context, returns []BlockReturn) []error
	// WatchCredits calls f, from one goroutine, with each license whose
	// credits a top up or reset (AdjustCredits, on any gateway) changed,
	// or whose blocks a gateway recalled (RecallBlocks), so that the
	// caller drops its block (giving its unused credits back) and takes a
	// fresh one. stop ends the watch.
	WatchCredits(f func(LicenseKey)) (stop func())
	// RecallBlocks asks every gateway watching (WatchCredits) to give
	// its block of key back at once. A gateway calls it when the store
	// refused a charge for credits while blocks held some (Result.Held):
	// the credits come back in milliseconds instead of when the blocks
	// idle. A recall lost on the way costs no exactness: the blocks still
	// go back when idle.
	RecallBlocks(ctx context.Context, key LicenseKey) error
}

// BlockReturn is one block's end (see Blocks.ReturnBlocks): Size credits
// were reserved under Key, and Unused of them were not served and are
// given back.
type BlockReturn struct {
	Key          LicenseKey
	Size, Unused int64
}

// BlockFactor is how many times all credits leased in blocks (the new
// block included) must still remain unreserved after a block is granted.
const BlockFactor = 10

// MaxBlock bounds a block's size.
const MaxBlock = 1 << 32

// BlockGrantable reports whether a block of want credits may be granted
// when left credits remain unreserved (the limit less used, blocks counted
// as used) after the charge that asks for it, and leased credits already
// sit in blocks: when, after the grant, at least BlockFactor times all
// credits leased remain. Stores decide by this rule (a script states it
// again); the arguments are non-negative, want at most MaxBlock.
func BlockGrantable(left, leased, want int64) bool {
	if want <= 0 || want > MaxBlock || leased < 0 || left-want < 0 {
		return false
	}
	return (left-want)/BlockFactor >= leased+want
}

package module

import (
	"hash/maphash"
	"math/rand/v2"
	"strings"
	"sync/atomic"

	"github.com/licensegate/licensegate/policy"
)

// Bounds of a tokenMemo: its slots, and the longest token it remembers
// (so it holds at most memoSlots × memoMaxLen bytes of tokens).
const (
	memoSlots  = 1024
	memoMaxLen = 4096
)

// memoAdmitOneIn is how rarely a cached token that is not in the memo is
// noted as a candidate for its slot: a token is remembered once it comes
// from the cache again while noted, so a token sent often gets in after
// some tens of requests, while a large pool of tokens, each sent now and
// then, costs the memo no memory and few writes.
const memoAdmitOneIn = 16

// memoTail is how much of a token's end picks its slot: a JWS ends with
// its signature, which tells tokens apart, and a token that is not in the
// memo then costs it a few nanoseconds.
const memoTail = 32

// tokenMemo sits in front of the verified-token cache for the tokens sent
// most often: it keeps a copy of such a token beside its SHA-256 and its
// cache entry, so that a request bringing it costs a fast hash and a
// comparison of the token's bytes, instead of a SHA-256 (most of the
// gate's own time for a cached token) and a lookup under the shard's
// lock. A remembered token is compared byte for byte with the request's,
// so what it gives is that token's own, whatever tokens an attacker sends;
// the fast hash only picks the slot (tokens made to share one only push
// each other out). An entry is used only until its cache entry was due
// for re-verification; then the request goes to the cache, which renews
// or verifies the token, and the memo takes the new entry. An entry the
// cache evicted for room may still be used until then: it was verified
// and is not due. Safe for concurrent use without locks: a slot's entry
// is replaced whole.
type tokenMemo struct {
	seed  maphash.Seed
	slots [memoSlots]memoSlot
}

type memoSlot struct {
	// noted is the fast hash of the last candidate for the slot.
	noted atomic.Uint64
	// fast is the fast hash of the entry's token, stored before the
	// entry: a request whose token's differs need not load the entry,
	// which at a large pool of tokens is rarely in the CPU's caches. It
	// only filters; the entry's own fields decide.
	fast  atomic.Uint64
	entry atomic.Pointer[memoEntry]
}

// memoEntry is one remembered token; never changed once stored.
type memoEntry struct {
	fast    uint64 // the token's fast hash, compared before its bytes
	tok     string // a copy, so no request's buffers are kept
	h       [32]byte
	lic     *policy.License
	kid     string
	expires int64 // of its cache entry, unix nanoseconds
	keyHash uint64
}

func newTokenMemo() *tokenMemo { return &tokenMemo{seed: maphash.MakeSeed()} }

// memoRef is a request's place in the memo: its token's slot and fast
// hash. The zero memoRef (no memo, or a token too long) finds nothing and
// takes nothing.
type memoRef struct {
	slot *memoSlot
	fast uint64
}

// ref returns tok's place in the memo.
func (m *tokenMemo) ref(tok string) memoRef {
	if m == nil || len(tok) > memoMaxLen {
		return memoRef{}
	}
	fast := maphash.String(m.seed, tok[max(0, len(tok)-memoTail):]) ^ uint64(len(tok))
	return memoRef{slot: &m.slots[fast%memoSlots], fast: fast}
}

// find returns the memo's entry of tok, due or not; nil when it holds
// none.
func (r memoRef) find(tok string) *memoEntry {
	if r.slot == nil {
		return nil
	}
	if r.slot.fast.Load() != r.fast {
		return nil
	}
	if e := r.slot.entry.Load(); e != nil && e.fast == r.fast && e.tok == tok {
		return e
	}
	return nil
}

// offer tells the memo that tok (whose SHA-256 is h) came from the cache
// with entry e; it is remembered when noted before, or noted now and
// then.
func (r memoRef) offer(tok string, h [32]byte, e *cacheEntry) {
	switch {
	case r.slot == nil:
	case r.slot.noted.Load() == r.fast:
		r.slot.fast.Store(r.fast)
		r.slot.entry.Store(&memoEntry{fast: r.fast, tok: strings.Clone(tok), h: h, lic: e.lic, kid: e.kid, expires: e.expires, keyHash: e.keyHash})
	case rand.IntN(memoAdmitOneIn) == 0:
		r.slot.noted.Store(r.fast)
	}
}

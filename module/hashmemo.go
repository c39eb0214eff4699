package module

import (
	"hash/maphash"
	"math/rand/v2"
	"strings"
	"sync/atomic"
)

// Bounds of a hashMemo: its slots, and the longest token it remembers
// (so it holds at most memoSlots × memoMaxLen bytes of tokens).
const (
	memoSlots  = 1024
	memoMaxLen = 4096
)

// memoAdmitOneIn is how rarely a token that missed is noted as a
// candidate for its slot: a token is remembered once it is sent again
// while noted, so a token sent often gets in after some tens of requests
// while a large pool of tokens, each sent now and then, costs the memo
// no memory and few writes.
const memoAdmitOneIn = 16

// hashMemo remembers the SHA-256 of the tokens sent most often, so that
// such a token costs a fast hash and a comparison of its bytes instead
// of a SHA-256 on every request (the SHA-256 was most of the gate's own
// time for a cached token). A remembered token is compared byte for byte
// with the request's, so the hash it gives is the token's SHA-256,
// whatever tokens an attacker sends; the fast hash only picks the slot
// (tokens made to share one only push each other out).
// Safe for concurrent use without locks: a slot's entry is replaced
// whole.
type hashMemo struct {
	seed  maphash.Seed
	slots [memoSlots]memoSlot
}

type memoSlot struct {
	// noted is the fast hash of the last candidate for the slot.
	noted atomic.Uint64
	entry atomic.Pointer[memoEntry]
}

// memoEntry is one remembered token; never changed once stored.
type memoEntry struct {
	fast uint64 // the token's fast hash, compared before the bytes
	tok  string // a copy, so no request's buffers are kept
	h    [32]byte
}

func newHashMemo() *hashMemo { return &hashMemo{seed: maphash.MakeSeed()} }

// hash returns the SHA-256 of tok, remembered or computed. A nil memo
// computes it.
func (m *hashMemo) hash(tok string) [32]byte {
	if m == nil || len(tok) > memoMaxLen {
		return tokenHash(tok)
	}
	fast := m.fastHash(tok)
	s := &m.slots[fast%memoSlots]
	if e := s.entry.Load(); e != nil && e.fast == fast && e.tok == tok {
		return e.h
	}
	h := tokenHash(tok)
	switch {
	case s.noted.Load() == fast:
		s.entry.Store(&memoEntry{fast: fast, tok: strings.Clone(tok), h: h})
	case rand.IntN(memoAdmitOneIn) == 0:
		s.noted.Store(fast)
	}
	return h
}

// memoTail is how much of a token's end the fast hash reads: a JWS ends
// with its signature, which tells tokens apart, and a token that misses
// the memo then costs it a few nanoseconds beside its SHA-256.
const memoTail = 32

// fastHash picks tok's slot: a seeded hash of its length and last bytes.
func (m *hashMemo) fastHash(tok string) uint64 {
	return maphash.String(m.seed, tok[max(0, len(tok)-memoTail):]) ^ uint64(len(tok))
}

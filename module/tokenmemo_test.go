package module

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
)

// remembered returns the memo's entry of tok, nil when none.
func (m *tokenMemo) remembered(tok string) *memoEntry { return m.ref(tok).find(tok) }

func TestTokenMemoRemembersOnlyTokensItCanHold(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		tok        string
		offers     int
		remembered bool
	}{
		{"a token offered once is not remembered", "eyJ.once.sig", 1, false},
		{"a token offered often is remembered", "eyJ.often.sig", 4000, true},
		{"a token of exactly memoMaxLen bytes is remembered", strings.Repeat("y", memoMaxLen), 4000, true},
		{"a token longer than memoMaxLen is never remembered", strings.Repeat("x", memoMaxLen+1), 4000, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newTokenMemo()
			e := &cacheEntry{lic: &policy.License{ID: tt.name}, kid: "k", expires: 42}
			for range tt.offers {
				m.ref(tt.tok).offer(tt.tok, tokenHash(tt.tok), e)
			}
			got := m.remembered(tt.tok)
			if (got != nil) != tt.remembered {
				t.Fatalf("remembered: %v, want %v", got != nil, tt.remembered)
			}
			if got != nil && (got.h != tokenHash(tt.tok) || got.lic != e.lic || got.kid != "k" || got.expires != 42) {
				t.Errorf("remembered %+v, want the token's SHA-256 and cache entry", got)
			}
		})
	}
}

func TestTokenMemoComparesTheTokenNotJustItsFastHash(t *testing.T) {
	t.Parallel()
	m := newTokenMemo()
	victim, attacker := "eyJ.victim.sig", "eyJ.attacker.sig"
	// As if the two tokens had the same fast hash: the victim's entry
	// sits in the attacker's slot under the attacker's fast hash.
	ref := m.ref(attacker)
	ref.slot.entry.Store(&memoEntry{fast: ref.fast, tok: victim, h: tokenHash(victim), lic: &policy.License{}, expires: 1 << 62})
	if e := ref.find(attacker); e != nil {
		t.Fatalf("the attacker's token found the victim's entry %+v", e)
	}
}

func TestTokenMemoTokensSharingASlotKeepTheirOwnEntries(t *testing.T) {
	t.Parallel()
	m := newTokenMemo()
	bySlot := map[*memoSlot]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		tok := fmt.Sprintf("eyJ.tok-%d.sig", i)
		slot := m.ref(tok).slot
		if other, ok := bySlot[slot]; ok {
			a, b = other, tok
		}
		bySlot[slot] = tok
	}
	ea, eb := &cacheEntry{lic: &policy.License{ID: "a"}}, &cacheEntry{lic: &policy.License{ID: "b"}}
	for i := range 8000 {
		tok, e := a, ea
		if i%3 == 0 {
			tok, e = b, eb
		}
		if got := m.remembered(tok); got != nil && (got.lic != e.lic || got.h != tokenHash(tok)) {
			t.Fatalf("request %d: %s found the entry of %s", i, tok, got.lic.ID)
		}
		m.ref(tok).offer(tok, tokenHash(tok), e)
	}
}

func TestTokenMemoUnderConcurrency(t *testing.T) {
	t.Parallel()
	m := newTokenMemo()
	toks := make([]string, 3*memoSlots)
	entries := make([]*cacheEntry, len(toks))
	for i := range toks {
		toks[i] = fmt.Sprintf("eyJ.concurrent-%d.sig", i)
		entries[i] = &cacheEntry{lic: &policy.License{ID: toks[i]}}
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				// Half the requests bring a few hot tokens, half a large pool.
				j := (w*7919 + i*104729) % len(toks)
				if i%2 == 0 {
					j = i % 5
				}
				ref := m.ref(toks[j])
				if e := ref.find(toks[j]); e != nil && (e.lic != entries[j].lic || e.h != tokenHash(toks[j])) {
					t.Errorf("%s found the entry of %s", toks[j], e.lic.ID)
					return
				}
				ref.offer(toks[j], tokenHash(toks[j]), entries[j])
			}
		})
	}
	wg.Wait()
}

func TestAHotTokenIsServedFromTheMemoUntilItsCacheEntryIsDue(t *testing.T) {
	t.Parallel()
	g, clk, k, src := versionedGate(t)
	v := g.verifier
	tok := k.sign(t, claimsAt(clk), nil)
	ctx := context.Background()
	first, rej := v.verify(ctx, tok, clk.Now())
	if rej != nil {
		t.Fatal(rej)
	}
	for i := 0; v.memo.remembered(tok) == nil; i++ {
		if i == 4000 {
			t.Fatal("a token sent 4000 times is not in the memo")
		}
		if e, rej := v.verify(ctx, tok, clk.Now()); rej != nil || e.lic != first.lic {
			t.Fatalf("request %d: reject %v, another license: %v", i, rej, e.lic != first.lic)
		}
	}
	// Emptied, the cache no longer answers: the memo does.
	v.cache = newTokenCache(16)
	if e, rej := v.verify(ctx, tok, clk.Now()); rej != nil || e.lic != first.lic || e.kid != "k" {
		t.Fatalf("from the memo: reject %v, same license %v, kid %q", rej, e.lic == first.lic, e.kid)
	}
	if n := src.lookups.Load(); n != 1 {
		t.Fatalf("%d signature checks, want 1", n)
	}
	// Due, with the keys changed: verified again, and the memo takes the
	// new entry.
	src.ver.Add(1)
	clk.Add(6 * time.Minute)
	second, rej := v.verify(ctx, tok, clk.Now())
	if rej != nil || second.lic == first.lic || src.lookups.Load() != 2 {
		t.Fatalf("due: reject %v, a new license %v, %d signature checks, want 2", rej, second.lic != first.lic, src.lookups.Load())
	}
	if e, rej := v.verify(ctx, tok, clk.Now()); rej != nil || e.lic != second.lic {
		t.Fatalf("after the new verification: reject %v, the new license %v", rej, e.lic == second.lic)
	}
	if m := v.memo.remembered(tok); m == nil || m.lic != second.lic || m.expires <= clk.Now().UnixNano() {
		t.Fatalf("the memo kept %+v, want the new entry", m)
	}
}

// BenchmarkTokenMemo is a verified token's lookup: a token sent again and
// again (found in the memo), and tokens from a pool too large for it
// (each missing it, then found in the cache), beside the cache alone.
func BenchmarkTokenMemo(b *testing.B) {
	pool := make([]string, 100_000)
	for i := range pool {
		pool[i] = fmt.Sprintf("eyJhbGciOiJSUzI1NiJ9.%0600d.sig", i)
	}
	now := time.Unix(1_800_000_000, 0)
	withMemo := &verifier{cache: newTokenCache(len(pool) * 2), memo: newTokenMemo()}
	for _, tok := range pool {
		withMemo.cache.put(tokenHash(tok), &policy.License{}, "k", 0, now.Add(time.Hour), now)
	}
	noMemo := &verifier{cache: withMemo.cache}
	ctx := context.Background()
	for _, bm := range []struct {
		name string
		v    *verifier
		step int
	}{{"hot/cache", noMemo, 0}, {"hot/memo", withMemo, 0}, {"pool/cache", noMemo, 7919}, {"pool/memo", withMemo, 7919}} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if e, _ := bm.v.verify(ctx, pool[i%len(pool)], now); e.lic == nil {
					b.Fatal("not cached")
				}
				i += bm.step
			}
		})
	}
}

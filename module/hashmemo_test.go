package module

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// remembered reports whether m holds tok.
func (m *hashMemo) remembered(tok string) bool {
	e := m.slots[m.fastHash(tok)%memoSlots].entry.Load()
	return e != nil && e.tok == tok
}

func TestHashMemoGivesEveryTokenItsSHA256(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", memoMaxLen+1)
	tests := []struct {
		name       string
		tok        string
		sends      int
		remembered bool
	}{
		{"a token sent once is hashed and not remembered", "eyJ.once.sig", 1, false},
		{"a token sent often is remembered", "eyJ.often.sig", 2000, true},
		{"a token longer than memoMaxLen is never remembered", long, 2000, false},
		{"a token of exactly memoMaxLen bytes is remembered", strings.Repeat("y", memoMaxLen), 2000, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newHashMemo()
			want := sha256.Sum256([]byte(tt.tok))
			for i := range tt.sends {
				if got := m.hash(tt.tok); got != want {
					t.Fatalf("send %d: hash %x, want the SHA-256 %x", i, got, want)
				}
			}
			if got := m.remembered(tt.tok); got != tt.remembered {
				t.Errorf("remembered = %v, want %v", got, tt.remembered)
			}
		})
	}
}

func TestHashMemoComparesTheTokenNotJustItsFastHash(t *testing.T) {
	t.Parallel()
	m := newHashMemo()
	victim, attacker := "eyJ.victim.sig", "eyJ.attacker.sig"
	// As if the two tokens had the same fast hash: the victim's entry
	// sits in the attacker's slot under the attacker's fast hash.
	fast := m.fastHash(attacker)
	m.slots[fast%memoSlots].entry.Store(&memoEntry{fast: fast, tok: victim, h: sha256.Sum256([]byte(victim))})
	if got, want := m.hash(attacker), sha256.Sum256([]byte(attacker)); got != want {
		t.Fatalf("the attacker's token got hash %x, want its own SHA-256 %x", got, want)
	}
}

func TestHashMemoTokensSharingASlotKeepTheirOwnHashes(t *testing.T) {
	t.Parallel()
	m := newHashMemo()
	// Find two tokens whose fast hashes pick the same slot.
	bySlot := map[uint64]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		tok := fmt.Sprintf("eyJ.tok-%d.sig", i)
		slot := m.fastHash(tok) % memoSlots
		if other, ok := bySlot[slot]; ok {
			a, b = other, tok
		}
		bySlot[slot] = tok
	}
	for i := range 4000 {
		tok := a
		if i%3 == 0 {
			tok = b
		}
		if got, want := m.hash(tok), sha256.Sum256([]byte(tok)); got != want {
			t.Fatalf("request %d (%s): hash %x, want %x", i, tok, got, want)
		}
	}
}

func TestHashMemoUnderConcurrency(t *testing.T) {
	t.Parallel()
	m := newHashMemo()
	toks := make([]string, 3*memoSlots)
	for i := range toks {
		toks[i] = fmt.Sprintf("eyJ.concurrent-%d.sig", i)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				// Half the requests bring a few hot tokens, half a large pool.
				tok := toks[(w*7919+i*104729)%len(toks)]
				if i%2 == 0 {
					tok = toks[i%5]
				}
				if got, want := m.hash(tok), sha256.Sum256([]byte(tok)); got != want {
					t.Errorf("hash of %s is %x, want %x", tok, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkHashMemo is the hash of a token sent again and again (found
// in the memo) and of tokens from a pool too large for it (each missing
// it), beside a plain SHA-256.
func BenchmarkHashMemo(b *testing.B) {
	pool := make([]string, 100_000)
	for i := range pool {
		pool[i] = fmt.Sprintf("eyJhbGciOiJSUzI1NiJ9.%0600d.sig", i)
	}
	m := newHashMemo()
	b.Run("sha256", func(b *testing.B) {
		i := 0
		for b.Loop() {
			_ = tokenHash(pool[i%len(pool)])
			i += 7919
		}
	})
	b.Run("hot", func(b *testing.B) {
		for b.Loop() {
			_ = m.hash(pool[0])
		}
	})
	b.Run("pool", func(b *testing.B) {
		i := 0
		for b.Loop() {
			_ = m.hash(pool[i%len(pool)])
			i += 7919
		}
	})
}

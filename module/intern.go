package module

import "sync"

// Bounds of a stringPool: the strings it holds and their length.
const (
	internMax    = 1024
	internMaxLen = 64
)

// stringPool shares one copy of the strings that recur across licenses
// (issuers, kids, item names), so that each cached license does not keep
// its own. It is bounded: once full, or for a long string, a string is
// returned as it came. Only the verification of a new token uses it.
type stringPool struct {
	mu sync.Mutex
	m  map[string]string
}

// intern returns the pool's copy of s, adding s when there is room. A
// nil pool returns s.
func (p *stringPool) intern(s string) string {
	if p == nil || s == "" || len(s) > internMaxLen {
		return s
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if v, ok := p.m[s]; ok {
		return v
	}
	if p.m == nil {
		p.m = make(map[string]string)
	}
	if len(p.m) < internMax {
		p.m[s] = s
	}
	return s
}

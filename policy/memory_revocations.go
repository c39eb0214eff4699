package policy

import "time"

// IsRevoked implements RevocationView: the in-memory store holds every
// revocation itself, so it always knows. It creates no entry.
func (m *Memory) IsRevoked(key LicenseKey, now time.Time) (revoked, known bool) {
	s, h := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.find(h, key)
	return e != nil && e.revokedUntil.After(now), true
}

var _ RevocationView = (*Memory)(nil)

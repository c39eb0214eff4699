package redisstore

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/licensegate/licensegate/policy"
)

// TagLen is the length of a license's hash tag: 32 hex digits.
const TagLen = 32

// Tag is the Cluster hash tag of a license: the first 16 bytes of
// SHA-256 over issuer, a NUL and the counting key, in hex. It has a fixed
// length and holds no brace whatever the key string, so every key of a
// license lands in one Cluster slot, and two issuers' licenses of the same
// counting key never share a key.
func Tag(k policy.LicenseKey) string {
	h := sha256.New()
	h.Write([]byte(k.Issuer))
	h.Write([]byte{0})
	h.Write([]byte(k.Key))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:TagLen/2])
}

// base is the start of every Redis key of license k:
// <prefix>{<tag>}: (a suffix such as "used" follows).
func (s *Store) base(k policy.LicenseKey) string {
	var b strings.Builder
	b.Grow(len(s.prefix) + TagLen + 3)
	b.WriteString(s.prefix)
	b.WriteByte('{')
	b.WriteString(Tag(k))
	b.WriteString("}:")
	return b.String()
}

// keys returns license k's used, seats, revoked, seats_ttl, limit and req
// keys, in the order the scripts take them.
func (s *Store) keys(k policy.LicenseKey) []string {
	base := s.base(k)
	return []string{base + "used", base + "seats", base + "revoked", base + "seats_ttl", base + "limit", base + "req"}
}

// validPrefix reports whether p may start keys: a brace in it would
// become the hash tag instead of the license's.
func validPrefix(p string) bool {
	return !strings.ContainsAny(p, "{}")
}

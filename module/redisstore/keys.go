package redisstore

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
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
	var tag [TagLen]byte
	tagOf(&tag, k)
	return string(tag[:])
}

// tagOf writes Tag(k) into tag without allocating (for the usual
// issuers and keys, which fit the buffer on the stack).
func tagOf(tag *[TagLen]byte, k policy.LicenseKey) {
	var buf [256]byte
	in := append(append(append(buf[:0], k.Issuer...), 0), k.Key...)
	sum := sha256.Sum256(in)
	hex.Encode(tag[:], sum[:TagLen/2])
}

// base is the start of every Redis key of license k:
// <prefix>{<tag>}: (a suffix such as "used" follows).
func (s *Store) base(k policy.LicenseKey) string {
	var b strings.Builder
	s.writeBase(&b, k, 0)
	return b.String()
}

// writeBase writes base(k) into b, growing it for extra bytes more.
func (s *Store) writeBase(b *strings.Builder, k policy.LicenseKey, extra int) {
	var tag [TagLen]byte
	tagOf(&tag, k)
	b.Grow(len(s.prefix) + TagLen + 3 + extra)
	b.WriteString(s.prefix)
	b.WriteByte('{')
	b.Write(tag[:])
	b.WriteString("}:")
}

// keySuffixes end license keys: used, seats, revoked, seats_ttl, limit,
// req and leased, in the order the scripts take them. The req key a
// charge or undo takes is one time bucket's, req:<bucket> (see
// reqBucket); the bare req key, given to the scripts that do not use it,
// is never written. (Versions before the buckets kept every request id
// of a license in that bare req key, a sorted set: those keys are no
// longer read and expire as they were set to, see README.md.)
var keySuffixes = [...]string{"used", "seats", "revoked", "seats_ttl", "limit", "req", "leased"}

// reqIndex is the req key's index in keySuffixes.
const reqIndex = 5

// keys returns license k's keys (see keySuffixes), the req key bare. They
// are cut from one string, so a charge allocates two objects for its keys
// rather than one per key.
func (s *Store) keys(k policy.LicenseKey) []string {
	return s.keysAt(k, -1)
}

// keysAt returns license k's keys as keys does, the req key that of the
// time bucket bucket (req:<bucket>), or bare for a negative bucket. It
// allocates as keys does: the bucket's digits go into the same string.
func (s *Store) keysAt(k policy.LicenseKey, bucket int64) []string {
	var digits [24]byte
	var req []byte
	if bucket >= 0 {
		req = strconv.AppendInt(append(digits[:0], ':'), bucket, 10)
	}
	baseLen := len(s.prefix) + TagLen + 3
	extra := len(req)
	for _, suffix := range keySuffixes {
		extra += baseLen + len(suffix)
	}
	var b strings.Builder
	s.writeBase(&b, k, extra-baseLen)
	base := b.String()
	for i, suffix := range keySuffixes {
		if i > 0 {
			b.WriteString(base)
		}
		b.WriteString(suffix)
		if i == reqIndex {
			b.Write(req)
		}
	}
	all := b.String()
	out := make([]string, len(keySuffixes))
	at := 0
	for i, suffix := range keySuffixes {
		n := baseLen + len(suffix)
		if i == reqIndex {
			n += len(req)
		}
		out[i] = all[at : at+n]
		at += n
	}
	return out
}

// validPrefix reports whether p may start keys: a brace in it would
// become the hash tag instead of the license's.
func validPrefix(p string) bool {
	return !strings.ContainsAny(p, "{}")
}

package policy

import (
	"errors"
	"fmt"
	"strings"
)

// Limits of the version syntax, so that hostile input stays cheap.
const (
	maxVersionParts = 16
	maxVersionLen   = 128
	maxVersionNum   = 1<<32 - 1
)

// ErrVersionSyntax is returned (wrapped) for a version or pattern that does
// not parse.
var ErrVersionSyntax = errors.New("bad version syntax")

// VersionPattern is an axes4-style allowed-versions pattern: dot-separated
// components, each an exact number ("6"), a range ("4-6") or a wildcard
// ("*"). Components compare numerically: "2.5.10" is outside "1-3.4-6.7-9".
//
// A version with fewer components than the pattern is padded with zeros;
// a version with more components matches only when the pattern's last
// component is "*" (which then also covers the extra ones) or the extra
// components are zero. So "1.*" matches "1.2.3", and "1.2" matches "1.2.0"
// but not "1.2.1".
type VersionPattern struct {
	parts []versionRange
	text  string
	// tailAny is set when the last component is "*", which then also
	// covers a version's extra components. (A range such as
	// "0-4294967295" covers the same values but not the extra ones.)
	tailAny bool
}

type versionRange struct{ lo, hi uint64 }

var anyVersion = versionRange{0, maxVersionNum}

// String returns the pattern as written.
func (p VersionPattern) String() string { return p.text }

// ParseVersionPattern parses a pattern such as "1.6.14", "1-3.4-6.7-9",
// "1.*.*" or "25.*.*".
func ParseVersionPattern(s string) (VersionPattern, error) {
	if s == "" || len(s) > maxVersionLen {
		return VersionPattern{}, fmt.Errorf("%w: pattern must have 1 to %d characters", ErrVersionSyntax, maxVersionLen)
	}
	p := VersionPattern{text: s}
	for part := range strings.SplitSeq(s, ".") {
		if len(p.parts) == maxVersionParts {
			return VersionPattern{}, fmt.Errorf("%w: more than %d components", ErrVersionSyntax, maxVersionParts)
		}
		p.tailAny = part == "*"
		if p.tailAny {
			p.parts = append(p.parts, anyVersion)
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, ok := parseVersionNum(lo)
		if !ok {
			return VersionPattern{}, fmt.Errorf("%w: component %q", ErrVersionSyntax, part)
		}
		b := a
		if isRange {
			if b, ok = parseVersionNum(hi); !ok || b < a {
				return VersionPattern{}, fmt.Errorf("%w: range %q", ErrVersionSyntax, part)
			}
		}
		p.parts = append(p.parts, versionRange{a, b})
	}
	return p, nil
}

// parseVersionNum reads a decimal component (leading zeros allowed).
func parseVersionNum(s string) (uint64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > maxVersionNum {
			return 0, false
		}
	}
	return n, true
}

// Match reports whether version (such as "1.6.14") is allowed by the
// pattern. It does not allocate. A version that does not parse never
// matches; ValidVersion tells the two apart.
func (p VersionPattern) Match(version string) bool {
	if len(p.parts) == 0 || version == "" || len(version) > maxVersionLen {
		return false
	}
	last := p.parts[len(p.parts)-1]
	i := 0
	for rest := version; ; i++ {
		part, tail, more := strings.Cut(rest, ".")
		n, ok := parseVersionNum(part)
		if !ok || i >= maxVersionParts {
			return false
		}
		r := last
		if i < len(p.parts) {
			r = p.parts[i]
		} else if !p.tailAny {
			r = versionRange{0, 0}
		}
		if n < r.lo || n > r.hi {
			return false
		}
		if !more {
			break
		}
		rest = tail
	}
	// Components of the pattern that the version left out count as zero.
	for i++; i < len(p.parts); i++ {
		if p.parts[i].lo > 0 {
			return false
		}
	}
	return true
}

// ValidVersion reports whether s is a version the matcher can read:
// 1 to 16 dot-separated decimal numbers.
func ValidVersion(s string) bool {
	if s == "" || len(s) > maxVersionLen {
		return false
	}
	n := 0
	for part := range strings.SplitSeq(s, ".") {
		if _, ok := parseVersionNum(part); !ok {
			return false
		}
		if n++; n > maxVersionParts {
			return false
		}
	}
	return true
}

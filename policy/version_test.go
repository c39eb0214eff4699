package policy_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/licensegate/licensegate/policy"
)

// dotted joins n copies of part with dots.
func dotted(part string, n int) string {
	return strings.TrimSuffix(strings.Repeat(part+".", n), ".")
}

func TestVersionPatternMatch(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		version string
		want    bool
	}{
		// exact
		{"exact version matches itself", "1.6.14", "1.6.14", true},
		{"exact pattern refuses another patch", "1.6.14", "1.6.15", false},
		{"exact pattern refuses another minor", "1.6.14", "1.7.14", false},
		{"exact pattern refuses another major", "1.6.14", "2.6.14", false},
		{"components compare numerically, not as text", "1.6.14", "1.6.140", false},
		// wildcards
		{"1.*.* matches any 1.x.y", "1.*.*", "1.99.0", true},
		{"1.*.* refuses 2.0.0", "1.*.*", "2.0.0", false},
		{"25.*.* matches 25.3.1", "25.*.*", "25.3.1", true},
		{"25.*.* refuses 2.5.0", "25.*.*", "2.5.0", false},
		{"25.*.* refuses 250.0.0", "25.*.*", "250.0.0", false},
		{"* matches the largest component", "*", "4294967295", true},
		{"*.*.* matches 0.0.0", "*.*.*", "0.0.0", true},
		// ranges
		{"1-3.4-6.7-9 matches its low corner", "1-3.4-6.7-9", "1.4.7", true},
		{"1-3.4-6.7-9 matches its high corner", "1-3.4-6.7-9", "3.6.9", true},
		{"1-3.4-6.7-9 matches inside", "1-3.4-6.7-9", "2.5.8", true},
		{"version outside range is refused: 2.5.10", "1-3.4-6.7-9", "2.5.10", false},
		{"version below range is refused", "1-3.4-6.7-9", "0.5.8", false},
		{"version above range is refused", "1-3.4-6.7-9", "4.5.8", false},
		{"range is checked in the middle component", "1-3.4-6.7-9", "2.7.8", false},
		{"single-value range equals an exact component", "5-5", "5", true},
		{"range spanning digit counts compares numerically", "9-10", "10", true},
		{"range spanning digit counts refuses 100", "9-10", "100", false},
		// mixes
		{"1-3.*.0-9 matches 2.77.9", "1-3.*.0-9", "2.77.9", true},
		{"1-3.*.0-9 refuses 2.77.10", "1-3.*.0-9", "2.77.10", false},
		{"1-3.*.0-9 refuses 4.0.0", "1-3.*.0-9", "4.0.0", false},
		{"*.5.* matches 9.5.1", "*.5.*", "9.5.1", true},
		{"*.5.* refuses 9.6.1", "*.5.*", "9.6.1", false},
		// leading zeros
		{"leading zeros in the pattern: 01.002.3 equals 1.2.3", "01.002.3", "1.2.3", true},
		{"leading zeros in the version: 001.02.03 equals 1.2.3", "1.2.3", "001.02.03", true},
		{"leading zeros in a range", "01-03.*", "002.5", true},
		{"zero written as 000", "0.0", "000.0", true},
		// fewer components in the version: padded with zeros
		{"1.2 is 1.2.0 under 1.2.0", "1.2.0", "1.2", true},
		{"1.2 is 1.2.0, outside 1.2.3", "1.2.3", "1.2", false},
		{"1 is 1.0.0 under 1.*.*", "1.*.*", "1", true},
		{"1 is 1.0.0 under 1.0-5.*", "1.0-5.*", "1", true},
		{"1 is 1.0.0, outside 1.1-5.*", "1.1-5.*", "1", false},
		// more components in the version
		{"1.* covers extra components", "1.*", "1.2.3", true},
		{"1.* covers up to 16 components", "1.*", dotted("1", 16), true},
		{"1.2 matches 1.2.0 (extra zero)", "1.2", "1.2.0", true},
		{"1.2 matches 1.2.0.0.0", "1.2", "1.2.0.0.0", true},
		{"1.2 refuses 1.2.1", "1.2", "1.2.1", false},
		{"1.2 refuses 1.2.0.1", "1.2", "1.2.0.1", false},
		{"1.*.5 refuses 1.2.5.1 (last component is not *)", "1.*.5", "1.2.5.1", false},
		{"1.*.5 matches 1.2.5.0", "1.*.5", "1.2.5.0", true},
		{"a full range is not a wildcard for extra components", "1.0-4294967295", "1.7.3", false},
		{"a full range still matches its own component", "1.0-4294967295", "1.7", true},
		{"a 0-0 last component allows extra zeros only", "1.0-0", "1.0.0", true},
		// long versions
		{"16 components match", dotted("1", 16), dotted("1", 16), true},
		{"17 components never match", "*", dotted("1", 17), false},
		{"17 components never match a 16-component pattern", dotted("*", 16), dotted("1", 17), false},
		{"a 128-character version matches", "*", strings.Repeat("0", 20) + "." + strings.Repeat("0", 20) + "." +
			strings.Repeat("0", 20) + "." + strings.Repeat("0", 20) + "." + strings.Repeat("0", 20) + "." +
			strings.Repeat("0", 20) + "." + strings.Repeat("0", 2), true},
		{"a 129-character version never matches", "*", strings.Repeat("0", 20) + "." + strings.Repeat("0", 20) + "." +
			strings.Repeat("0", 20) + "." + strings.Repeat("0", 20) + "." + strings.Repeat("0", 20) + "." +
			strings.Repeat("0", 20) + "." + strings.Repeat("0", 3), false},
		{"a kilobyte version never matches", "*", strings.Repeat("1", 1024), false},
		{"a component of 21 digits never matches", "*", strings.Repeat("0", 20) + "1", false},
		// empty and garbage
		{"empty version never matches", "*", "", false},
		{"empty version never matches 0", "0", "", false},
		{"v prefix never matches", "1.*.*", "v1.2.3", false},
		{"pre-release suffix never matches", "1.*.*", "1.2.3-beta", false},
		{"build suffix never matches", "1.*.*", "1.2.3+42", false},
		{"leading space never matches", "1.*.*", " 1.2.3", false},
		{"trailing space never matches", "1.*.*", "1.2.3 ", false},
		{"trailing dot never matches", "1.*", "1.2.", false},
		{"leading dot never matches", "*", ".1", false},
		{"empty component never matches", "1.*.*", "1..3", false},
		{"a lone dot never matches", "*", ".", false},
		{"a version that is a wildcard never matches", "*", "*", false},
		{"a version that is a range never matches", "1-3", "2-2", false},
		{"a signed component never matches", "*", "+1", false},
		{"a negative component never matches", "*", "-1", false},
		{"non-ASCII digits never match", "1.2.3", "１.2.3", false},
		{"NUL never matches", "1.2.3", "1.2.3\x00", false},
		{"hex never matches", "*", "0x10", false},
		// huge numbers
		{"2^32-1 matches itself", "4294967295", "4294967295", true},
		{"2^32 overflows and never matches *", "*", "4294967296", false},
		{"2^32 never matches 0 (no wrap-around)", "0", "4294967296", false},
		{"2^64 never matches 0 (no wrap-around)", "0", "18446744073709551616", false},
		{"2^64+1 never matches 1 (no wrap-around)", "1", "18446744073709551617", false},
		{"20 nines never match *", "*", "99999999999999999999", false},
		{"a huge middle component never matches", "1.*.*", "1.99999999999.0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := policy.ParseVersionPattern(tt.pattern)
			if err != nil {
				t.Fatalf("ParseVersionPattern(%q): %v", tt.pattern, err)
			}
			if got := p.Match(tt.version); got != tt.want {
				t.Fatalf("%q.Match(%q) = %v; want %v", tt.pattern, tt.version, got, tt.want)
			}
			if p.String() != tt.pattern {
				t.Errorf("String() = %q; want %q", p.String(), tt.pattern)
			}
			// The reference implementation agrees.
			if ref := refMatch(tt.pattern, tt.version); ref != tt.want {
				t.Errorf("reference says %v", ref)
			}
		})
	}
}

func TestParseVersionPatternRejects(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
	}{
		{"empty pattern is refused", ""},
		{"empty component is refused", "1..2"},
		{"leading dot is refused", ".1"},
		{"trailing dot is refused", "1.2."},
		{"a lone dot is refused", "."},
		{"descending range is refused", "3-1"},
		{"letters are refused", "a.b"},
		{"wildcard with a suffix is refused", "1.*x"},
		{"wildcard with a prefix is refused", "1.x*"},
		{"double wildcard is refused", "1.**"},
		{"range from a wildcard is refused", "*-3"},
		{"range to a wildcard is refused", "1-*"},
		{"open range is refused", "1-"},
		{"range without a start is refused", "-1"},
		{"three-way range is refused", "1-2-3"},
		{"lone dash is refused", "-"},
		{"space is refused", " 1"},
		{"operator is refused", ">=1.2"},
		{"v prefix is refused", "v1.2"},
		{"17 components are refused", dotted("1", 17)},
		{"17 wildcards are refused", dotted("*", 17)},
		{"129 characters are refused", strings.Repeat("1", 129)},
		{"a component above 2^32-1 is refused", "4294967296"},
		{"a range end above 2^32-1 is refused", "0-4294967296"},
		{"2^64 is refused", "18446744073709551616"},
		{"21 digits are refused", strings.Repeat("0", 21)},
		{"non-ASCII digits are refused", "１"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := policy.ParseVersionPattern(tt.pattern)
			if err == nil {
				t.Fatalf("ParseVersionPattern(%q) = %v; want an error", tt.pattern, p)
			}
			if !errors.Is(err, policy.ErrVersionSyntax) {
				t.Errorf("error %v does not wrap ErrVersionSyntax", err)
			}
			if _, ok := refParsePattern(tt.pattern); ok {
				t.Errorf("reference accepts %q", tt.pattern)
			}
		})
	}
}

func TestParseVersionPatternAccepts(t *testing.T) {
	for _, s := range []string{
		"0", "*", "1.6.14", "1-3.4-6.7-9", "1.*.*", "25.*.*", "1-3.*.0-9", "01.002.3",
		"0-4294967295", dotted("*", 16), dotted("65535", 16), dotted("1-4294967295", 9),
		strings.Repeat("0", 20), "4294967295",
	} {
		if _, err := policy.ParseVersionPattern(s); err != nil {
			t.Errorf("ParseVersionPattern(%q): %v", s, err)
		}
	}
}

func TestZeroVersionPatternMatchesNothing(t *testing.T) {
	var p policy.VersionPattern
	if p.Match("1.2.3") || p.Match("0") {
		t.Fatal("the zero VersionPattern matches")
	}
}

func TestValidVersion(t *testing.T) {
	tests := []struct {
		version string
		want    bool
	}{
		{"1", true}, {"1.2.3", true}, {"01.002.3", true}, {dotted("0", 16), true},
		{"4294967295", true}, {strings.Repeat("0", 20), true},
		{"", false}, {"1.", false}, {".1", false}, {"1..2", false}, {"1.x", false},
		{"1.*", false}, {"1-2", false}, {dotted("0", 17), false}, {"4294967296", false},
		{strings.Repeat("0", 21), false}, {strings.Repeat("1.", 64) + "1", false},
	}
	for _, tt := range tests {
		if got := policy.ValidVersion(tt.version); got != tt.want {
			t.Errorf("ValidVersion(%q) = %v; want %v", tt.version, got, tt.want)
		}
		if _, ok := refParseVersion(tt.version); ok != tt.want {
			t.Errorf("reference parse of %q = %v; want %v", tt.version, ok, tt.want)
		}
	}
}

func TestVersionMatchDoesNotAllocate(t *testing.T) {
	p, err := policy.ParseVersionPattern("1-3.*.0-9")
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { p.Match("2.77.9") }); n != 0 {
		t.Fatalf("Match allocates %v times; want 0", n)
	}
}

// --- reference implementation, written from VersionPattern's doc comment.

const refMaxNum = 1<<32 - 1

type refPart struct {
	wild   bool
	lo, hi uint64
}

func refNum(s string) (uint64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > refMaxNum {
		return 0, false
	}
	return n, true
}

func refParsePattern(s string) ([]refPart, bool) {
	if s == "" || len(s) > 128 {
		return nil, false
	}
	parts := strings.Split(s, ".")
	if len(parts) > 16 {
		return nil, false
	}
	out := make([]refPart, len(parts))
	for i, p := range parts {
		if p == "*" {
			out[i] = refPart{wild: true, hi: refMaxNum}
			continue
		}
		if lo, hi, ok := strings.Cut(p, "-"); ok {
			a, ok1 := refNum(lo)
			b, ok2 := refNum(hi)
			if !ok1 || !ok2 || b < a {
				return nil, false
			}
			out[i] = refPart{lo: a, hi: b}
			continue
		}
		n, ok := refNum(p)
		if !ok {
			return nil, false
		}
		out[i] = refPart{lo: n, hi: n}
	}
	return out, true
}

func refParseVersion(s string) ([]uint64, bool) {
	if s == "" || len(s) > 128 {
		return nil, false
	}
	parts := strings.Split(s, ".")
	if len(parts) > 16 {
		return nil, false
	}
	out := make([]uint64, len(parts))
	for i, p := range parts {
		n, ok := refNum(p)
		if !ok {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}

// refMatch pads the shorter of version and pattern: missing version
// components are 0; missing pattern components are "*" when the pattern
// ends in "*", else exactly 0.
func refMatch(pattern, version string) bool {
	p, ok := refParsePattern(pattern)
	if !ok {
		return false
	}
	v, ok := refParseVersion(version)
	if !ok {
		return false
	}
	last := p[len(p)-1]
	for i := 0; i < max(len(p), len(v)); i++ {
		var n uint64
		if i < len(v) {
			n = v[i]
		}
		r := refPart{lo: 0, hi: 0}
		switch {
		case i < len(p):
			r = p[i]
		case last.wild:
			r = last
		}
		if !r.wild && (n < r.lo || n > r.hi) {
			return false
		}
	}
	return true
}

func FuzzVersionPattern(f *testing.F) {
	for _, s := range [][2]string{
		{"1.6.14", "1.6.14"},
		{"1-3.4-6.7-9", "2.5.10"},
		{"1-3.4-6.7-9", "2.5.8"},
		{"1.*.*", "1.2.3"},
		{"25.*.*", "25.0.1"},
		{"1-3.*.0-9", "2.77.9"},
		{"01.002.3", "1.2.3"},
		{"1.2", "1.2.0"},
		{"1.2.3", "1.2"},
		{"1.*", "1.2.3.4"},
		{"1.0-4294967295", "1.2.3"},
		{"*", "4294967296"},
		{"0", "18446744073709551616"},
		{"", ""},
		{"1..2", "1..2"},
		{"3-1", "2"},
		{"1.*x", "1.2"},
		{dotted("*", 16), dotted("9", 16)},
		{dotted("1", 17), dotted("1", 17)},
		{"1-2-3", "2"},
		{"*-*", "1"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, version string) {
		p, err := policy.ParseVersionPattern(pattern)
		_, refOK := refParsePattern(pattern)
		if (err == nil) != refOK {
			t.Fatalf("ParseVersionPattern(%q) error = %v; reference accepts = %v", pattern, err, refOK)
		}
		if policy.ValidVersion(version) != func() bool { _, ok := refParseVersion(version); return ok }() {
			t.Fatalf("ValidVersion(%q) disagrees with the reference", version)
		}
		got := p.Match(version) // the zero pattern too: must not panic
		if err != nil {
			if got {
				t.Fatalf("a pattern that does not parse matched %q", version)
			}
			return
		}
		if p.String() != pattern {
			t.Fatalf("String() = %q; want %q", p.String(), pattern)
		}
		if want := refMatch(pattern, version); got != want {
			t.Fatalf("%q.Match(%q) = %v; reference says %v", pattern, version, got, want)
		}
		if got && !policy.ValidVersion(version) {
			t.Fatalf("%q matched the invalid version %q", pattern, version)
		}
		if !strings.ContainsAny(pattern, "*-") && !p.Match(pattern) {
			t.Fatalf("literal pattern %q does not match its own text", pattern)
		}
	})
}

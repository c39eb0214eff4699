package policy

import (
	"encoding/json"
	"math"
	"net/netip"
	"strconv"
	"time"
)

// MaxCredits is the largest credits value accepted: counts must stay exact
// in every store, and Redis's Lua numbers are doubles.
const MaxCredits = 1<<53 - 1

// License is a verified token's claims, decoded once (when the token is
// first verified) into the shapes the checks need. A License is immutable
// after Decode and is shared by every request that presents the token.
//
// A gate keeps one License per cached token, so its size counts: the
// fields are laid out to fill 320 bytes (a size class of Go's allocator)
// without padding, and the kept claims, which most licenses lack, sit
// behind one pointer. Their order counts too: a gateway serving many
// licenses rarely finds a request's License in the CPU's caches, so what
// every request reads (the constraints, the validity window, the items,
// the counting key) comes first, in four of its five 64-byte lines (a
// License of 320 bytes starts on a line), and what only logs and
// placeholders read comes last.
type License struct {
	// IPs are the allowed client networks; nil when no ip claim is present.
	IPs []netip.Prefix
	// Versions are the allowed client version patterns; nil when no ver
	// claim is present.
	Versions []VersionPattern
	// Seats is the most distinct hardware ids at once; 0 when absent.
	Seats int64
	// HasCredits tells whether the token carries a credits claim; Credits
	// is then its budget (0 ≤ Credits ≤ MaxCredits).
	HasCredits bool
	// HasHardware tells whether the token is locked to Hardware.
	HasHardware bool

	Expires   time.Time // exp; required
	NotBefore time.Time // nbf; zero when absent
	ValidFrom time.Time // ibb; zero when absent
	ValidTill time.Time // ibe; zero when absent

	// Items are the licensed items from the items and product claims.
	// "<item>": true claims are looked up in Raw by Check.
	Items []string
	// claims are the claims the license keeps; nil when none.
	claims *keptClaims

	Credits int64
	// CountKey is the value of the credits_key claim (jti by default); it
	// keys the token's counters and its revocation. Empty when absent.
	CountKey string
	Issuer   string // iss
	// Hardware is the hardware id the token is locked to (HasHardware).
	Hardware string

	// Read by logs and placeholders only.
	Subject   string    // sub
	ID        string    // jti
	LicenseID string    // lic (or its configured name)
	IssuedAt  time.Time // iat; zero when absent
}

// keptClaims are the claims a License keeps: those named by
// DecodeKeeping's keep (or every scalar claim), as decoded from JSON, for
// match_claim and placeholders; and the names of the claims whose value is
// true, for "<item>": true.
type keptClaims struct {
	kept       []keptClaim
	trueClaims []string
}

// keptClaim is one claim a License keeps.
type keptClaim struct {
	name  string
	value any
}

// Claim returns a kept claim's value (strings, json.Number or float64
// numbers, booleans) and whether the license kept it.
func (l *License) Claim(name string) (any, bool) {
	if l.claims == nil {
		return nil, false
	}
	kept := l.claims.kept
	for i := range kept {
		if kept[i].name == name {
			return kept[i].value, true
		}
	}
	return nil, false
}

// trueClaims are the names of the license's claims whose value is true.
func (l *License) trueClaims() []string {
	if l.claims == nil {
		return nil
	}
	return l.claims.trueClaims
}

// Decode reads a verified token's claims into a License. A claim of the
// wrong type or shape yields a 401 notAuthorized Reject naming the claim.
// The registered claims are expected to have been validated already by the
// JWT parser; Decode still refuses a missing or malformed exp. The License
// keeps every scalar claim (see DecodeKeeping).
func Decode(raw map[string]any, names *ClaimNames) (*License, error) {
	return DecodeKeeping(raw, names, nil)
}

// DecodeKeeping is Decode keeping only the scalar claims named in keep
// (for match_claim rules and placeholders) beside the decoded constraints;
// nil keeps every scalar claim. Keeping few keeps cached licenses small for
// the garbage collector.
func DecodeKeeping(raw map[string]any, names *ClaimNames, keep []string) (*License, error) {
	l := &License{}
	keepClaims(l, raw, keep)
	var err error
	if l.Subject, err = optString(raw, "sub"); err != nil {
		return nil, err
	}
	if l.ID, err = optString(raw, "jti"); err != nil {
		return nil, err
	}
	if l.Issuer, err = optString(raw, "iss"); err != nil {
		return nil, err
	}
	if l.LicenseID, err = optScalar(raw, names.LicenseID); err != nil {
		return nil, err
	}
	// aud is checked by the JWT parser only when audiences are configured;
	// a token is still refused for one of the wrong type.
	if v, ok := raw["aud"]; ok {
		if _, err := stringList("aud", v, true); err != nil {
			return nil, err
		}
	}
	if _, ok := raw["exp"]; !ok {
		return nil, ClaimError("exp", "required but missing")
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{
		{"exp", &l.Expires}, {"nbf", &l.NotBefore}, {"iat", &l.IssuedAt},
		{names.ValidFrom, &l.ValidFrom}, {names.ValidUntil, &l.ValidTill},
	} {
		if *t.dst, err = optTime(raw, t.name); err != nil {
			return nil, err
		}
	}
	if v, ok := raw[names.Credits]; ok {
		if l.Credits, err = toInt(names.Credits, v, 0, MaxCredits); err != nil {
			return nil, err
		}
		l.HasCredits = true
	}
	if l.CountKey, err = optScalar(raw, names.CreditsKey); err != nil {
		return nil, err
	}
	if v, ok := raw[names.Seats]; ok {
		if l.Seats, err = toInt(names.Seats, v, 1, 1<<20); err != nil {
			return nil, err
		}
	}
	if v, ok := raw[names.Items]; ok {
		if l.Items, err = stringList(names.Items, v, false); err != nil {
			return nil, err
		}
	}
	if v, ok := raw[names.Product]; ok {
		p, err := stringList(names.Product, v, true)
		if err != nil {
			return nil, err
		}
		l.Items = append(l.Items, p...)
	}
	if v, ok := raw[names.Version]; ok {
		pats, err := stringList(names.Version, v, true)
		if err != nil {
			return nil, err
		}
		if len(pats) == 0 {
			return nil, ClaimError(names.Version, "no version pattern")
		}
		for _, s := range pats {
			p, err := ParseVersionPattern(s)
			if err != nil {
				return nil, ClaimError(names.Version, "%v", err)
			}
			l.Versions = append(l.Versions, p)
		}
	}
	if v, ok := raw[names.Hardware]; ok {
		s, ok := v.(string)
		if !ok || s == "" {
			return nil, ClaimError(names.Hardware, "must be a non-empty string")
		}
		l.Hardware, l.HasHardware = s, true
	}
	if v, ok := raw[names.IP]; ok {
		list, err := stringList(names.IP, v, true)
		if err != nil {
			return nil, err
		}
		if len(list) == 0 {
			return nil, ClaimError(names.IP, "no address")
		}
		for _, s := range list {
			p, err := ParseNetwork(s)
			if err != nil {
				return nil, ClaimError(names.IP, "%q is neither an address nor a CIDR", s)
			}
			l.IPs = append(l.IPs, p)
		}
	}
	return l, nil
}

// keepClaims records the claims a License must keep: the scalar claims
// named in keep (every scalar claim when keep is nil), and the names of the
// claims that are true.
func keepClaims(l *License, raw map[string]any, keep []string) {
	var c keptClaims
	for name, v := range raw {
		if b, ok := v.(bool); ok && b {
			c.trueClaims = append(c.trueClaims, name)
		}
	}
	if keep == nil {
		for name, v := range raw {
			if _, ok := ClaimString(v); ok {
				c.kept = append(c.kept, keptClaim{name, v})
			}
		}
	} else {
		for _, name := range keep {
			if v, ok := raw[name]; ok {
				if _, scalar := ClaimString(v); scalar {
					c.kept = append(c.kept, keptClaim{name, v})
				}
			}
		}
	}
	if c.kept != nil || c.trueClaims != nil {
		l.claims = &c
	}
}

// ParseNetwork reads an address ("192.0.2.7", "2001:db8::1") or a CIDR
// ("10.0.0.0/8") into a prefix; addresses become single-host prefixes and
// IPv4-mapped IPv6 forms are unmapped.
func ParseNetwork(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, strconv.ErrSyntax
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a := p.Addr()
	if a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, strconv.ErrSyntax
		}
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked(), nil
	}
	return p.Masked(), nil
}

func optString(raw map[string]any, name string) (string, error) {
	v, ok := raw[name]
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", ClaimError(name, "must be a string")
	}
	return s, nil
}

// optScalar reads a string or an integer claim as a string (a lic may be a
// number).
func optScalar(raw map[string]any, name string) (string, error) {
	v, ok := raw[name]
	if !ok {
		return "", nil
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return x.String(), nil
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < MaxCredits {
			return strconv.FormatInt(int64(x), 10), nil
		}
	}
	return "", ClaimError(name, "must be a string or an integer")
}

func optTime(raw map[string]any, name string) (time.Time, error) {
	v, ok := raw[name]
	if !ok {
		return time.Time{}, nil
	}
	var f float64
	switch x := v.(type) {
	case json.Number:
		var err error
		if f, err = x.Float64(); err != nil {
			return time.Time{}, ClaimError(name, "must be a number of seconds")
		}
	case float64:
		f = x
	case int64:
		f = float64(x)
	case int:
		f = float64(x)
	default:
		return time.Time{}, ClaimError(name, "must be a number of seconds")
	}
	if math.IsNaN(f) || f < 0 || f > 1<<40 {
		return time.Time{}, ClaimError(name, "out of range")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

func toInt(name string, v any, lo, hi int64) (int64, error) {
	var n int64
	switch x := v.(type) {
	case json.Number:
		i, err := strconv.ParseInt(string(x), 10, 64)
		if err != nil {
			return 0, ClaimError(name, "must be an integer, got %.40s", string(x))
		}
		n = i
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > MaxCredits {
			return 0, ClaimError(name, "must be an integer")
		}
		n = int64(x)
	case string:
		// Data8 issues its credits as a decimal string ("mc": "10").
		i, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return 0, ClaimError(name, "must be an integer, got %.40q", x)
		}
		n = i
	case int64:
		n = x
	case int:
		n = int64(x)
	default:
		return 0, ClaimError(name, "must be an integer")
	}
	if n < lo || n > hi {
		return 0, ClaimError(name, "%d is outside %d..%d", n, lo, hi)
	}
	return n, nil
}

// stringList reads an array of strings, or (when single is true) also one
// string.
func stringList(name string, v any, single bool) ([]string, error) {
	switch x := v.(type) {
	case string:
		if single {
			return []string{x}, nil
		}
	case []string:
		return x, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, ClaimError(name, "must be a list of strings")
			}
			out = append(out, s)
		}
		return out, nil
	}
	if single {
		return nil, ClaimError(name, "must be a string or a list of strings")
	}
	return nil, ClaimError(name, "must be a list of strings")
}

package policy

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// Rules are a route's license requirements, built once from configuration.
type Rules struct {
	// RequireItem is the licensed item the route needs; empty for none.
	RequireItem string
	// Leeway is the clock skew allowed on exp, nbf, ibb and ibe.
	Leeway time.Duration
	// MatchClaims are the claims of the match_claim rules; the values to
	// compare with arrive per request in Request.MatchValues, same order.
	MatchClaims []string
}

// Request holds the facts of one request that the checks read.
type Request struct {
	// Now is the time of the decision.
	Now time.Time
	// ClientIP is the client address as Caddy determined it (honouring
	// trusted_proxies).
	ClientIP netip.Addr
	// Version is the client's version; VersionSent tells whether it sent one.
	Version     string
	VersionSent bool
	// Hardware is the client's hardware id; HardwareSent tells whether it
	// sent one.
	Hardware     string
	HardwareSent bool
	// MatchValues are the expected values of Rules.MatchClaims.
	MatchValues []string
}

// CheckTime checks the validity window: exp (401 licenseExpired), nbf and
// ibb (403 licenseValidityNotStarted), ibe (403 licenseExpired). It runs on
// every request, cached token or not.
func (r *Rules) CheckTime(l *License, now time.Time) *Reject {
	// RFC 7519 §4.1.4: the current time must be before exp (plus leeway),
	// the same boundary the JWT parser applies on verification.
	if !now.Before(l.Expires.Add(r.Leeway)) {
		return Rejectf(CodeLicenseExpired, "token expired at %d", l.Expires.Unix())
	}
	if !l.NotBefore.IsZero() && now.Add(r.Leeway).Before(l.NotBefore) {
		return &Reject{Code: CodeValidityNotStarted, Status: http.StatusForbidden,
			Detail: "token not valid before " + strconv.FormatInt(l.NotBefore.Unix(), 10)}
	}
	if !l.ValidFrom.IsZero() && now.Add(r.Leeway).Before(l.ValidFrom) {
		return &Reject{Code: CodeValidityNotStarted, Status: http.StatusForbidden,
			Detail: "license valid from " + strconv.FormatInt(l.ValidFrom.Unix(), 10)}
	}
	if !l.ValidTill.IsZero() && now.After(l.ValidTill.Add(r.Leeway)) {
		return &Reject{Code: CodeLicenseExpired, Status: http.StatusForbidden,
			Detail: "license valid until " + strconv.FormatInt(l.ValidTill.Unix(), 10)}
	}
	return nil
}

// Check runs every constraint of the license against the request, in the
// order of README's reject table: validity window, item, version, hardware, source IP,
// claim rules. It returns nil when the request may proceed to counting. It
// does not allocate unless it rejects.
func (r *Rules) Check(l *License, q *Request) *Reject {
	if rej := r.CheckTime(l, q.Now); rej != nil {
		return rej
	}
	if r.RequireItem != "" && !l.Licensed(r.RequireItem) {
		return Rejectf(CodeNoLicenseFound, "item %s is not licensed by this token", r.RequireItem)
	}
	if l.Versions != nil {
		if !q.VersionSent || q.Version == "" {
			return Rejectf(CodeAnchorMissing, "the license requires a client version")
		}
		if !l.AllowsVersion(q.Version) {
			if !ValidVersion(q.Version) {
				return Rejectf(CodeUnallowedClientVersion, "client version %.40q does not parse", q.Version)
			}
			return Rejectf(CodeUnallowedClientVersion, "client version %s is outside %s", q.Version, l.versionText())
		}
	}
	if l.HasHardware || l.Seats > 0 {
		if !q.HardwareSent || q.Hardware == "" {
			return Rejectf(CodeAnchorMissing, "the license requires a hardware id")
		}
		if l.HasHardware && !constantEqual(l.Hardware, q.Hardware) {
			return Rejectf(CodeAnchorLocked, "hardware id differs from the license's lock")
		}
	}
	if l.IPs != nil && !AllowedFrom(l.IPs, q.ClientIP) {
		return Rejectf(CodeClientIPBlocked, "client address %s is not allowed", q.ClientIP)
	}
	for i, claim := range r.MatchClaims {
		var want string
		if i < len(q.MatchValues) {
			want = q.MatchValues[i]
		}
		v, _ := l.Claim(claim)
		if !ClaimEquals(v, want) {
			return &Reject{Code: CodeNotAuthorized, Status: http.StatusForbidden,
				Detail: "claim " + claim + " does not match the request"}
		}
	}
	return nil
}

// Licensed reports whether the token licenses item: through the items
// array, the product claim, or a "<item>": true claim.
func (l *License) Licensed(item string) bool {
	for _, it := range l.Items {
		if it == item {
			return true
		}
	}
	for _, name := range l.trueClaims() {
		if name == item {
			return true
		}
	}
	return false
}

// AllowsVersion reports whether any of the token's patterns matches.
func (l *License) AllowsVersion(v string) bool {
	for _, p := range l.Versions {
		if p.Match(v) {
			return true
		}
	}
	return false
}

func (l *License) versionText() string {
	if len(l.Versions) == 1 {
		return l.Versions[0].String()
	}
	s := ""
	for i, p := range l.Versions {
		if i > 0 {
			s += ", "
		}
		s += p.String()
	}
	return s
}

// ClaimEquals compares a decoded claim with a string: strings by equality,
// numbers by their JSON text, booleans as "true"/"false". Other shapes
// (objects, arrays, null, absence) never match.
func ClaimEquals(v any, want string) bool {
	switch x := v.(type) {
	case string:
		return x == want
	case json.Number:
		return string(x) == want
	case bool:
		if x {
			return want == "true"
		}
		return want == "false"
	case float64:
		f, err := strconv.ParseFloat(want, 64)
		return err == nil && f == x
	}
	return false
}

// ClaimString renders a scalar claim for a placeholder; other shapes give
// "" and false.
func ClaimString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return string(x), true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return "", false
}

// constantEqual compares two strings in time that depends only on their
// lengths. The conversions do not copy: the compiler sees that the bytes
// are only read (BenchmarkCheck allocates nothing).
func constantEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

package module

import (
	"net/http"
	"strconv"

	"github.com/licensegate/licensegate/policy"
)

// The standard rate-limit fields of the IETF HTTPAPI working group
// (draft-ietf-httpapi-ratelimit-headers), sent beside licensegate's own
// X-License-Credits-* so that generic HTTP clients and SDKs can back off
// without knowing licensegate. RateLimit-Policy names a quota and its size
// (q); RateLimit says what is left of it (r) and, when known, in how many
// seconds it frees up (t). Credits have no window: they are the token's
// budget, so no w parameter is sent.
const (
	HeaderRateLimitPolicy = "RateLimit-Policy"
	HeaderRateLimit       = "RateLimit"
)

// The quota names of the fields.
const (
	rateLimitCredits = `"credits"`
	rateLimitSeats   = `"seats"`
)

// The canonical forms of the credit headers' names (RateLimit becomes
// Ratelimit), as http.Header.Set would store them.
var (
	keyCreditsRemaining = http.CanonicalHeaderKey(HeaderCreditsRemaining)
	keyCreditsLimit     = http.CanonicalHeaderKey(HeaderCreditsLimit)
	keyRateLimitPolicy  = http.CanonicalHeaderKey(HeaderRateLimitPolicy)
	keyRateLimit        = http.CanonicalHeaderKey(HeaderRateLimit)
)

// setCreditHeaders writes an allowed request's credits: licensegate's own
// headers and the standard fields. It runs on every allowed request with
// credits, so it does what four http.Header.Set calls would do in two
// allocations instead of eight: the four values are cut from one string,
// and their one-element slices from one array (each capped, so that a
// later Add to one header copies instead of writing into the next).
func setCreditHeaders(h http.Header, remaining, limit int64) {
	var buf [96]byte
	b := strconv.AppendInt(buf[:0], remaining, 10)
	endR := len(b)
	b = strconv.AppendInt(b, limit, 10)
	endL := len(b)
	b = strconv.AppendInt(append(b, rateLimitCredits+";q="...), limit, 10)
	endQ := len(b)
	b = strconv.AppendInt(append(b, rateLimitCredits+";r="...), remaining, 10)
	s := string(b)
	v := make([]string, 4)
	v[0], v[1], v[2], v[3] = s[:endR], s[endR:endL], s[endL:endQ], s[endQ:]
	h[keyCreditsRemaining] = v[0:1:1]
	h[keyCreditsLimit] = v[1:2:2]
	h[keyRateLimitPolicy] = v[2:3:3]
	h[keyRateLimit] = v[3:4:4]
}

// setRejectRateLimit writes the standard fields on the rejects that are
// quota rejects: credits used up (nothing left, no time it frees up) and
// seats full (nothing left until the oldest seat lapses, the Retry-After).
func setRejectRateLimit(h http.Header, rej *policy.Reject, lic *policy.License) {
	if lic == nil {
		return
	}
	switch rej.Code {
	case policy.CodeMaxUseCountExceed:
		if lic.HasCredits {
			h.Set(HeaderRateLimitPolicy, rateLimitCredits+";q="+strconv.FormatInt(lic.Credits, 10))
			h.Set(HeaderRateLimit, rateLimitCredits+";r=0")
		}
	case policy.CodeMaxConcurrentSessions:
		if lic.Seats > 0 {
			h.Set(HeaderRateLimitPolicy, rateLimitSeats+";q="+strconv.FormatInt(lic.Seats, 10))
			v := rateLimitSeats + ";r=0"
			if rej.RetryAfter > 0 {
				v += ";t=" + strconv.FormatInt(retryAfterSeconds(rej.RetryAfter), 10)
			}
			h.Set(HeaderRateLimit, v)
		}
	}
}

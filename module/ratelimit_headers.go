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

// setCreditHeaders writes an allowed request's credits: licensegate's own
// headers and the standard fields.
func setCreditHeaders(h http.Header, remaining, limit int64) {
	r, l := strconv.FormatInt(remaining, 10), strconv.FormatInt(limit, 10)
	h.Set(HeaderCreditsRemaining, r)
	h.Set(HeaderCreditsLimit, l)
	h.Set(HeaderRateLimitPolicy, rateLimitCredits+";q="+l)
	h.Set(HeaderRateLimit, rateLimitCredits+";r="+r)
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

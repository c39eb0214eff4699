package issuer

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/licensegate/licensegate/policy"
)

// LeaseTerms are what a lease token states beside the lease itself: who
// issues it, for whom, from which license.
type LeaseTerms struct {
	// Issuer is the iss of lease tokens and of error answers.
	Issuer string
	// Audience is the aud, omitted when empty (a single one as a string).
	Audience []string
	// Subject is the license's sub.
	Subject string
	// License is the license's counting key (lic).
	License string
	// ValidFrom and ValidUntil are the license's ibb and ibe, omitted
	// when zero.
	ValidFrom, ValidUntil time.Time
	// Version is the client version the request sent, if any (ver).
	Version string
	// Now is the time of issue (iat).
	Now time.Time
}

// RefreshShare is the part of a lease after which a client should renew
// it (rfr).
const RefreshShare = 0.75

// LeaseClaims are the claims of the lease token for one item: exp (the
// lease's end, rounded down to the second), "<item>": true, iss, aud,
// sub, jti (the lease id), iat, ver, lic, ibb, ibe, rfr (75 % into the
// lease) and hw.
func LeaseClaims(item string, l policy.Lease, t *LeaseTerms) map[string]any {
	iat, exp := t.Now.Unix(), l.Until.Unix()
	c := map[string]any{
		item:  true,
		"iss": t.Issuer,
		"jti": l.ID,
		"iat": iat,
		"exp": exp,
		"rfr": iat + int64(float64(exp-iat)*RefreshShare),
		"lic": t.License,
	}
	if aud, ok := audienceClaim(t.Audience); ok {
		c["aud"] = aud
	}
	if t.Subject != "" {
		c["sub"] = t.Subject
	}
	if t.Version != "" {
		c["ver"] = t.Version
	}
	if !t.ValidFrom.IsZero() {
		c["ibb"] = t.ValidFrom.Unix()
	}
	if !t.ValidUntil.IsZero() {
		c["ibe"] = t.ValidUntil.Unix()
	}
	if l.Hardware != "" {
		c["hw"] = l.Hardware
	}
	return c
}

// audienceClaim is the aud claim of a token for auds: none, a string for
// one, an array for several.
func audienceClaim(auds []string) (any, bool) {
	switch len(auds) {
	case 0:
		return nil, false
	case 1:
		return auds[0], true
	}
	return auds, true
}

// ErrorClaims are the fields of a refused item, as 10Duke answers them:
// "<item>_errorCode", "_errorKey", "_errorMessage", "_errorTechnical",
// iss and iat.
func ErrorClaims(item string, rej *policy.Reject, issuer string, now time.Time) map[string]any {
	return map[string]any{
		item + "_errorCode":      string(rej.Code),
		item + "_errorKey":       string(rej.Code),
		item + "_errorMessage":   rej.Code.Message(),
		item + "_errorTechnical": rej.Detail,
		"iss":                    issuer,
		"iat":                    now.Unix(),
	}
}

// ReleaseClaims are the answer to a release of lease id: "<id>": true,
// jti, iss and iat.
func ReleaseClaims(id, issuer string, now time.Time) map[string]any {
	return map[string]any{id: true, "jti": id, "iss": issuer, "iat": now.Unix()}
}

// AuthzAnswer is the answer for one item: its claims when granted, or its
// reject.
type AuthzAnswer struct {
	// Claims are LeaseClaims or ReleaseClaims when granted.
	Claims map[string]any
	// Reject is set when the item was refused; then Error holds its
	// ErrorClaims.
	Reject *policy.Reject
	Error  map[string]any
}

// Content types of /authz/ answers. A list of tokens is no single
// application/jwt, so .jwt answers as text, as .txt does.
const (
	contentTypeText = "text/plain; charset=utf-8"
	contentTypeJSON = "application/json"
)

// FormatAuthz renders the answers in format, in request order, joined by
// "&": .txt "true"/"false"; .json one object per answer (its claims, or
// its error fields); .jwt each object signed by sign. JSON objects never
// hold a raw "&" (encoding/json escapes it), so the list splits cleanly.
func FormatAuthz(format AuthzFormat, answers []AuthzAnswer, sign func(map[string]any) (string, error)) (contentType string, body []byte, err error) {
	parts := make([]string, len(answers))
	for i, a := range answers {
		obj := a.Claims
		if a.Reject != nil {
			obj = a.Error
		}
		switch format {
		case FormatText:
			parts[i] = "false"
			if a.Reject == nil {
				parts[i] = "true"
			}
		case FormatJSON:
			b, err := json.Marshal(obj)
			if err != nil {
				return "", nil, err
			}
			parts[i] = string(b)
		case FormatJWT:
			if parts[i], err = sign(obj); err != nil {
				return "", nil, err
			}
		}
	}
	ct := contentTypeText
	if format == FormatJSON {
		ct = contentTypeJSON
	}
	return ct, []byte(strings.Join(parts, "&")), nil
}

// RejectAll answers every item of req (or, when it names none, the
// "license") with rej, as a request that could not be served at all.
func RejectAll(req *AuthzRequest, rej *policy.Reject, issuer string, now time.Time) []AuthzAnswer {
	names := []string{"license"}
	switch {
	case req != nil && req.Release != "":
		names = []string{req.Release}
	case req != nil && len(req.Items) > 0:
		names = names[:0]
		for _, it := range req.Items {
			names = append(names, it.Name)
		}
	}
	out := make([]AuthzAnswer, len(names))
	for i, n := range names {
		out[i] = AuthzAnswer{Reject: rej, Error: ErrorClaims(n, rej, issuer, now)}
	}
	return out
}

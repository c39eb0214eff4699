package issuer

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/licensegate/licensegate/policy"
)

// issued is a token ready to sign: its claims and what the response and
// the log name.
type issued struct {
	claims  map[string]any
	lic     *policy.License
	jti     string
	exp     time.Time
	product string // the licensed items, comma-separated, for the log
}

// complete adds the issuer's claims to a request's, checks that a gate
// would enforce the result as asked (the same decoding as the gate's), and
// that the key may issue it. Every 400 comes before any 403: a request
// both malformed and beyond the grant learns what is malformed.
func (h *Handler) complete(key *apiKey, r *request, now time.Time) (*issued, *Problem) {
	c := r.claims
	start := r.start
	if start.Before(now) {
		start = now
	}
	exp := r.exp
	if exp.IsZero() {
		v := h.validity
		if key.maxValidity > 0 && key.maxValidity < v {
			v = key.maxValidity
		}
		exp = start.Add(v)
	}
	expField := r.field("exp")
	if !exp.After(now) {
		return nil, fieldError(expField, "%s is in the past", exp.UTC().Format(time.RFC3339))
	}
	if !r.start.IsZero() && !exp.After(r.start) {
		return nil, fieldError(expField, "%s is not after %s %s", exp.UTC().Format(time.RFC3339),
			r.field("nbf"), r.start.UTC().Format(time.RFC3339))
	}
	c["exp"] = exp.Unix()
	if r.validity {
		if !r.start.IsZero() {
			c["nbf"], c["ibb"] = r.start.Unix(), r.start.Unix()
		}
		c["ibe"] = exp.Unix()
	}
	if ibb, ok := c[defaultNames.ValidFrom].(int64); ok {
		if ibe, ok := c[defaultNames.ValidUntil].(int64); ok && ibe <= ibb {
			return nil, fieldError(r.field(defaultNames.ValidUntil), "is not after %s", r.field(defaultNames.ValidFrom))
		}
	}
	jti := newJTI()
	c["iss"], c["iat"], c["jti"] = h.issuer, now.Unix(), jti
	if aud, ok := audienceClaim(h.Audiences); ok {
		c["aud"] = aud
	}

	// The gate's own decoding: what it would refuse is refused here.
	lic, err := policy.DecodeKeeping(c, &defaultNames, []string{})
	if err != nil {
		var rej *policy.Reject
		if errors.As(err, &rej) {
			claim, detail, _ := strings.Cut(strings.TrimPrefix(rej.Detail, "claim "), ": ")
			return nil, fieldError(r.field(claim), "%s", detail)
		}
		return nil, fieldError("", "%v", err)
	}
	// Normalised: a gate reads numbers, whatever form they came in.
	if lic.HasCredits {
		c[defaultNames.Credits] = lic.Credits
	}
	if lic.Seats > 0 {
		c[defaultNames.Seats] = lic.Seats
	}
	items := licensedItems(c, lic)
	if h.catalog != nil {
		for _, it := range lic.Items {
			if !h.catalog[it] {
				return nil, &Problem{Status: http.StatusBadRequest, Kind: KindUnknownProduct, Field: r.field(productClaim(c, it)),
					Detail: "unknown product " + quote(it) + " (products: " + strings.Join(sortedKeys(h.catalog), ", ") + ")"}
			}
		}
	}
	if p := key.allows(r, c, lic, items, start); p != nil {
		return nil, p
	}
	return &issued{claims: c, lic: lic, jti: jti, exp: exp, product: strings.Join(lic.Items, ",")}, nil
}

// allows checks the request against the key's grant: 403 when beyond it.
func (k *apiKey) allows(r *request, c map[string]any, lic *policy.License, items []string, start time.Time) *Problem {
	if k.products != nil {
		for _, it := range items {
			if !k.products[it] {
				return beyondGrant(r.field(productClaim(c, it)), "api key %s may not issue %s (it may issue %s)",
					k.name, quote(it), strings.Join(sortedKeys(k.products), ", "))
			}
		}
	}
	if k.maxValidity > 0 {
		if d := lic.Expires.Sub(start); d > k.maxValidity {
			return beyondGrant(r.field("exp"), "api key %s issues tokens valid for at most %s, this one would be valid for %s",
				k.name, days(k.maxValidity), days(d))
		}
	}
	if k.maxCredits >= 0 {
		if !lic.HasCredits {
			return beyondGrant(r.field(defaultNames.Credits), "api key %s issues only tokens with at most %d credits; the request names none",
				k.name, k.maxCredits)
		}
		if lic.Credits > k.maxCredits {
			return beyondGrant(r.field(defaultNames.Credits), "api key %s issues at most %d credits per token, not %d",
				k.name, k.maxCredits, lic.Credits)
		}
	}
	return nil
}

// licensedItems are what a gate's require_item would find in the token:
// the items and product claims, and every claim that is true ("<item>":
// true).
func licensedItems(c map[string]any, lic *policy.License) []string {
	items := append([]string(nil), lic.Items...)
	for name, v := range c {
		if b, ok := v.(bool); ok && b {
			items = append(items, name)
		}
	}
	sort.Strings(items[len(lic.Items):])
	return items
}

// productClaim names the claim that licenses item, for the problem's field.
func productClaim(c map[string]any, item string) string {
	if b, ok := c[item].(bool); ok && b {
		return item
	}
	switch v := c[defaultNames.Product].(type) {
	case string:
		if v == item {
			return defaultNames.Product
		}
	case []string:
		for _, s := range v {
			if s == item {
				return defaultNames.Product
			}
		}
	}
	return defaultNames.Items
}

// newJTI is a fresh token id: 128 random bits, hex.
func newJTI() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return hex.EncodeToString(b)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// days renders a validity in days ("90 days", "2.5 days").
func days(d time.Duration) string {
	return strconv.FormatFloat(math.Round(d.Hours()/24*10)/10, 'f', -1, 64) + " days"
}

func quote(s string) string { return `"` + clip(s) + `"` }

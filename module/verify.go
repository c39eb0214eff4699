package module

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"

	"github.com/licensegate/licensegate/policy"
)

// asymmetricAlgs is the default allowlist: every asymmetric algorithm.
var asymmetricAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// hmacAlgs may only be allowed together with an explicit secret.
var hmacAlgs = []string{"HS256", "HS384", "HS512"}

// maxKidLen bounds the kid a token may name.
const maxKidLen = 256

// keyRetryAfter is the Retry-After sent while no key could be loaded.
const keyRetryAfter = 10 * time.Second

// Errors of the key lookup; the parser wraps them in ErrTokenUnverifiable.
var (
	errNoKeys     = errors.New("no verification key has been loaded yet")
	errUnknownKey = errors.New("no key of the key set fits the token's kid and alg")
	errBadKid     = errors.New("kid must be a non-empty string of at most 256 characters")
	errNoSecret   = errors.New("HMAC tokens need a configured secret")
	errCrit       = errors.New("crit header parameters are not supported")
	errTokenType  = errors.New("token typ is neither JWT nor at+jwt")
	errIssuerType = errors.New("claim iss is not a string")
)

// verifier checks signatures and registered claims, and decodes the
// license claims of tokens that pass. It is built once at provisioning and
// safe for concurrent use.
type verifier struct {
	parser   *jwt.Parser
	bindings *keyBindings
	names    policy.ClaimNames
	keep     []string // claims the licenses keep (match_claim); never nil
	cache    *tokenCache
	memo     *tokenMemo          // the tokens sent most often, in front of the cache
	flights  *singleflight.Group // one verification per token hash at a time
	strings  *stringPool         // one copy of the issuers, kids and items of cached licenses
	cacheTTL time.Duration
	leeway   time.Duration
}

// verified is what a request's verification gives: the decoded license
// (nil unless the signature held) and what the log and the placeholders
// need.
type verified struct {
	lic     *policy.License
	kid     string
	token   string // the request's token when lic is set, for placeholders of claims lic did not keep
	keyHash uint64 // policy.KeyHash of lic's key when the cache knew it; 0: not computed
}

// tokenHash keys the verified-token cache. The token is copied into a
// buffer on the stack (tokens up to 4 KiB, nearly all of them): a plain
// []byte(tok) would allocate on every request, since sha256.Sum256's
// argument escapes.
func tokenHash(tok string) [32]byte {
	var buf [4096]byte
	return sha256.Sum256(append(buf[:0], tok...))
}

// verify returns the token's license, from the memo or the cache when the
// same token was verified before (expiry is checked by the caller on
// every request).
// Concurrent misses of one token share one verification. On failure the
// result carries the kid for the log, and the license when the signature
// held.
func (v *verifier) verify(ctx context.Context, tok string, now time.Time) (verified, *policy.Reject) {
	ref := v.memo.ref(tok)
	var h [32]byte
	if m := ref.find(tok); m != nil {
		if now.UnixNano() <= m.expires {
			cacheHits.Inc()
			return verified{lic: m.lic, kid: m.kid, token: tok, keyHash: m.keyHash}, nil
		}
		h = m.h
	} else {
		h = tokenHash(tok)
	}
	if e, ok := v.cache.find(h); ok && (now.UnixNano() <= e.expires || v.renew(h, &e, now)) {
		cacheHits.Inc()
		ref.offer(tok, h, &e)
		return verified{lic: e.lic, kid: e.kid, token: tok, keyHash: e.keyHash}, nil
	}
	// The shared verification may wait for a key set's first load on
	// behalf of every request that waits for it: one client hanging up
	// must not cut the others' wait short (jwks_timeout bounds it).
	ctx = context.WithoutCancel(ctx)
	res, _, _ := v.flights.Do(string(h[:]), func() (any, error) {
		return v.verifyNow(ctx, tok, h, now), nil
	})
	r := res.(*verifyResult)
	e := verified{lic: r.lic, kid: r.kid}
	if e.lic != nil {
		e.token = tok
	}
	return e, r.rej
}

// renew keeps a cached token that is due for re-verification when the
// key sets have not changed since it was verified, and reports whether
// it did. Verifying it again would give the same answer: the same token
// checked against the same keys, by a gate whose other rules are those
// it was checked by, and a token once valid stays so but for exp, which
// bounds the entry (and is checked on every request). Nor is it decoded
// again: the license is that of the same token. A token whose exp
// passed, or whose keys may have changed, is verified anew.
func (v *verifier) renew(h [32]byte, e *cacheEntry, now time.Time) bool {
	limit := e.lic.Expires.Add(v.leeway)
	if now.After(limit) || e.keys != v.bindings.version() {
		return false
	}
	e.expires = min(now.Add(v.cacheTTL).UnixNano(), limit.UnixNano())
	v.cache.put(h, e.lic, e.kid, e.keys, time.Unix(0, e.expires), now)
	return true
}

// verifyResult is what one shared verification gives every waiter: the
// license when the signature held, the kid, and the reject on failure.
type verifyResult struct {
	lic *policy.License
	kid string
	rej *policy.Reject
}

// verifyNow verifies the token and caches it when it passes.
func (v *verifier) verifyNow(ctx context.Context, tok string, h [32]byte, now time.Time) *verifyResult {
	if rej := checkCompact(tok); rej != nil {
		return &verifyResult{rej: rej}
	}
	// Read before the keys are: a change of keys during the check makes
	// the entry's version stale, never too new (see keySource.version).
	keys := v.bindings.version()
	var kid string
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		var key any
		var err error
		kid, key, err = v.keyfunc(ctx, t)
		return key, err
	})
	fail := func(lic *policy.License, rej *policy.Reject) *verifyResult {
		return &verifyResult{lic: lic, kid: kid, rej: rej}
	}
	if err != nil {
		// The signature held but a claim failed (the issuer was checked
		// before the signature: the keys are chosen by it). A claim of
		// the wrong type or range is notAuthorized whatever exp, nbf or
		// iat say: an exp of 1e300 is not an expired token but a
		// malformed one.
		if errors.Is(err, jwt.ErrTokenInvalidClaims) {
			lic, derr := policy.DecodeKeeping(claims, &v.names, v.keep)
			if derr != nil {
				var rej *policy.Reject
				if errors.As(derr, &rej) {
					return fail(nil, rej)
				}
			}
			// The signature held: the log may name the license.
			return fail(lic, rejectForParse(err))
		}
		return fail(nil, rejectForParse(err))
	}
	lic, err := policy.DecodeKeeping(claims, &v.names, v.keep)
	if err != nil {
		var rej *policy.Reject
		if errors.As(err, &rej) {
			return fail(nil, rej)
		}
		return fail(nil, policy.Rejectf(policy.CodeNotAuthorized, "claims: %v", err))
	}
	if !v.bindings.accepts(lic.Issuer) {
		// keyfunc chose the keys by this issuer; this is a second look.
		return fail(nil, policy.Rejectf(policy.CodeNotAuthorized, "issuer %.100q is not accepted", lic.Issuer))
	}
	v.share(lic)
	kid = v.strings.intern(kid)
	expires := now.Add(v.cacheTTL)
	if exp := lic.Expires.Add(v.leeway); exp.Before(expires) {
		expires = exp
	}
	v.cache.put(h, lic, kid, keys, expires, now)
	return &verifyResult{lic: lic, kid: kid}
}

// share replaces the strings a new license has in common with other
// licenses by the verifier's one copy, before the license is cached and
// shared (a License is immutable from then on).
func (v *verifier) share(lic *policy.License) {
	lic.Issuer = v.strings.intern(lic.Issuer)
	for i, item := range lic.Items {
		lic.Items[i] = v.strings.intern(item)
	}
}

// keyfunc checks the header and finds the keys that may have signed the
// token: only the keys bound to the issuer the token claims, so that a key
// speaks only for its issuer; never a key or URL the token brings (jwk,
// jku, x5u, x5c are ignored).
func (v *verifier) keyfunc(ctx context.Context, t *jwt.Token) (string, any, error) {
	kidValue, hasKid := t.Header["kid"]
	kid, isString := kidValue.(string)
	if hasKid && (!isString || kid == "" || len(kid) > maxKidLen) {
		return "", nil, errBadKid
	}
	if err := checkHeader(t.Header); err != nil {
		return kid, nil, err
	}
	bound, err := v.keysFor(t)
	if err != nil {
		return kid, nil, err
	}
	alg := t.Method.Alg()
	if strings.HasPrefix(alg, "HS") {
		if bound.secret == nil {
			return kid, nil, errNoSecret
		}
		return kid, bound.secret, nil
	}
	var keys []any
	for _, s := range bound.sources {
		keys = s.current().candidates(keys, kid, hasKid, alg)
	}
	if len(keys) == 0 {
		for _, s := range bound.sources {
			if s.refreshFor(ctx, kid, hasKid) {
				keys = s.current().candidates(keys, kid, hasKid, alg)
			}
		}
	}
	switch len(keys) {
	case 0:
		// serviceUnavailable only while none of this issuer's sources
		// has keys: a source that never loaded does not turn the
		// unknown kids of the others into 503s.
		for _, s := range bound.sources {
			if s.current() != nil {
				return kid, nil, fmt.Errorf("%w (kid %q, alg %s)", errUnknownKey, kid, alg)
			}
		}
		if len(bound.sources) > 0 {
			return kid, nil, errNoKeys
		}
		return kid, nil, fmt.Errorf("%w (kid %q, alg %s)", errUnknownKey, kid, alg)
	case 1:
		return kid, keys[0], nil
	}
	set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(keys))}
	for i, k := range keys {
		set.Keys[i] = k
	}
	return kid, set, nil
}

// keysFor returns the keys bound to the issuer the token claims.
func (v *verifier) keysFor(t *jwt.Token) (*issuerKeys, error) {
	if v.bindings.anyIssuer != nil {
		return v.bindings.anyIssuer, nil
	}
	var iss string
	if claims, ok := t.Claims.(jwt.MapClaims); ok {
		if raw, present := claims["iss"]; present {
			s, ok := raw.(string)
			if !ok {
				return nil, errIssuerType
			}
			iss = s
		}
	}
	bound := v.bindings.forIssuer(iss)
	if bound == nil {
		return nil, &issuerError{iss: iss}
	}
	return bound, nil
}

// issuerError is a token claiming an issuer the gate does not accept.
type issuerError struct{ iss string }

func (e *issuerError) Error() string {
	if e.iss == "" {
		return "the token names no issuer (iss), and the gate accepts only named issuers"
	}
	return fmt.Sprintf("issuer %.100q is not accepted", e.iss)
}

// checkHeader refuses token types made for other purposes (RFC 8725
// §3.11) and critical extensions the gate does not understand.
func checkHeader(h map[string]any) error {
	if _, ok := h["crit"]; ok {
		return errCrit
	}
	typ, ok := h["typ"]
	if !ok {
		return nil
	}
	s, ok := typ.(string)
	if !ok {
		return errTokenType
	}
	s = strings.ToLower(s)
	s = strings.TrimPrefix(s, "application/")
	if s != "jwt" && s != "at+jwt" {
		return errTokenType
	}
	return nil
}

// rejectForParse maps a golang-jwt error to its reject (notAuthorized or licenseExpired).
func rejectForParse(err error) *policy.Reject {
	var badIssuer *issuerError
	switch {
	case errors.As(err, &badIssuer):
		// Told apart from a bad signature: no key was tried.
		return policy.Rejectf(policy.CodeNotAuthorized, "%s", badIssuer.Error())
	case errors.Is(err, errIssuerType):
		return policy.Rejectf(policy.CodeNotAuthorized, "%s", errIssuerType.Error())
	case errors.Is(err, errNoKeys):
		return &policy.Reject{Code: policy.CodeServiceUnavailable, Status: http.StatusServiceUnavailable,
			Detail: "no verification key could be loaded from the key server yet", RetryAfter: keyRetryAfter}
	case errors.Is(err, jwt.ErrTokenMalformed):
		return policy.Rejectf(policy.CodeNotAuthorized, "malformed token: %s", clip(err.Error()))
	case errors.Is(err, jwt.ErrTokenUnverifiable), errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return policy.Rejectf(policy.CodeNotAuthorized, "token not verified: %s", clip(err.Error()))
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidAudience),
		errors.Is(err, jwt.ErrTokenRequiredClaimMissing), errors.Is(err, jwt.ErrTokenInvalidClaims) &&
			!errors.Is(err, jwt.ErrTokenExpired) && !errors.Is(err, jwt.ErrTokenNotValidYet):
		return policy.Rejectf(policy.CodeNotAuthorized, "claims not accepted: %s", clip(err.Error()))
	case errors.Is(err, jwt.ErrTokenExpired):
		return policy.Rejectf(policy.CodeLicenseExpired, "token expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return &policy.Reject{Code: policy.CodeValidityNotStarted, Status: http.StatusForbidden, Detail: "token not valid yet (nbf)"}
	}
	return policy.Rejectf(policy.CodeNotAuthorized, "token not accepted: %s", clip(err.Error()))
}

// clip bounds a detail taken from an error text.
func clip(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// algorithmsFor returns the configured allowlist, checked.
func algorithmsFor(configured []string, haveSecret bool) ([]string, error) {
	if len(configured) == 0 {
		out := slices.Clone(asymmetricAlgs)
		if haveSecret {
			out = append(out, hmacAlgs...)
		}
		return out, nil
	}
	for _, a := range configured {
		switch {
		case slices.Contains(asymmetricAlgs, a):
		case slices.Contains(hmacAlgs, a):
			if !haveSecret {
				return nil, fmt.Errorf("algorithm %s needs a secret", a)
			}
		default:
			return nil, fmt.Errorf("unsupported algorithm %q (supported: %s %s)", a,
				strings.Join(asymmetricAlgs, " "), strings.Join(hmacAlgs, " "))
		}
	}
	return configured, nil
}

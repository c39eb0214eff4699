package module

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/golang-jwt/jwt/v5"

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
)

// verifier checks signatures and registered claims, and decodes the
// license claims of tokens that pass. It is built once at provisioning and
// safe for concurrent use.
type verifier struct {
	parser   *jwt.Parser
	sources  []keySource
	secret   []byte
	issuers  []string
	names    policy.ClaimNames
	keep     []string // claims the licenses keep (match_claim); never nil
	cache    *tokenCache
	cacheTTL time.Duration
	leeway   time.Duration
}

// verified is a cache entry: the decoded license and what the log needs.
type verified struct {
	lic     *policy.License
	kid     string
	token   string    // for placeholders of claims the license did not keep
	expires time.Time // when the entry must be verified again
}

// tokenHash keys the verified-token cache. It hashes the string's bytes
// in place: no copy on the hot path (sha256 only reads them).
func tokenHash(tok string) [32]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(tok), len(tok)))
}

// verify returns the token's license, from the cache when the same token
// was verified before (expiry is checked by the caller on every request).
// On failure the returned entry (possibly nil) carries the kid for the log.
func (v *verifier) verify(ctx context.Context, tok string, now time.Time) (*verified, *policy.Reject) {
	h := tokenHash(tok)
	if e := v.cache.get(h, now); e != nil {
		cacheHits.Inc()
		return e, nil
	}
	if rej := checkCompact(tok); rej != nil {
		return &verified{}, rej
	}
	var kid string
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		var key any
		var err error
		kid, key, err = v.keyfunc(ctx, t)
		return key, err
	})
	failed := &verified{kid: kid}
	if err != nil {
		// The signature held but a time claim failed: a token of an
		// issuer that is not accepted is still notAuthorized, as a wrong
		// aud is, whatever its exp, nbf or iat say.
		if errors.Is(err, jwt.ErrTokenInvalidClaims) {
			if iss, _ := claims["iss"].(string); len(v.issuers) > 0 && !slices.Contains(v.issuers, iss) {
				return failed, policy.Rejectf(policy.CodeNotAuthorized, "issuer %.100q is not accepted", iss)
			}
			// So is a claim of the wrong type or range (an exp of 1e300
			// is not an expired token but a malformed one).
			lic, derr := policy.DecodeKeeping(claims, &v.names, v.keep)
			if derr != nil {
				var rej *policy.Reject
				if errors.As(derr, &rej) {
					return failed, rej
				}
			}
			// The signature held: the log may name the license.
			failed.lic, failed.token = lic, tok
		}
		return failed, rejectForParse(err)
	}
	lic, err := policy.DecodeKeeping(claims, &v.names, v.keep)
	if err != nil {
		var rej *policy.Reject
		if errors.As(err, &rej) {
			return failed, rej
		}
		return failed, policy.Rejectf(policy.CodeNotAuthorized, "claims: %v", err)
	}
	if len(v.issuers) > 0 && !slices.Contains(v.issuers, lic.Issuer) {
		return failed, policy.Rejectf(policy.CodeNotAuthorized, "issuer %.100q is not accepted", lic.Issuer)
	}
	e := &verified{lic: lic, kid: kid, token: tok, expires: now.Add(v.cacheTTL)}
	if exp := lic.Expires.Add(v.leeway); exp.Before(e.expires) {
		e.expires = exp
	}
	v.cache.put(h, e)
	return e, nil
}

// keyfunc checks the header and finds the keys that may have signed the
// token: only configured sources are consulted, never a key or URL the
// token brings (jwk, jku, x5u, x5c are ignored).
func (v *verifier) keyfunc(ctx context.Context, t *jwt.Token) (string, any, error) {
	kidValue, hasKid := t.Header["kid"]
	kid, isString := kidValue.(string)
	if hasKid && (!isString || kid == "" || len(kid) > maxKidLen) {
		return "", nil, errBadKid
	}
	if err := checkHeader(t.Header); err != nil {
		return kid, nil, err
	}
	alg := t.Method.Alg()
	if strings.HasPrefix(alg, "HS") {
		if v.secret == nil {
			return kid, nil, errNoSecret
		}
		return kid, v.secret, nil
	}
	var keys []any
	for _, s := range v.sources {
		keys = s.current().candidates(keys, kid, hasKid, alg)
	}
	if len(keys) == 0 && hasKid {
		for _, s := range v.sources {
			if s.refreshFor(ctx, kid) {
				keys = s.current().candidates(keys, kid, true, alg)
			}
		}
	}
	switch len(keys) {
	case 0:
		for _, s := range v.sources {
			if s.current() == nil {
				return kid, nil, errNoKeys
			}
		}
		return kid, nil, errUnknownKey
	case 1:
		return kid, keys[0], nil
	}
	set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(keys))}
	for i, k := range keys {
		set.Keys[i] = k
	}
	return kid, set, nil
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
	switch {
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

// maxJSONDepth bounds the nesting of the decoded header and claims: the
// top-level object counts as one.
const maxJSONDepth = 32

// Errors of the strict JSON check.
var (
	errJSONSyntax    = errors.New("invalid JSON")
	errJSONDepth     = fmt.Errorf("JSON nested deeper than %d levels", maxJSONDepth)
	errJSONDuplicate = errors.New("duplicate JSON object key")
	errJSONNotObject = errors.New("not a JSON object")
)

// strictB64 is the only encoding of a JWS segment: base64url without
// padding, trailing bits zero (RFC 7515 §2, §7.1).
var strictB64 = base64.RawURLEncoding.Strict()

// checkCompact refuses what the JWT parser would silently accept: anything
// but three segments of the base64url alphabet (padding, the standard
// alphabet, whitespace — Go's decoder skips CR and LF — a 5-segment JWE),
// non-zero trailing bits (another spelling of the same signature), and a
// header or claims set that is not one JSON object free of duplicate keys
// and of nesting deeper than maxJSONDepth (encoding/json takes the last of
// duplicate keys where another parser may take the first, and ignores data
// after the claims object). It runs once per token that is not cached,
// after the size cap.
func checkCompact(tok string) *policy.Reject {
	dots := 0
	for i := 0; i < len(tok); i++ {
		switch c := tok[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.':
			dots++
		default:
			return policy.Rejectf(policy.CodeNotAuthorized, "malformed token: byte 0x%02x at offset %d is not base64url", c, i)
		}
	}
	if dots != 2 {
		return policy.Rejectf(policy.CodeNotAuthorized, "malformed token: %d segments, a JWS has 3", dots+1)
	}
	var buf [4096]byte
	rest := tok
	for i, name := range [...]string{"header", "claims", "signature"} {
		seg, after, _ := strings.Cut(rest, ".")
		rest = after
		doc, err := strictB64.AppendDecode(buf[:0], unsafe.Slice(unsafe.StringData(seg), len(seg)))
		if err != nil {
			return policy.Rejectf(policy.CodeNotAuthorized, "malformed token: %s is not canonical base64url", name)
		}
		if i < 2 {
			if err := checkJSON(doc); err != nil {
				return policy.Rejectf(policy.CodeNotAuthorized, "malformed token: %s: %v", name, err)
			}
		}
	}
	return nil
}

// checkJSON reports whether doc is one JSON object with no duplicate key
// in any object and no nesting deeper than maxJSONDepth. It accepts exactly
// the documents encoding/json accepts that meet those rules.
func checkJSON(doc []byte) error {
	s := jsonScanner{b: doc}
	s.space()
	if s.peek() != '{' {
		return errJSONNotObject
	}
	if err := s.value(1); err != nil {
		return err
	}
	s.space()
	if s.i != len(s.b) {
		return errJSONSyntax
	}
	return nil
}

// jsonScanner is a validating JSON reader that keeps nothing but the keys
// of the objects it is in.
type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *jsonScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) value(depth int) error {
	switch c := s.peek(); {
	case c == '{':
		return s.object(depth)
	case c == '[':
		return s.array(depth)
	case c == '"':
		_, err := s.str()
		return err
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return errJSONSyntax
}

func (s *jsonScanner) object(depth int) error {
	if depth > maxJSONDepth {
		return errJSONDepth
	}
	s.i++ // {
	s.space()
	if s.peek() == '}' {
		s.i++
		return nil
	}
	var keys [16][]byte
	n := 0
	var many map[string]struct{} // once an object has more than len(keys) keys
	for {
		s.space()
		if s.peek() != '"' {
			return errJSONSyntax
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		if many == nil && n == len(keys) {
			many = make(map[string]struct{}, 2*len(keys))
			for _, k := range keys {
				many[string(k)] = struct{}{}
			}
		}
		if many != nil {
			if _, dup := many[string(key)]; dup {
				return errJSONDuplicate
			}
			many[string(key)] = struct{}{}
		} else {
			for _, k := range keys[:n] {
				if string(k) == string(key) {
					return errJSONDuplicate
				}
			}
			keys[n] = key
			n++
		}
		s.space()
		if s.peek() != ':' {
			return errJSONSyntax
		}
		s.i++
		s.space()
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.space()
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return errJSONSyntax
		}
	}
}

func (s *jsonScanner) array(depth int) error {
	if depth > maxJSONDepth {
		return errJSONDepth
	}
	s.i++ // [
	s.space()
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for {
		s.space()
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.space()
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return errJSONSyntax
		}
	}
}

// str reads a string and returns its value as encoding/json decodes it:
// the raw bytes when they hold no escape and only ASCII, else the decoded
// value (escapes resolved, invalid UTF-8 replaced), so that keys equal
// after decoding count as duplicates.
func (s *jsonScanner) str() ([]byte, error) {
	start := s.i
	s.i++ // "
	plain := true
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			if plain {
				return s.b[start+1 : s.i-1], nil
			}
			var v string
			if err := json.Unmarshal(bytes.Clone(s.b[start:s.i]), &v); err != nil {
				return nil, errJSONSyntax
			}
			return []byte(v), nil
		case c == '\\':
			plain = false
			s.i++
			switch s.peek() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				s.i++
				for range 4 {
					if !isHex(s.peek()) {
						return nil, errJSONSyntax
					}
					s.i++
				}
			default:
				return nil, errJSONSyntax
			}
		case c < 0x20:
			return nil, errJSONSyntax
		default:
			if c >= 0x80 {
				plain = false
			}
			s.i++
		}
	}
	return nil, errJSONSyntax
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func (s *jsonScanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return errJSONSyntax
	}
	s.i += len(lit)
	return nil
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScanner) number() error {
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return errJSONSyntax
	}
	if s.peek() == '.' {
		s.i++
		if s.digits() == 0 {
			return errJSONSyntax
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if s.digits() == 0 {
			return errJSONSyntax
		}
	}
	return nil
}

func (s *jsonScanner) digits() int {
	n := 0
	for c := s.peek(); c >= '0' && c <= '9'; c = s.peek() {
		s.i++
		n++
	}
	return n
}

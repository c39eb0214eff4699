package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "license-token",
		Usage: "--key <private.jwk.json> | --secret <hmac secret> [--alg <alg>] [--kid <id>] [--typ <type>] [claim flags]",
		Short: "Mints a signed license token (compact JWT) for testing and demos",
		Long: `
Signs a license token with a private key made by 'license-keygen' (or any
private JWK, JWK Set or PEM file) and prints the compact JWT to stdout,
followed by a newline.

The algorithm is the key's "alg" (--alg overrides; a key without "alg" gets
RS256, ES256/ES384/ES512 by curve, or EdDSA). The header carries typ (--typ,
default JWT; "" omits it) and the key's kid (--kid overrides; with a key set
holding several keys, --kid selects the key). --secret signs with an HMAC
secret instead (--alg HS256, the default, HS384 or HS512).

A claim is present only when its flag is given; exp, iat and jti have
defaults. Times (--exp, --nbf, --iat, --ibb, --ibe) take a Go duration from
now (1h, -30m, 720h; negative for the past), unix seconds (1767225600), an
RFC 3339 time, "now", or "none" to leave the claim out. Give a negative
duration with '=' (--exp=-1h) to mint an already expired token.

  --iss, --sub, --jti, --lic     registered claims and the license id
  --aud (repeatable)             one value: a string claim; several: an array
  --exp (default 1h)  --nbf  --iat (default now)  --ibb  --ibe
  --credits N                    integer credits granted (omitted when not given)
  --item (repeatable)            licensed items, the "items" array
  --product, --ver, --hw         product, version pattern (1.2.3, 1-3.4-6.7-9,
                                 1.*.*), hardware lock
  --ip (repeatable)              IP or CIDR; one value: a string, several: an array
  --seats N                      concurrent hardware ids
  --claim name=value             any other claim (repeatable); the value is
                                 used as JSON when it parses as JSON (5, true,
                                 ["a"], {"k":1}, "\"5\""), else as a string.
                                 E.g. --claim axesWord=true licenses an item
                                 the "<item>": true way.

Example:

  licensegate license-token --key private.jwk.json --sub alice \
    --iss https://license.example.com --aud api.example.com \
    --lic L-1001 --credits 10 --item axesWord --ver '1-3.*.*' --exp 24h
`,
		CobraFunc: tokenCobra,
	})
}

// tokenCobra sets up the command's flags and run function.
func tokenCobra(cmd *cobra.Command) {
	useOwnHelp(cmd)
	addTokenFlags(cmd.Flags())
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runToken(cmd.Flags(), cmd.OutOrStdout(), time.Now())
	}
}

func addTokenFlags(fs *pflag.FlagSet) {
	fs.String("key", "", "Private key file: a JWK, a JWK Set or PEM")
	fs.String("secret", "", "HMAC secret to sign with instead of --key (HS256, HS384, HS512)")
	fs.String("alg", "", "Signature algorithm (default: the key's alg)")
	fs.String("kid", "", "kid header (default: the key's kid); selects the key from a key set")
	fs.String("typ", "JWT", `typ header, e.g. JWT or at+jwt ("" omits it)`)

	fs.String("iss", "", "Issuer (iss)")
	fs.String("sub", "", "Subject (sub)")
	fs.StringArray("aud", nil, "Audience (aud), repeatable")
	fs.String("jti", "", "Token id (jti) (default: random; \"\" omits it)")
	fs.String("lic", "", "License id (lic)")
	fs.String("exp", "1h", "Expiry (exp): duration from now, unix seconds, RFC 3339, or none")
	fs.String("nbf", "", "Not before (nbf): duration from now, unix seconds, RFC 3339")
	fs.String("iat", "now", "Issued at (iat): duration from now, unix seconds, RFC 3339, or none")
	fs.String("ibb", "", "License validity begin (ibb): duration from now, unix seconds, RFC 3339")
	fs.String("ibe", "", "License validity end (ibe): duration from now, unix seconds, RFC 3339")
	fs.Int64("credits", 0, "Credits granted (credits), an integer >= 0")
	fs.StringArray("item", nil, "Licensed item (into the items array), repeatable")
	fs.String("product", "", "Product (product)")
	fs.String("ver", "", "Allowed client versions (ver), e.g. 1.2.3, 1-3.4-6.7-9, 1.*.*")
	fs.String("hw", "", "Hardware lock (hw)")
	fs.StringArray("ip", nil, "Allowed client IP or CIDR (ip), repeatable")
	fs.Int64("seats", 0, "Concurrent hardware ids allowed (seats), an integer >= 0")
	fs.StringArray("claim", nil, "Extra claim name=value (value used as JSON when it parses), repeatable")
}

// claimFlags maps claim names to the dedicated flag that sets them.
var claimFlags = map[string]string{
	"iss": "iss", "sub": "sub", "aud": "aud", "jti": "jti", "lic": "lic",
	"exp": "exp", "nbf": "nbf", "iat": "iat", "ibb": "ibb", "ibe": "ibe",
	"credits": "credits", "items": "item", "product": "product", "ver": "ver",
	"hw": "hw", "ip": "ip", "seats": "seats",
}

func runToken(fl *pflag.FlagSet, out io.Writer, now time.Time) error {
	claims, err := buildClaims(fl, now)
	if err != nil {
		return err
	}
	signer, err := loadSigner(fl)
	if err != nil {
		return err
	}
	tok, err := signClaims(claims, signer)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, tok)
	return err
}

// buildClaims turns the claim flags into the token payload. Only what the
// flags ask for is present (exp, iat and jti have defaults).
func buildClaims(fl *pflag.FlagSet, now time.Time) (map[string]any, error) {
	claims := map[string]any{}
	str := func(name string) string { v, _ := fl.GetString(name); return v }

	for _, name := range []string{"iss", "sub", "lic", "product", "ver", "hw"} {
		if v := str(name); v != "" {
			claims[name] = v
		}
	}

	// jti: random unless given; given empty, left out.
	if fl.Changed("jti") {
		if v := str("jti"); v != "" {
			claims["jti"] = v
		}
	} else {
		claims["jti"] = randomHex(16)
	}

	aud := stringArray(fl, "aud")
	for _, a := range aud {
		if a == "" {
			return nil, errors.New("--aud must not be empty")
		}
	}
	if v := stringOrArray(aud); v != nil {
		claims["aud"] = v
	}

	for _, name := range []string{"exp", "nbf", "iat", "ibb", "ibe"} {
		v, ok, err := parseTimeFlag(str(name), now)
		if err != nil {
			return nil, fmt.Errorf("--%s %q: %w", name, str(name), err)
		}
		if ok {
			claims[name] = v
		}
	}

	for _, name := range []string{"credits", "seats"} {
		if !fl.Changed(name) {
			continue
		}
		n, _ := fl.GetInt64(name)
		if n < 0 {
			return nil, fmt.Errorf("--%s must be an integer >= 0, got %d (use --claim %s=%d to mint an invalid token on purpose)", name, n, name, n)
		}
		claims[name] = n
	}

	items := stringArray(fl, "item")
	for _, it := range items {
		if it == "" {
			return nil, errors.New("--item must not be empty")
		}
	}
	if len(items) > 0 {
		claims["items"] = items
	}

	ips := stringArray(fl, "ip")
	for _, ip := range ips {
		if err := checkIPOrCIDR(ip); err != nil {
			return nil, err
		}
	}
	if v := stringOrArray(ips); v != nil {
		claims["ip"] = v
	}

	extra := stringArray(fl, "claim")
	seen := map[string]bool{}
	for _, kv := range extra {
		name, value, ok := strings.Cut(kv, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("--claim %q: want name=value", kv)
		}
		if seen[name] {
			return nil, fmt.Errorf("--claim %s is given twice", name)
		}
		seen[name] = true
		if f, dedicated := claimFlags[name]; dedicated && fl.Changed(f) {
			return nil, fmt.Errorf("claim %q is set by both --%s and --claim; use one", name, f)
		}
		claims[name] = claimValue(value)
	}
	return claims, nil
}

// stringArray returns a repeatable flag's values. Unlike GetStringArray,
// which round-trips through the CSV text form, it keeps empty values
// (--aud "" yields [""] here but [] from GetStringArray).
func stringArray(fl *pflag.FlagSet, name string) []string {
	if f := fl.Lookup(name); f != nil {
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			return sv.GetSlice()
		}
	}
	vs, _ := fl.GetStringArray(name)
	return vs
}

// stringOrArray is nil for no values, the string for one, else the array.
func stringOrArray(vs []string) any {
	switch len(vs) {
	case 0:
		return nil
	case 1:
		return vs[0]
	default:
		return vs
	}
}

// claimValue is the JSON value of s when s parses as JSON, else s itself.
func claimValue(s string) any {
	if t := strings.TrimSpace(s); t != "" && json.Valid([]byte(t)) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, []byte(t)); err == nil {
			return json.RawMessage(buf.Bytes())
		}
	}
	return s
}

func checkIPOrCIDR(s string) error {
	if _, err := netip.ParseAddr(s); err == nil {
		return nil
	}
	if _, err := netip.ParsePrefix(s); err == nil {
		return nil
	}
	return fmt.Errorf("--ip %q is not an IP address or CIDR prefix (repeat --ip for several; --claim ip=... sets a raw value)", s)
}

const timeFlagHelp = `want a duration from now (1h, -30m, 720h), unix seconds (1767225600), an RFC 3339 time, "now" or "none"`

// parseTimeFlag reads a time flag as unix seconds; ok is false when the
// claim is to be left out ("" or "none").
func parseTimeFlag(s string, now time.Time) (v int64, ok bool, err error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "none":
		return 0, false, nil
	case "now":
		return now.Unix(), true, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, false, errors.New("unix seconds must not be negative; " + timeFlagHelp)
		}
		return n, true, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.Unix(), true, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, false, errors.New(timeFlagHelp)
	}
	return now.Add(d).Unix(), true, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

// tokenSigner is what signClaims needs: algorithm, raw key and header kid.
type tokenSigner struct {
	alg jwa.SignatureAlgorithm
	key any    // raw key: *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey, []byte
	kid string // "" = no kid header
	typ string // "" = no typ header
}

func loadSigner(fl *pflag.FlagSet) (*tokenSigner, error) {
	keyPath, _ := fl.GetString("key")
	secret, _ := fl.GetString("secret")
	algFlag, _ := fl.GetString("alg")
	kidFlag, _ := fl.GetString("kid")
	typ, _ := fl.GetString("typ")
	keyGiven, secretGiven := fl.Changed("key"), fl.Changed("secret")

	var alg jwa.SignatureAlgorithm
	if algFlag != "" {
		a, err := parseSigAlg(algFlag)
		if err != nil {
			return nil, err
		}
		alg = a
	}

	switch {
	case keyGiven && secretGiven:
		return nil, errors.New("use either --key or --secret, not both")
	case secretGiven:
		if secret == "" {
			return nil, errors.New("--secret must not be empty")
		}
		if alg == "" {
			alg = jwa.HS256
		}
		if !isHMAC(alg) {
			return nil, fmt.Errorf("--secret signs with HS256, HS384 or HS512, not %s (use --key for asymmetric algorithms)", alg)
		}
		return &tokenSigner{alg: alg, key: []byte(secret), kid: kidFlag, typ: typ}, nil
	case !keyGiven || keyPath == "":
		return nil, errors.New("--key <private key file> is required (or --secret <hmac secret>); make a key with 'license-keygen'")
	}

	key, err := loadPrivateKey(keyPath, kidFlag)
	if err != nil {
		return nil, err
	}
	if use, ok := key.Get(jwk.KeyUsageKey); ok && fmt.Sprint(use) != string(jwk.ForSignature) {
		return nil, fmt.Errorf("%s: the key is for use %q, not signing (sig)", keyPath, use)
	}
	if alg == "" {
		if ka := key.Algorithm().String(); ka != "" {
			a, err := parseSigAlg(ka)
			if err != nil {
				return nil, fmt.Errorf("%s: key alg: %w (override with --alg)", keyPath, err)
			}
			alg = a
		} else if alg, err = inferAlg(key); err != nil {
			return nil, fmt.Errorf("%s: %w", keyPath, err)
		}
	}
	if err := checkAlgForKey(alg, key); err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	var raw any
	if err := key.Raw(&raw); err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	kid := key.KeyID()
	if fl.Changed("kid") {
		kid = kidFlag
	}
	return &tokenSigner{alg: alg, key: raw, kid: kid, typ: typ}, nil
}

// loadPrivateKey reads a JWK, JWK Set or PEM file and returns its private key;
// a set with several keys needs kid to choose.
func loadPrivateKey(path, kid string) (jwk.Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var opts []jwk.ParseOption
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN")) {
		opts = append(opts, jwk.WithPEM(true))
	}
	set, err := jwk.Parse(data, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: not a JWK, JWK Set or PEM key: %w", path, err)
	}
	var key jwk.Key
	switch n := set.Len(); {
	case n == 0:
		return nil, fmt.Errorf("%s: holds no key", path)
	case n == 1:
		key, _ = set.Key(0)
	case kid == "":
		return nil, fmt.Errorf("%s: holds %d keys; choose one with --kid", path, n)
	default:
		k, ok := set.LookupKeyID(kid)
		if !ok {
			return nil, fmt.Errorf("%s: no key with kid %q", path, kid)
		}
		key = k
	}
	if key.KeyType() != jwa.OctetSeq {
		if priv, err := jwk.IsPrivateKey(key); err != nil || !priv {
			return nil, fmt.Errorf("%s: holds a public key (kid %q); license-token needs the private key, e.g. the --out-private file of license-keygen", path, key.KeyID())
		}
	}
	return key, nil
}

func parseSigAlg(s string) (jwa.SignatureAlgorithm, error) {
	for _, a := range jwa.SignatureAlgorithms() {
		if a != jwa.NoSignature && strings.EqualFold(a.String(), s) {
			return a, nil
		}
	}
	return "", fmt.Errorf("unsupported signature algorithm %q", s)
}

func isHMAC(alg jwa.SignatureAlgorithm) bool {
	return alg == jwa.HS256 || alg == jwa.HS384 || alg == jwa.HS512
}

// inferAlg picks the conventional algorithm for a key without "alg".
func inferAlg(key jwk.Key) (jwa.SignatureAlgorithm, error) {
	switch key.KeyType() {
	case jwa.RSA:
		return jwa.RS256, nil
	case jwa.OctetSeq:
		return jwa.HS256, nil
	case jwa.EC, jwa.OKP:
		switch crv := keyCurve(key); crv {
		case jwa.P256:
			return jwa.ES256, nil
		case jwa.P384:
			return jwa.ES384, nil
		case jwa.P521:
			return jwa.ES512, nil
		case jwa.Ed25519:
			return jwa.EdDSA, nil
		default:
			return "", fmt.Errorf("no signature algorithm for curve %q; give --alg", crv)
		}
	}
	return "", fmt.Errorf("no signature algorithm for key type %q; give --alg", key.KeyType())
}

// curveKey is implemented by jwk.ECDSAPrivateKey and jwk.OKPPrivateKey.
type curveKey interface {
	Crv() jwa.EllipticCurveAlgorithm
}

func keyCurve(key jwk.Key) jwa.EllipticCurveAlgorithm {
	if c, ok := key.(curveKey); ok {
		return c.Crv()
	}
	return ""
}

// checkAlgForKey refuses algorithm/key combinations that cannot sign.
func checkAlgForKey(alg jwa.SignatureAlgorithm, key jwk.Key) error {
	kty := key.KeyType()
	var want jwa.KeyType
	var crv jwa.EllipticCurveAlgorithm
	switch alg {
	case jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512:
		want = jwa.RSA
	case jwa.ES256:
		want, crv = jwa.EC, jwa.P256
	case jwa.ES384:
		want, crv = jwa.EC, jwa.P384
	case jwa.ES512:
		want, crv = jwa.EC, jwa.P521
	case jwa.EdDSA:
		want, crv = jwa.OKP, jwa.Ed25519
	case jwa.HS256, jwa.HS384, jwa.HS512:
		want = jwa.OctetSeq
	default:
		return fmt.Errorf("algorithm %s is not supported for license tokens", alg)
	}
	if kty != want {
		return fmt.Errorf("algorithm %s needs a %s key, but the key is %s", alg, want, kty)
	}
	if crv != "" && keyCurve(key) != crv {
		return fmt.Errorf("algorithm %s needs curve %s, but the key is on %s", alg, crv, keyCurve(key))
	}
	return nil
}

func signClaims(claims map[string]any, s *tokenSigner) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encoding claims: %w", err)
	}
	hdr := jws.NewHeaders()
	if s.typ != "" {
		if err := hdr.Set(jws.TypeKey, s.typ); err != nil {
			return "", err
		}
	}
	if s.kid != "" {
		if err := hdr.Set(jws.KeyIDKey, s.kid); err != nil {
			return "", err
		}
	}
	// s.key is a raw key on purpose: given a jwk.Key, jws.Sign overwrites the
	// kid header with the key's own kid, which would defeat --kid.
	tok, err := jws.Sign(payload, jws.WithKey(s.alg, s.key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("signing: %w", err)
	}
	return string(tok), nil
}

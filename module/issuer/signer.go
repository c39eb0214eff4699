package issuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// signingKey is one loaded private key: what signs, and what is published.
type signingKey struct {
	kid    string
	alg    string
	method jwt.SigningMethod
	key    crypto.Signer
}

// signer signs claims with the first key and publishes every key's public
// half. It is built once at provisioning and safe for concurrent use.
type signer struct {
	keys []signingKey
	// jwks is the published key set document, public keys only; etag its
	// strong validator.
	jwks []byte
	etag string
}

// maxKidLen is the longest kid a gate looks up.
const maxKidLen = 256

// errKeyFile is what every unreadable key file says: the file's content
// never reaches an error (it is a private key).
var errKeyFile = errors.New("not a private JWK (RSA, EC P-256/P-384/P-521 or Ed25519) as license-keygen writes it")

// loadSigner reads the private JWK files; the first signs.
func loadSigner(paths []string) (*signer, error) {
	s := &signer{}
	for _, p := range paths {
		k, err := loadSigningKey(p)
		if err != nil {
			return nil, err
		}
		for _, o := range s.keys {
			if o.kid == k.kid {
				return nil, fmt.Errorf("signing_key %s: kid %q is also the kid of another signing key", p, k.kid)
			}
		}
		s.keys = append(s.keys, k)
	}
	doc, err := publicKeySet(s.keys)
	if err != nil {
		return nil, err
	}
	s.jwks = doc
	sum := sha256.Sum256(doc)
	s.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
	return s, nil
}

// loadSigningKey reads one private JWK (or a JWK Set holding one key).
func loadSigningKey(path string) (signingKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return signingKey{}, fmt.Errorf("signing_key: %w", err)
	}
	set, err := jwk.Parse(data)
	if err != nil || set.Len() == 0 {
		return signingKey{}, fmt.Errorf("signing_key %s: %w", path, errKeyFile)
	}
	if set.Len() > 1 {
		return signingKey{}, fmt.Errorf("signing_key %s: the file holds %d keys; give each key its own signing_key", path, set.Len())
	}
	k, _ := set.Key(0)
	if u := k.KeyUsage(); u != "" && u != string(jwk.ForSignature) {
		return signingKey{}, fmt.Errorf("signing_key %s: the key is for use %q, not sig", path, u)
	}
	var raw any
	if err := k.Raw(&raw); err != nil {
		return signingKey{}, fmt.Errorf("signing_key %s: %w", path, errKeyFile)
	}
	priv, ok := raw.(crypto.Signer)
	if !ok {
		// A symmetric (oct) or public key: neither can be published
		// safely nor sign.
		return signingKey{}, fmt.Errorf("signing_key %s: %w", path, errKeyFile)
	}
	if p, ok := raw.(ed25519.PrivateKey); ok {
		priv = p
	}
	alg := ""
	if a := k.Algorithm(); a != nil {
		alg = a.String()
	}
	if alg == "" {
		alg = defaultAlg(priv)
	}
	if !fitsAlg(priv, alg) {
		return signingKey{}, fmt.Errorf("signing_key %s: alg %q does not fit the key", path, alg)
	}
	// The bounds a gate puts on the keys it takes from a key set.
	if rk, ok := priv.(*rsa.PrivateKey); ok && (rk.N.BitLen() < 2048 || rk.N.BitLen() > 8192) {
		return signingKey{}, fmt.Errorf("signing_key %s: RSA key of %d bits is outside 2048..8192", path, rk.N.BitLen())
	}
	kid := k.KeyID()
	if kid == "" {
		// As license-keygen does: the RFC 7638 thumbprint.
		pub, err := jwk.FromRaw(priv.Public())
		if err != nil {
			return signingKey{}, fmt.Errorf("signing_key %s: %w", path, errKeyFile)
		}
		tp, err := pub.Thumbprint(crypto.SHA256)
		if err != nil {
			return signingKey{}, fmt.Errorf("signing_key %s: %w", path, errKeyFile)
		}
		kid = base64.RawURLEncoding.EncodeToString(tp)
	}
	if len(kid) > maxKidLen {
		return signingKey{}, fmt.Errorf("signing_key %s: kid of %d bytes is over %d (a gate refuses it)", path, len(kid), maxKidLen)
	}
	return signingKey{kid: kid, alg: alg, method: jwt.GetSigningMethod(alg), key: priv}, nil
}

// defaultAlg is the usual algorithm of a key without alg.
func defaultAlg(k crypto.Signer) string {
	switch p := k.(type) {
	case *rsa.PrivateKey:
		return "RS256"
	case *ecdsa.PrivateKey:
		switch p.Curve {
		case elliptic.P256():
			return "ES256"
		case elliptic.P384():
			return "ES384"
		case elliptic.P521():
			return "ES512"
		}
	case ed25519.PrivateKey:
		return "EdDSA"
	}
	return ""
}

// fitsAlg reports whether the key can sign with alg, as a gate will verify.
func fitsAlg(k crypto.Signer, alg string) bool {
	switch p := k.(type) {
	case *rsa.PrivateKey:
		return slices.Contains([]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, alg)
	case *ecdsa.PrivateKey:
		return defaultAlg(p) == alg
	case ed25519.PrivateKey:
		return alg == "EdDSA"
	}
	return false
}

// publicKeySet renders the public halves as a JWKS, each with kid, alg and
// use "sig". It checks that no private member made it into the document.
func publicKeySet(keys []signingKey) ([]byte, error) {
	set := jwk.NewSet()
	for _, k := range keys {
		pub, err := jwk.FromRaw(k.key.Public())
		if err != nil {
			return nil, fmt.Errorf("publishing kid %q: %w", k.kid, err)
		}
		for name, v := range map[string]any{jwk.KeyIDKey: k.kid, jwk.AlgorithmKey: k.alg, jwk.KeyUsageKey: string(jwk.ForSignature)} {
			if err := pub.Set(name, v); err != nil {
				return nil, fmt.Errorf("publishing kid %q: %w", k.kid, err)
			}
		}
		if private, err := jwk.IsPrivateKey(pub); err != nil || private {
			return nil, fmt.Errorf("publishing kid %q: the public key holds private material", k.kid)
		}
		if err := set.AddKey(pub); err != nil {
			return nil, err
		}
	}
	doc, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	// Belt and braces: the private members of RSA, EC and OKP keys.
	var check struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &check); err != nil {
		return nil, err
	}
	for _, k := range check.Keys {
		for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
			if _, ok := k[m]; ok {
				return nil, errors.New("the published key set would hold private key material")
			}
		}
	}
	return append(doc, '\n'), nil
}

// sign returns the compact JWT of claims, signed with the first key, with
// typ JWT and the key's kid in the header.
func (s *signer) sign(claims map[string]any) (string, error) {
	k := s.keys[0]
	tok := jwt.NewWithClaims(k.method, jwt.MapClaims(claims))
	tok.Header["kid"] = k.kid
	tok.Header["typ"] = "JWT"
	out, err := tok.SignedString(k.key)
	if err != nil {
		// The error of a signature names no key material.
		return "", fmt.Errorf("signing with kid %q: %w", k.kid, err)
	}
	return out, nil
}

// algorithms lists the algorithms of the published keys.
func (s *signer) algorithms() []string {
	var out []string
	for _, k := range s.keys {
		if !slices.Contains(out, k.alg) {
			out = append(out, k.alg)
		}
	}
	return out
}

// kid is the kid of the signing key.
func (s *signer) kid() string { return s.keys[0].kid }

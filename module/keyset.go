package module

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// minRSABits and maxRSABits bound the RSA modulus accepted from a key set:
// shorter keys are weak, longer ones make every verification (of any
// token naming them, signed or not) expensive; crypto/tls has the same cap.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// verifyKey is one public key of a key set, converted once for the
// verifier.
type verifyKey struct {
	kid string
	alg string // the JWK's own alg, "" when it names none
	key crypto.PublicKey
}

// keySet is an immutable snapshot of the usable keys of one source.
type keySet struct {
	byKid map[string][]verifyKey
	all   []verifyKey
}

// refusedKey tells why a key of a set was left out.
type refusedKey struct {
	kid    string
	reason string
}

// parseKeySet reads a JWKS document, keeping only public signature keys of
// the asymmetric types. Symmetric keys, private key material, encryption
// keys and short RSA keys are left out and reported. Keys keep the order of
// the document, so duplicate kids are tried in a deterministic order.
//
// Each key is parsed on its own: a key of a type the gate does not know (a
// new kty, RFC 7517 §5) or a malformed key is refused alone and does not
// make the whole set unusable.
func parseKeySet(doc []byte) (*keySet, []refusedKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(wrapSingleKey(doc), &set); err != nil {
		return nil, nil, fmt.Errorf("parsing JWKS: %w", err)
	}
	if set.Keys == nil {
		return nil, nil, errors.New("parsing JWKS: no keys member")
	}
	ks := &keySet{byKid: make(map[string][]verifyKey)}
	var refused []refusedKey
	for _, raw := range set.Keys {
		k, err := jwk.ParseKey(raw)
		if err != nil {
			var probe struct {
				Kid string `json:"kid"`
			}
			_ = json.Unmarshal(raw, &probe)
			refused = append(refused, refusedKey{kid: probe.Kid, reason: "unreadable key: " + clip(err.Error())})
			continue
		}
		vk, reason := convertKey(k)
		if reason != "" {
			refused = append(refused, refusedKey{kid: k.KeyID(), reason: reason})
			continue
		}
		ks.all = append(ks.all, vk)
		ks.byKid[vk.kid] = append(ks.byKid[vk.kid], vk)
	}
	if len(ks.all) == 0 {
		return nil, refused, errors.New("JWKS holds no usable signature key")
	}
	return ks, refused, nil
}

// convertKey turns a JWK into a verifyKey, or says why it is refused.
func convertKey(k jwk.Key) (verifyKey, string) {
	if u := k.KeyUsage(); u != "" && u != "sig" {
		return verifyKey{}, "use is " + u + ", not sig"
	}
	switch k.(type) {
	case jwk.SymmetricKey:
		return verifyKey{}, "symmetric (oct) keys are never taken from a key set"
	case jwk.RSAPrivateKey, jwk.ECDSAPrivateKey, jwk.OKPPrivateKey:
		return verifyKey{}, "the key set carries private key material"
	}
	var raw any
	if err := k.Raw(&raw); err != nil {
		return verifyKey{}, "unreadable key: " + clip(err.Error())
	}
	var pub crypto.PublicKey
	switch p := raw.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < minRSABits {
			return verifyKey{}, fmt.Sprintf("RSA key of %d bits is under %d", p.N.BitLen(), minRSABits)
		}
		if p.N.BitLen() > maxRSABits {
			return verifyKey{}, fmt.Sprintf("RSA key of %d bits is over %d", p.N.BitLen(), maxRSABits)
		}
		pub = p
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return verifyKey{}, "unsupported elliptic curve"
		}
		if _, err := p.ECDH(); err != nil {
			return verifyKey{}, "the EC key is not a point of its curve"
		}
		pub = p
	case ed25519.PublicKey:
		if len(p) != ed25519.PublicKeySize {
			return verifyKey{}, fmt.Sprintf("Ed25519 key of %d bytes, not %d", len(p), ed25519.PublicKeySize)
		}
		pub = p
	default:
		return verifyKey{}, fmt.Sprintf("unsupported key type %T", raw)
	}
	alg := ""
	if a := k.Algorithm(); a != nil {
		alg = a.String()
	}
	return verifyKey{kid: k.KeyID(), alg: alg, key: pub}, ""
}

// fits reports whether the key can verify a signature of alg.
func (k verifyKey) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	return keyFitsAlg(k.key, alg)
}

// keyFitsAlg reports whether a public key's type (and curve) matches alg.
func keyFitsAlg(key crypto.PublicKey, alg string) bool {
	switch p := key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return p.Curve == elliptic.P256()
		case "ES384":
			return p.Curve == elliptic.P384()
		case "ES512":
			return p.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// candidates appends the keys that may have signed a token with this kid
// and alg. A token without kid may be verified by any key that fits.
func (ks *keySet) candidates(dst []any, kid string, hasKid bool, alg string) []any {
	if ks == nil {
		return dst
	}
	list := ks.all
	if hasKid {
		list = ks.byKid[kid]
	}
	for _, k := range list {
		if k.fits(alg) {
			dst = append(dst, k.key)
		}
	}
	return dst
}

// has reports whether the set has a key with this kid.
func (ks *keySet) has(kid string) bool {
	if ks == nil {
		return false
	}
	_, ok := ks.byKid[kid]
	return ok
}

// kids lists the key ids, sorted, for logs.
func (ks *keySet) kids() []string {
	if ks == nil {
		return nil
	}
	out := make([]string, 0, len(ks.byKid))
	for k := range ks.byKid {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

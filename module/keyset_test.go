package module

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestParseKeySetRefusals(t *testing.T) {
	t.Parallel()
	good := newKey(t, "good", "ES256")
	rsaPriv := sharedRSA(t)
	ec := newKey(t, "ec", "ES384").signer.(*ecdsa.PrivateKey)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		key     map[string]any
		because string
	}{
		{"a symmetric oct key is never taken from a key set",
			map[string]any{"kty": "oct", "kid": "bad", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"}, "symmetric"},
		{"an RSA private key is refused",
			jwkMap(t, rsaPriv, map[string]any{"kid": "bad"}), "private key material"},
		{"an EC private key is refused",
			jwkMap(t, ec, map[string]any{"kid": "bad"}), "private key material"},
		{"an OKP private key is refused",
			jwkMap(t, edPriv, map[string]any{"kid": "bad"}), "private key material"},
		{"an RSA key under 2048 bits is refused",
			jwkMap(t, &small.PublicKey, map[string]any{"kid": "bad"}), "1024 bits"},
		{"an encryption key is refused",
			jwkMap(t, &rsaPriv.PublicKey, map[string]any{"kid": "bad", "use": "enc"}), "use is enc"},
		{"an X25519 key is refused",
			map[string]any{"kty": "OKP", "crv": "X25519", "kid": "bad", "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}, "unsupported key type"},
		{"a secp256k1 key is refused",
			map[string]any{"kty": "EC", "crv": "secp256k1", "kid": "bad", "x": "AAAA", "y": "AAAA"}, ""},
		{"a key of an unknown kty is refused alone",
			map[string]any{"kty": "AKP", "alg": "ML-DSA-44", "kid": "bad", "pub": "AAAA"}, "unreadable"},
		{"a malformed RSA key is refused alone",
			map[string]any{"kty": "RSA", "kid": "bad", "n": "!!", "e": "AQAB"}, "unreadable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ks, refused, err := parseKeySet(jwksDoc(tc.key, good.public(t)))
			if err != nil {
				t.Fatalf("the good key must still load: %v", err)
			}
			if got := ks.kids(); !slices.Equal(got, []string{"good"}) {
				t.Errorf("kids %v, want [good]", got)
			}
			if len(refused) != 1 || refused[0].kid != "bad" || !strings.Contains(refused[0].reason, tc.because) {
				t.Errorf("refused %+v, want kid bad because %q", refused, tc.because)
			}
			// Alone, the refused key leaves no usable key: an error.
			if ks, _, err := parseKeySet(jwksDoc(tc.key)); err == nil || ks != nil {
				t.Errorf("a set of only refused keys loaded: %v", err)
			}
		})
	}
}

func TestParseKeySetDocuments(t *testing.T) {
	t.Parallel()
	k := newKey(t, "k1", "EdDSA")
	b, _ := json.Marshal(k.public(t))
	single := string(b)
	tests := []struct {
		name string
		doc  string
		ok   bool
	}{
		{"a key set loads", string(jwksDoc(k.public(t))), true},
		{"a single JWK loads as a set of one", single, true},
		{"an empty key set is an error", `{"keys":[]}`, false},
		{"a document without keys is an error", `{"issuer":"x"}`, false},
		{"a document that is not JSON is an error", `<html>`, false},
		{"keys that are not objects are an error", `{"keys":"x"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ks, _, err := parseKeySet([]byte(tc.doc))
			if tc.ok != (err == nil) || tc.ok != (ks != nil) {
				t.Fatalf("ok=%v, got set %v err %v", tc.ok, ks != nil, err)
			}
			if tc.ok && !ks.has("k1") {
				t.Errorf("key k1 missing: %v", ks.kids())
			}
		})
	}
}

func TestDuplicateKidsKeepDocumentOrder(t *testing.T) {
	t.Parallel()
	a, b, c := newKey(t, "dup", "ES256"), newKey(t, "dup", "ES256"), newKey(t, "other", "ES256")
	for round := 0; round < 20; round++ {
		ks, _, err := parseKeySet(jwksDoc(a.public(t), c.public(t), b.public(t)))
		if err != nil {
			t.Fatal(err)
		}
		got := ks.candidates(nil, "dup", true, "ES256")
		if len(got) != 2 || !pubEqual(got[0], a) || !pubEqual(got[1], b) {
			t.Fatalf("round %d: candidates for kid dup are not [a b] in document order", round)
		}
		all := ks.candidates(nil, "", false, "ES256")
		if len(all) != 3 || !pubEqual(all[0], a) || !pubEqual(all[1], c) || !pubEqual(all[2], b) {
			t.Fatalf("round %d: a token without kid is not tried on every key in document order", round)
		}
	}
}

func pubEqual(key any, k *testKey) bool {
	p, ok := key.(interface{ Equal(crypto.PublicKey) bool })
	return ok && p.Equal(k.signer.Public())
}

func TestKeyFitsAlg(t *testing.T) {
	t.Parallel()
	keys := map[string]*testKey{
		"RSA":   newKey(t, "r", "RS256"),
		"P-256": newKey(t, "p256", "ES256"),
		"P-384": newKey(t, "p384", "ES384"),
		"P-521": newKey(t, "p521", "ES512"),
		"Ed":    newKey(t, "ed", "EdDSA"),
	}
	fits := map[string][]string{
		"RSA":   {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"},
		"P-256": {"ES256"},
		"P-384": {"ES384"},
		"P-521": {"ES512"},
		"Ed":    {"EdDSA"},
	}
	algs := append(slices.Clone(asymmetricAlgs), hmacAlgs...)
	algs = append(algs, "none", "Ed25519")
	for kt, k := range keys {
		for _, alg := range algs {
			want := slices.Contains(fits[kt], alg)
			if got := keyFitsAlg(k.signer.Public(), alg); got != want {
				t.Errorf("a %s key fits %s: %v, want %v", kt, alg, got, want)
			}
		}
	}
}

func TestKeyWithAlgOnlyVerifiesThatAlg(t *testing.T) {
	t.Parallel()
	pub := &sharedRSA(t).PublicKey
	ks, _, err := parseKeySet(jwksDoc(
		jwkMap(t, pub, map[string]any{"kid": "pinned", "alg": "RS256"}),
		jwkMap(t, pub, map[string]any{"kid": "free"}),
		jwkMap(t, pub, map[string]any{"kid": "mismatch", "alg": "ES256"}),
	))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		kid, alg string
		want     int
	}{
		{"pinned", "RS256", 1},
		{"pinned", "PS256", 0},
		{"free", "PS256", 1},
		{"free", "RS512", 1},
		{"free", "ES256", 0},
		{"mismatch", "ES256", 0}, // an RSA key claiming ES256 verifies nothing
		{"mismatch", "RS256", 0},
		{"absent", "RS256", 0},
	}
	for _, tc := range tests {
		if got := len(ks.candidates(nil, tc.kid, true, tc.alg)); got != tc.want {
			t.Errorf("kid %s alg %s: %d candidates, want %d", tc.kid, tc.alg, got, tc.want)
		}
	}
	var nilSet *keySet
	if nilSet.candidates(nil, "x", true, "RS256") != nil || nilSet.has("x") || nilSet.kids() != nil {
		t.Error("a nil key set is not empty")
	}
}

package issuer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// verifyWithJWKS checks a token's signature against the key set document,
// as a gate does: the key named by kid, the algorithm of the key.
func verifyWithJWKS(t testing.TB, doc []byte, tok string) jwt.MapClaims {
	t.Helper()
	set, err := jwk.Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	_, err = jwt.NewParser(jwt.WithValidMethods([]string{"RS256", "PS256", "ES256", "ES384", "EdDSA"}), jwt.WithTimeFunc(func() time.Time { return testNow })).ParseWithClaims(tok, claims, func(tk *jwt.Token) (any, error) {
		kid, _ := tk.Header["kid"].(string)
		k, ok := set.LookupKeyID(kid)
		if !ok {
			t.Fatalf("kid %q is not published", kid)
		}
		var raw any
		err := k.Raw(&raw)
		return raw, err
	})
	if err != nil {
		t.Fatalf("token does not verify with the published keys: %v", err)
	}
	return claims
}

func TestSignerSignsWithTheFirstKeyAndPublishesAllPublicHalves(t *testing.T) {
	for _, algs := range [][]string{{"ES256", "RS256"}, {"ES384"}, {"EdDSA", "ES256"}, {"PS256"}} {
		t.Run(strings.Join(algs, "+"), func(t *testing.T) {
			dir := t.TempDir()
			var paths []string
			for i, alg := range algs {
				paths = append(paths, writeJWK(t, dir, "kid"+string(rune('1'+i)), alg, newSigner(t, alg)))
			}
			s, err := loadSigner(paths)
			if err != nil {
				t.Fatal(err)
			}
			for _, private := range []string{`"d"`, `"p"`, `"q"`, `"dp"`, `"dq"`, `"qi"`} {
				if strings.Contains(string(s.jwks), private+":") {
					t.Fatalf("JWKS holds %s: %s", private, s.jwks)
				}
			}
			var doc struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(s.jwks, &doc); err != nil || len(doc.Keys) != len(algs) {
				t.Fatalf("JWKS %s: %v", s.jwks, err)
			}
			for i, k := range doc.Keys {
				if k["alg"] != algs[i] || k["use"] != "sig" || k["kid"] == "" {
					t.Errorf("published key %v, want alg %s, use sig and a kid", k, algs[i])
				}
			}
			tok, err := s.sign(map[string]any{"sub": "alice", "exp": 4102444800})
			if err != nil {
				t.Fatal(err)
			}
			h, _ := payload(t, tok)
			if h["kid"] != "kid1" || h["typ"] != "JWT" || h["alg"] != algs[0] {
				t.Errorf("header %v, want the first key's kid and alg and typ JWT", h)
			}
			if c := verifyWithJWKS(t, s.jwks, tok); c["sub"] != "alice" {
				t.Errorf("claims %v", c)
			}
		})
	}
}

func TestSignerWithoutKidUsesTheThumbprint(t *testing.T) {
	dir := t.TempDir()
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k, _ := jwk.FromRaw(priv)
	b, _ := json.Marshal(k)
	p := filepath.Join(dir, "nokid.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := loadSigner([]string{p})
	if err != nil {
		t.Fatal(err)
	}
	if s.kid() == "" || s.keys[0].alg != "ES256" {
		t.Errorf("kid %q alg %q", s.kid(), s.keys[0].alg)
	}
}

func TestSigningKeysThatCannotSignAreRefusedWithoutShowingThem(t *testing.T) {
	dir := t.TempDir()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	short, _ := rsa.GenerateKey(rand.Reader, 1024)
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pubJWK, _ := jwk.FromRaw(ec.Public())
	pubDoc, _ := json.Marshal(pubJWK)
	privDoc, _ := os.ReadFile(writeJWK(t, dir, "ec", "ES256", ec))
	var privMap map[string]any
	_ = json.Unmarshal(privDoc, &privMap)
	secretD := privMap["d"].(string)
	privMap["alg"] = "RS256"
	wrongAlg, _ := json.Marshal(privMap)
	privMap["alg"], privMap["use"] = "ES256", "enc"
	encUse, _ := json.Marshal(privMap)
	// A private key with one byte of its d changed is still no JSON error
	// that could quote it.
	broken := strings.Replace(string(privDoc), `"kty":"EC"`, `"kty":"EC",`, 1)

	tests := []struct {
		name, path, want string
	}{
		{"a missing file is refused", filepath.Join(dir, "missing.json"), "no such file"},
		{"a public key is refused", write("pub.json", string(pubDoc)), "not a private JWK"},
		{"a symmetric key is refused", write("oct.json", `{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","kid":"h"}`), "not a private JWK"},
		{"a key whose alg does not fit is refused", write("wrongalg.json", string(wrongAlg)), `alg "RS256" does not fit`},
		{"an encryption key is refused", write("enc.json", string(encUse)), `use "enc"`},
		{"malformed JSON is refused", write("broken.json", broken), "not a private JWK"},
		{"an RSA key under 2048 bits is refused", writeJWK(t, dir, "short", "RS256", short), "outside 2048..8192"},
		{"a kid a gate would not look up is refused", writeJWK(t, dir, strings.Repeat("k", 257), "ES256", ec), "kid of 257 bytes"},
		{"a key set of two keys is refused", write("two.json", `{"keys":[`+string(privDoc)+`,`+string(privDoc)+`]}`), "holds 2 keys"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadSigner([]string{tc.path})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secretD) || strings.Contains(err.Error(), `"d"`) {
				t.Errorf("error shows key material: %v", err)
			}
		})
	}
	t.Run("two keys with one kid are refused", func(t *testing.T) {
		p := writeJWK(t, dir, "same", "ES256", ec)
		if _, err := loadSigner([]string{p, p}); err == nil || !strings.Contains(err.Error(), "kid") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestJWKSAndDiscoveryAreServedUnderTheIssuerPath(t *testing.T) {
	h, _, _ := testHandler(t, func(h *Handler) { h.Issuer = "https://auth.example.com/realms/main/" })
	get := func(path string, hdr ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, req, nextHandler{}); err != nil {
			t.Fatal(err)
		}
		return w
	}
	w := get("/realms/main/.well-known/openid-configuration")
	var meta map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &meta); err != nil || w.Code != 200 {
		t.Fatalf("discovery %d %s", w.Code, w.Body)
	}
	if meta["issuer"] != "https://auth.example.com/realms/main/" || meta["jwks_uri"] != "https://auth.example.com/realms/main/.well-known/jwks.json" {
		t.Errorf("discovery %v", meta)
	}
	if cc := w.Header().Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
		t.Errorf("discovery Cache-Control %q", cc)
	}
	w = get("/realms/main/.well-known/jwks.json")
	etag := w.Header().Get("ETag")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"kid":"k1"`) || etag == "" || !strings.Contains(w.Header().Get("Cache-Control"), "max-age=") {
		t.Fatalf("jwks %d %v %s", w.Code, w.Header(), w.Body)
	}
	if w = get("/realms/main/.well-known/jwks.json", "If-None-Match", etag); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("If-None-Match: %d %s", w.Code, w.Body)
	}
	for _, p := range []string{"/.well-known/jwks.json", "/realms/mainx/.well-known/jwks.json", "/realms/main/other"} {
		if w = get(p); w.Code != 299 {
			t.Errorf("%s: %d, want it passed on", p, w.Code)
		}
	}
	req := httptest.NewRequest(http.MethodDelete, "/realms/main/.well-known/jwks.json", nil)
	w = httptest.NewRecorder()
	_ = h.ServeHTTP(w, req, nextHandler{})
	problemOf(t, w, http.StatusMethodNotAllowed, KindMethodNotAllowed, "")
	if a := w.Header().Get("Allow"); a != "GET, HEAD" {
		t.Errorf("Allow %q", a)
	}
}

package issuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// sharedRSA is one 2048-bit key for the package: RSA generation is slow
// under -race.
func sharedRSA() *rsa.PrivateKey {
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey
}

// newSigner returns a fresh private key for alg (RSA keys are shared).
func newSigner(t testing.TB, alg string) crypto.Signer {
	t.Helper()
	var s crypto.Signer
	var err error
	switch alg {
	case "RS256", "PS256":
		s = sharedRSA()
	case "ES256":
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		s, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "EdDSA":
		_, s, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("no key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writeJWK writes a private JWK file as license-keygen does (kid, alg,
// use sig) and returns its path.
func writeJWK(t testing.TB, dir, kid, alg string, key any) string {
	t.Helper()
	k, err := jwk.FromRaw(key)
	if err != nil {
		t.Fatal(err)
	}
	if kid != "" {
		_ = k.Set(jwk.KeyIDKey, kid)
	}
	if alg != "" {
		_ = k.Set(jwk.AlgorithmKey, alg)
	}
	_ = k.Set(jwk.KeyUsageKey, "sig")
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(dir, "*.private.jwk.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// Test API key secrets.
const (
	partnerSecret = "partner-secret-0123456789"
	shopSecret    = "shop-secret-0123456789abc"
	openSecret    = "open-secret-0123456789abc"
)

// testNow is the clock of the handler tests.
var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// testHandler is a provisioned handler with three keys: partner
// (axesWord only, 400 days), shop (at most 100 credits, 90 days) and open
// (no limits), logging into an observer.
func testHandler(t testing.TB, mod ...func(*Handler)) (*Handler, *observer.ObservedLogs, crypto.Signer) {
	t.Helper()
	priv := newSigner(t, "ES256")
	dir := t.TempDir()
	max := int64(100)
	h := &Handler{
		Issuer:      "https://license.example.com",
		SigningKeys: []string{writeJWK(t, dir, "k1", "ES256", priv)},
		Audiences:   []string{"api.example.com"},
		Products:    []string{"axesWord", "axesSlide"},
		APIKeys: []APIKey{
			{Name: "partner", Secret: partnerSecret, Products: []string{"axesWord"}, MaxValidity: caddy.Duration(400 * 24 * time.Hour)},
			{Name: "shop", Secret: shopSecret, MaxCredits: &max, MaxValidity: caddy.Duration(90 * 24 * time.Hour)},
			{Name: "open", Secret: openSecret},
		},
	}
	for _, m := range mod {
		m(h)
	}
	core, logs := observer.New(zap.DebugLevel)
	h.logger = zap.New(core)
	h.now = func() time.Time { return testNow }
	if err := h.provision(); err != nil {
		t.Fatal(err)
	}
	return h, logs, priv
}

// post sends a POST through the handler and returns the recorder.
func post(t testing.TB, h *Handler, path, key, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if key != "" {
		req.Header.Set("x-api-key", key)
	}
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, req, nextHandler{}); err != nil {
		t.Fatal(err)
	}
	return w
}

// nextHandler answers 299 so a test sees a request was passed on.
type nextHandler struct{}

func (nextHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) error {
	w.WriteHeader(299)
	return nil
}

// problemOf checks a problem response and returns its body.
func problemOf(t testing.TB, w *httptest.ResponseRecorder, status int, kind, field string) problemBody {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d: %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	var p problemBody
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body: %v: %s", err, w.Body)
	}
	if p.Status != status || p.Code != kind || p.Field != field || p.Title != http.StatusText(status) || p.Type != "about:blank" || p.Detail == "" {
		t.Errorf("problem %+v, want status %d code %s field %q", p, status, kind, field)
	}
	return p
}

// payload decodes a compact JWT's header and claims.
func payload(t testing.TB, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWT: %q", tok)
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

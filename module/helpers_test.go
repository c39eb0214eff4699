package module

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// testKey is a signing key with its kid and alg.
type testKey struct {
	kid    string
	alg    string
	signer crypto.Signer
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// sharedRSA is one 2048-bit key for the whole package: generating RSA keys
// is slow under -race.
func sharedRSA(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey
}

func newKey(t testing.TB, kid, alg string) *testKey {
	t.Helper()
	var s crypto.Signer
	var err error
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		s = sharedRSA(t)
	case "ES256":
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		s, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		s, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "EdDSA":
		_, s, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("no key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{kid: kid, alg: alg, signer: s}
}

// jwkMap renders a raw key (public or private) as a JWK object with extra
// members.
func jwkMap(t testing.TB, raw any, extra map[string]any) map[string]any {
	t.Helper()
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for name, v := range extra {
		m[name] = v
	}
	return m
}

// public is the key's public JWK with kid and use=sig.
func (k *testKey) public(t testing.TB) map[string]any {
	return jwkMap(t, k.signer.Public(), map[string]any{"kid": k.kid, "use": "sig"})
}

// jwksDoc renders JWK objects as a key set document.
func jwksDoc(keys ...map[string]any) []byte {
	if keys == nil {
		keys = []map[string]any{}
	}
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return b
}

// sign mints a token; header entries override (nil deletes) the defaults.
func (k *testKey) sign(t testing.TB, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(k.alg), claims)
	tok.Header["kid"] = k.kid
	for name, v := range header {
		if v == nil {
			delete(tok.Header, name)
		} else {
			tok.Header[name] = v
		}
	}
	s, err := tok.SignedString(k.signer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testClock is an injectable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock { return &testClock{t: time.Unix(1_800_000_000, 0)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// claimsAt returns claims valid for an hour from the clock's now.
func claimsAt(c *testClock, pairs ...any) jwt.MapClaims {
	now := c.Now()
	m := jwt.MapClaims{"sub": "alice", "jti": "jti-1", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == nil {
			delete(m, pairs[i].(string))
		} else {
			m[pairs[i].(string)] = pairs[i+1]
		}
	}
	return m
}

// writeFile writes body into a fresh temp dir and returns its path.
func writeFile(t testing.TB, name string, body []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, body, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// provisioned provisions g in a bare Caddy context with clk as its clock
// and an observed logger, and cleans it up after the test.
func provisioned(t testing.TB, g *Gate, clk *testClock) (*Gate, *observer.ObservedLogs) {
	t.Helper()
	if clk != nil {
		g.now = clk.Now
	}
	core, logs := observer.New(zapcore.DebugLevel)
	err := provisionSteps(g, zap.New(core))
	t.Cleanup(func() { _ = g.Cleanup() })
	if err != nil {
		t.Fatalf("provision: %v", err)
	}
	return g, logs
}

// provisionSteps runs Provision's steps without a Caddy config: Provision
// itself asks the context for the events app, which a bare test context
// (caddy.NewContext without a config) cannot give.
func provisionSteps(g *Gate, logger *zap.Logger) error {
	g.logger = logger
	return g.provisionGate()
}

// served is one request's outcome through a gate.
type served struct {
	rec    *httptest.ResponseRecorder
	passed bool // the next handler ran
	repl   *caddy.Replacer
}

// serve runs r through the gate with a replacer and Caddy's client_ip var.
func serve(t testing.TB, g *Gate, r *http.Request) served {
	t.Helper()
	repl := caddy.NewReplacer()
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: "192.0.2.7"})
	r = r.WithContext(ctx)
	out := served{rec: httptest.NewRecorder(), repl: repl}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		out.passed = true
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	if err := g.ServeHTTP(out.rec, r, next); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	return out
}

// bearer builds a GET request with the token in the Authorization header.
func bearer(tok string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://gate.test/api", nil)
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return r
}

// code reads the errorCode of a reject body with the given prefix.
func code(t testing.TB, rec *httptest.ResponseRecorder, prefix string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("reject body is not JSON: %v: %s", err, rec.Body.Bytes())
	}
	s, _ := m[prefix+"_errorCode"].(string)
	return s
}

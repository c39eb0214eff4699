package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/spf13/pflag"
)

// mintToken runs license-token and returns the token (without the newline).
func mintToken(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runCmd(t, tokenCobra, args...)
	if err != nil {
		t.Fatalf("license-token %v: %v", args, err)
	}
	if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("output %q is not one newline-terminated line", out)
	}
	tok := strings.TrimSuffix(out, "\n")
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("output %q is not a compact JWT", tok)
	}
	return tok
}

// mintAt runs the token command with a fixed clock.
func mintAt(t *testing.T, now time.Time, args ...string) (string, error) {
	t.Helper()
	fs := pflag.NewFlagSet("license-token", pflag.ContinueOnError)
	addTokenFlags(fs)
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	var out bytes.Buffer
	err := runToken(fs, &out, now)
	return strings.TrimSuffix(out.String(), "\n"), err
}

func parseWithJWKS(t *testing.T, tok, jwksPath string, opts ...jwt.ParseOption) jwt.Token {
	t.Helper()
	set, err := jwk.Parse(mustRead(t, jwksPath))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.Parse([]byte(tok), append([]jwt.ParseOption{jwt.WithKeySet(set)}, opts...)...)
	if err != nil {
		t.Fatalf("token does not verify against %s: %v", jwksPath, err)
	}
	return parsed
}

// segments decodes a compact JWT's header and payload without verifying,
// keeping numbers as json.Number so integer types can be checked.
func segments(t *testing.T, tok string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWT: %q", tok)
	}
	dec := func(s string) map[string]any {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	return dec(parts[0]), dec(parts[1])
}

func sortedKeys(m map[string]any) []string {
	ks := keysOf(m)
	sort.Strings(ks)
	return ks
}

func wantKeys(t *testing.T, what string, m map[string]any, want ...string) {
	t.Helper()
	sort.Strings(want)
	if got := sortedKeys(m); !reflect.DeepEqual(got, want) {
		t.Errorf("%s members = %v, want %v", what, got, want)
	}
}

func wantInt(t *testing.T, m map[string]any, name string, want int64) {
	t.Helper()
	n, ok := m[name].(json.Number)
	if !ok {
		t.Errorf("%s = %#v, want a JSON number", name, m[name])
		return
	}
	got, err := n.Int64()
	if err != nil || got != want {
		t.Errorf("%s = %s, want integer %d", name, n, want)
	}
}

var sharedKeys struct {
	priv, jwks string
}

// rsaKey returns one RS256 key pair shared by the token tests (kid "test-rs").
func rsaKey(t *testing.T) (privPath, jwksPath string) {
	t.Helper()
	if sharedKeys.priv == "" {
		dir, err := os.MkdirTemp("", "license-token-test")
		if err != nil {
			t.Fatal(err)
		}
		sharedKeys.priv = filepath.Join(dir, "private.jwk.json")
		sharedKeys.jwks = filepath.Join(dir, "jwks.json")
		if _, err := runCmd(t, keygenCobra, "--alg", "RS256", "--kid", "test-rs",
			"--out-private", sharedKeys.priv, "--out-jwks", sharedKeys.jwks); err != nil {
			t.Fatal(err)
		}
	}
	return sharedKeys.priv, sharedKeys.jwks
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedKeys.priv != "" {
		os.RemoveAll(filepath.Dir(sharedKeys.priv))
	}
	os.Exit(code)
}

func TestTokenAllClaims(t *testing.T) {
	priv, jwks := rsaKey(t)
	tok := mintToken(t, "--key", priv,
		"--iss", "https://license.example.com",
		"--sub", "alice",
		"--aud", "api.example.com",
		"--jti", "tok-1",
		"--lic", "L-1001",
		"--exp", "2h",
		"--nbf", "-1m",
		"--ibb", "-24h",
		"--ibe", "1893456000",
		"--credits", "10",
		"--item", "axesWord", "--item", "axesPDF",
		"--product", "axesOffice",
		"--ver", "1-3.*.*",
		"--hw", "hw-123",
		"--ip", "10.0.0.0/8",
		"--seats", "3",
		"--claim", "os=linux",
	)
	parsed := parseWithJWKS(t, tok, jwks)
	if parsed.Subject() != "alice" || parsed.Issuer() != "https://license.example.com" || parsed.JwtID() != "tok-1" {
		t.Errorf("jwx sees sub/iss/jti = %q/%q/%q", parsed.Subject(), parsed.Issuer(), parsed.JwtID())
	}
	if aud := parsed.Audience(); len(aud) != 1 || aud[0] != "api.example.com" {
		t.Errorf("jwx sees aud = %v", aud)
	}

	hdr, claims := segments(t, tok)
	wantKeys(t, "header", hdr, "alg", "kid", "typ")
	if hdr["alg"] != "RS256" || hdr["kid"] != "test-rs" || hdr["typ"] != "JWT" {
		t.Errorf("header = %v", hdr)
	}
	wantKeys(t, "claims", claims, "iss", "sub", "aud", "jti", "lic", "exp", "nbf", "iat",
		"ibb", "ibe", "credits", "items", "product", "ver", "hw", "ip", "seats", "os")

	for name, want := range map[string]string{
		"iss": "https://license.example.com", "sub": "alice", "aud": "api.example.com",
		"jti": "tok-1", "lic": "L-1001", "product": "axesOffice", "ver": "1-3.*.*",
		"hw": "hw-123", "ip": "10.0.0.0/8", "os": "linux",
	} {
		if claims[name] != want {
			t.Errorf("%s = %#v, want string %q", name, claims[name], want)
		}
	}
	wantInt(t, claims, "credits", 10)
	wantInt(t, claims, "seats", 3)
	wantInt(t, claims, "ibe", 1893456000)
	now := time.Now().Unix()
	for name, off := range map[string]int64{"exp": 7200, "nbf": -60, "iat": 0, "ibb": -86400} {
		n, ok := claims[name].(json.Number)
		v, err := n.Int64()
		if !ok || err != nil || v < now+off-5 || v > now+off+1 {
			t.Errorf("%s = %#v, want the integer now%+d", name, claims[name], off)
		}
	}
	if items, ok := claims["items"].([]any); !ok || !reflect.DeepEqual(items, []any{"axesWord", "axesPDF"}) {
		t.Errorf("items = %#v, want the array [axesWord axesPDF]", claims["items"])
	}
}

func TestTokenArraysForSeveralValues(t *testing.T) {
	priv, jwks := rsaKey(t)
	tok := mintToken(t, "--key", priv, "--aud", "a.example", "--aud", "b.example",
		"--ip", "192.0.2.1", "--ip", "2001:db8::/32", "--item", "only")
	parseWithJWKS(t, tok, jwks)
	_, claims := segments(t, tok)
	if !reflect.DeepEqual(claims["aud"], []any{"a.example", "b.example"}) {
		t.Errorf("aud = %#v, want an array", claims["aud"])
	}
	if !reflect.DeepEqual(claims["ip"], []any{"192.0.2.1", "2001:db8::/32"}) {
		t.Errorf("ip = %#v, want an array", claims["ip"])
	}
	if !reflect.DeepEqual(claims["items"], []any{"only"}) {
		t.Errorf("items = %#v, want an array even for one item", claims["items"])
	}
}

func TestTokenDefaults(t *testing.T) {
	priv, jwks := rsaKey(t)
	now := time.Unix(1_800_000_000, 0)
	tok, err := mintAt(t, now, "--key", priv)
	if err != nil {
		t.Fatal(err)
	}
	parseWithJWKS(t, tok, jwks, jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })))
	hdr, claims := segments(t, tok)
	wantKeys(t, "header", hdr, "alg", "kid", "typ")
	wantKeys(t, "claims", claims, "exp", "iat", "jti")
	wantInt(t, claims, "exp", now.Unix()+3600)
	wantInt(t, claims, "iat", now.Unix())
	if jti, _ := claims["jti"].(string); len(jti) != 32 {
		t.Errorf("jti = %#v, want 32 random hex digits", claims["jti"])
	}
	tok2, _ := mintAt(t, now, "--key", priv)
	if _, c2 := segments(t, tok2); c2["jti"] == claims["jti"] {
		t.Error("two tokens got the same random jti")
	}
}

func TestTokenTimes(t *testing.T) {
	priv, jwks := rsaKey(t)
	now := time.Unix(1_800_000_000, 0)
	tok, err := mintAt(t, now, "--key", priv, "--exp=-1h", "--iat", "none", "--nbf", "now",
		"--ibb", "2027-01-01T00:00:00Z", "--ibe", "720h", "--jti", "")
	if err != nil {
		t.Fatal(err)
	}
	_, claims := segments(t, tok)
	wantKeys(t, "claims", claims, "exp", "nbf", "ibb", "ibe")
	wantInt(t, claims, "exp", now.Unix()-3600)
	wantInt(t, claims, "nbf", now.Unix())
	wantInt(t, claims, "ibb", 1798761600)
	wantInt(t, claims, "ibe", now.Unix()+720*3600)

	// expired on purpose: the signature is good, validation fails on exp
	set, _ := jwk.Parse(mustRead(t, jwks))
	clock := jwt.WithClock(jwt.ClockFunc(func() time.Time { return now }))
	if _, err := jwt.Parse([]byte(tok), jwt.WithKeySet(set), clock); err == nil {
		t.Error("an expired token validated")
	}
	if _, err := jwt.Parse([]byte(tok), jwt.WithKeySet(set), jwt.WithValidate(false)); err != nil {
		t.Errorf("expired token's signature: %v", err)
	}

	// --exp none: no exp at all
	tok, err = mintAt(t, now, "--key", priv, "--exp", "none")
	if err != nil {
		t.Fatal(err)
	}
	if _, claims := segments(t, tok); claims["exp"] != nil {
		t.Errorf("--exp none still has exp %v", claims["exp"])
	}
}

func TestTokenExtraClaims(t *testing.T) {
	priv, jwks := rsaKey(t)
	tok := mintToken(t, "--key", priv,
		"--claim", "n=5",
		"--claim", "big=12345678901234567890",
		"--claim", "b=true",
		"--claim", "s=hello world",
		"--claim", `q="5"`,
		"--claim", "arr=[1, \"x\"]",
		"--claim", `obj={"k": 1}`,
		"--claim", "empty=",
		"--claim", "nul=null",
		"--claim", "eq=a=b",
		"--claim", "axesWord=true",
		"--claim", "exp=1893456000", // overrides the default, --exp not given
	)
	parseWithJWKS(t, tok, jwks)
	_, claims := segments(t, tok)
	wantKeys(t, "claims", claims, "n", "big", "b", "s", "q", "arr", "obj", "empty", "nul",
		"eq", "axesWord", "exp", "iat", "jti")
	wantInt(t, claims, "n", 5)
	wantInt(t, claims, "exp", 1893456000)
	if claims["big"] != json.Number("12345678901234567890") {
		t.Errorf("big = %#v, want the exact number", claims["big"])
	}
	checks := map[string]any{
		"b": true, "s": "hello world", "q": "5", "empty": "", "nul": nil, "eq": "a=b",
		"axesWord": true,
		"arr":      []any{json.Number("1"), "x"},
		"obj":      map[string]any{"k": json.Number("1")},
	}
	for name, want := range checks {
		if !reflect.DeepEqual(claims[name], want) {
			t.Errorf("%s = %#v, want %#v", name, claims[name], want)
		}
	}
}

func TestTokenHeaderFlags(t *testing.T) {
	priv, jwks := rsaKey(t)

	tok := mintToken(t, "--key", priv, "--typ", "at+jwt")
	parseWithJWKS(t, tok, jwks)
	if hdr, _ := segments(t, tok); hdr["typ"] != "at+jwt" || hdr["kid"] != "test-rs" {
		t.Errorf("header = %v", hdr)
	}

	tok = mintToken(t, "--key", priv, "--typ", "")
	if hdr, _ := segments(t, tok); hdr["typ"] != nil {
		t.Errorf("--typ \"\" left typ %v", hdr["typ"])
	}

	// --kid overrides the key's kid: the JWKS no longer finds the key
	tok = mintToken(t, "--key", priv, "--kid", "unknown-kid")
	if hdr, _ := segments(t, tok); hdr["kid"] != "unknown-kid" {
		t.Errorf("kid = %v, want unknown-kid", hdr["kid"])
	}
	set, _ := jwk.Parse(mustRead(t, jwks))
	if _, err := jwt.Parse([]byte(tok), jwt.WithKeySet(set)); err == nil {
		t.Error("a token with an unknown kid verified")
	}
}

func TestTokenAlgorithms(t *testing.T) {
	priv, jwks := rsaKey(t)

	// --alg overrides the key's alg (same key type)
	tok := mintToken(t, "--key", priv, "--alg", "PS384")
	if hdr, _ := segments(t, tok); hdr["alg"] != "PS384" {
		t.Errorf("alg = %v, want PS384", hdr["alg"])
	}
	set, _ := jwk.Parse(mustRead(t, jwks))
	pub, _ := set.Key(0)
	if _, err := jws.Verify([]byte(tok), jws.WithKey(jwa.PS384, pub)); err != nil {
		t.Errorf("PS384 token: %v", err)
	}

	// a key without "alg" gets the conventional algorithm for its curve
	ecPriv, ecJWKS := keygen(t, "--alg", "ES384")
	m := readJSON(t, ecPriv)
	delete(m, "alg")
	b, _ := json.Marshal(m)
	noAlg := filepath.Join(t.TempDir(), "noalg.json")
	if err := os.WriteFile(noAlg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	tok = mintToken(t, "--key", noAlg)
	if hdr, _ := segments(t, tok); hdr["alg"] != "ES384" {
		t.Errorf("inferred alg = %v, want ES384", hdr["alg"])
	}
	parseWithJWKS(t, tok, ecJWKS)

	// HMAC with --secret
	tok = mintToken(t, "--secret", "s3cret-s3cret-s3cret-s3cret-s3cr", "--sub", "bob")
	if hdr, _ := segments(t, tok); hdr["alg"] != "HS256" || hdr["kid"] != nil {
		t.Errorf("HMAC header = %v", hdr)
	}
	if _, err := jwt.Parse([]byte(tok), jwt.WithKey(jwa.HS256, []byte("s3cret-s3cret-s3cret-s3cret-s3cr"))); err != nil {
		t.Errorf("HS256 token: %v", err)
	}
	tok = mintToken(t, "--secret", "k", "--alg", "HS512", "--kid", "hmac-1")
	if hdr, _ := segments(t, tok); hdr["alg"] != "HS512" || hdr["kid"] != "hmac-1" {
		t.Errorf("HMAC header = %v", hdr)
	}
}

func TestTokenKeySetNeedsKid(t *testing.T) {
	p1, _ := keygen(t, "--alg", "ES256", "--kid", "one")
	p2, j2 := keygen(t, "--alg", "EdDSA", "--kid", "two")
	k1, _ := jwk.ParseKey(mustRead(t, p1))
	k2, _ := jwk.ParseKey(mustRead(t, p2))
	set := jwk.NewSet()
	_ = set.AddKey(k1)
	_ = set.AddKey(k2)
	b, _ := json.Marshal(set)
	both := filepath.Join(t.TempDir(), "both.json")
	if err := os.WriteFile(both, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runCmd(t, tokenCobra, "--key", both); err == nil || !strings.Contains(err.Error(), "holds 2 keys; choose one with --kid") {
		t.Errorf("err = %v", err)
	}
	tok := mintToken(t, "--key", both, "--kid", "two")
	if hdr, _ := segments(t, tok); hdr["alg"] != "EdDSA" || hdr["kid"] != "two" {
		t.Errorf("header = %v", hdr)
	}
	parseWithJWKS(t, tok, j2)
}

func TestTokenBadFlags(t *testing.T) {
	priv, jwks := rsaKey(t)
	ecPriv, _ := keygen(t, "--alg", "ES256")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no key", []string{"--sub", "a"}, "--key <private key file> is required"},
		{"missing file", []string{"--key", "/nonexistent/k.json"}, "no such file"},
		{"public key", []string{"--key", jwks}, "holds a public key"},
		{"key and secret", []string{"--key", priv, "--secret", "x"}, "either --key or --secret, not both"},
		{"empty secret", []string{"--secret", ""}, "--secret must not be empty"},
		{"secret with RSA alg", []string{"--secret", "x", "--alg", "RS256"}, "HS256, HS384 or HS512"},
		{"alg for other key type", []string{"--key", priv, "--alg", "ES256"}, "ES256 needs a EC key, but the key is RSA"},
		{"alg for other curve", []string{"--key", ecPriv, "--alg", "ES384"}, "needs curve P-384"},
		{"alg none", []string{"--key", priv, "--alg", "none"}, `unsupported signature algorithm "none"`},
		{"alg unknown", []string{"--key", priv, "--alg", "XY999"}, "unsupported signature algorithm"},
		{"negative credits", []string{"--key", priv, "--credits", "-1"}, "--credits must be an integer >= 0"},
		{"credits not int", []string{"--key", priv, "--credits", "1.5"}, "invalid argument"},
		{"negative seats", []string{"--key", priv, "--seats", "-2"}, "--seats must be an integer >= 0"},
		{"bad ip", []string{"--key", priv, "--ip", "10.0.0.300"}, "not an IP address or CIDR"},
		{"comma ip", []string{"--key", priv, "--ip", "10.0.0.1,10.0.0.2"}, "repeat --ip"},
		{"empty aud", []string{"--key", priv, "--aud", ""}, "--aud must not be empty"},
		{"empty item", []string{"--key", priv, "--item", ""}, "--item must not be empty"},
		{"bad exp", []string{"--key", priv, "--exp", "tomorrow"}, `--exp "tomorrow": want a duration`},
		{"bad ibb", []string{"--key", priv, "--ibb", "-5"}, "must not be negative"},
		{"claim without =", []string{"--key", priv, "--claim", "os"}, `--claim "os": want name=value`},
		{"claim without name", []string{"--key", priv, "--claim", "=x"}, "want name=value"},
		{"claim twice", []string{"--key", priv, "--claim", "a=1", "--claim", "a=2"}, "--claim a is given twice"},
		{"claim vs flag", []string{"--key", priv, "--credits", "5", "--claim", "credits=6"}, `claim "credits" is set by both --credits and --claim`},
		{"items vs item", []string{"--key", priv, "--item", "x", "--claim", `items=["y"]`}, "both --item and --claim"},
		{"positional arg", []string{"--key", priv, "extra"}, "unknown command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCmd(t, tokenCobra, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
			if out != "" {
				t.Errorf("printed %q despite the error", out)
			}
		})
	}
}

// The quickstart's demo key pair must stay usable and the JWKS public.
func TestQuickstartDemoKeys(t *testing.T) {
	const dir = "../../examples/quickstart"
	privPath := filepath.Join(dir, "demo.private.jwk.json")
	jwksPath := filepath.Join(dir, "jwks.json")
	if _, err := os.Stat(privPath); err != nil {
		t.Skipf("demo keys not present: %v", err)
	}
	priv := readJSON(t, privPath)
	if priv["kid"] != "demo-rs256" || priv["alg"] != "RS256" || priv["use"] != "sig" {
		t.Errorf("demo key kid/alg/use = %v/%v/%v", priv["kid"], priv["alg"], priv["use"])
	}
	keys, _ := readJSON(t, jwksPath)["keys"].([]any)
	if len(keys) != 1 {
		t.Fatalf("demo JWKS has %d keys", len(keys))
	}
	for _, m := range privateMembers {
		if _, ok := keys[0].(map[string]any)[m]; ok {
			t.Errorf("demo JWKS has private member %q", m)
		}
	}
	tok := mintToken(t, "--key", privPath, "--sub", "demo", "--credits", "3")
	parsed := parseWithJWKS(t, tok, jwksPath)
	if parsed.Subject() != "demo" {
		t.Errorf("sub = %q", parsed.Subject())
	}
}

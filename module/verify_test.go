package module

import (
	"crypto/x509"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
)

// fileGate is a gate whose keys come from a jwks_file holding keys.
func fileGate(t testing.TB, keys ...*testKey) *Gate {
	t.Helper()
	var pubs []map[string]any
	for _, k := range keys {
		pubs = append(pubs, k.public(t))
	}
	return &Gate{JWKSFiles: []string{writeFile(t, "jwks.json", jwksDoc(pubs...))}}
}

func TestVerifyRejectsTokens(t *testing.T) {
	t.Parallel()
	clk := newClock()
	rs, es, ed := newKey(t, "rs", "RS256"), newKey(t, "es", "ES256"), newKey(t, "ed", "EdDSA")
	file := fileGate(t, rs, es, ed).JWKSFiles
	g := &Gate{IssuerKeys: []IssuerKeys{
		{Issuer: "https://iss.example", JWKSFiles: file},
		{Issuer: "https://other.example", JWKSFiles: file},
	}}
	g.Audiences = []string{"api", "api2"}
	g, _ = provisioned(t, g, clk)

	now := clk.Now()
	ok := func(pairs ...any) jwt.MapClaims {
		return claimsAt(clk, append([]any{"iss", "https://iss.example", "aud", "api"}, pairs...)...)
	}
	attacker := newKey(t, "es", "ES256") // same kid, another key
	rsaDER, _ := x509.MarshalPKIXPublicKey(&sharedRSA(t).PublicKey)
	hsConfusion := jwt.NewWithClaims(jwt.SigningMethodHS256, ok())
	hsConfusion.Header["kid"] = "rs"
	hsToken, err := hsConfusion.SignedString(rsaDER)
	if err != nil {
		t.Fatal(err)
	}
	noneToken, err := jwt.NewWithClaims(jwt.SigningMethodNone, ok()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		token  string
		status int
		code   string
	}{
		{"an RS256 token passes", rs.sign(t, ok(), nil), 0, ""},
		{"an ES256 token passes", es.sign(t, ok(), nil), 0, ""},
		{"an EdDSA token passes", ed.sign(t, ok(), nil), 0, ""},
		{"a PS256 token with an RSA key passes", (&testKey{kid: "rs", alg: "PS256", signer: rs.signer}).sign(t, ok(), nil), 0, ""},
		{"a token without kid is tried on every fitting key", es.sign(t, ok(), map[string]any{"kid": nil}), 0, ""},
		{"a second issuer is accepted", rs.sign(t, ok("iss", "https://other.example"), nil), 0, ""},
		{"a second audience in an aud array is accepted", rs.sign(t, ok("aud", []string{"x", "api2"}), nil), 0, ""},
		{"typ JWT passes", rs.sign(t, ok(), map[string]any{"typ": "JWT"}), 0, ""},
		{"typ at+jwt passes", rs.sign(t, ok(), map[string]any{"typ": "at+jwt"}), 0, ""},
		{"typ application/at+jwt passes", rs.sign(t, ok(), map[string]any{"typ": "application/at+JWT"}), 0, ""},
		{"no typ passes", rs.sign(t, ok(), map[string]any{"typ": nil}), 0, ""},

		{"a malformed token is notAuthorized", "not-a-jwt", 401, "notAuthorized"},
		{"a token of two segments is notAuthorized", "eyJhbGciOiJSUzI1NiJ9.e30", 401, "notAuthorized"},
		{"a bad signature is notAuthorized", attacker.sign(t, ok(), nil), 401, "notAuthorized"},
		{"an unknown kid is notAuthorized", es.sign(t, ok(), map[string]any{"kid": "nope"}), 401, "notAuthorized"},
		{"an empty kid is notAuthorized", es.sign(t, ok(), map[string]any{"kid": ""}), 401, "notAuthorized"},
		{"a kid that is not a string is notAuthorized", es.sign(t, ok(), map[string]any{"kid": 7}), 401, "notAuthorized"},
		{"an overlong kid is notAuthorized", es.sign(t, ok(), map[string]any{"kid": strings.Repeat("k", 300)}), 401, "notAuthorized"},
		{"typ dpop+jwt is notAuthorized", rs.sign(t, ok(), map[string]any{"typ": "dpop+jwt"}), 401, "notAuthorized"},
		{"typ logout+jwt is notAuthorized", rs.sign(t, ok(), map[string]any{"typ": "logout+jwt"}), 401, "notAuthorized"},
		{"a typ that is not a string is notAuthorized", rs.sign(t, ok(), map[string]any{"typ": 1}), 401, "notAuthorized"},
		{"a crit header is notAuthorized", rs.sign(t, ok(), map[string]any{"crit": []string{"b64"}, "b64": true}), 401, "notAuthorized"},
		{"alg none is notAuthorized", noneToken, 401, "notAuthorized"},
		{"HS256 signed with the RSA public key is notAuthorized", hsToken, 401, "notAuthorized"},
		{"a wrong issuer is notAuthorized", rs.sign(t, ok("iss", "https://evil.example"), nil), 401, "notAuthorized"},
		{"a missing issuer is notAuthorized", rs.sign(t, ok("iss", nil), nil), 401, "notAuthorized"},
		{"a wrong issuer is notAuthorized even when expired", rs.sign(t, ok("iss", "https://evil.example", "exp", now.Add(-time.Hour).Unix()), nil), 401, "notAuthorized"},
		{"a wrong issuer is notAuthorized even before nbf", rs.sign(t, ok("iss", "https://evil.example", "nbf", now.Add(time.Hour).Unix()), nil), 401, "notAuthorized"},
		{"a wrong audience is notAuthorized", rs.sign(t, ok("aud", "elsewhere"), nil), 401, "notAuthorized"},
		{"a missing audience is notAuthorized", rs.sign(t, ok("aud", nil), nil), 401, "notAuthorized"},
		{"a missing exp is notAuthorized", rs.sign(t, ok("exp", nil), nil), 401, "notAuthorized"},
		{"an exp that is not a number is notAuthorized", rs.sign(t, ok("exp", "tomorrow"), nil), 401, "notAuthorized"},
		{"a passed exp is licenseExpired", rs.sign(t, ok("exp", now.Add(-time.Minute).Unix()), nil), 401, "licenseExpired"},
		{"an nbf in the future is licenseValidityNotStarted", rs.sign(t, ok("nbf", now.Add(time.Hour).Unix()), nil), 403, "licenseValidityNotStarted"},
		{"an ibb in the future is licenseValidityNotStarted", rs.sign(t, ok("ibb", now.Add(time.Hour).Unix()), nil), 403, "licenseValidityNotStarted"},
		{"a passed ibe is licenseExpired", rs.sign(t, ok("ibe", now.Add(-time.Hour).Unix()), nil), 403, "licenseExpired"},
		{"a credits claim that is not an integer is notAuthorized", rs.sign(t, ok("credits", "many"), nil), 401, "notAuthorized"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := serve(t, g, bearer(tc.token))
			if tc.status == 0 {
				if !out.passed {
					t.Fatalf("rejected: %d %s", out.rec.Code, out.rec.Body.Bytes())
				}
				return
			}
			if out.passed || out.rec.Code != tc.status || code(t, out.rec, "license") != tc.code {
				t.Fatalf("got passed=%v %d %s, want %d %s", out.passed, out.rec.Code, out.rec.Body.Bytes(), tc.status, tc.code)
			}
			if tc.status == 401 && !strings.HasPrefix(out.rec.Header().Get("WWW-Authenticate"), `Bearer error="invalid_token", error_description="`) {
				t.Errorf("WWW-Authenticate %q", out.rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

func TestCachedTokenIsRecheckedForExpiry(t *testing.T) {
	t.Parallel()
	clk := newClock()
	k := newKey(t, "k", "ES256")
	g, _ := provisioned(t, fileGate(t, k), clk)
	tok := k.sign(t, claimsAt(clk, "exp", clk.Now().Add(10*time.Minute).Unix(), "ibe", clk.Now().Add(5*time.Minute).Unix()), nil)

	if out := serve(t, g, bearer(tok)); !out.passed {
		t.Fatalf("fresh token rejected: %s", out.rec.Body.Bytes())
	}
	if g.verifier.cache.len() != 1 {
		t.Fatalf("verified token not cached")
	}
	clk.Add(4 * time.Minute)
	if out := serve(t, g, bearer(tok)); !out.passed {
		t.Fatalf("cached token rejected: %s", out.rec.Body.Bytes())
	}
	clk.Add(2 * time.Minute) // ibe passed (4+2 > 5 min + 30s leeway)
	if out := serve(t, g, bearer(tok)); out.passed || out.rec.Code != 403 || code(t, out.rec, "license") != "licenseExpired" {
		t.Fatalf("cached token past ibe: %d %s", out.rec.Code, out.rec.Body.Bytes())
	}
	clk.Add(5 * time.Minute) // exp passed
	if out := serve(t, g, bearer(tok)); out.passed || out.rec.Code != 401 || code(t, out.rec, "license") != "licenseExpired" {
		t.Fatalf("cached token past exp: %d %s", out.rec.Code, out.rec.Body.Bytes())
	}
}

func TestLeewayAppliesToExp(t *testing.T) {
	t.Parallel()
	clk := newClock()
	k := newKey(t, "k", "ES256")
	expired10s := k.sign(t, claimsAt(clk, "exp", clk.Now().Add(-10*time.Second).Unix()), nil)

	def, _ := provisioned(t, fileGate(t, k), clk)
	if out := serve(t, def, bearer(expired10s)); !out.passed {
		t.Errorf("token expired 10s ago rejected with the default 30s leeway: %s", out.rec.Body.Bytes())
	}
	zero := caddy.Duration(0)
	strict := fileGate(t, k)
	strict.Leeway = &zero
	strict, _ = provisioned(t, strict, clk)
	if out := serve(t, strict, bearer(expired10s)); out.passed || code(t, out.rec, "license") != "licenseExpired" {
		t.Errorf("token expired 10s ago passed with leeway 0: %d", out.rec.Code)
	}
}

func TestSecretEnablesHMACOnly(t *testing.T) {
	t.Parallel()
	clk := newClock()
	secret := "an-hmac-secret-of-enough-length-123456"
	g, _ := provisioned(t, &Gate{Secret: secret}, clk)
	tok := func(key string, alg jwt.SigningMethod) string {
		s, err := jwt.NewWithClaims(alg, claimsAt(clk)).SignedString([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if out := serve(t, g, bearer(tok(secret, jwt.SigningMethodHS256))); !out.passed {
		t.Errorf("HS256 token with the secret rejected: %s", out.rec.Body.Bytes())
	}
	if out := serve(t, g, bearer(tok(secret, jwt.SigningMethodHS512))); !out.passed {
		t.Errorf("HS512 token with the secret rejected: %s", out.rec.Body.Bytes())
	}
	if out := serve(t, g, bearer(tok("another-secret-entirely-0123456789", jwt.SigningMethodHS256))); out.passed || out.rec.Code != 401 {
		t.Errorf("HS256 token with another secret: %d", out.rec.Code)
	}

	// A JWKS oct key never enables HMAC, and without a secret HS* is not
	// in the default allowlist.
	k := newKey(t, "k", "ES256")
	f := writeFile(t, "jwks.json", jwksDoc(k.public(t),
		map[string]any{"kty": "oct", "kid": "hmac", "k": "YW4taG1hYy1zZWNyZXQtb2YtZW5vdWdoLWxlbmd0aC0xMjM0NTY"}))
	g2, _ := provisioned(t, &Gate{JWKSFiles: []string{f}}, clk)
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsAt(clk))
	hs.Header["kid"] = "hmac"
	s, _ := hs.SignedString([]byte("an-hmac-secret-of-enough-length-123456"))
	if out := serve(t, g2, bearer(s)); out.passed || out.rec.Code != 401 {
		t.Errorf("HS256 token with a JWKS oct key: %d", out.rec.Code)
	}
}

func TestAlgorithmsAllowlist(t *testing.T) {
	t.Parallel()
	clk := newClock()
	rs, es := newKey(t, "rs", "RS256"), newKey(t, "es", "ES256")
	g := fileGate(t, rs, es)
	g.Algorithms = []string{"ES256"}
	g, _ = provisioned(t, g, clk)
	if out := serve(t, g, bearer(es.sign(t, claimsAt(clk), nil))); !out.passed {
		t.Errorf("ES256 rejected: %s", out.rec.Body.Bytes())
	}
	out := serve(t, g, bearer(rs.sign(t, claimsAt(clk), nil)))
	if out.passed || out.rec.Code != 401 || !strings.Contains(out.rec.Body.String(), "RS256") {
		t.Errorf("RS256 with algorithms ES256: %d %s", out.rec.Code, out.rec.Body.Bytes())
	}
}

func TestProvisionErrors(t *testing.T) {
	t.Parallel()
	k := newKey(t, "k", "ES256")
	file := writeFile(t, "jwks.json", jwksDoc(k.public(t)))
	onlyOct := writeFile(t, "oct.json", jwksDoc(map[string]any{"kty": "oct", "k": "c2VjcmV0"}))
	neg := caddy.Duration(-time.Second)
	tests := []struct {
		name string
		g    Gate
		want string
	}{
		{"no key source", Gate{}, "no key source"},
		{"an unknown algorithm", Gate{JWKSFiles: []string{file}, Algorithms: []string{"RS1"}}, "unsupported algorithm"},
		{"HS256 without a secret", Gate{JWKSFiles: []string{file}, Algorithms: []string{"HS256"}}, "needs a secret"},
		{"alg none", Gate{JWKSFiles: []string{file}, Algorithms: []string{"none"}}, "unsupported algorithm"},
		{"a secret that is empty after replacing", Gate{Secret: "{env.LICENSEGATE_TEST_UNSET_VARIABLE}"}, "secret is empty"},
		{"a negative leeway", Gate{JWKSFiles: []string{file}, Leeway: &neg}, "leeway"},
		{"a negative max_token_size", Gate{JWKSFiles: []string{file}, MaxTokenSize: -1}, "max_token_size"},
		{"an unknown token source", Gate{JWKSFiles: []string{file}, TokenFrom: &ValueSource{From: "body", Name: "x"}}, "token_from"},
		{"a token source without a name", Gate{JWKSFiles: []string{file}, TokenFrom: &ValueSource{From: "query"}}, "token_from"},
		{"an unknown status code", Gate{JWKSFiles: []string{file}, Status: map[string]int{"nope": 403}}, "unknown error code"},
		{"a status that is not HTTP", Gate{JWKSFiles: []string{file}, Status: map[string]int{"notAuthorized": 99}}, "not an HTTP status"},
		{"an unknown on_store_error", Gate{JWKSFiles: []string{file}, OnStoreError: "maybe"}, "on_store_error"},
		{"a bad refund_on", Gate{JWKSFiles: []string{file}, RefundOn: []string{"6xx"}}, "refund_on"},
		{"an unknown claim role", Gate{JWKSFiles: []string{file}, Claims: map[string]string{"colour": "c"}}, "claims"},
		{"a missing jwks_file", Gate{JWKSFiles: []string{"/nonexistent/jwks.json"}}, "jwks_file"},
		{"a jwks_file without usable keys", Gate{JWKSFiles: []string{onlyOct}}, "no usable"},
		{"a jwks_url that is not http", Gate{JWKSURLs: []string{"file:///etc/passwd"}}, "not an http(s) URL"},
		{"an oidc_issuer that is not http", Gate{OIDCIssuers: []string{"auth.example.com"}}, "not an http(s) URL"},
		{"an unknown store", Gate{JWKSFiles: []string{file}, Store: &StoreConfig{Type: "etcd"}}, "unknown type"},
		{"a match_claim without claim", Gate{JWKSFiles: []string{file}, MatchClaims: []ClaimRule{{Value: "x"}}}, "match_claim"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.g
			err := provisionSteps(&g, zap.NewNop())
			_ = g.Cleanup()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestPlaceholdersAfterVerification(t *testing.T) {
	t.Parallel()
	clk := newClock()
	k := newKey(t, "k", "ES256")
	g, _ := provisioned(t, fileGate(t, k), clk)
	tok := k.sign(t, claimsAt(clk, "sub", "bob", "jti", "j-77", "iss", "https://iss", "lic", "L-1", "org", "acme", "credits", 5, "n", 42), nil)
	out := serve(t, g, bearer(tok))
	if !out.passed {
		t.Fatalf("rejected: %s", out.rec.Body.Bytes())
	}
	got := out.repl.ReplaceAll("{http.license.sub}|{http.license.jti}|{http.license.iss}|{http.license.lic}|"+
		"{http.license.claim.org}|{http.license.claim.n}|{http.auth.user.id}|{http.license.credits_remaining}|"+
		"{http.license.credits_limit}", "?")
	if want := "bob|j-77|https://iss|L-1|acme|42|bob|4|5"; got != want {
		t.Errorf("placeholders %q, want %q", got, want)
	}
	// Known but empty (Caddy then writes the replacer's default).
	for _, name := range []string{"http.license.claim.absent", "http.license.error_code"} {
		if v, ok := out.repl.Get(name); !ok || v != "" {
			t.Errorf("%s = %v, %v; want known and empty", name, v, ok)
		}
	}
	if h := out.rec.Header(); h.Get(HeaderCreditsRemaining) != "4" || h.Get(HeaderCreditsLimit) != "5" {
		t.Errorf("credit headers %v", h)
	}

	out = serve(t, g, bearer(""))
	if got := out.repl.ReplaceAll("{http.license.error_code}|{http.license.sub}", "?"); got != "notAuthorized|?" {
		t.Errorf("placeholders after a reject %q", got)
	}
}

func TestRejectLogLineNeverHoldsTheToken(t *testing.T) {
	t.Parallel()
	clk := newClock()
	k := newKey(t, "k", "ES256")
	g := fileGate(t, k)
	g.TokenFrom = &ValueSource{From: "query", Name: "access_token"}
	g.RequireItem = "axesWord"
	g, logs := provisioned(t, g, clk)

	expired := k.sign(t, claimsAt(clk, "sub", "carol", "jti", "j-9", "lic", "L-9", "iss", "https://iss",
		"items", []string{"axesWord"}, "exp", clk.Now().Add(-time.Hour).Unix()), nil)
	unlicensed := k.sign(t, claimsAt(clk, "sub", "carol", "jti", "j-10", "lic", "L-10", "iss", "https://iss"), nil)
	for _, tc := range []struct {
		tok, code, sub string
	}{
		{expired, "licenseExpired", "carol"}, // signature held: the log names the license
		{unlicensed, "noLicenseFound", "carol"},
		{"garbage.token.here", "notAuthorized", ""},
	} {
		r := bearer("")
		r.URL.RawQuery = "a=1&access_token=" + tc.tok + "&b=2"
		r.RequestURI = "/api?" + r.URL.RawQuery
		out := serve(t, g, r)
		if out.passed || code(t, out.rec, "axesWord") != tc.code {
			t.Fatalf("got %d %s, want %s", out.rec.Code, out.rec.Body.Bytes(), tc.code)
		}
		entries := logs.TakeAll()
		if len(entries) != 1 || entries[0].Message != "license rejected" {
			t.Fatalf("want one reject line, got %+v", entries)
		}
		f := entries[0].ContextMap()
		for _, name := range []string{"code", "status", "item", "sub", "jti", "lic", "kid", "iss", "client_ip", "method", "uri", "detail"} {
			if _, ok := f[name]; !ok {
				t.Errorf("reject line lacks %s: %v", name, f)
			}
		}
		if f["code"] != tc.code || f["item"] != "axesWord" || f["sub"] != tc.sub || f["client_ip"] != "192.0.2.7" || f["method"] != "GET" {
			t.Errorf("reject line fields %v", f)
		}
		for name, v := range f {
			if s, ok := v.(string); ok && strings.Contains(s, tc.tok) {
				t.Errorf("field %s holds the token: %q", name, s)
			}
		}
		if uri, _ := f["uri"].(string); !strings.Contains(uri, "a=1") || !strings.Contains(uri, "b=2") {
			t.Errorf("uri lost the other parameters: %q", uri)
		}
	}

	ok := k.sign(t, claimsAt(clk, "items", []string{"axesWord"}), nil)
	r := bearer("")
	r.URL.RawQuery = "access_token=" + ok
	if out := serve(t, g, r); !out.passed {
		t.Fatalf("allowed token rejected: %s", out.rec.Body.Bytes())
	}
	for _, e := range logs.TakeAll() {
		if e.Level > -1 { // above DEBUG
			t.Errorf("allowed request logged at %s: %s", e.Level, e.Message)
		}
	}
}

func TestStatusOverrideAndBodyPrefix(t *testing.T) {
	t.Parallel()
	clk := newClock()
	k := newKey(t, "k", "ES256")
	g := fileGate(t, k)
	g.Status = map[string]int{"notAuthorized": 200, "noLicenseFound": 402}
	g.RequireItem = "axesPDF"
	g, _ = provisioned(t, g, clk)

	out := serve(t, g, bearer(""))
	if out.passed || out.rec.Code != 200 || code(t, out.rec, "axesPDF") != "notAuthorized" {
		t.Fatalf("no token with status notAuthorized 200: passed=%v %d %s", out.passed, out.rec.Code, out.rec.Body.Bytes())
	}
	if out.rec.Header().Get("WWW-Authenticate") != "" {
		t.Errorf("WWW-Authenticate on a 200")
	}
	out = serve(t, g, bearer(k.sign(t, claimsAt(clk), nil)))
	if out.passed || out.rec.Code != 402 || code(t, out.rec, "axesPDF") != "noLicenseFound" {
		t.Fatalf("unlicensed with status noLicenseFound 402: %d %s", out.rec.Code, out.rec.Body.Bytes())
	}
	if out := serve(t, g, bearer(k.sign(t, claimsAt(clk, "axesPDF", true), nil))); !out.passed {
		t.Fatalf("licensed by an item claim: %s", out.rec.Body.Bytes())
	}
}

func TestPreflightAndMaxTokenSize(t *testing.T) {
	t.Parallel()
	clk := newClock()
	k := newKey(t, "k", "ES256")
	g := fileGate(t, k)
	g.MaxTokenSize = 600
	g, logs := provisioned(t, g, clk)

	pre := func() *http.Request {
		r := bearer("")
		r.Method = http.MethodOptions
		r.Header.Set("Origin", "https://app.example")
		r.Header.Set("Access-Control-Request-Method", "POST")
		return r
	}
	if out := serve(t, g, pre()); !out.passed {
		t.Errorf("preflight rejected")
	}
	plainOptions := bearer("")
	plainOptions.Method = http.MethodOptions
	if out := serve(t, g, plainOptions); out.passed {
		t.Errorf("an OPTIONS without preflight headers passed unchecked")
	}

	off := false
	g2 := fileGate(t, k)
	g2.PassPreflight = &off
	g2, _ = provisioned(t, g2, clk)
	if out := serve(t, g2, pre()); out.passed || out.rec.Code != 401 {
		t.Errorf("preflight passed with pass_preflight off")
	}

	big := k.sign(t, claimsAt(clk, "pad", strings.Repeat("x", 600)), nil)
	logs.TakeAll()
	out := serve(t, g, bearer(big))
	if out.passed || out.rec.Code != 401 || !strings.Contains(out.rec.Body.String(), "exceeds max_token_size 600") {
		t.Errorf("big token: %d %s", out.rec.Code, out.rec.Body.Bytes())
	}
	if g.verifier.cache.len() != 0 {
		t.Errorf("big token was verified")
	}
}

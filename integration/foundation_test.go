package integration

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// The token rows of README's reject table end to end through the real
// binary: token extraction, signature and header checks, registered and
// validity claims, options that change them, the reject body and headers,
// placeholders, and the reject log line.

// echoUpstream answers with the request's method, path, request-line URI,
// headers and body as JSON and marks its responses with X-Upstream: yes.
func echoUpstream(t testing.TB) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Upstream", "yes")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "path": r.URL.Path, "uri": r.RequestURI,
			"headers": r.Header, "body": string(body)})
	}))
	t.Cleanup(s.Close)
	return s
}

// echoed reads the headers the echo upstream saw.
func echoed(t testing.TB, body []byte) http.Header {
	t.Helper()
	var m struct {
		Headers http.Header `json:"headers"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("upstream body %s: %v", body, err)
	}
	return m.Headers
}

// assertRejected is AssertReject plus what every reject must also show:
// the request never reached the upstream, a 401 names the error in
// WWW-Authenticate, a 503 says when to retry.
func assertRejected(t testing.TB, resp *http.Response, body []byte, status int, code, item, detail string) RejectBody {
	t.Helper()
	rb := AssertReject(t, resp, body, status, code, item)
	if resp.Header.Get("X-Upstream") != "" {
		t.Errorf("a rejected request reached the upstream")
	}
	if status == http.StatusUnauthorized {
		if wa := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(wa, `Bearer error="invalid_token", error_description="`) {
			t.Errorf("WWW-Authenticate %q lacks error_description", wa)
		}
	} else if wa := resp.Header.Get("WWW-Authenticate"); wa != "" {
		t.Errorf("WWW-Authenticate %q on a %d", wa, status)
	}
	if status == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	if !strings.Contains(rb.Technical, detail) {
		t.Errorf("errorTechnical %q lacks %q", rb.Technical, detail)
	}
	return rb
}

// assertPassed checks that the request reached the upstream.
func assertPassed(t testing.TB, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Upstream") != "yes" {
		t.Fatalf("not passed: %d %s", resp.StatusCode, body)
	}
}

// request builds a GET to the Caddy with name, value header pairs.
func (c *Caddy) request(t testing.TB, method, path string, headers ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, c.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

// tokenSite is a site with one gate per route, all on the same key server.
func tokenSite(ks *KeyServer, up string) string {
	u := ks.JWKSURL()
	return fmt.Sprintf(`
	handle /strict/* {
		license_gate {
			jwks_url %[1]s
			algorithms ES256
			leeway 0s
			require_item axesWord
			pass_preflight off
		}
		reverse_proxy %[2]s
	}
	handle /ok200/* {
		license_gate {
			jwks_url %[1]s
			status notAuthorized 200
		}
		reverse_proxy %[2]s
	}
	handle /query/* {
		license_gate {
			jwks_url %[1]s
			token_from query access_token
		}
		reverse_proxy %[2]s
	}
	handle /cookie/* {
		license_gate {
			jwks_url %[1]s
			token_from cookie lic
		}
		reverse_proxy %[2]s
	}
	handle /xlic/* {
		license_gate {
			jwks_url %[1]s
			token_from header X-License
		}
		reverse_proxy %[2]s
	}
	handle /small/* {
		license_gate {
			jwks_url %[1]s
			max_token_size 1KiB
		}
		reverse_proxy %[2]s
	}
	handle /ph/* {
		license_gate {
			jwks_url %[1]s
		}
		reverse_proxy %[2]s {
			header_up X-Sub {http.license.sub}
			header_up X-Jti {http.license.jti}
			header_up X-Org {http.license.claim.org}
			header_up X-User {http.auth.user.id}
			header_up X-Lic {http.license.lic}
			header_up X-Iss {http.license.iss}
		}
	}
	handle /respond/* {
		license_gate {
			jwks_url %[1]s
		}
		respond "sub={http.license.sub} jti={http.license.jti} org={http.license.claim.org} user={http.auth.user.id} left={http.license.credits_remaining}/{http.license.credits_limit}"
	}
	handle {
		license_gate {
			# Several issuers: each binds its key source in a block.
			issuer https://iss.example {
				jwks_url %[1]s
			}
			issuer https://iss2.example {
				jwks_url %[1]s
			}
			issuer https://iss3.example {
				jwks_url %[1]s
			}
			audience api.example
			audience api2.example
		}
		reverse_proxy %[2]s
	}`, u, up)
}

func TestFoundationTokenRejects(t *testing.T) {
	t.Parallel()
	rs := NewRSAKey(t, "rs1", "RS256")
	es := NewECKey(t, "es1", "ES256")
	ks := NewKeyServer(t, JWKS(t, rs, es))
	up := echoUpstream(t)
	c := StartCaddy(t, tokenSite(ks, hostPort(up.URL)))

	forged := NewRSAKey(t, "rs1", "RS256") // the right kid, another key
	now := time.Now()
	// std are claims the default route accepts.
	std := func(pairs ...any) Claims {
		return Std(append([]any{"iss", "https://iss.example", "aud", "api.example"}, pairs...)...)
	}
	auth := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

	type row struct {
		name    string
		path    string
		headers []string
		status  int    // 200: passed to the upstream
		code    string // errorCode of a reject
		item    string // body prefix, "" for license
		detail  string // in errorTechnical
	}
	rows := []row{
		// Token extraction.
		{"a valid token passes", "/", auth(rs.Sign(t, std())), 200, "", "", ""},
		{"no token is notAuthorized", "/", nil, 401, "notAuthorized", "", "no token"},
		{"an Authorization scheme other than Bearer is notAuthorized", "/", []string{"Authorization", "Basic YWxpY2U6c2VjcmV0"}, 401, "notAuthorized", "", "not Bearer"},
		{"a token without scheme is notAuthorized", "/", []string{"Authorization", rs.Sign(t, std())}, 401, "notAuthorized", "", "not Bearer"},
		{"the bearer scheme is case-insensitive (bearer)", "/", []string{"Authorization", "bearer " + rs.Sign(t, std())}, 200, "", "", ""},
		{"the bearer scheme is case-insensitive (BEARER)", "/", []string{"Authorization", "BEARER " + rs.Sign(t, std())}, 200, "", "", ""},

		// Decoding and signature.
		{"a malformed token is notAuthorized", "/", auth("not-a-jwt"), 401, "notAuthorized", "", "malformed"},
		{"a token of garbage segments is notAuthorized", "/", auth("abc.def.ghi"), 401, "notAuthorized", "", "malformed"},
		{"a bad signature is notAuthorized", "/", auth(forged.Sign(t, std())), 401, "notAuthorized", "", "signature"},
		{"a tampered payload is notAuthorized", "/", auth(tamper(t, rs.Sign(t, std()))), 401, "notAuthorized", "", "signature"},
		{"an unknown kid is notAuthorized", "/", auth(rs.Sign(t, std(), map[string]any{"kid": "nobody"})), 401, "notAuthorized", "", "kid"},
		{"a disallowed alg is notAuthorized", "/strict/x", auth(rs.Sign(t, Std("items", []string{"axesWord"}))), 401, "notAuthorized", "axesWord", "RS256"},
		{"an allowed alg passes", "/strict/x", auth(es.Sign(t, Std("items", []string{"axesWord"}))), 200, "", "", ""},

		// Issuer and audience: repeatable, any one matches.
		{"a wrong iss is notAuthorized", "/", auth(rs.Sign(t, std("iss", "https://evil.example"))), 401, "notAuthorized", "", "issuer"},
		{"a missing iss is notAuthorized", "/", auth(rs.Sign(t, std("iss", nil))), 401, "notAuthorized", "", "issuer"},
		{"the second issuer block is accepted", "/", auth(rs.Sign(t, std("iss", "https://iss2.example"))), 200, "", "", ""},
		{"the third issuer block is accepted", "/", auth(rs.Sign(t, std("iss", "https://iss3.example"))), 200, "", "", ""},
		{"a wrong aud is notAuthorized", "/", auth(rs.Sign(t, std("aud", "other.example"))), 401, "notAuthorized", "", "aud"},
		{"a missing aud is notAuthorized", "/", auth(rs.Sign(t, std("aud", nil))), 401, "notAuthorized", "", "aud"},
		{"an aud array containing the second audience is accepted", "/", auth(rs.Sign(t, std("aud", []string{"x.example", "api2.example"}))), 200, "", "", ""},

		// Registered and validity claims.
		{"a passed exp is licenseExpired", "/", auth(rs.Sign(t, std("exp", now.Add(-time.Hour).Unix()))), 401, "licenseExpired", "", "expired"},
		{"a missing exp is notAuthorized", "/", auth(rs.Sign(t, std("exp", nil))), 401, "notAuthorized", "", "exp"},
		{"an nbf in the future is licenseValidityNotStarted", "/", auth(rs.Sign(t, std("nbf", now.Add(time.Hour).Unix()))), 403, "licenseValidityNotStarted", "", "nbf"},
		{"an ibb in the future is licenseValidityNotStarted", "/", auth(rs.Sign(t, std("ibb", now.Add(time.Hour).Unix()))), 403, "licenseValidityNotStarted", "", "valid from"},
		{"a passed ibe is licenseExpired with 403", "/", auth(rs.Sign(t, std("ibe", now.Add(-time.Hour).Unix()))), 403, "licenseExpired", "", "valid until"},
		{"a token expired 10s ago fails with leeway 0s", "/strict/x", auth(es.Sign(t, Std("items", []string{"axesWord"}, "exp", now.Add(-10*time.Second).Unix()))), 401, "licenseExpired", "axesWord", "expired"},
		{"an nbf 10s ahead passes with the default leeway", "/", auth(rs.Sign(t, std("nbf", now.Add(10*time.Second).Unix()))), 200, "", "", ""},

		// Token types (RFC 8725 §3.11, RFC 9068).
		{"typ dpop+jwt is notAuthorized", "/", auth(rs.Sign(t, std(), map[string]any{"typ": "dpop+jwt"})), 401, "notAuthorized", "", "typ"},
		{"typ secevent+jwt is notAuthorized", "/", auth(rs.Sign(t, std(), map[string]any{"typ": "secevent+jwt"})), 401, "notAuthorized", "", "typ"},
		{"typ at+jwt is accepted", "/", auth(rs.Sign(t, std(), map[string]any{"typ": "at+jwt"})), 200, "", "", ""},
		{"typ application/at+jwt is accepted", "/", auth(rs.Sign(t, std(), map[string]any{"typ": "application/at+jwt"})), 200, "", "", ""},
		{"typ JWT is accepted", "/", auth(rs.Sign(t, std(), map[string]any{"typ": "JWT"})), 200, "", "", ""},

		// Size limit, checked before decoding.
		{"a token over the default 16KiB is notAuthorized", "/", auth(rs.Sign(t, std("pad", strings.Repeat("x", 17<<10)))), 401, "notAuthorized", "", "exceeds max_token_size 16384"},
		{"a token over max_token_size 1KiB is notAuthorized", "/small/x", auth(rs.Sign(t, Std("pad", strings.Repeat("x", 1024)))), 401, "notAuthorized", "", "exceeds max_token_size 1024"},
		{"a garbage token over max_token_size is refused by size, not decoded", "/small/x", auth(strings.Repeat("%", 2000)), 401, "notAuthorized", "", "exceeds max_token_size 1024"},
		{"a token under max_token_size passes", "/small/x", auth(rs.Sign(t, Std())), 200, "", "", ""},

		// The body prefix is the route's require_item.
		{"the body prefix is require_item", "/strict/x", nil, 401, "notAuthorized", "axesWord", "no token"},
		{"an unlicensed item is noLicenseFound under the item prefix", "/strict/x", auth(es.Sign(t, Std())), 403, "noLicenseFound", "axesWord", "axesWord"},

		// Token sources.
		{"token_from query reads the parameter", "/query/x?access_token=" + url.QueryEscape(rs.Sign(t, Std())), nil, 200, "", "", ""},
		{"token_from query ignores Authorization", "/query/x", auth(rs.Sign(t, Std())), 401, "notAuthorized", "", "no token in query access_token"},
		{"token_from cookie reads the cookie", "/cookie/x", []string{"Cookie", "a=b; lic=" + rs.Sign(t, Std())}, 200, "", "", ""},
		{"token_from cookie without the cookie is notAuthorized", "/cookie/x", []string{"Cookie", "other=" + rs.Sign(t, Std())}, 401, "notAuthorized", "", "no token in cookie lic"},
		{"token_from header X-License reads a bare token", "/xlic/x", []string{"X-License", rs.Sign(t, Std())}, 200, "", "", ""},
		{"token_from header X-License reads a Bearer token", "/xlic/x", []string{"X-License", "Bearer " + rs.Sign(t, Std())}, 200, "", "", ""},
		{"token_from header X-License ignores Authorization", "/xlic/x", auth(rs.Sign(t, Std())), 401, "notAuthorized", "", "no token in header X-License"},
	}
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, body := Do(t, c.request(t, http.MethodGet, tc.path, tc.headers...))
			if tc.status == 200 {
				assertPassed(t, resp, body)
				return
			}
			assertRejected(t, resp, body, tc.status, tc.code, tc.item, tc.detail)
		})
	}

	t.Run("a token expired 10s ago passes with the default 30s leeway", func(t *testing.T) {
		t.Parallel()
		// Signed when sent: parallel subtests may start late on a busy machine.
		resp, body := c.Get(t, "/", rs.Sign(t, std("exp", time.Now().Add(-10*time.Second).Unix())))
		assertPassed(t, resp, body)
	})

	t.Run("status notAuthorized 200 answers 200 with the reject body and does not forward", func(t *testing.T) {
		t.Parallel()
		resp, body := c.Get(t, "/ok200/x", "")
		assertRejected(t, resp, body, http.StatusOK, "notAuthorized", "", "no token")
		resp, body = c.Get(t, "/ok200/x", rs.Sign(t, Std()))
		assertPassed(t, resp, body)
	})

	t.Run("pass_preflight lets a CORS preflight through unchecked", func(t *testing.T) {
		t.Parallel()
		pre := []string{"Origin", "https://app.example", "Access-Control-Request-Method", "POST"}
		resp, body := Do(t, c.request(t, http.MethodOptions, "/", pre...))
		assertPassed(t, resp, body)
		// An OPTIONS without the preflight headers is checked.
		resp, body = Do(t, c.request(t, http.MethodOptions, "/", "Origin", "https://app.example"))
		assertRejected(t, resp, body, 401, "notAuthorized", "", "no token")
		// pass_preflight off checks it.
		resp, body = Do(t, c.request(t, http.MethodOptions, "/strict/x", pre...))
		assertRejected(t, resp, body, 401, "notAuthorized", "axesWord", "no token")
	})

	t.Run("placeholders reach the upstream through header_up", func(t *testing.T) {
		t.Parallel()
		tok := rs.Sign(t, Std("sub", "bob", "jti", "jti-ph-1", "org", "acme", "lic", "L-42", "iss", "https://iss.example"))
		resp, body := c.Get(t, "/ph/x", tok)
		assertPassed(t, resp, body)
		h := echoed(t, body)
		want := map[string]string{"X-Sub": "bob", "X-Jti": "jti-ph-1", "X-Org": "acme", "X-User": "bob", "X-Lic": "L-42", "X-Iss": "https://iss.example"}
		for name, v := range want {
			if got := h.Get(name); got != v {
				t.Errorf("upstream saw %s %q, want %q", name, got, v)
			}
		}
	})

	t.Run("placeholders in respond", func(t *testing.T) {
		t.Parallel()
		tok := rs.Sign(t, Std("sub", "carol", "jti", "jti-ph-2", "org", 7, "credits", 3))
		resp, body := c.Get(t, "/respond/x", tok)
		if want := "sub=carol jti=jti-ph-2 org=7 user=carol left=2/3"; resp.StatusCode != 200 || string(body) != want {
			t.Errorf("respond: %d %q, want %q", resp.StatusCode, body, want)
		}
		if resp.Header.Get("X-License-Credits-Remaining") != "2" || resp.Header.Get("X-License-Credits-Limit") != "3" {
			t.Errorf("credit headers %v", resp.Header)
		}
	})
}

// tamper flips the payload of a token, keeping its signature.
func tamper(t testing.TB, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token of %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var forged map[string]any
	if err := json.Unmarshal(raw, &forged); err != nil {
		t.Fatal(err)
	}
	forged["sub"], forged["credits"] = "mallory", 1000000
	b, _ := json.Marshal(forged)
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

func TestFoundationNoKeyEverLoaded(t *testing.T) {
	t.Parallel()
	key := NewRSAKey(t, "k1", "RS256")
	down := fmt.Sprintf("http://127.0.0.1:%d/jwks.json", freePort(t)) // nothing listens
	up := echoUpstream(t)
	c := StartCaddy(t, `
	license_gate {
		jwks_url `+down+`
	}
	reverse_proxy `+hostPort(up.URL))

	for _, tok := range []string{key.Sign(t, Std()), key.Sign(t, Std(), map[string]any{"kid": nil})} {
		resp, body := c.Get(t, "/", tok)
		assertRejected(t, resp, body, http.StatusServiceUnavailable, "serviceUnavailable", "", "")
	}
	// A request without token is still a plain notAuthorized.
	resp, body := c.Get(t, "/", "")
	assertRejected(t, resp, body, http.StatusUnauthorized, "notAuthorized", "", "no token")

	WaitFor(t, 5*time.Second, "the key fetch failure logged at ERROR", func() bool {
		for _, l := range c.Logs.logLines("key set fetch failed; keeping the last good keys") {
			if l["level"] == "error" {
				return true
			}
		}
		return false
	})
	for _, l := range c.Logs.logLines("license rejected") {
		if l["code"] == "serviceUnavailable" && l["level"] != "error" {
			t.Errorf("serviceUnavailable reject logged at %v", l["level"])
		}
	}
}

func TestFoundationRejectLogs(t *testing.T) {
	t.Parallel()
	key := NewECKey(t, "k1", "ES256")
	ks := NewKeyServer(t, JWKS(t, key))
	c := StartCaddy(t, `
	handle /q/* {
		license_gate {
			jwks_url `+ks.JWKSURL()+`
			token_from query t
		}
		respond "ok"
	}
	handle {
		license_gate {
			jwks_url `+ks.JWKSURL()+`
			require_item axesWord
		}
		respond "ok"
	}`)

	var tokens []string
	sign := func(claims Claims, header ...map[string]any) string {
		tok := key.Sign(t, claims, header...)
		tokens = append(tokens, tok)
		return tok
	}
	type rejectCase struct {
		name    string
		req     *http.Request
		status  int
		code    string
		fields  map[string]any // expected values of some fields
		uriHide string         // must not occur in the uri field
	}
	unlicensed := sign(Std("sub", "dave", "jti", "jti-log-1", "lic", "L-7", "iss", "https://iss.example"))
	expired := sign(Std("sub", "erin", "exp", time.Now().Add(-time.Hour).Unix()))
	unknownKid := sign(Std(), map[string]any{"kid": "zz-unknown"})
	queryExpired := sign(Std("exp", time.Now().Add(-time.Hour).Unix()))
	cases := []rejectCase{
		{"no token", c.request(t, http.MethodGet, "/a?x=1"), 401, "notAuthorized",
			map[string]any{"item": "axesWord", "method": "GET", "uri": "/a?x=1", "client_ip": "127.0.0.1", "sub": "", "kid": ""}, ""},
		{"unlicensed item after verification", c.request(t, http.MethodPost, "/b", "Authorization", "Bearer "+unlicensed), 403, "noLicenseFound",
			map[string]any{"item": "axesWord", "method": "POST", "sub": "dave", "jti": "jti-log-1", "lic": "L-7", "kid": "k1", "iss": "https://iss.example"}, ""},
		{"expired", c.request(t, http.MethodGet, "/c", "Authorization", "Bearer "+expired), 401, "licenseExpired",
			map[string]any{"item": "axesWord", "kid": "k1", "sub": "erin"}, ""},
		{"unknown kid", c.request(t, http.MethodGet, "/d", "Authorization", "Bearer "+unknownKid), 401, "notAuthorized",
			map[string]any{"item": "axesWord", "kid": "zz-unknown"}, ""},
		{"token in the query", c.request(t, http.MethodGet, "/q/e?a=1&t="+queryExpired+"&b=2"), 401, "licenseExpired",
			map[string]any{"item": ""}, queryExpired},
		{"garbage in the query", c.request(t, http.MethodGet, "/q/f?t=SECRET-GARBAGE-TOKEN"), 401, "notAuthorized",
			map[string]any{}, "SECRET-GARBAGE-TOKEN"},
	}
	for _, tc := range cases {
		before := len(c.Logs.logLines("license rejected"))
		resp, body := Do(t, tc.req)
		item, _ := tc.fields["item"].(string)
		assertRejected(t, resp, body, tc.status, tc.code, item, "")
		WaitFor(t, 5*time.Second, "the reject line of "+tc.name, func() bool {
			return len(c.Logs.logLines("license rejected")) > before
		})
		lines := c.Logs.logLines("license rejected")
		if len(lines) != before+1 {
			t.Fatalf("%s: %d reject lines, want exactly one more", tc.name, len(lines)-before)
		}
		l := lines[before]
		if l["logger"] != "http.handlers.license_gate" || l["level"] != "info" {
			t.Errorf("%s: logger %v level %v", tc.name, l["logger"], l["level"])
		}
		for _, f := range []string{"code", "status", "item", "sub", "jti", "lic", "kid", "iss", "client_ip", "method", "uri", "detail"} {
			if _, ok := l[f]; !ok {
				t.Errorf("%s: the reject line lacks %s: %v", tc.name, f, l)
			}
		}
		if l["code"] != tc.code || l["status"] != float64(tc.status) {
			t.Errorf("%s: code %v status %v", tc.name, l["code"], l["status"])
		}
		for f, v := range tc.fields {
			if l[f] != v {
				t.Errorf("%s: field %s = %v, want %v", tc.name, f, l[f], v)
			}
		}
		if uri, _ := l["uri"].(string); tc.uriHide != "" && (strings.Contains(uri, tc.uriHide) || !strings.Contains(uri, "/q/")) {
			t.Errorf("%s: uri field %q", tc.name, uri)
		}
	}

	// Allowed requests log nothing above DEBUG.
	before := c.Logs.String()
	ok := sign(Std("items", []string{"axesWord"}))
	for _, req := range []*http.Request{
		c.request(t, http.MethodGet, "/g", "Authorization", "Bearer "+ok),
		c.request(t, http.MethodGet, "/q/h?t="+ok),
	} {
		if resp, body := Do(t, req); resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("allowed: %d %s", resp.StatusCode, body)
		}
	}
	// A reject after them marks the end: once its line is in, every line
	// of the allowed requests is too.
	rejects := len(c.Logs.logLines("license rejected"))
	Do(t, c.request(t, http.MethodGet, "/sentinel"))
	WaitFor(t, 5*time.Second, "the sentinel reject line", func() bool {
		return len(c.Logs.logLines("license rejected")) > rejects
	})
	allowedLines := 0
	for _, line := range strings.Split(strings.TrimPrefix(c.Logs.String(), before), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		lg, _ := m["logger"].(string)
		if !strings.HasPrefix(lg, "http.handlers.license_gate") || m["uri"] == "/sentinel" {
			continue
		}
		if m["level"] != "debug" {
			t.Errorf("an allowed request logged above DEBUG: %s", line)
		}
		allowedLines++
	}
	if allowedLines != 2 {
		t.Errorf("%d DEBUG lines for two allowed requests, want 2", allowedLines)
	}

	logs := c.Logs.String()
	for _, tok := range tokens {
		if strings.Contains(logs, tok) {
			t.Errorf("a token appears in the logs")
		}
		// Nor its signature alone.
		if sig := tok[strings.LastIndex(tok, ".")+1:]; strings.Contains(logs, sig) {
			t.Errorf("a token signature appears in the logs")
		}
	}
	if strings.Contains(logs, "SECRET-GARBAGE-TOKEN") {
		t.Errorf("a query token appears in the logs")
	}
}

func TestFoundationAccessLogShowsTheUser(t *testing.T) {
	t.Parallel()
	key := NewEdKey(t, "ed1")
	ks := NewKeyServer(t, JWKS(t, key))
	c := StartCaddy(t, `
	log
	license_gate {
		jwks_url `+ks.JWKSURL()+`
	}
	respond "ok"`)
	tok := key.Sign(t, Std("sub", "frank"))
	if resp, body := c.Get(t, "/who", tok); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var line map[string]any
	WaitFor(t, 5*time.Second, "the access log line", func() bool {
		for _, l := range c.Logs.logLines("handled request") {
			if req, _ := l["request"].(map[string]any); req != nil && req["uri"] == "/who" {
				line = l
				return true
			}
		}
		return false
	})
	if line["user_id"] != "frank" {
		t.Errorf("access log user_id %v, want frank", line["user_id"])
	}
	if strings.Contains(c.Logs.String(), tok) {
		t.Errorf("the token appears in the access log")
	}
}

// TestFoundationConcurrentFirstRequests sends the first requests of a fresh
// gate all at once: while the key set is still being fetched none may fail.
func TestFoundationConcurrentFirstRequests(t *testing.T) {
	t.Parallel()
	key := NewECKey(t, "k1", "ES256")
	ks := NewKeyServer(t, JWKS(t, key))
	ks.Hang(300 * time.Millisecond) // the first fetch is slow
	up := echoUpstream(t)
	c := StartCaddy(t, `
	license_gate {
		jwks_url `+ks.JWKSURL()+`
	}
	reverse_proxy `+hostPort(up.URL))
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		req := c.request(t, http.MethodGet, "/", "Authorization", "Bearer "+key.Sign(t, Std()))
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("%d %s", resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	if n := ks.Fetches.Load(); n > 2 {
		t.Errorf("%d key set fetches for one start", n)
	}
}

package integration

// license_issuer through the real binary: discovery and keys, the three
// issue endpoints' answers, and gates that verify what it issues through
// oidc_issuer alone — in the same Caddy and in another one, across a key
// rotation.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Issuer test API keys (exported into the issuer's environment).
const (
	itPartnerKey = "it-partner-key-0123456789"
	itShopKey    = "it-shop-key-0123456789abcd"
)

var issuerEnv = []string{"LG_PARTNER_KEY=" + itPartnerKey, "LG_SHOP_KEY=" + itShopKey}

// signingKeyJWK renders a key as the private JWK license-keygen writes
// (kid, alg, use sig).
func signingKeyJWK(t testing.TB, k *Key) string {
	t.Helper()
	m := privateJWK(t, k.Signer, k.Kid)
	m["alg"] = k.Alg
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// privateD is the private scalar of a key's JWK, to look for in logs.
func privateD(t testing.TB, k *Key) string {
	d, _ := privateJWK(t, k.Signer, k.Kid)["d"].(string)
	if d == "" {
		t.Fatal("no d")
	}
	return d
}

// issuerBlock is a license_issuer block for iss signing with the key files.
func issuerBlock(iss string, keyFiles ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "license_issuer {\n\t\tissuer %s\n", iss)
	for _, f := range keyFiles {
		fmt.Fprintf(&b, "\t\tsigning_key %s\n", f)
	}
	b.WriteString(`		audience it-api
		products axesWord axesSlide
		max_body_size 4KiB
		api_key partner {env.LG_PARTNER_KEY} {
			products axesWord
			max_validity 400d
		}
		api_key shop {env.LG_SHOP_KEY} {
			max_credits 100
		}
	}`)
	return b.String()
}

// gateRoutes are the protected routes: /word/* needs axesWord and checks
// version, system identity and operating system; /address/* counts credits.
func gateRoutes(iss, upstream string) string {
	return fmt.Sprintf(`handle /word/* {
		license_gate {
			oidc_issuer %[1]s
			audience it-api
			require_item axesWord
			hardware_from header X-System-Identity
			match_claim os {http.request.header.X-Client-OS}
		}
		reverse_proxy %[2]s
	}
	handle /address/* {
		license_gate {
			oidc_issuer %[1]s
			audience it-api
		}
		reverse_proxy %[2]s
	}`, iss, upstream)
}

// caddyfileFor is a whole Caddyfile with one site on port whose body is
// site, every log at DEBUG, and access logs that leave out x-api-key as
// README.md advises (Caddy redacts only Authorization and cookies itself).
func caddyfileFor(port, admin int, site string) string {
	return SiteCaddyfile(port, admin, "", `log {
		output stderr
		format filter {
			wrap json
			request>headers>X-Api-Key delete
		}
	}
	`+site)
}

// startIssuer runs a Caddy whose site holds the issuer (its URL is the
// site's) and, when withGate, the protected routes.
func startIssuer(t testing.TB, withGate bool, keys ...*Key) (*Caddy, string) {
	t.Helper()
	port, admin := freePort(t), freePort(t)
	iss := fmt.Sprintf("http://127.0.0.1:%d", port)
	files := map[string]string{}
	var names []string
	for _, k := range keys {
		name := k.Kid + ".private.jwk.json"
		files[name] = signingKeyJWK(t, k)
		names = append(names, name)
	}
	site := issuerBlock(iss, names...)
	if withGate {
		site += "\n\t" + gateRoutes(iss, hostPort(Upstream(t, 200).URL))
	}
	return StartCaddyfile(t, caddyfileFor(port, admin, site), port, admin, files, issuerEnv...), iss
}

// issue posts body to an issue endpoint with the API key.
func (c *Caddy) issue(t testing.TB, path, key, body string) (*http.Response, map[string]any) {
	t.Helper()
	resp, raw, err := c.post(path, key, body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: body is not JSON: %s", path, raw)
	}
	return resp, m
}

// post sends an issue request and reads its answer.
func (c *Caddy) post(path, key, body string) (*http.Response, []byte, error) {
	req, _ := http.NewRequest(http.MethodPost, c.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if key != "" {
		req.Header.Set("x-api-key", key)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp, raw, err
}

// mustIssue returns the token of a successful issue request.
func (c *Caddy) mustIssue(t testing.TB, path, key, body string) string {
	t.Helper()
	resp, m := c.issue(t, path, key, body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %v", path, resp.StatusCode, m)
	}
	for _, k := range []string{"token", "Token"} {
		if s, ok := m[k].(string); ok {
			return s
		}
	}
	t.Fatalf("%s: no token in %v", path, m)
	return ""
}

// axes4Request is the IssueTokenRequest of axes4's documentation with the given dates and
// locking data.
func axes4Request(start, expire time.Time, sysID string) string {
	return fmt.Sprintf(`{"customerIdentifier":"YourCustomerIdentifier","productEnum":"axesWord","version":"25.*.*",`+
		`"startDate":%q,"expireDate":%q,"operatingSystemEnum":"Windows","lockingData":%q}`,
		start.Format("2006-01-02T15:04:05-07:00"), expire.Format("2006-01-02T15:04:05-07:00"), sysID)
}

const itSysID = "B6C2-7F1A-44D0-9E3B"

func TestIssuerPublishesDiscoveryAndKeys(t *testing.T) {
	t.Parallel()
	k1, k2 := NewECKey(t, "it-k1", "ES256"), NewEdKey(t, "it-k2")
	c, iss := startIssuer(t, false, k1, k2)

	resp, body := c.Get(t, "/.well-known/openid-configuration", "")
	var meta map[string]any
	if err := json.Unmarshal(body, &meta); err != nil || resp.StatusCode != 200 {
		t.Fatalf("discovery %d %s", resp.StatusCode, body)
	}
	if meta["issuer"] != iss || meta["jwks_uri"] != iss+"/.well-known/jwks.json" {
		t.Errorf("discovery %v", meta)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
		t.Errorf("discovery Cache-Control %q", cc)
	}

	resp, body = c.Get(t, "/.well-known/jwks.json", "")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") || resp.Header.Get("ETag") == "" {
		t.Fatalf("jwks %d %v", resp.StatusCode, resp.Header)
	}
	set, err := jwk.Parse(body)
	if err != nil || set.Len() != 2 {
		t.Fatalf("jwks %s: %v", body, err)
	}
	for i, kid := range []string{"it-k1", "it-k2"} {
		k, _ := set.Key(i)
		if private, _ := jwk.IsPrivateKey(k); private || k.KeyID() != kid {
			t.Errorf("key %d: kid %q private %v", i, k.KeyID(), private)
		}
	}
	for _, k := range []*Key{k1, k2} {
		if strings.Contains(string(body), privateD(t, k)) || strings.Contains(string(body), `"d":`) {
			t.Errorf("the key set holds private material: %s", body)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, c.URL+"/.well-known/jwks.json", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	if resp, _ := Do(t, req); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
	// Tokens are signed by the first key.
	tok := c.mustIssue(t, "/tokens", itShopKey, `{"sub":"bob","credits":1}`)
	if h := tokenPart(t, tok, 0); h["kid"] != "it-k1" || h["alg"] != "ES256" || h["typ"] != "JWT" {
		t.Errorf("header %v", h)
	}
}

// TestIssuerEndpointsAnswer runs each endpoint's success, 401, 403 and 400
// through the binary.
func TestIssuerEndpointsAnswer(t *testing.T) {
	t.Parallel()
	c, iss := startIssuer(t, false, NewECKey(t, "it-k1", "ES256"))
	now := time.Now().UTC()
	valid := axes4Request(now.Add(-time.Hour), now.Add(30*24*time.Hour), itSysID)
	tests := []struct {
		name, path, key, body string
		status                int
		code, field           string
	}{
		{"axes4 issues a token", "/jwtTokenIssuer/v1/token", itPartnerKey, valid, 200, "", ""},
		{"axes4 without a key is 401", "/jwtTokenIssuer/v1/token", "", valid, 401, "unauthorized", ""},
		{"axes4 beyond the key's products is 403", "/jwtTokenIssuer/v1/token", itPartnerKey, strings.Replace(valid, "axesWord", "axesSlide", 1), 403, "beyond_grant", "productEnum"},
		{"axes4 with a bad version pattern is 400", "/jwtTokenIssuer/v1/token", itPartnerKey, strings.Replace(valid, "25.*.*", "25.*.x", 1), 400, "invalid_field", "version"},
		{"axes4 with an unknown field is 400", "/jwtTokenIssuer/v1/token", itPartnerKey, strings.Replace(valid, "lockingData", "lockData", 1), 400, "unknown_field", "lockData"},
		{"axes4 with expireDate before startDate is 400", "/jwtTokenIssuer/v1/token", itPartnerKey, axes4Request(now.Add(48*time.Hour), now.Add(24*time.Hour), itSysID), 400, "invalid_field", "expireDate"},
		{"Data8 issues a token", "/GetJWT", itShopKey, `{"sub":"markc","credits":3,"ip":"127.0.0.1"}`, 200, "", ""},
		{"Data8 with a wrong key is 401", "/GetJWT", itPartnerKey + "x", `{"credits":3}`, 401, "unauthorized", ""},
		{"Data8 beyond the key's credits is 403", "/GetJWT", itShopKey, `{"credits":101}`, 403, "beyond_grant", "credits"},
		{"Data8 with a malformed IP is 400", "/GetJWT", itShopKey, `{"credits":3,"ip":"127.0.0.1/40"}`, 400, "invalid_field", "ip"},
		{"native issues a token", "/tokens", itShopKey, `{"sub":"bob","credits":5,"items":["axesSlide"],"tier":"gold"}`, 200, "", ""},
		{"native without a key is 401", "/tokens", "", `{}`, 401, "unauthorized", ""},
		{"native beyond the key's products is 403", "/tokens", itPartnerKey, `{"items":["axesSlide"]}`, 403, "beyond_grant", "items"},
		{"native with an unknown product is 400", "/tokens", itShopKey, `{"credits":1,"product":"axesFoo"}`, 400, "unknown_product", "product"},
		{"native with a body over the limit is 413", "/tokens", itShopKey, `{"x":"` + strings.Repeat("y", 5000) + `"}`, 413, "body_too_large", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := c.issue(t, tc.path, tc.key, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %v", resp.StatusCode, tc.status, m)
			}
			if tc.status == 200 {
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				tok, _ := m["token"].(string)
				if tok == "" {
					tok, _ = m["Token"].(string)
				}
				claims := tokenPart(t, tok, 1)
				if claims["iss"] != iss || claims["aud"] != "it-api" || claims["jti"] == "" || claims["iat"] == nil {
					t.Errorf("claims %v", claims)
				}
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			if m["status"] != float64(tc.status) || m["code"] != tc.code || m["title"] != http.StatusText(tc.status) || m["detail"] == "" {
				t.Errorf("problem %v", m)
			}
			if f, _ := m["field"].(string); f != tc.field {
				t.Errorf("field %q, want %q: %v", f, tc.field, m)
			}
		})
	}
	if n := len(c.Logs.logLines("license issued")); n != 3 {
		t.Errorf("%d license issued lines, want 3", n)
	}
	assertNoSecretsLogged(t, c, itPartnerKey, itShopKey)

	// licensegate_issued_total, in Caddy's registry: one count per answer.
	resp, err := http.Get(c.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, tc := range []struct {
		endpoint string
		counts   map[string]float64
	}{
		{"axes4", map[string]float64{"issued": 1, "unauthorized": 1, "forbidden": 1, "invalid": 3}},
		{"data8", map[string]float64{"issued": 1, "unauthorized": 1, "forbidden": 1, "invalid": 1}},
		{"native", map[string]float64{"issued": 1, "unauthorized": 1, "forbidden": 1, "invalid": 2}},
	} {
		for result, want := range tc.counts {
			name := fmt.Sprintf(`licensegate_issued_total{endpoint=%q,result=%q}`, tc.endpoint, result)
			if got, ok := metricValue(string(raw), name); !ok || got != want {
				t.Errorf("%s = %v (found %v), want %v", name, got, ok, want)
			}
		}
	}
}

// assertNoSecretsLogged fails when any log line holds one of the secrets
// or a token (a compact JWT's header always starts eyJ).
func assertNoSecretsLogged(t testing.TB, c *Caddy, secrets ...string) {
	t.Helper()
	logs := c.Logs.String()
	if !strings.Contains(logs, `"logger":"http.log.access`) {
		t.Errorf("no access log lines to check")
	}
	for _, line := range strings.Split(logs, "\n") {
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("a log line holds a secret: %s", line)
			}
		}
		if strings.Contains(line, "eyJ") {
			t.Errorf("a log line holds a token: %s", line)
		}
	}
}

// TestIssuedTokensAreEnforcedByAGateOnTheSameCaddy: the gate knows the
// issuer only by oidc_issuer; it enforces the axes4 token's hardware lock,
// version pattern and start date, and the Data8 token's credits and IP.
func TestIssuedTokensAreEnforcedByAGateOnTheSameCaddy(t *testing.T) {
	t.Parallel()
	k1 := NewECKey(t, "it-k1", "ES256")
	c, _ := startIssuer(t, true, k1)
	now := time.Now().UTC()
	word := func(tok, version, sysID string) (*http.Response, []byte) {
		return c.Get(t, "/word/convert", tok, "X-Client-Version", version, "X-System-Identity", sysID, "X-Client-OS", "Windows")
	}

	tok := c.mustIssue(t, "/jwtTokenIssuer/v1/token", itPartnerKey, axes4Request(now.Add(-time.Hour), now.Add(30*24*time.Hour), itSysID))
	if resp, body := word(tok, "25.1.0", itSysID); resp.StatusCode != 200 {
		t.Fatalf("the issued axes4 token: %d %s", resp.StatusCode, body)
	}
	resp, body := word(tok, "25.1.0", "0000-1111-2222-3333")
	AssertReject(t, resp, body, 403, "anchorLockedToAnotherLicense", "axesWord")
	resp, body = word(tok, "24.9.9", itSysID)
	AssertReject(t, resp, body, 403, "unallowedClientVersion", "axesWord")
	resp, body = c.Get(t, "/word/convert", tok, "X-Client-Version", "25.1.0", "X-System-Identity", itSysID, "X-Client-OS", "Linux")
	AssertReject(t, resp, body, 403, "notAuthorized", "axesWord")

	later := c.mustIssue(t, "/jwtTokenIssuer/v1/token", itPartnerKey, axes4Request(now.Add(24*time.Hour), now.Add(30*24*time.Hour), itSysID))
	resp, body = word(later, "25.1.0", itSysID)
	AssertReject(t, resp, body, 403, "licenseValidityNotStarted", "axesWord")

	credits := c.mustIssue(t, "/GetJWT", itShopKey, `{"sub":"markc","credits":3,"ip":["127.0.0.1","::1"]}`)
	for left := 2; left >= 0; left-- {
		resp, body := c.Get(t, "/address/lookup", credits)
		if resp.StatusCode != 200 || resp.Header.Get("X-License-Credits-Remaining") != fmt.Sprint(left) || resp.Header.Get("X-License-Credits-Limit") != "3" {
			t.Fatalf("credit %d: %d %v %s", 3-left, resp.StatusCode, resp.Header, body)
		}
	}
	resp, body = c.Get(t, "/address/lookup", credits)
	rb := AssertReject(t, resp, body, 403, "maxUseCountExceed", "")
	if rb.Technical != "used 3 of 3 credits, request costs 1" {
		t.Errorf("credits used up: %s", body)
	}
	elsewhere := c.mustIssue(t, "/GetJWT", itShopKey, `{"sub":"markc","credits":3,"ip":"192.0.2.10"}`)
	resp, body = c.Get(t, "/address/lookup", elsewhere)
	AssertReject(t, resp, body, 403, "clientIpAddressBlocked", "")

	// The most deeply nested claim the issuer signs is one the gate reads.
	deep := c.mustIssue(t, "/tokens", itShopKey, `{"credits":1,"deep":`+strings.Repeat("[", 31)+strings.Repeat("]", 31)+`}`)
	if resp, body := c.Get(t, "/address/lookup", deep); resp.StatusCode != 200 {
		t.Errorf("a token nested at the limit: %d %s", resp.StatusCode, body)
	}

	// Issuer and gate lines name the same license; neither holds the
	// token, the API keys or the private key.
	issued := c.Logs.logLines("license issued")
	rejected := c.Logs.logLines("license rejected")
	if len(issued) != 5 || len(rejected) < 5 {
		t.Fatalf("%d issued, %d rejected lines", len(issued), len(rejected))
	}
	if issued[0]["key"] != "partner" || issued[0]["product"] != "axesWord" || issued[0]["sub"] != "YourCustomerIdentifier" || issued[0]["jti"] != rejected[0]["jti"] {
		t.Errorf("issued %v, rejected %v", issued[0], rejected[0])
	}
	assertNoSecretsLogged(t, c, itPartnerKey, itShopKey, privateD(t, k1))
}

// TestIssuerKeyRotationReachesARunningGate: a gate in another Caddy
// verifies the issuer's tokens; the issuer is reloaded with a new key
// first (both published), and the gate accepts the new key's tokens
// after its unknown-kid refresh, while the old key's tokens still pass.
func TestIssuerKeyRotationReachesARunningGate(t *testing.T) {
	t.Parallel()
	k1, k2 := NewECKey(t, "it-k1", "ES256"), NewRSAKey(t, "it-k2", "RS256")
	issuerCaddy, iss := startIssuer(t, false, k1)

	gport, gadmin := freePort(t), freePort(t)
	gate := StartCaddyfile(t, caddyfileFor(gport, gadmin, gateRoutes(iss, hostPort(Upstream(t, 200).URL))), gport, gadmin, nil)
	lookup := func(tok string) (*http.Response, []byte) { return gate.Get(t, "/address/lookup", tok) }

	old := issuerCaddy.mustIssue(t, "/tokens", itShopKey, `{"sub":"bob","credits":10}`)
	if resp, body := lookup(old); resp.StatusCode != 200 {
		t.Fatalf("before the rotation: %d %s", resp.StatusCode, body)
	}

	// Reload the issuer with the new key first and the old one still
	// published.
	if err := os.WriteFile(filepath.Join(issuerCaddy.Dir, "it-k2.private.jwk.json"), []byte(signingKeyJWK(t, k2)), 0o600); err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(strings.TrimPrefix(issuerCaddy.URL, "http://127.0.0.1:"))
	admin, _ := strconv.Atoi(strings.TrimPrefix(issuerCaddy.AdminURL, "http://127.0.0.1:"))
	cfg := caddyfileFor(port, admin, issuerBlock(iss, "it-k2.private.jwk.json", "it-k1.private.jwk.json"))
	loads := len(issuerCaddy.Logs.logLines("server running"))
	req, _ := http.NewRequest(http.MethodPost, issuerCaddy.AdminURL+"/load", bytes.NewReader([]byte(cfg)))
	req.Header.Set("Content-Type", "text/caddyfile")
	if resp, body := Do(t, req); resp.StatusCode != 200 {
		t.Fatalf("reload: %d %s", resp.StatusCode, body)
	}
	WaitFor(t, 10*time.Second, "the reloaded issuer", func() bool { return len(issuerCaddy.Logs.logLines("server running")) > loads })
	// The old server closes its idle connections, and one it accepted
	// just before it stopped is reset; a POST is not retried on either,
	// so start afresh until one is answered.
	httpClient.CloseIdleConnections()
	WaitFor(t, 10*time.Second, "the reloaded issuer to answer", func() bool {
		_, _, err := issuerCaddy.post("/tokens", itShopKey, `{"sub":"bob","credits":10}`)
		return err == nil
	})

	fresh := issuerCaddy.mustIssue(t, "/tokens", itShopKey, `{"sub":"bob","credits":10}`)
	if h := tokenPart(t, fresh, 0); h["kid"] != "it-k2" || h["alg"] != "RS256" {
		t.Fatalf("after the rotation the token header is %v", h)
	}
	// The first token naming it2 starts the gate's early refresh in the
	// background and is answered from the keys at hand; it2 is accepted
	// once that fetch of the issuer's key set lands.
	resp, body := lookup(fresh)
	if resp.StatusCode != 200 {
		AssertReject(t, resp, body, 401, "notAuthorized", "")
		WaitFor(t, 10*time.Second, "the gate to accept the new key", func() bool {
			resp, _ := lookup(fresh)
			return resp.StatusCode == 200
		})
	}
	if resp, body := lookup(old); resp.StatusCode != 200 {
		t.Fatalf("the old key's token after the rotation: %d %s", resp.StatusCode, body)
	}
	assertNoSecretsLogged(t, issuerCaddy, itPartnerKey, itShopKey, privateD(t, k1), privateD(t, k2))
	assertNoSecretsLogged(t, gate, itShopKey)
}

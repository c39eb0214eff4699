package integration

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
)

// Leases: license_issuer's /authz/ (10Duke license consumption) through
// real Caddy, with a license_gate in the same site that enforces the lease
// tokens.

const leaseAPIKey = "lease-test-api-key-0123456789"

// leaseSite is one Caddy serving license_issuer (with /authz/) and, under
// /api/*, a license_gate requiring item "word" that trusts the issuer.
type leaseSite struct {
	c   *Caddy
	iss string
}

// startLeaseSite starts the site; store is a store block body ("" for
// memory), shared by the issuer's leases and the gate.
func startLeaseSite(t *testing.T, store string, issuerOptions ...string) *leaseSite {
	t.Helper()
	key, err := os.ReadFile("../examples/issuer/demo.private.jwk.json")
	if err != nil {
		t.Fatal(err)
	}
	port, admin := freePort(t), freePort(t)
	iss := fmt.Sprintf("http://127.0.0.1:%d", port)
	storeLine := ""
	if store != "" {
		storeLine = "store " + store
	}
	site := fmt.Sprintf(`license_issuer {
		issuer %[1]s
		signing_key issuer.jwk.json
		audience lease-api
		lease_ttl 30m
		api_key test {env.LEASE_API_KEY}
		%[2]s
		%[3]s
	}
	handle /api/* {
		license_gate {
			oidc_issuer %[1]s
			require_item word
			hardware_from header X-Hardware-Id
			version_from header X-Client-Version
			%[2]s
		}
		respond "api ok {http.license.jti}" 200
	}
`, iss, storeLine, strings.Join(issuerOptions, "\n\t\t"))
	c := StartCaddyfile(t, SiteCaddyfile(port, admin, "", site), port, admin, map[string]string{"issuer.jwk.json": string(key)}, "LEASE_API_KEY="+leaseAPIKey)
	return &leaseSite{c: c, iss: iss}
}

// license issues a license token through the native endpoint.
func (s *leaseSite) license(t *testing.T, claims map[string]any) string {
	t.Helper()
	body, _ := json.Marshal(claims)
	req, _ := http.NewRequest(http.MethodPost, s.c.URL+"/tokens", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", leaseAPIKey)
	resp, out := Do(t, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("issuing %s: %d %s", body, resp.StatusCode, out)
	}
	var r struct{ Token string }
	if err := json.Unmarshal(out, &r); err != nil || r.Token == "" {
		t.Fatalf("issue answer %s: %v", out, err)
	}
	return r.Token
}

// authz sends GET /authz/<rest> with the license as bearer.
func (s *leaseSite) authz(t *testing.T, rest, license string) (*http.Response, string) {
	t.Helper()
	resp, body := s.c.Get(t, "/authz/"+rest, license)
	return resp, string(body)
}

// lease takes a lease in JSON and returns its claims; it fails unless the
// answer is one granted lease.
func (s *leaseSite) lease(t *testing.T, query, license string) map[string]any {
	t.Helper()
	resp, body := s.authz(t, ".json?"+query, license)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: status %d: %s", query, resp.StatusCode, body)
	}
	var c map[string]any
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		t.Fatalf("%s: %v: %s", query, err, body)
	}
	if _, ok := c["jti"]; !ok {
		t.Fatalf("%s: no lease: %s", query, body)
	}
	return c
}

// wantAuthzError checks a 200 error answer in JSON for item with code.
func wantAuthzError(t *testing.T, resp *http.Response, body, item, code string) map[string]any {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200 (10Duke answers errors with 200): %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	for _, f := range []string{"_errorCode", "_errorKey", "_errorMessage", "_errorTechnical"} {
		if s, _ := m[item+f].(string); s == "" {
			t.Errorf("%s%s missing: %s", item, f, body)
		}
	}
	if m[item+"_errorCode"] != code || m[item+"_errorKey"] != code {
		t.Fatalf("%s_errorCode = %v; want %s: %s", item, m[item+"_errorCode"], code, body)
	}
	if _, ok := m["iat"].(float64); !ok || m["iss"] == nil || len(m) != 6 {
		t.Errorf("error answer shape: %s", body)
	}
	return m
}

// payload decodes a JWS's claims (the signature is checked by the gate).
func payload(t *testing.T, jws string) map[string]any {
	t.Helper()
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		t.Fatalf("no compact JWS: %q", jws)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// api calls the gated API with a lease token as bearer, from device hw.
func (s *leaseSite) api(t *testing.T, lease, hw string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	return s.c.Get(t, "/api/docs", lease, append([]string{"X-Hardware-Id", hw}, headers...)...)
}

func TestLeaseFormats(t *testing.T) {
	s := startLeaseSite(t, "")
	lic := s.license(t, map[string]any{"sub": "user-1", "items": []string{"word", "slide"}, "seats": 5, "credits": 100})
	now := time.Now().Unix()

	t.Run("jwt answers one signed lease per item, & separated", func(t *testing.T) {
		resp, body := s.authz(t, ".jwt?word&slide&hw=dev-1;name=Laptop&version=1.6.14&consumeDuration=600000", lic)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Fatalf("%d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		parts := strings.Split(body, "&")
		if len(parts) != 2 {
			t.Fatalf("%d parts: %s", len(parts), body)
		}
		for i, item := range []string{"word", "slide"} {
			c := payload(t, parts[i])
			exp, iat, rfr := int64(c["exp"].(float64)), int64(c["iat"].(float64)), int64(c["rfr"].(float64))
			if c[item] != true || c["iss"] != s.iss || c["aud"] != "lease-api" || c["sub"] != "user-1" ||
				c["hw"] != "dev-1" || c["ver"] != "1.6.14" || c["lic"] == nil || c["jti"] == nil {
				t.Fatalf("lease claims %v", c)
			}
			if exp-iat != 600 || rfr != iat+450 || iat < now-5 {
				t.Fatalf("exp %d iat %d rfr %d; want a 10-minute lease refreshed at 75%%", exp, iat, rfr)
			}
		}
	})
	t.Run("json answers the same claims unsigned", func(t *testing.T) {
		c := s.lease(t, "word&hw=dev-2", lic)
		if c["word"] != true || int64(c["exp"].(float64))-int64(c["iat"].(float64)) != 1800 {
			t.Fatalf("claims %v; want a lease of lease_ttl 30m", c)
		}
	})
	t.Run("txt and no suffix answer true or false per item", func(t *testing.T) {
		for _, rest := range []string{".txt?word&calc&hw=dev-3", "?word&calc&hw=dev-3"} {
			resp, body := s.authz(t, rest, lic)
			if resp.StatusCode != 200 || body != "true&false" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
				t.Fatalf("%s: %d %q %q", rest, resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
		}
	})
	t.Run("an unknown format is 404", func(t *testing.T) {
		resp, body := s.authz(t, ".xml?word", lic)
		if resp.StatusCode != 404 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("an error in jwt is a signed token of the error fields", func(t *testing.T) {
		resp, body := s.authz(t, ".jwt?calc&hw=dev-1", lic)
		c := payload(t, body)
		if resp.StatusCode != 200 || c["calc_errorCode"] != "noLicenseFound" || c["iss"] != s.iss {
			t.Fatalf("%d %v", resp.StatusCode, c)
		}
	})
}

func TestLeaseErrorCodes(t *testing.T) {
	s := startLeaseSite(t, "")
	lic := s.license(t, map[string]any{"sub": "u", "items": []string{"word"}, "seats": 1, "credits": 3,
		"ver": "1.*.*", "ip": []string{"127.0.0.0/8"}})
	held := s.lease(t, "word&hw=holder&version=1.0.0", lic)
	locked := s.license(t, map[string]any{"sub": "u", "items": []string{"word"}, "hw": "only-me"})
	farAway := s.license(t, map[string]any{"sub": "u", "items": []string{"word"}, "ip": "10.0.0.0/8"})
	notYet := s.license(t, map[string]any{"sub": "u", "items": []string{"word"}, "ibb": time.Now().Add(time.Hour).Unix()})
	ended := s.license(t, map[string]any{"sub": "u", "items": []string{"word"},
		"ibb": time.Now().Add(-48 * time.Hour).Unix(), "ibe": time.Now().Add(-time.Hour).Unix()})

	tests := []struct {
		name, query, license, item, code string
	}{
		{"no item is MissingArguments", "hw=a", lic, "license", "MissingArguments"},
		{"a negative consumeCount is BadArgument", "word&hw=a&consumeCount=-2", lic, "word", "BadArgument"},
		{"no license token is notAuthorized", "word&hw=a", "", "word", "notAuthorized"},
		{"a token of another signer is notAuthorized", "word&hw=a",
			NewRSAKey(t, "other", "RS256").Sign(t, Std("iss", s.iss, "word", true)), "word", "notAuthorized"},
		{"a lease token is no license", "word&hw=a", "LEASE", "word", "notAuthorized"},
		{"an item the license lacks is noLicenseFound", "slide&hw=a&version=1.0.0", lic, "slide", "noLicenseFound"},
		{"a second device for one seat is licenseQuotaExceeded", "word&hw=other&version=1.0.0", lic, "word", "licenseQuotaExceeded"},
		{"a renewal of another device's lease is leaseIdNotMatching", "word&hw=other&version=1.0.0&leaseId=HELD", lic, "word", "leaseIdNotMatching"},
		{"an unknown lease to release is noConsumptionFoundById", "release&no-such-lease", lic, "no-such-lease", "noConsumptionFoundById"},
		{"more credits than left is maxUseCountExceed", "word&hw=holder&version=1.0.0&leaseId=HELD&consumeCount=4", lic, "word", "maxUseCountExceed"},
		{"no version for a ver license is licenseAnchorMissing", "word&hw=holder", lic, "word", "licenseAnchorMissing"},
		{"a version outside ver is unallowedClientVersion", "word&hw=holder&version=2.0.0", lic, "word", "unallowedClientVersion"},
		{"another device than hw is anchorLockedToAnotherLicense", "word&hw=not-me", locked, "word", "anchorLockedToAnotherLicense"},
		{"a client outside ip is clientIpAddressBlocked", "word&hw=a", farAway, "word", "clientIpAddressBlocked"},
		{"a license before ibb is licenseValidityNotStarted", "word&hw=a", notYet, "word", "licenseValidityNotStarted"},
		{"a license past ibe is licenseExpired", "word&hw=a", ended, "word", "licenseExpired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bearer := tt.license
			if bearer == "LEASE" {
				resp, body := s.authz(t, ".jwt?word&hw=holder&version=1.0.0&leaseId="+held["jti"].(string), lic)
				if resp.StatusCode != 200 {
					t.Fatal(body)
				}
				bearer = body
			}
			q := strings.ReplaceAll(tt.query, "HELD", held["jti"].(string))
			resp, body := s.authz(t, ".json?"+q, bearer)
			wantAuthzError(t, resp, body, tt.item, tt.code)
		})
	}
}

func TestLeaseRenewalReleaseAndCheck(t *testing.T) {
	s := startLeaseSite(t, "")
	lic := s.license(t, map[string]any{"sub": "u", "items": []string{"word"}, "seats": 1, "credits": 10})

	first := s.lease(t, "word&hw=a", lic)
	id := first["jti"].(string)
	t.Run("doConsume=false checks without taking or charging", func(t *testing.T) {
		resp, body := s.authz(t, ".json?word&hw=b&doConsume=false", lic)
		wantAuthzError(t, resp, body, "word", "licenseQuotaExceeded")
		resp, body = s.authz(t, "?word&hw=a&doConsume=false&consumeCount=9", lic)
		if body != "true" {
			t.Fatalf("check of the holder for 9 of 9 credits left: %d %s", resp.StatusCode, body)
		}
		resp, body = s.authz(t, "?word&hw=a&doConsume=false&consumeCount=10", lic)
		if body != "false" {
			t.Fatalf("check for 10 credits with 9 left: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("renewal keeps the lease id and the seat", func(t *testing.T) {
		renewed := s.lease(t, "word&hw=a&leaseId="+id, lic)
		if renewed["jti"] != id || renewed["exp"].(float64) < first["exp"].(float64) {
			t.Fatalf("renewal %v of %v", renewed, first)
		}
		resp, body := s.authz(t, ".json?word&hw=b", lic)
		wantAuthzError(t, resp, body, "word", "licenseQuotaExceeded")
	})
	t.Run("release frees the seat at once and is idempotent", func(t *testing.T) {
		resp, body := s.authz(t, ".json?release&"+id, lic)
		var m map[string]any
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &m) != nil || m[id] != true {
			t.Fatalf("release: %d %s", resp.StatusCode, body)
		}
		resp, body = s.authz(t, ".json?release&"+id, lic)
		wantAuthzError(t, resp, body, id, "noConsumptionFoundById")
		s.lease(t, "word&hw=b", lic)
	})
	t.Run("credits taken by leases are the gate's credits", func(t *testing.T) {
		resp, body := s.c.Get(t, "/api/docs", lic, "X-Hardware-Id", "b")
		if resp.StatusCode != 200 || resp.Header.Get("X-License-Credits-Remaining") != "7" {
			t.Fatalf("gate after 2 leases of 1 credit: %d remaining %q %s", resp.StatusCode,
				resp.Header.Get("X-License-Credits-Remaining"), body)
		}
	})
}

func TestGateEnforcesLeases(t *testing.T) {
	s := startLeaseSite(t, "")
	lic := s.license(t, map[string]any{"sub": "u", "items": []string{"word", "slide"}, "seats": 2})
	_, word := s.authz(t, ".jwt?word&hw=dev-a", lic)
	_, slide := s.authz(t, ".jwt?slide&hw=dev-a", lic)
	_, versioned := s.authz(t, ".jwt?word&hw=dev-b&version=1.6.14", lic)

	// A check (doConsume=false) takes no lease, and its answer is none.
	_, checked := s.authz(t, ".jwt?word&hw=dev-a&doConsume=false", lic)
	if c := payload(t, checked); c["word"] != true || c["exp"] != nil || c["jti"] != nil {
		t.Fatalf("check answer claims %v; want the item without exp and jti", c)
	}
	resp, body := s.api(t, checked, "dev-a")
	AssertReject(t, resp, body, 401, "notAuthorized", "word")

	resp, body = s.api(t, word, "dev-a")
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "api ok ") {
		t.Fatalf("the gate refused a live lease: %d %s", resp.StatusCode, body)
	}
	resp, body = s.api(t, versioned, "dev-b", "X-Client-Version", "1.6.14")
	if resp.StatusCode != 200 {
		t.Fatalf("the gate refused a lease with its version: %d %s", resp.StatusCode, body)
	}
	resp, body = s.api(t, slide, "dev-a")
	AssertReject(t, resp, body, 403, "noLicenseFound", "word")
	resp, body = s.api(t, word, "dev-b")
	AssertReject(t, resp, body, 403, "anchorLockedToAnotherLicense", "word")

	// A released lease is refused by the gate from then on.
	id := payload(t, word)["jti"].(string)
	if resp, body := s.authz(t, "?release&"+id, lic); string(body) != "true" {
		t.Fatalf("release: %d %s", resp.StatusCode, body)
	}
	resp, body = s.api(t, word, "dev-a")
	AssertReject(t, resp, body, 401, "notAuthorized", "word")
}

// raceForSeats has 50 devices ask at once for a lease of a 3-seat license.
func raceForSeats(t *testing.T, s *leaseSite) {
	lic := s.license(t, map[string]any{"sub": "u", "items": []string{"word"}, "seats": 3, "credits": 1000})
	var mu sync.Mutex
	won, quota := 0, 0
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 50 {
		wg.Go(func() {
			<-start
			resp, body := s.authz(t, fmt.Sprintf("?word&hw=device-%02d", i), lic)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case resp.StatusCode != 200:
				t.Errorf("device %d: %d %s", i, resp.StatusCode, body)
			case body == "true":
				won++
			case body == "false":
				quota++
			}
		})
	}
	close(start)
	wg.Wait()
	if won != 3 || quota != 47 {
		t.Fatalf("%d devices won, %d refused; want exactly 3 and 47", won, quota)
	}
	resp, body := s.c.Get(t, "/api/docs", lic, "X-Hardware-Id", "device-xx")
	if resp.Header.Get("X-License-Credits-Remaining") != "996" {
		t.Fatalf("credits after 3 leases and one call: %q (%d %s)", resp.Header.Get("X-License-Credits-Remaining"), resp.StatusCode, body)
	}
}

func TestFiftyDevicesRaceForThreeLeaseSeatsOnRedis(t *testing.T) {
	r := testredis.Start(t)
	raceForSeats(t, startLeaseSite(t, fmt.Sprintf("redis {\n\t\t\taddresses %s\n\t\t}", r.Addr())))
}

func TestFiftyDevicesRaceForThreeLeaseSeatsOnCluster(t *testing.T) {
	addrs := testredis.StartCluster(t, 3)
	raceForSeats(t, startLeaseSite(t, fmt.Sprintf("redis {\n\t\t\taddresses %s\n\t\t}", strings.Join(addrs, " "))))
}

func TestLeaseStoreDownIsServiceUnavailable(t *testing.T) {
	r := testredis.Start(t)
	s := startLeaseSite(t, fmt.Sprintf("redis {\n\t\t\taddresses %s\n\t\t}", r.Addr()))
	lic := s.license(t, map[string]any{"sub": "u", "items": []string{"word"}, "seats": 2})
	s.lease(t, "word&hw=a", lic)
	r.Kill()
	for _, q := range []string{"word&hw=a", "release&some-lease"} {
		resp, body := s.authz(t, ".json?"+q, lic)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s with Redis down: %d Retry-After %q: %s", q, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		item := strings.SplitN(strings.TrimPrefix(q, "release&"), "&", 2)[0]
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil || m[item+"_errorCode"] != "serviceUnavailable" {
			t.Fatalf("%s: %v %s", q, err, body)
		}
	}
	r.Restart()
	WaitFor(t, 10*time.Second, "the lease store to answer again", func() bool {
		resp, body := s.authz(t, "?word&hw=a", lic)
		return resp.StatusCode == 200 && body == "true"
	})
}

func TestAdminListsAndReleasesLeases(t *testing.T) {
	s := startLeaseSite(t, "")
	lic := s.license(t, map[string]any{"sub": "u", "items": []string{"word", "slide"}, "seats": 2})
	_, aToken := s.authz(t, ".jwt?word&hw=dev-a", lic)
	a := payload(t, aToken)
	b := s.lease(t, "slide&hw=dev-b", lic)
	key := payload(t, lic)["jti"].(string)
	admin := func(method, path string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, s.c.AdminURL+"/license-gate/licenses/"+path, nil)
		return Do(t, req)
	}
	q := "?iss=" + s.iss

	resp, body := admin(http.MethodGet, key+"/leases"+q)
	var list struct {
		Iss, Key string
		Leases   []struct {
			LeaseID string `json:"lease_id"`
			Item    string
			Hw      string
			Until   int64
		}
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &list) != nil || list.Key != key || list.Iss != s.iss || len(list.Leases) != 2 {
		t.Fatalf("GET leases: %d %s", resp.StatusCode, body)
	}
	if l := list.Leases[0]; l.LeaseID != a["jti"] || list.Leases[1].LeaseID != b["jti"] || l.Item != "word" || l.Hw != "dev-a" || l.Until != int64(a["exp"].(float64)) {
		t.Fatalf("first lease %+v; want %v", l, a)
	}

	if resp, body := s.api(t, aToken, "dev-a"); resp.StatusCode != 200 {
		t.Fatalf("the live lease at the API: %d %s", resp.StatusCode, body)
	}
	resp, body = admin(http.MethodDelete, key+"/leases/"+a["jti"].(string)+q)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"released"`) {
		t.Fatalf("DELETE lease: %d %s", resp.StatusCode, body)
	}
	// The seat is free at once, and the released lease is refused by the gate.
	s.lease(t, "word&hw=dev-c", lic)
	resp, body = s.api(t, aToken, "dev-a")
	AssertReject(t, resp, body, 401, "notAuthorized", "word")

	tests := []struct {
		name, method, path string
		status             int
	}{
		{"releasing an unknown lease is 404", http.MethodDelete, key + "/leases/no-such" + q, 404},
		{"releasing twice is 404", http.MethodDelete, key + "/leases/" + a["jti"].(string) + q, 404},
		{"posting to the list is 405", http.MethodPost, key + "/leases" + q, 405},
		{"getting one lease is 405", http.MethodGet, key + "/leases/x" + q, 405},
		{"an overlong lease id is 400", http.MethodDelete, key + "/leases/" + strings.Repeat("x", 600) + q, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := admin(tt.method, tt.path)
			if resp.StatusCode != tt.status {
				t.Fatalf("%d %s; want %d", resp.StatusCode, body, tt.status)
			}
		})
	}
	resp, body = admin(http.MethodGet, "other-license/leases"+q)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"leases":[]`) {
		t.Fatalf("leases of an unknown license: %d %s", resp.StatusCode, body)
	}
}

func TestLeasesOfATrustedOIDCIssuersLicense(t *testing.T) {
	key := NewRSAKey(t, "idp-1", "RS256")
	idp := NewKeyServer(t, JWKS(t, key))
	s := startLeaseSite(t, "", "trust_oidc_issuer "+idp.URL)
	lic := key.Sign(t, Std("iss", idp.URL, "sub", "sso-user", "jti", "sso-license-1", "items", []string{"word"}, "seats", 1))

	c := s.lease(t, "word&hw=dev-a", lic)
	if c["lic"] != "sso-license-1" || c["sub"] != "sso-user" || c["iss"] != s.iss {
		t.Fatalf("lease of the trusted issuer's license: %v", c)
	}
	resp, body := s.authz(t, ".json?word&hw=dev-b", lic)
	wantAuthzError(t, resp, body, "word", "licenseQuotaExceeded")

	// The trust is the issuer's keys: another key claiming that issuer, or
	// an untrusted issuer, is refused.
	forged := NewRSAKey(t, "idp-1", "RS256").Sign(t, Std("iss", idp.URL, "items", []string{"word"}))
	resp, body = s.authz(t, ".json?word&hw=dev-c", forged)
	wantAuthzError(t, resp, body, "word", "notAuthorized")
	other := NewKeyServer(t, JWKS(t, key))
	resp, body = s.authz(t, ".json?word&hw=dev-c", key.Sign(t, Std("iss", other.URL, "items", []string{"word"})))
	wantAuthzError(t, resp, body, "word", "notAuthorized")
}

func TestFiftyDevicesRaceForThreeLeaseSeatsThroughSentinel(t *testing.T) {
	master := testredis.Start(t)
	sentinel := testredis.StartSentinel(t, master, "mymaster")
	raceForSeats(t, startLeaseSite(t, fmt.Sprintf("redis {\n\t\t\taddresses %s\n\t\t\tmaster_name mymaster\n\t\t\ttimeout 5s\n\t\t}", sentinel.Addr())))
}

// TestAdminReleaseRevokesALeaseOfATrustedOIDCLicense: the lease token of a
// license from a trusted OpenID issuer carries this issuer's iss, not the
// license's; the admin API's release revokes it under that iss, so the
// gate refuses it at once. Before, it was revoked under the license's
// issuer and the gate kept accepting it.
func TestAdminReleaseRevokesALeaseOfATrustedOIDCLicense(t *testing.T) {
	key := NewRSAKey(t, "idp-1", "RS256")
	idp := NewKeyServer(t, JWKS(t, key))
	s := startLeaseSite(t, "", "trust_oidc_issuer "+idp.URL)
	lic := key.Sign(t, Std("iss", idp.URL, "sub", "sso-user", "jti", "sso-license-2", "items", []string{"word"}, "seats", 1))
	resp, lease := s.authz(t, ".jwt?word&hw=dev-a", lic)
	if resp.StatusCode != 200 || payload(t, lease)["iss"] != s.iss {
		t.Fatalf("lease: %d %s", resp.StatusCode, lease)
	}
	if resp, body := s.api(t, lease, "dev-a"); resp.StatusCode != 200 {
		t.Fatalf("the live lease at the API: %d %s", resp.StatusCode, body)
	}
	path := "/license-gate/licenses/sso-license-2/leases/" + payload(t, lease)["jti"].(string) + "?iss=" + idp.URL
	if body := adminDo(t, s.c, http.MethodDelete, path, "", 200); !strings.Contains(body, `"released"`) {
		t.Fatalf("DELETE lease: %s", body)
	}
	resp, body := s.api(t, lease, "dev-a")
	AssertReject(t, resp, body, 401, "notAuthorized", "word")
}

// TestAReplacedLeaseIsRevoked: a new lease (no leaseId) of an item the
// device already leases replaces that lease, and the gate refuses the old
// lease token from then on, as after a release. Before, the old token
// stayed valid until its exp.
func TestAReplacedLeaseIsRevoked(t *testing.T) {
	r := testredis.Start(t)
	for _, tc := range []struct{ name, store string }{
		{"memory", ""},
		{"redis", fmt.Sprintf("redis {\n\t\t\taddresses %s\n\t\t}", r.Addr())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startLeaseSite(t, tc.store)
			lic := s.license(t, map[string]any{"sub": "u", "items": []string{"word"}, "seats": 1})
			_, old := s.authz(t, ".jwt?word&hw=dev-a", lic)
			if resp, body := s.api(t, old, "dev-a"); resp.StatusCode != 200 {
				t.Fatalf("the first lease at the API: %d %s", resp.StatusCode, body)
			}
			_, nu := s.authz(t, ".jwt?word&hw=dev-a", lic)
			if payload(t, nu)["jti"] == payload(t, old)["jti"] {
				t.Fatalf("the new lease has the old id: %s", nu)
			}
			resp, body := s.api(t, old, "dev-a")
			AssertReject(t, resp, body, 401, "notAuthorized", "word")
			if resp, body := s.api(t, nu, "dev-a"); resp.StatusCode != 200 {
				t.Fatalf("the new lease at the API: %d %s", resp.StatusCode, body)
			}
		})
	}
}

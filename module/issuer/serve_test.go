package issuer

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
)

// docAxes4 is the IssueTokenRequest of axes4's documentation as its C# client sends it
// (camelCase), with dates that are still ahead of testNow.
const docAxes4 = `{
  "customerIdentifier": "YourCustomerIdentifier",
  "productEnum": "axesWord",
  "version": "25.*.*",
  "startDate": "2025-12-01T00:00:00+00:00",
  "expireDate": "2026-12-30T00:00:00+00:00",
  "operatingSystemEnum": "Windows",
  "lockingData": "B6C2-7F1A-44D0-9E3B"
}`

func TestAxes4RequestIsIssuedWithTheGatesClaimNames(t *testing.T) {
	h, logs, _ := testHandler(t)
	// PascalCase, as a client without the camelCase policy sends it; the
	// fractions of a second .NET writes are read.
	body := strings.NewReplacer(`"customerIdentifier"`, `"CustomerIdentifier"`, `"lockingData"`, `"LOCKINGDATA"`,
		`2025-12-01T00:00:00+00:00`, `2025-12-01T01:00:00.0000000+01:00`).Replace(docAxes4)
	w := post(t, h, PathAxes4, partnerSecret, body)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
	}
	var resp map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || len(resp) != 1 {
		t.Fatalf("response %s", w.Body)
	}
	claims := verifyWithJWKS(t, h.signer.jwks, resp["token"])
	start, end := float64(time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC).Unix()), float64(time.Date(2026, 12, 30, 0, 0, 0, 0, time.UTC).Unix())
	want := map[string]any{
		"iss": "https://license.example.com", "aud": "api.example.com", "sub": "YourCustomerIdentifier",
		"product": "axesWord", "ver": "25.*.*", "hw": "B6C2-7F1A-44D0-9E3B", "os": "Windows",
		"nbf": start, "ibb": start, "exp": end, "ibe": end, "iat": float64(testNow.Unix()),
	}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("claim %s = %v, want %v", k, claims[k], v)
		}
	}
	if jti, _ := claims["jti"].(string); len(jti) != 32 {
		t.Errorf("jti %v", claims["jti"])
	}
	if len(claims) != len(want)+1 {
		t.Errorf("claims %v hold more than the mapping", claims)
	}
	entries := logs.FilterMessage("license issued").All()
	if len(entries) != 1 {
		t.Fatalf("%d license issued lines", len(entries))
	}
	f := entries[0].ContextMap()
	if f["key"] != "partner" || f["sub"] != "YourCustomerIdentifier" || f["jti"] != claims["jti"] || f["product"] != "axesWord" || f["exp"] != int64(end) || f["endpoint"] != "axes4" {
		t.Errorf("log fields %v", f)
	}
	for _, e := range logs.All() {
		line, _ := json.Marshal(e.ContextMap())
		if strings.Contains(string(line), resp["token"][:20]) || strings.Contains(string(line), partnerSecret) {
			t.Errorf("a log line holds the token or the API key: %s", line)
		}
	}
}

func TestIssuedTokensDecodeAsTheGateDecodesThem(t *testing.T) {
	h, _, _ := testHandler(t)
	tests := []struct {
		name, path, key, body string
		check                 func(*policy.License) bool
	}{
		{"axes4 carries product, versions, hardware and validity", PathAxes4, partnerSecret, docAxes4, func(l *policy.License) bool {
			return l.Items[0] == "axesWord" && l.Versions[0].Match("25.1.0") && !l.Versions[0].Match("24.9.9") &&
				l.Hardware == "B6C2-7F1A-44D0-9E3B" && !l.ValidFrom.IsZero() && l.ValidTill.Equal(l.Expires)
		}},
		{"data8 carries credits and addresses", PathData8, shopSecret, `{"sub":"markc","credits":3,"ip":["127.0.0.1","10.0.0.0/8"],"expires":"2026-06-30T00:00:00"}`, func(l *policy.License) bool {
			return l.HasCredits && l.Credits == 3 && len(l.IPs) == 2 && l.Expires.Equal(time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC))
		}},
		{"native carries every gate claim", PathNative, openSecret, `{"sub":"bob","items":["axesSlide"],"credits":"7","ver":["1.*","2.0-3"],"hw":"M1","ip":"192.0.2.1","seats":2,"ibb":1780000000,"ibe":1790000000,"lic":"L-1","tier":"gold","axesWord":true}`, func(l *policy.License) bool {
			return l.Credits == 7 && l.Seats == 2 && len(l.Versions) == 2 && l.LicenseID == "L-1" && l.Items[0] == "axesSlide" &&
				l.ValidFrom.Unix() == 1780000000 && l.Expires.Equal(testNow.Add(DefaultValidity))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := post(t, h, tc.path, tc.key, tc.body)
			if w.Code != 200 {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			var resp map[string]any
			_ = json.Unmarshal(w.Body.Bytes(), &resp)
			tok, _ := resp["token"].(string)
			if tok == "" {
				tok, _ = resp["Token"].(string)
			}
			claims := verifyWithJWKS(t, h.signer.jwks, tok)
			names := policy.DefaultClaimNames()
			l, err := policy.Decode(claims, &names)
			if err != nil || !tc.check(l) {
				t.Errorf("license %+v, err %v; claims %v", l, err, claims)
			}
		})
	}
}

func TestResponsesHaveTheShapesTheClientsRead(t *testing.T) {
	h, _, _ := testHandler(t)
	w := post(t, h, PathData8, shopSecret, `{"Sub":"markc","Credits":3,"IP":"127.0.0.1","Expires":"2026-06-30T00:00:00Z"}`)
	var d8 map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &d8); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if d8["CreditsRemaining"] != float64(3) || d8["Expires"] != "2026-06-30T00:00:00Z" || d8["Token"] == nil || len(d8) != 3 {
		t.Errorf("Data8 response %v", d8)
	}
	w = post(t, h, PathNative, openSecret, `{"sub":"bob","exp":1790000000}`)
	var nat map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &nat); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	_, claims := payload(t, nat["token"].(string))
	if nat["exp"] != float64(1790000000) || nat["jti"] != claims["jti"] || len(nat) != 3 {
		t.Errorf("native response %v, claims %v", nat, claims)
	}
}

func TestRefusedRequestsAreProblemsNamingTheField(t *testing.T) {
	h, logs, _ := testHandler(t, func(h *Handler) { h.MaxBodySize = 2048 })
	axes4 := func(from, to string) string { return strings.Replace(docAxes4, from, to, 1) }
	tests := []struct {
		name, path, key, body string
		status                int
		kind, field           string
	}{
		// 401
		{"no API key is unauthorized", PathAxes4, "", docAxes4, 401, KindUnauthorized, ""},
		{"a wrong API key is unauthorized", PathData8, "not-a-key-0123456789", `{}`, 401, KindUnauthorized, ""},
		{"an API key with a byte less is unauthorized", PathNative, openSecret[:len(openSecret)-1], `{}`, 401, KindUnauthorized, ""},
		// 400: axes4
		{"an unknown axes4 field is refused", PathAxes4, partnerSecret, axes4(`"version"`, `"versions"`), 400, KindUnknownField, "versions"},
		{"an axes4 field given twice in two cases is refused", PathAxes4, partnerSecret, axes4(`{`, `{"Version":"1.*",`), 400, KindInvalidField, "version"},
		{"a version pattern the gate refuses is refused", PathAxes4, partnerSecret, axes4(`25.*.*`, `25.x`), 400, KindInvalidField, "version"},
		{"a descending version range is refused", PathAxes4, partnerSecret, axes4(`25.*.*`, `3-1.0`), 400, KindInvalidField, "version"},
		{"expireDate before startDate is refused", PathAxes4, partnerSecret, axes4(`2025-12-01`, `2026-12-31`), 400, KindInvalidField, "expireDate"},
		{"expireDate in the past is refused", PathAxes4, partnerSecret, axes4(`2026-12-30`, `2026-05-30`), 400, KindInvalidField, "expireDate"},
		{"a date without offset is refused", PathAxes4, partnerSecret, axes4(`2026-12-30T00:00:00+00:00`, `2026-12-30T00:00:00`), 400, KindInvalidField, "expireDate"},
		{"a date as a number is refused", PathAxes4, partnerSecret, axes4(`"2026-12-30T00:00:00+00:00"`, `1798588800`), 400, KindInvalidField, "expireDate"},
		{"a date before 1970 is refused", PathAxes4, partnerSecret, axes4(`2025-12-01T00:00:00+00:00`, `0001-01-01T00:00:00+00:00`), 400, KindInvalidField, "startDate"},
		{"an unknown product is refused", PathAxes4, partnerSecret, axes4(`axesWord`, `axesFoo`), 400, KindUnknownProduct, "productEnum"},
		{"a product of the wrong type is refused", PathAxes4, partnerSecret, axes4(`"axesWord"`, `["axesWord"]`), 400, KindInvalidField, "productEnum"},
		{"a missing customerIdentifier is refused", PathAxes4, partnerSecret, axes4(`"customerIdentifier": "YourCustomerIdentifier",`, ``), 400, KindMissingField, "customerIdentifier"},
		{"lockingData over 256 bytes is refused", PathAxes4, partnerSecret, axes4(`B6C2-7F1A-44D0-9E3B`, strings.Repeat("x", 257)), 400, KindInvalidField, "lockingData"},
		{"lockingData with a control character is refused", PathAxes4, partnerSecret, axes4(`B6C2-7F1A`, `B6C2\n7F1A`), 400, KindInvalidField, "lockingData"},
		// 400: Data8
		{"a malformed IP is refused", PathData8, shopSecret, `{"credits":3,"ip":"127.0.0.300"}`, 400, KindInvalidField, "ip"},
		{"a malformed CIDR is refused", PathData8, shopSecret, `{"credits":3,"ip":["10.0.0.0/8","10.0.0.0/33"]}`, 400, KindInvalidField, "ip"},
		{"credits as a fraction are refused", PathData8, shopSecret, `{"credits":2.5}`, 400, KindInvalidField, "credits"},
		{"negative credits are refused", PathData8, shopSecret, `{"credits":-1}`, 400, KindInvalidField, "credits"},
		{"an unknown Data8 field is refused", PathData8, shopSecret, `{"credits":1,"mc":1}`, 400, KindUnknownField, "mc"},
		// 400: native
		{"a native iss is refused", PathNative, openSecret, `{"iss":"https://evil.example"}`, 400, KindInvalidField, "iss"},
		{"a native jti is refused", PathNative, openSecret, `{"jti":"chosen"}`, 400, KindInvalidField, "jti"},
		{"native seats of the wrong type are refused", PathNative, openSecret, `{"seats":"many"}`, 400, KindInvalidField, "seats"},
		{"native seats of zero are refused", PathNative, openSecret, `{"seats":0}`, 400, KindInvalidField, "seats"},
		{"a native claim given twice is refused", PathNative, openSecret, `{"sub":"a","sub":"b"}`, 400, KindInvalidField, "sub"},
		{"native ibe before ibb is refused", PathNative, openSecret, `{"ibb":1790000000,"ibe":1780000000}`, 400, KindInvalidField, "ibe"},
		{"a native exp in fractions is refused", PathNative, openSecret, `{"exp":1790000000.5}`, 400, KindInvalidField, "exp"},
		{"a native claim nested deeper than a gate reads is refused", PathNative, openSecret, `{"deep":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`, 400, KindInvalidField, "deep"},
		{"a native claim beyond a double is refused", PathNative, openSecret, `{"big":{"n":1e400}}`, 400, KindInvalidField, "big"},
		{"a native lic of the wrong type is refused", PathNative, openSecret, `{"lic":{"id":1}}`, 400, KindInvalidField, "lic"},
		{"an unknown native item is refused", PathNative, openSecret, `{"items":["axesWord","axesFoo"]}`, 400, KindUnknownProduct, "items"},
		// 400: bodies
		{"an array body is refused", PathNative, openSecret, `[]`, 400, KindMalformedBody, ""},
		{"trailing data is refused", PathNative, openSecret, `{} {}`, 400, KindMalformedBody, ""},
		{"truncated JSON is refused", PathAxes4, partnerSecret, docAxes4[:40], 400, KindMalformedBody, ""},
		{"an empty body is refused", PathData8, shopSecret, ``, 400, KindMalformedBody, ""},
		{"a body over the limit is refused", PathNative, openSecret, `{"x":"` + strings.Repeat("a", 4096) + `"}`, 413, KindBodyTooLarge, ""},
		// 403
		{"a product beyond the key's grant is forbidden", PathAxes4, partnerSecret, axes4(`axesWord`, `axesSlide`), 403, KindBeyondGrant, "productEnum"},
		{"a validity beyond the key's grant is forbidden", PathAxes4, partnerSecret, axes4(`2026-12-30`, `2027-12-30`), 403, KindBeyondGrant, "expireDate"},
		{"credits beyond the key's grant are forbidden", PathData8, shopSecret, `{"credits":101}`, 403, KindBeyondGrant, "credits"},
		{"no credits from a key with max_credits is forbidden", PathData8, shopSecret, `{"sub":"a"}`, 403, KindBeyondGrant, "credits"},
		{"an expiry beyond the key's grant is forbidden", PathData8, shopSecret, `{"credits":1,"expires":"2027-01-01T00:00:00Z"}`, 403, KindBeyondGrant, "expires"},
		{"an item: true claim beyond the key's grant is forbidden", PathNative, partnerSecret, `{"axesSlide":true}`, 403, KindBeyondGrant, "axesSlide"},
		{"native items beyond the key's grant are forbidden", PathNative, partnerSecret, `{"items":["axesWord","axesSlide"]}`, 403, KindBeyondGrant, "items"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(logs.FilterMessage("license issued").All())
			w := post(t, h, tc.path, tc.key, tc.body)
			problemOf(t, w, tc.status, tc.kind, tc.field)
			if tc.status == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
			if strings.Contains(w.Body.String(), "eyJ") {
				t.Errorf("a refusal holds a token: %s", w.Body)
			}
			if after := len(logs.FilterMessage("license issued").All()); after != before {
				t.Errorf("a refused request logged license issued")
			}
		})
	}
}

func TestNonJSONBodiesAreUnsupported(t *testing.T) {
	h, _, _ := testHandler(t)
	req := httptest.NewRequest(http.MethodPost, PathNative, strings.NewReader(`sub=bob`))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Api-Key", openSecret)
	w := httptest.NewRecorder()
	_ = h.ServeHTTP(w, req, nextHandler{})
	problemOf(t, w, http.StatusUnsupportedMediaType, KindUnsupportedMedia, "")
}

func TestTheAPIKeyGoesNoFurtherThanTheIssuer(t *testing.T) {
	h, _, _ := testHandler(t)
	req := httptest.NewRequest(http.MethodPost, PathNative, strings.NewReader(`{}`))
	req.Header.Set("X-Api-Key", openSecret)
	_ = h.ServeHTTP(httptest.NewRecorder(), req, nextHandler{})
	if req.Header.Get("X-Api-Key") != "" {
		t.Errorf("the request still carries the API key, for the access log to write")
	}
}

func TestWithoutExpiryTheDefaultValidityCappedByTheGrantApplies(t *testing.T) {
	h, _, _ := testHandler(t, func(h *Handler) { h.DefaultValidity = 0 })
	for _, tc := range []struct {
		key  string
		want time.Duration
	}{{openSecret, DefaultValidity}, {shopSecret, DefaultValidity}, {partnerSecret, DefaultValidity}} {
		w := post(t, h, PathData8, tc.key, `{"credits":1}`)
		var resp map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &resp)
		if resp["Expires"] != testNow.Add(tc.want).UTC().Format(time.RFC3339) {
			t.Errorf("key %s: %d %s", tc.key[:4], w.Code, w.Body)
		}
	}
	h, _, _ = testHandler(t, func(h *Handler) { h.APIKeys[0].MaxValidity = caddyDays(7) })
	w := post(t, h, PathAxes4, partnerSecret, `{"customerIdentifier":"c","productEnum":"axesWord"}`)
	_, claims := payload(t, mustToken(t, w))
	if claims["exp"] != float64(testNow.Add(7*24*time.Hour).Unix()) {
		t.Errorf("exp %v, want now + the key's max_validity", claims["exp"])
	}
}

func TestConcurrentIssuesGetDistinctTokenIDs(t *testing.T) {
	h, logs, _ := testHandler(t)
	const n = 16
	jtis := make(chan string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := post(t, h, PathNative, openSecret, `{"sub":"bob","credits":1}`)
			var resp map[string]any
			_ = json.Unmarshal(w.Body.Bytes(), &resp)
			jti, _ := resp["jti"].(string)
			jtis <- jti
		}()
	}
	wg.Wait()
	close(jtis)
	seen := map[string]bool{}
	for jti := range jtis {
		if jti == "" || seen[jti] {
			t.Fatalf("jti %q missing or repeated", jti)
		}
		seen[jti] = true
	}
	if got := len(logs.FilterMessage("license issued").All()); got != n {
		t.Errorf("%d license issued lines for %d tokens", got, n)
	}
}

func TestATokenNoGateWouldReadIsNotIssued(t *testing.T) {
	h, logs, _ := testHandler(t)
	deepest := `{"deep":` + strings.Repeat("[", 31) + strings.Repeat("]", 31) + `}`
	if w := post(t, h, PathNative, openSecret, deepest); w.Code != 200 {
		t.Errorf("nesting at the gate's limit: %d %s", w.Code, w.Body)
	}
	w := post(t, h, PathNative, openSecret, `{"pad":"`+strings.Repeat("x", 13000)+`"}`)
	problemOf(t, w, http.StatusBadRequest, KindTokenTooLarge, "")
	if n := len(logs.FilterMessage("license issued").All()); n != 1 {
		t.Errorf("%d license issued lines, want 1", n)
	}
}

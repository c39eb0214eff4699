package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestAdminAPIBothStores: revoke → next request 401; top up → next request
// allowed; reset; GET reports used/left/seats/revoked; bad input is 400.
func TestAdminAPIBothStores(t *testing.T) {
	t.Parallel()
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			key := NewRSAKey(t, "k1", "RS256")
			ks := NewKeyServer(t, JWKS(t, key))
			up := Upstream(t, http.StatusOK)
			c := StartCaddy(t, `
	license_gate {
		jwks_url `+ks.JWKSURL()+`
		`+sc.store(t)+`
	}
	reverse_proxy `+hostPort(up.URL))

			claims := Std("credits", 2, "seats", 3)
			tok, jti := key.Sign(t, claims), claims["jti"].(string)
			for i := 0; i < 2; i++ {
				if resp, body := c.Get(t, "/", tok, "X-Hardware-Id", "dev-"+strconv.Itoa(i)); resp.StatusCode != 200 {
					t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
				}
			}
			var u map[string]any
			if err := json.Unmarshal([]byte(adminDo(t, c, http.MethodGet, "/license-gate/licenses/"+jti, "", 200)), &u); err != nil {
				t.Fatal(err)
			}
			if u["credits_used"] != 2.0 || u["credits_limit"] != 2.0 || u["credits_left"] != 0.0 || u["seats_in_use"] != 2.0 || u["revoked"] != false {
				t.Fatalf("usage %v", u)
			}
			resp, body := c.Get(t, "/", tok, "X-Hardware-Id", "dev-0")
			AssertReject(t, resp, body, http.StatusForbidden, "maxUseCountExceed", "")

			// Top up by 3: three more requests pass.
			adminDo(t, c, http.MethodPost, "/license-gate/licenses/"+jti+"/credits", `{"add": 3}`, 200)
			for i := 0; i < 3; i++ {
				if resp, body := c.Get(t, "/", tok, "X-Hardware-Id", "dev-0"); resp.StatusCode != 200 {
					t.Fatalf("after top up, request %d: %d %s", i, resp.StatusCode, body)
				}
			}
			resp, body = c.Get(t, "/", tok, "X-Hardware-Id", "dev-0")
			AssertReject(t, resp, body, http.StatusForbidden, "maxUseCountExceed", "")

			// Reset: the token's own two credits again.
			adminDo(t, c, http.MethodPost, "/license-gate/licenses/"+jti+"/credits", `{"reset": true}`, 200)
			if resp, _ := c.Get(t, "/", tok, "X-Hardware-Id", "dev-0"); resp.StatusCode != 200 || resp.Header.Get("X-License-Credits-Remaining") != "1" {
				t.Fatalf("after reset: %d remaining %q", resp.StatusCode, resp.Header.Get("X-License-Credits-Remaining"))
			}

			// Revoke: the next request is 401; GET says so.
			out := adminDo(t, c, http.MethodPost, "/license-gate/revocations", `{"jti":"`+jti+`","until":4102444800}`, 200)
			if !strings.Contains(out, `"revoked":true`) || !strings.Contains(out, `"revoked_until":4102444800`) {
				t.Errorf("revocation answer %s", out)
			}
			resp, body = c.Get(t, "/", tok, "X-Hardware-Id", "dev-0")
			AssertReject(t, resp, body, http.StatusUnauthorized, "notAuthorized", "")
			adminDo(t, c, http.MethodDelete, "/license-gate/revocations/"+jti, "", 200)

			// Bad input: 400 with a message.
			for _, bad := range []struct{ method, path, body string }{
				{http.MethodPost, "/license-gate/revocations", `{"until": 4102444800}`},
				{http.MethodPost, "/license-gate/revocations", `{"jti": "x", "until": 1}`},
				{http.MethodPost, "/license-gate/revocations", `not json`},
				{http.MethodPost, "/license-gate/revocations", `{"jti": "x", "bogus": 1}`},
				{http.MethodPost, "/license-gate/licenses/" + jti + "/credits", `{}`},
				{http.MethodPost, "/license-gate/licenses/" + jti + "/credits", `{"add": "ten"}`},
				{http.MethodPost, "/license-gate/licenses/" + jti + "/credits", `{"add": 1e300}`},
			} {
				out := adminDo(t, c, bad.method, bad.path, bad.body, http.StatusBadRequest)
				if !strings.Contains(out, `"error"`) {
					t.Errorf("%s %s %s: no error message: %s", bad.method, bad.path, bad.body, out)
				}
			}
		})
	}
}

// TestMetricsAfterKnownTraffic scrapes the admin endpoint's /metrics after
// a known mix of requests.
func TestMetricsAfterKnownTraffic(t *testing.T) {
	t.Parallel()
	key := NewRSAKey(t, "k1", "RS256")
	ks := NewKeyServer(t, JWKS(t, key))
	up := Upstream(t, http.StatusOK)
	c := StartCaddy(t, `
	license_gate {
		jwks_url `+ks.JWKSURL()+`
		require_item axesWord
	}
	reverse_proxy `+hostPort(up.URL), CaddyOptions{Globals: "metrics"})

	good := key.Sign(t, Std("items", []string{"axesWord"}, "credits", 100))
	for i := 0; i < 5; i++ {
		c.Get(t, "/", good)
	}
	for i := 0; i < 3; i++ {
		c.Get(t, "/", "")
	}
	c.Get(t, "/", key.Sign(t, Std("items", []string{"other"})))

	resp, err := http.Get(c.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	metrics := string(raw)
	for name, want := range map[string]float64{
		`licensegate_requests_total{code="",result="allowed"}`:                5,
		`licensegate_requests_total{code="notAuthorized",result="rejected"}`:  3,
		`licensegate_requests_total{code="noLicenseFound",result="rejected"}`: 1,
		`licensegate_verified_cache_hits_total`:                               4,
		`licensegate_jwks_refresh_total{result="ok"}`:                         1,
		`licensegate_store_seconds_count`:                                     5,
	} {
		got, ok := metricValue(metrics, name)
		if !ok || got != want {
			t.Errorf("%s = %v (found %v), want %v", name, got, ok, want)
		}
	}
	if regexp.MustCompile(`licensegate_[a-z_]+\{[^}]*(jti|sub|lic|ip)=`).MatchString(metrics) {
		t.Error("a metric label carries a license, subject or address")
	}
}

func metricValue(metrics, name string) (float64, bool) {
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// TestShadowModeLogsAndPasses: a would-be reject is logged and counted,
// the error code is in a placeholder, and the request passes.
func TestShadowModeLogsAndPasses(t *testing.T) {
	t.Parallel()
	key := NewRSAKey(t, "k1", "RS256")
	ks := NewKeyServer(t, JWKS(t, key))
	c := StartCaddy(t, `
	license_gate {
		jwks_url `+ks.JWKSURL()+`
		require_item axesWord
		shadow
	}
	respond "passed code={http.license.error_code} sub={http.license.sub}" 200`, CaddyOptions{Globals: "metrics"})

	resp, body := c.Get(t, "/", key.Sign(t, Std("items", []string{"other"})))
	if resp.StatusCode != 200 || string(body) != "passed code=noLicenseFound sub=alice" {
		t.Fatalf("shadow reject: %d %q", resp.StatusCode, body)
	}
	resp, body = c.Get(t, "/", "")
	if resp.StatusCode != 200 || string(body) != "passed code=notAuthorized sub=" {
		t.Fatalf("shadow no token: %d %q", resp.StatusCode, body)
	}
	resp, body = c.Get(t, "/", key.Sign(t, Std("items", []string{"axesWord"})))
	if resp.StatusCode != 200 || string(body) != "passed code= sub=alice" {
		t.Fatalf("shadow allowed: %d %q", resp.StatusCode, body)
	}
	lines := c.Logs.logLines("license rejected")
	if len(lines) != 2 {
		t.Fatalf("%d reject lines, want 2", len(lines))
	}
	for _, l := range lines {
		if l["shadow"] != true {
			t.Errorf("reject line without shadow=true: %v", l)
		}
	}
	m, _ := http.Get(c.AdminURL + "/metrics")
	raw, _ := io.ReadAll(m.Body)
	m.Body.Close()
	if v, _ := metricValue(string(raw), `licensegate_requests_total{code="noLicenseFound",result="shadow"}`); v != 1 {
		t.Errorf("shadow metric = %v", v)
	}
}

package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestErrorsHandleLetsTheSiteRenderRejects: with "errors handle" a reject
// goes to the site's handle_errors routes, which see the status and the
// license error code; the gate's headers stay.
func TestErrorsHandleLetsTheSiteRenderRejects(t *testing.T) {
	t.Parallel()
	key := NewECKey(t, "k1", "ES256")
	up := Upstream(t, http.StatusOK)
	c := StartKeyFileGate(t, key, `
	license_gate {
		jwks_file keys.json
		require_item axesWord
		errors handle
	}
	reverse_proxy `+hostPort(up.URL)+`
	handle_errors {
		header Content-Type "text/plain; charset=utf-8"
		respond "site page: {http.error.status_code} {http.license.error_code}" {http.error.status_code}
	}`)

	tests := []struct {
		name    string
		token   string
		headers []string
		status  int
		body    string
		header  string // a header the gate sets that must stay
	}{
		{"a missing token is the site's 401 page with WWW-Authenticate", "", nil, 401,
			"site page: 401 notAuthorized", "WWW-Authenticate"},
		{"an unlicensed item is the site's 403 page", key.Sign(t, Std("items", []string{"axesPDF"})), nil, 403,
			"site page: 403 noLicenseFound", "Cache-Control"},
		{"an expired token is the site's 401 page", key.Sign(t, Std("exp", 1_000_000_000)), nil, 401,
			"site page: 401 licenseExpired", "WWW-Authenticate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := c.Get(t, "/", tc.token, tc.headers...)
			if resp.StatusCode != tc.status || string(body) != tc.body {
				t.Errorf("%d %q, want %d %q", resp.StatusCode, body, tc.status, tc.body)
			}
			if resp.Header.Get(tc.header) == "" {
				t.Errorf("%s is gone: %v", tc.header, resp.Header)
			}
			if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
		})
	}

	t.Run("seats full is the site's 429 page with Retry-After and RateLimit", func(t *testing.T) {
		tok := key.Sign(t, Std("items", []string{"axesWord"}, "seats", 1))
		if resp, body := c.Get(t, "/", tok, "X-Hardware-Id", "a"); resp.StatusCode != 200 {
			t.Fatalf("first seat: %d %s", resp.StatusCode, body)
		}
		resp, body := c.Get(t, "/", tok, "X-Hardware-Id", "b")
		if resp.StatusCode != 429 || string(body) != "site page: 429 maxConcurrentSessionsExceed" {
			t.Errorf("%d %q", resp.StatusCode, body)
		}
		if resp.Header.Get("Retry-After") == "" || !strings.HasPrefix(resp.Header.Get("RateLimit"), `"seats";r=0;t=`) {
			t.Errorf("headers %v", resp.Header)
		}
	})

	t.Run("an allowed request is untouched", func(t *testing.T) {
		resp, body := c.Get(t, "/x", key.Sign(t, Std("items", []string{"axesWord"})))
		if resp.StatusCode != 200 || !strings.Contains(string(body), "upstream GET /x") {
			t.Errorf("%d %s", resp.StatusCode, body)
		}
	})
}

// TestErrorsRespondIsTheDefaultEvenWithHandleErrors: without "errors
// handle", a site's handle_errors does not see rejects; the 10Duke body is
// the answer.
func TestErrorsRespondIsTheDefaultEvenWithHandleErrors(t *testing.T) {
	t.Parallel()
	key := NewECKey(t, "k1", "ES256")
	c := StartKeyFileGate(t, key, `
	license_gate {
		jwks_file keys.json
	}
	respond "ok"
	handle_errors {
		respond "site page" 599
	}`)
	resp, body := c.Get(t, "/", "")
	AssertReject(t, resp, body, http.StatusUnauthorized, "notAuthorized", "")
}

// TestReadmeErrorPageExample runs the site README's Rejections section
// shows for "errors handle": its handle_errors renders a problem+json body.
func TestReadmeErrorPageExample(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(raw), "**Your own error pages.**")
	if !ok {
		t.Fatal("README.md has no **Your own error pages.** paragraph")
	}
	_, rest, _ = strings.Cut(rest, "```caddyfile\n")
	site, _, _ := strings.Cut(rest, "```")
	key := NewECKey(t, "k1", "ES256")
	up := Upstream(t, http.StatusOK)
	port, admin := freePort(t), freePort(t)
	for _, want := range []string{"api.example.com {", "/etc/licensegate/jwks.json", "backend:8080", "errors handle"} {
		if !strings.Contains(site, want) {
			t.Fatalf("the README's example lacks %q; update this test:\n%s", want, site)
		}
	}
	site = strings.NewReplacer("api.example.com {", fmt.Sprintf("http://127.0.0.1:%d {", port),
		"/etc/licensegate/jwks.json", "keys.json", "backend:8080", hostPort(up.URL)).Replace(site)
	cfg := fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n\thttp_port %d\n\tauto_https off\n\tpersist_config off\n}\n\n%s", admin, port, site)
	c := StartCaddyfile(t, cfg, port, admin, map[string]string{"keys.json": JWKS(t, key)})

	resp, body := c.Get(t, "/", "")
	var problem map[string]any
	if resp.StatusCode != 401 || resp.Header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(body, &problem) != nil ||
		problem["status"] != float64(401) || problem["type"] != "https://example.com/errors/notAuthorized" {
		t.Errorf("%d %v %s", resp.StatusCode, resp.Header, body)
	}
	if resp, body := c.Get(t, "/", key.Sign(t, Std())); resp.StatusCode != 200 {
		t.Errorf("allowed: %d %s", resp.StatusCode, body)
	}
}

package integration

import (
	"net/http"
	"strings"
	"testing"
)

// TestQuickSmoke runs one allowed and one rejected request through a real
// Caddy with a key server on loopback.
func TestQuickSmoke(t *testing.T) {
	key := NewRSAKey(t, "k1", "RS256")
	ks := NewKeyServer(t, JWKS(t, key))
	up := Upstream(t, http.StatusOK)
	c := StartCaddy(t, `
	license_gate {
		jwks_url `+ks.JWKSURL()+`
	}
	reverse_proxy `+hostPort(up.URL))

	resp, body := c.Get(t, "/hello", key.Sign(t, Std("credits", 2)))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "upstream GET /hello") {
		t.Fatalf("allowed request: %d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-License-Credits-Remaining"); got != "1" {
		t.Errorf("remaining %q", got)
	}
	resp, body = c.Get(t, "/hello", "")
	AssertReject(t, resp, body, http.StatusUnauthorized, "notAuthorized", "")
}

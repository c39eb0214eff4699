package integration

import (
	"net/http"
	"strconv"
	"testing"
)

// TestStandardRateLimitFields: beside X-License-Credits-*, allowed requests
// and quota rejects carry the IETF RateLimit-Policy and RateLimit fields, so
// a generic client can back off without knowing licensegate.
func TestStandardRateLimitFields(t *testing.T) {
	t.Parallel()
	key := NewECKey(t, "k1", "ES256")
	up := Upstream(t, http.StatusOK)
	c := StartKeyFileGate(t, key, `
	license_gate {
		jwks_file keys.json
	}
	reverse_proxy `+hostPort(up.URL))

	tok := key.Sign(t, Std("credits", 2))
	for _, left := range []int{1, 0} {
		resp, body := c.Get(t, "/", tok)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("allowed: %d %s", resp.StatusCode, body)
		}
		if got := resp.Header.Get("RateLimit-Policy"); got != `"credits";q=2` {
			t.Errorf("RateLimit-Policy %q", got)
		}
		if got, want := resp.Header.Get("RateLimit"), `"credits";r=`+strconv.Itoa(left); got != want {
			t.Errorf("RateLimit %q, want %q", got, want)
		}
		if got := resp.Header.Get("X-License-Credits-Remaining"); got != strconv.Itoa(left) {
			t.Errorf("X-License-Credits-Remaining %q", got)
		}
	}
	resp, body := c.Get(t, "/", tok)
	AssertReject(t, resp, body, http.StatusForbidden, "maxUseCountExceed", "")
	if resp.Header.Get("RateLimit-Policy") != `"credits";q=2` || resp.Header.Get("RateLimit") != `"credits";r=0` {
		t.Errorf("credits used up: RateLimit-Policy %q RateLimit %q", resp.Header.Get("RateLimit-Policy"), resp.Header.Get("RateLimit"))
	}

	seats := key.Sign(t, Std("seats", 1))
	if resp, body := c.Get(t, "/", seats, "X-Hardware-Id", "dev-1"); resp.StatusCode != http.StatusOK {
		t.Fatalf("first seat: %d %s", resp.StatusCode, body)
	} else if resp.Header.Get("RateLimit") != "" {
		t.Errorf("a token without credits got RateLimit %q", resp.Header.Get("RateLimit"))
	}
	resp, body = c.Get(t, "/", seats, "X-Hardware-Id", "dev-2")
	AssertReject(t, resp, body, http.StatusTooManyRequests, "maxConcurrentSessionsExceed", "")
	ra := resp.Header.Get("Retry-After")
	if ra == "" || resp.Header.Get("RateLimit-Policy") != `"seats";q=1` || resp.Header.Get("RateLimit") != `"seats";r=0;t=`+ra {
		t.Errorf("seats full: Retry-After %q RateLimit-Policy %q RateLimit %q", ra, resp.Header.Get("RateLimit-Policy"), resp.Header.Get("RateLimit"))
	}

	// Other rejects carry no quota fields.
	resp, body = c.Get(t, "/", "")
	AssertReject(t, resp, body, http.StatusUnauthorized, "notAuthorized", "")
	if resp.Header.Get("RateLimit") != "" || resp.Header.Get("RateLimit-Policy") != "" {
		t.Errorf("a 401 carries rate-limit fields: %v", resp.Header)
	}
}

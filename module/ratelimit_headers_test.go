package module

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/licensegate/licensegate/policy"
)

func TestRateLimitFields(t *testing.T) {
	t.Parallel()
	credits := &policy.License{HasCredits: true, Credits: 3}
	seats := &policy.License{Seats: 2}
	tests := []struct {
		name               string
		rej                *policy.Reject
		lic                *policy.License
		wantPolicy, wantRL string
	}{
		{"credits used up give the credits quota with nothing left",
			policy.Rejectf(policy.CodeMaxUseCountExceed, "used 3 of 3"), credits, `"credits";q=3`, `"credits";r=0`},
		{"seats full give the seats quota and when one frees up",
			&policy.Reject{Code: policy.CodeMaxConcurrentSessions, Status: 429, RetryAfter: 1500 * time.Millisecond}, seats,
			`"seats";q=2`, `"seats";r=0;t=2`},
		{"seats full without a wait give no t",
			&policy.Reject{Code: policy.CodeMaxConcurrentSessions, Status: 429}, seats, `"seats";q=2`, `"seats";r=0`},
		{"other rejects give no fields", policy.Rejectf(policy.CodeNoLicenseFound, "x"), credits, "", ""},
		{"a reject without a license gives no fields", policy.Rejectf(policy.CodeMaxUseCountExceed, "x"), nil, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			setRejectRateLimit(h, tc.rej, tc.lic)
			if h.Get(HeaderRateLimitPolicy) != tc.wantPolicy || h.Get(HeaderRateLimit) != tc.wantRL {
				t.Errorf("RateLimit-Policy %q RateLimit %q, want %q %q", h.Get(HeaderRateLimitPolicy), h.Get(HeaderRateLimit), tc.wantPolicy, tc.wantRL)
			}
		})
	}
	h := http.Header{}
	setCreditHeaders(h, 2, 3)
	if h.Get(HeaderRateLimitPolicy) != `"credits";q=3` || h.Get(HeaderRateLimit) != `"credits";r=2` ||
		h.Get(HeaderCreditsRemaining) != "2" || h.Get(HeaderCreditsLimit) != "3" {
		t.Errorf("allowed: %v", h)
	}
}

func TestErrorsHandleReturnsTheRejectToCaddy(t *testing.T) {
	t.Parallel()
	clk := newClock()
	k := newKey(t, "k", "ES256")
	g := fileGate(t, k)
	g.Errors = ErrorsHandle
	g, _ = provisioned(t, g, clk)
	rec := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		t.Error("the next handler ran")
		return nil
	})
	err := g.ServeHTTP(rec, bearer(""), next)
	var he caddyhttp.HandlerError
	var rej *policy.Reject
	if !errors.As(err, &he) || he.StatusCode != 401 || !errors.As(err, &rej) || rej.Code != policy.CodeNotAuthorized {
		t.Fatalf("error %#v", err)
	}
	if rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != "" {
		t.Errorf("a body was written: %v %q", rec.Header(), rec.Body.Bytes())
	}
	if rec.Header().Get("WWW-Authenticate") == "" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", rec.Header())
	}
}

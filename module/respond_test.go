package module

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
)

func TestRejectBodyShape(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_763_900_000, 0)
	for _, prefix := range []string{"license", "axesWord"} {
		rej := policy.Rejectf(policy.CodeMaxUseCountExceed, "used \"10\" of 10\ncredits \u2013 <b>\\</b>")
		var m map[string]any
		if err := json.Unmarshal(rejectBody(prefix, rej, now), &m); err != nil {
			t.Fatalf("body is not JSON: %v", err)
		}
		want := map[string]any{
			prefix + "_errorCode":      "maxUseCountExceed",
			prefix + "_errorKey":       "maxUseCountExceed",
			prefix + "_errorMessage":   policy.CodeMaxUseCountExceed.Message(),
			prefix + "_errorTechnical": rej.Detail,
			"iss":                      "licensegate",
			"iat":                      float64(now.Unix()),
		}
		if len(m) != len(want) {
			t.Errorf("body fields %v", m)
		}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s = %v, want %v", k, m[k], v)
			}
		}
	}
}

func TestWriteRejectHeaders(t *testing.T) {
	t.Parallel()
	g := &Gate{bodyPrefix: "license"}
	now := time.Unix(1_763_900_000, 0)

	rec := httptest.NewRecorder()
	rej := policy.Rejectf(policy.CodeNotAuthorized, "bad \"sig\" \\ \x01 é")
	_ = g.writeReject(rec, rej, g.statusFor(rej), nil, now)
	h := rec.Header()
	if rec.Code != 401 || h.Get("Content-Type") != "application/json" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("401: %d %v", rec.Code, h)
	}
	if wa := h.Get("WWW-Authenticate"); wa != `Bearer error="invalid_token", error_description="bad \"sig\" \\     "` {
		t.Errorf("WWW-Authenticate %q", wa)
	}

	rec = httptest.NewRecorder()
	rej = &policy.Reject{Code: policy.CodeServiceUnavailable, Status: 503, Detail: "x", RetryAfter: 1500 * time.Millisecond}
	_ = g.writeReject(rec, rej, g.statusFor(rej), nil, now)
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "2" || rec.Header().Get("WWW-Authenticate") != "" {
		t.Errorf("503: %d %v", rec.Code, rec.Header())
	}
}

func TestQuoteHeaderIsBounded(t *testing.T) {
	t.Parallel()
	q := quoteHeader(strings.Repeat("a", 1000) + "\r\nX-Injected: 1")
	if len(q) != 202 || strings.ContainsAny(q, "\r\n") {
		t.Errorf("quoted header of %d bytes: %q", len(q), q[:20])
	}
	if q := quoteHeader("a\r\nX-Injected: 1"); strings.ContainsAny(q, "\r\n") {
		t.Errorf("header injection: %q", q)
	}
}

func TestStatusFor(t *testing.T) {
	t.Parallel()
	g := &Gate{statusOverride: map[policy.Code]int{policy.CodeMaxUseCountExceed: 429}}
	tests := []struct {
		rej  *policy.Reject
		want int
	}{
		{policy.Rejectf(policy.CodeMaxUseCountExceed, ""), http.StatusTooManyRequests},
		{policy.Rejectf(policy.CodeNotAuthorized, ""), http.StatusUnauthorized},
		{&policy.Reject{Code: policy.CodeLicenseExpired, Status: 403}, http.StatusForbidden},
		{&policy.Reject{Code: policy.CodeNoLicenseFound}, http.StatusForbidden},
	}
	for _, tc := range tests {
		if got := g.statusFor(tc.rej); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.rej.Code, got, tc.want)
		}
	}
}

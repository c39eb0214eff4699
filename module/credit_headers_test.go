package module

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/licensegate/licensegate/policy"
)

// TestCreditHeadersAreWhatHeaderSetWouldWrite: setCreditHeaders builds
// the four values in two allocations; the header it leaves is the one
// four http.Header.Set calls would, and each value stands on its own.
func TestCreditHeadersAreWhatHeaderSetWouldWrite(t *testing.T) {
	for _, tc := range []struct {
		name             string
		remaining, limit int64
	}{
		{"small counts", 0, 1},
		{"the largest budget", policy.MaxCredits - 1, policy.MaxCredits},
		{"a top up above the token's own credits", 12, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := http.Header{"X-License-Credits-Remaining": {"stale", "twice"}, "Ratelimit": {"stale"}}
			setCreditHeaders(got, tc.remaining, tc.limit)
			want := http.Header{}
			r, l := strconv.FormatInt(tc.remaining, 10), strconv.FormatInt(tc.limit, 10)
			want.Set(HeaderCreditsRemaining, r)
			want.Set(HeaderCreditsLimit, l)
			want.Set(HeaderRateLimitPolicy, `"credits";q=`+l)
			want.Set(HeaderRateLimit, `"credits";r=`+r)
			if len(got) != len(want) {
				t.Fatalf("header %v, want %v", got, want)
			}
			for k, v := range want {
				if len(got[k]) != 1 || got[k][0] != v[0] {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			got.Add(HeaderCreditsRemaining, "added")
			if got.Get(HeaderCreditsLimit) != l || len(got.Values(HeaderCreditsRemaining)) != 2 {
				t.Errorf("an Add to one header changed another: %v", got)
			}
		})
	}
	h := http.Header{}
	if n := testing.AllocsPerRun(100, func() { setCreditHeaders(h, 999_999_999_999, 1_000_000_000_000) }); n > 2 {
		t.Errorf("setCreditHeaders allocates %v times, want 2", n)
	}
}

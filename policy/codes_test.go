package policy_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
)

func TestCodeStatus(t *testing.T) {
	tests := []struct {
		code   policy.Code
		text   string
		status int
	}{
		{policy.CodeNotAuthorized, "notAuthorized", 401},
		{policy.CodeLicenseExpired, "licenseExpired", 401},
		{policy.CodeValidityNotStarted, "licenseValidityNotStarted", 403},
		{policy.CodeNoLicenseFound, "noLicenseFound", 403},
		{policy.CodeUnallowedClientVersion, "unallowedClientVersion", 403},
		{policy.CodeAnchorMissing, "licenseAnchorMissing", 400},
		{policy.CodeBadArgument, "BadArgument", 400},
		{policy.CodeAnchorLocked, "anchorLockedToAnotherLicense", 403},
		{policy.CodeClientIPBlocked, "clientIpAddressBlocked", 403},
		{policy.CodeMaxUseCountExceed, "maxUseCountExceed", 403},
		{policy.CodeMaxConcurrentSessions, "maxConcurrentSessionsExceed", 429},
		{policy.CodeServiceUnavailable, "serviceUnavailable", 503},
	}
	if len(tests) != len(policy.Codes) {
		t.Fatalf("policy.Codes has %d codes; the table has %d", len(policy.Codes), len(tests))
	}
	messages := map[string]policy.Code{}
	for i, tt := range tests {
		t.Run(tt.text+" is "+fmt.Sprint(tt.status), func(t *testing.T) {
			if string(tt.code) != tt.text {
				t.Errorf("code text %q; want %q", tt.code, tt.text)
			}
			if policy.Codes[i] != tt.code {
				t.Errorf("Codes[%d] = %q; want the order of README's reject table", i, policy.Codes[i])
			}
			if !tt.code.Valid() {
				t.Error("not Valid")
			}
			if got := tt.code.Status(); got != tt.status {
				t.Errorf("Status() = %d; want %d", got, tt.status)
			}
			m := tt.code.Message()
			if m == "" || m == policy.Code("bogus").Message() {
				t.Errorf("Message() = %q is the fallback", m)
			}
			if other, dup := messages[m]; dup {
				t.Errorf("message %q shared with %s", m, other)
			}
			messages[m] = tt.code
			r := policy.Rejectf(tt.code, "detail %d", 7)
			if r.Code != tt.code || r.Status != tt.status || r.Detail != "detail 7" {
				t.Errorf("Rejectf = %+v", r)
			}
			if r.Error() != tt.text+": detail 7" {
				t.Errorf("Error() = %q", r.Error())
			}
		})
	}
}

func TestUnknownCode(t *testing.T) {
	for _, c := range []policy.Code{"", "NotAuthorized", "bogus"} {
		if c.Valid() {
			t.Errorf("%q is Valid", c)
		}
		if c.Status() != 403 || c.Message() != "The request was rejected" {
			t.Errorf("%q: status %d message %q", c, c.Status(), c.Message())
		}
	}
}

func TestRejectIs(t *testing.T) {
	sentinels := map[policy.Code]error{
		policy.CodeNotAuthorized:          policy.ErrNotAuthorized,
		policy.CodeLicenseExpired:         policy.ErrLicenseExpired,
		policy.CodeValidityNotStarted:     policy.ErrValidityNotStarted,
		policy.CodeNoLicenseFound:         policy.ErrNoLicenseFound,
		policy.CodeUnallowedClientVersion: policy.ErrUnallowedClientVersion,
		policy.CodeAnchorMissing:          policy.ErrAnchorMissing,
		policy.CodeBadArgument:            policy.ErrBadArgument,
		policy.CodeAnchorLocked:           policy.ErrAnchorLocked,
		policy.CodeClientIPBlocked:        policy.ErrClientIPBlocked,
		policy.CodeMaxUseCountExceed:      policy.ErrMaxUseCountExceed,
		policy.CodeMaxConcurrentSessions:  policy.ErrMaxConcurrentSessions,
		policy.CodeServiceUnavailable:     policy.ErrServiceUnavailable,
	}
	if len(sentinels) != len(policy.Codes) {
		t.Fatal("a code has no sentinel")
	}
	for _, code := range policy.Codes {
		t.Run("a "+string(code)+" reject is only Err"+string(code), func(t *testing.T) {
			var err error = &policy.Reject{Code: code, Status: 200, Detail: "x", RetryAfter: time.Second}
			wrapped := fmt.Errorf("gate: %w", err)
			for other, sentinel := range sentinels {
				if got := errors.Is(err, sentinel); got != (other == code) {
					t.Errorf("errors.Is(%s reject, Err for %s) = %v", code, other, got)
				}
				if got := errors.Is(wrapped, sentinel); got != (other == code) {
					t.Errorf("errors.Is(wrapped %s reject, Err for %s) = %v", code, other, got)
				}
			}
			var rej *policy.Reject
			if !errors.As(wrapped, &rej) || rej.Code != code || rej.RetryAfter != time.Second {
				t.Errorf("errors.As = %+v", rej)
			}
		})
	}
	if errors.Is(errors.New("notAuthorized"), policy.ErrNotAuthorized) {
		t.Error("a plain error is a Reject")
	}
}

func TestClaimError(t *testing.T) {
	r := policy.ClaimError("credits", "must be an integer, got %s", "1.5")
	if r.Code != policy.CodeNotAuthorized || r.Status != 401 {
		t.Fatalf("got %+v", r)
	}
	if r.Detail != "claim credits: must be an integer, got 1.5" {
		t.Fatalf("Detail = %q", r.Detail)
	}
	if !strings.HasPrefix(r.Error(), "notAuthorized: claim credits") {
		t.Fatalf("Error() = %q", r.Error())
	}
}

func TestRemaining(t *testing.T) {
	tests := []struct{ limit, used, want int64 }{
		{10, 0, 10}, {10, 3, 7}, {10, 10, 0}, {10, 12, 0}, {0, 0, 0}, {10, -5, 15},
	}
	for _, tt := range tests {
		if got := policy.Remaining(tt.limit, tt.used); got != tt.want {
			t.Errorf("Remaining(%d, %d) = %d; want %d", tt.limit, tt.used, got, tt.want)
		}
	}
}

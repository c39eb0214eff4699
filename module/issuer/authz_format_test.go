package issuer

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
)

// encodeOnly stands in for the signer where only the layout matters: the
// claims as base64url JSON between the JWS dots.
func encodeOnly(c map[string]any) (string, error) {
	b, err := json.Marshal(c)
	return "e30." + base64.RawURLEncoding.EncodeToString(b) + ".sig", err
}

func testTerms(now time.Time) *LeaseTerms {
	return &LeaseTerms{Issuer: "https://license.test", Audience: []string{"api.test"}, Subject: "user-1",
		License: "lic-key", ValidFrom: now.Add(-24 * time.Hour), ValidUntil: now.Add(30 * 24 * time.Hour),
		Version: "1.6.14", Now: now}
}

func TestLeaseClaimsCarryTheTenDukeFields(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := policy.Lease{ID: "lease-1", Item: "word", Hardware: "dev-a", Until: now.Add(time.Hour + 900*time.Millisecond)}
	c := LeaseClaims("word", l, testTerms(now))
	want := map[string]any{
		"word": true, "iss": "https://license.test", "aud": "api.test", "sub": "user-1", "jti": "lease-1",
		"iat": now.Unix(), "exp": now.Unix() + 3600, "rfr": now.Unix() + 2700, "ver": "1.6.14", "lic": "lic-key",
		"ibb": now.Unix() - 86400, "ibe": now.Unix() + 30*86400, "hw": "dev-a",
	}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Fatalf("claims\n %v\nwant\n %v", c, want)
	}
	// Without optional facts, their claims are absent.
	c = LeaseClaims("word", policy.Lease{ID: "l", Until: now.Add(time.Minute)}, &LeaseTerms{Issuer: "i", License: "k", Now: now})
	for _, k := range []string{"aud", "sub", "ver", "ibb", "ibe", "hw"} {
		if _, ok := c[k]; ok {
			t.Errorf("claim %s present without its fact", k)
		}
	}
	// Several audiences are an array.
	c = LeaseClaims("word", l, &LeaseTerms{Audience: []string{"a", "b"}, Now: now})
	if fmt.Sprint(c["aud"]) != "[a b]" {
		t.Errorf("aud = %v", c["aud"])
	}
}

func TestFormatAuthzAnswersEveryFormat(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	terms := testTerms(now)
	quota := &policy.Reject{Code: policy.CodeLicenseQuotaExceeded, Detail: "all 2 seats are held"}
	answers := []AuthzAnswer{
		{Claims: LeaseClaims("word", policy.Lease{ID: "l1", Hardware: "d", Until: now.Add(time.Hour)}, terms)},
		{Reject: quota, Error: ErrorClaims("slide&more", quota, terms.Issuer, now)},
	}
	tests := []struct {
		name   string
		format AuthzFormat
		ct     string
		check  func(t *testing.T, parts []string)
	}{
		{"text answers true or false per item", FormatText, "text/plain; charset=utf-8", func(t *testing.T, parts []string) {
			if strings.Join(parts, "&") != "true&false" {
				t.Fatalf("body %q", strings.Join(parts, "&"))
			}
		}},
		{"json answers one object per item", FormatJSON, "application/json", func(t *testing.T, parts []string) {
			var lease, refused map[string]any
			if err := json.Unmarshal([]byte(parts[0]), &lease); err != nil || lease["jti"] != "l1" || lease["word"] != true {
				t.Fatalf("lease object %s: %v", parts[0], err)
			}
			if err := json.Unmarshal([]byte(parts[1]), &refused); err != nil {
				t.Fatal(err)
			}
			for k, v := range map[string]any{
				"slide&more_errorCode": "licenseQuotaExceeded", "slide&more_errorKey": "licenseQuotaExceeded",
				"slide&more_errorMessage": policy.CodeLicenseQuotaExceeded.Message(), "slide&more_errorTechnical": "all 2 seats are held",
				"iss": "https://license.test", "iat": float64(now.Unix()),
			} {
				if refused[k] != v {
					t.Errorf("%s = %v; want %v", k, refused[k], v)
				}
			}
			if len(refused) != 6 {
				t.Errorf("error object has %d fields; want 6: %v", len(refused), refused)
			}
		}},
		{"jwt answers one token per item", FormatJWT, "text/plain; charset=utf-8", func(t *testing.T, parts []string) {
			for i, p := range parts {
				if strings.Count(p, ".") != 2 {
					t.Fatalf("part %d is no compact JWS: %q", i, p)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, body, err := FormatAuthz(tt.format, answers, encodeOnly)
			if err != nil || ct != tt.ct {
				t.Fatalf("FormatAuthz = %q, %v; want %q", ct, err, tt.ct)
			}
			parts := strings.Split(string(body), "&")
			if len(parts) != 2 {
				t.Fatalf("body %q splits into %d parts on &; want 2", body, len(parts))
			}
			tt.check(t, parts)
		})
	}
}

func TestFormatAuthzReportsASigningFailure(t *testing.T) {
	fail := func(map[string]any) (string, error) { return "", fmt.Errorf("no key") }
	if _, _, err := FormatAuthz(FormatJWT, []AuthzAnswer{{Claims: map[string]any{"a": true}}}, fail); err == nil {
		t.Fatal("a signing failure was not reported")
	}
}

func TestRejectAllNamesWhatTheRequestNamed(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	rej := &policy.Reject{Code: policy.CodeBadArgument, Detail: "x"}
	tests := []struct {
		name string
		req  *AuthzRequest
		want []string
	}{
		{"no request names the license", nil, []string{"license"}},
		{"a request without items names the license", &AuthzRequest{}, []string{"license"}},
		{"items are named each", &AuthzRequest{Items: []AuthzItem{{Name: "a"}, {Name: "b"}}}, []string{"a", "b"}},
		{"a release names its lease", &AuthzRequest{Release: "l1"}, []string{"l1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RejectAll(tt.req, rej, "iss", now)
			if len(got) != len(tt.want) {
				t.Fatalf("%d answers; want %d", len(got), len(tt.want))
			}
			for i, n := range tt.want {
				if got[i].Error[n+"_errorCode"] != "BadArgument" {
					t.Errorf("answer %d = %v; want %s_errorCode", i, got[i].Error, n)
				}
			}
		})
	}
}

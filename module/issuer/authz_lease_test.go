package issuer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
)

var planNow = time.Unix(1_700_000_000, 0)

// testLicense decodes a license token's claims: exp a day after planNow,
// sub, jti, plus over.
func testLicense(t *testing.T, over map[string]any) *policy.License {
	t.Helper()
	c := map[string]any{"exp": planNow.Add(24 * time.Hour).Unix(), "sub": "user-1", "jti": "lic-1", "iss": "https://license.test"}
	for k, v := range over {
		c[k] = v
	}
	raw, _ := json.Marshal(c)
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	names := policy.DefaultClaimNames()
	l, err := policy.Decode(m, &names)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return l
}

func ids() func() string {
	n := 0
	return func() string { n++; return "lease-" + strconv.Itoa(n) }
}

func plan(t *testing.T, claims map[string]any, query string, limits LeaseLimits) (*LeasePlan, *AuthzRequest) {
	t.Helper()
	req, rej := ParseAuthz(query)
	if rej != nil {
		t.Fatalf("ParseAuthz(%q): %v", query, rej)
	}
	lic := testLicense(t, claims)
	q := policy.Request{Now: planNow, ClientIP: netip.MustParseAddr("192.0.2.7")}
	return PlanLeases(lic, policy.LicenseKey{Issuer: lic.Issuer, Key: lic.CountKey}, req, q, limits, ids()), req
}

func TestPlanLeasesAppliesTheGateRulesPerItem(t *testing.T) {
	tests := []struct {
		name   string
		claims map[string]any
		query  string
		want   []policy.Code // "" for items that go to the store
	}{
		{"a licensed item goes to the store", map[string]any{"items": []string{"word"}}, "word&hw=d", []policy.Code{""}},
		{"an item the license lacks is noLicenseFound, the others go on", map[string]any{"items": []string{"word"}},
			"word&slide&hw=d", []policy.Code{"", policy.CodeNoLicenseFound}},
		{"a <item>: true claim licenses the item", map[string]any{"word": true}, "word", []policy.Code{""}},
		{"a license with seats needs hw", map[string]any{"items": []string{"word"}, "seats": 2}, "word",
			[]policy.Code{policy.CodeAnchorMissing}},
		{"a license locked to another device is anchorLockedToAnotherLicense", map[string]any{"items": []string{"word"}, "hw": "x"},
			"word&hw=y", []policy.Code{policy.CodeAnchorLocked}},
		{"a version outside ver is unallowedClientVersion", map[string]any{"items": []string{"word"}, "ver": "1.*.*"},
			"word&version=2.0.0", []policy.Code{policy.CodeUnallowedClientVersion}},
		{"a license needing a version without one is licenseAnchorMissing", map[string]any{"items": []string{"word"}, "ver": "1.*.*"},
			"word", []policy.Code{policy.CodeAnchorMissing}},
		{"a client outside ip is clientIpAddressBlocked", map[string]any{"items": []string{"word"}, "ip": "10.0.0.0/8"},
			"word", []policy.Code{policy.CodeClientIPBlocked}},
		{"a license not yet valid is licenseValidityNotStarted", map[string]any{"items": []string{"word"}, "ibb": planNow.Add(time.Hour).Unix()},
			"word", []policy.Code{policy.CodeValidityNotStarted}},
		{"a license past ibe is licenseExpired", map[string]any{"items": []string{"word"}, "ibe": planNow.Add(-time.Hour).Unix()},
			"word&slide", []policy.Code{policy.CodeLicenseExpired, policy.CodeLicenseExpired}},
		{"another licenseId is noLicenseFound", map[string]any{"items": []string{"word"}, "lic": "L1"},
			"word&licenseId=L2", []policy.Code{policy.CodeNoLicenseFound}},
		{"the license's own licenseId goes on", map[string]any{"items": []string{"word"}, "lic": "L1"},
			"word&licenseId=L1", []policy.Code{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := plan(t, tt.claims, tt.query, LeaseLimits{})
			for i, want := range tt.want {
				got := policy.Code("")
				if p.Refused[i] != nil {
					got = p.Refused[i].Code
				}
				if got != want {
					t.Errorf("item %d: %q; want %q", i, got, want)
				}
			}
		})
	}
}

func TestPlanLeasesBoundsTheLeaseAndTheCost(t *testing.T) {
	hour := planNow.Add(time.Hour)
	tests := []struct {
		name       string
		claims     map[string]any
		query      string
		limits     LeaseLimits
		until      time.Time
		costs      []int64
		seats, lim int64
	}{
		{"the default lease lasts lease_ttl's default of an hour", map[string]any{"word": true}, "word", LeaseLimits{},
			hour, []int64{0}, 0, -1},
		{"consumeDuration shortens the lease", map[string]any{"word": true}, "word&consumeDuration=60000", LeaseLimits{},
			planNow.Add(time.Minute), []int64{0}, 0, -1},
		{"consumeDuration cannot pass lease_ttl", map[string]any{"word": true}, "word&consumeDuration=86400000",
			LeaseLimits{TTL: 2 * time.Hour}, planNow.Add(2 * time.Hour), []int64{0}, 0, -1},
		{"the lease ends with the license's ibe", map[string]any{"word": true, "ibe": planNow.Add(10 * time.Minute).Unix()}, "word",
			LeaseLimits{}, planNow.Add(10 * time.Minute), []int64{0}, 0, -1},
		{"the lease ends with the token's exp", map[string]any{"word": true, "exp": planNow.Add(20 * time.Minute).Unix()}, "word",
			LeaseLimits{}, planNow.Add(20 * time.Minute), []int64{0}, 0, -1},
		{"a new lease of a license with credits costs 1, a renewal 0", map[string]any{"items": []string{"a", "b"}, "credits": 10, "seats": 3},
			"a&b=;leaseId=x&hw=d", LeaseLimits{}, hour, []int64{1, 0}, 3, 10},
		{"consumeCount is charged per item, renewals included", map[string]any{"items": []string{"a", "b"}, "credits": 10},
			"a&b=;leaseId=x&consumeCount=4", LeaseLimits{}, hour, []int64{4, 4}, 0, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := plan(t, tt.claims, tt.query, tt.limits)
			s := p.Store
			if s == nil {
				t.Fatalf("nothing goes to the store: %v", p.Refused)
			}
			if !s.Until.Equal(tt.until) || s.Seats != tt.seats || s.Limit != tt.lim || !s.Now.Equal(planNow) {
				t.Fatalf("store request until %v seats %d limit %d; want %v, %d, %d", s.Until, s.Seats, s.Limit, tt.until, tt.seats, tt.lim)
			}
			for i, c := range tt.costs {
				if s.Items[i].Cost != c {
					t.Errorf("item %d costs %d; want %d", i, s.Items[i].Cost, c)
				}
			}
		})
	}
}

// TestLeaseFlowOnMemory takes the whole path below HTTP: parse, plan,
// store, answer, for two seats and three devices.
func TestLeaseFlowOnMemory(t *testing.T) {
	store := policy.NewMemory()
	claims := map[string]any{"items": []string{"word"}, "seats": 2, "credits": 5}
	newID := ids()
	ask := func(query string) []AuthzAnswer {
		t.Helper()
		req, rej := ParseAuthz(query)
		if rej != nil {
			t.Fatal(rej)
		}
		lic := testLicense(t, claims)
		p := PlanLeases(lic, policy.LicenseKey{Issuer: lic.Issuer, Key: lic.CountKey}, req, policy.Request{Now: planNow}, LeaseLimits{}, newID)
		var res []policy.LeaseResult
		if p.Store != nil {
			var err error
			if res, err = store.TakeLeases(context.Background(), p.Store); err != nil {
				t.Fatal(err)
			}
		}
		return p.Answers(req, res, &LeaseTerms{Issuer: "iss", License: lic.CountKey, Now: planNow})
	}
	code := func(a AuthzAnswer) string {
		if a.Reject == nil {
			return "granted " + fmt.Sprint(a.Claims["jti"])
		}
		return string(a.Reject.Code)
	}
	steps := []struct{ query, want string }{
		{"word&hw=a", "granted lease-1"},
		{"word&hw=b", "granted lease-2"},
		{"word&hw=c", "licenseQuotaExceeded"},
		{"word&hw=c&leaseId=lease-1", "leaseIdNotMatching"},
		{"word&hw=a&leaseId=lease-1", "granted lease-1"},
		{"word&hw=a&leaseId=lease-1&consumeCount=5", "maxUseCountExceed"},
		{"word&hw=c&doConsume=false", "licenseQuotaExceeded"},
	}
	for _, s := range steps {
		if got := code(ask(s.query)[0]); got != s.want {
			t.Fatalf("%s: %s; want %s", s.query, got, s.want)
		}
	}
	if _, ok, _ := store.ReleaseLease(context.Background(), policy.LicenseKey{Issuer: "https://license.test", Key: "lic-1"}, "lease-2", planNow); !ok {
		t.Fatal("release of lease-2 found nothing")
	}
	if got := code(ask("word&hw=c")[0]); got != "granted lease-5" {
		t.Fatalf("after the release: %s", got)
	}
}

func TestACheckAnswersWithoutALease(t *testing.T) {
	p, req := plan(t, map[string]any{"items": []string{"word"}}, "word&hw=d&doConsume=false", LeaseLimits{})
	res, err := policy.NewMemory().TakeLeases(context.Background(), p.Store)
	if err != nil {
		t.Fatal(err)
	}
	a := p.Answers(req, res, &LeaseTerms{Issuer: "iss", License: "lic-1", Now: planNow})[0]
	if a.Reject != nil || a.Claims["word"] != true {
		t.Fatalf("check answer %+v; want the item granted", a)
	}
	for _, k := range []string{"jti", "exp", "rfr"} {
		if _, ok := a.Claims[k]; ok {
			t.Errorf("a check's answer has %s, so a gate could take it for a lease", k)
		}
	}
}

package policy_test

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
)

func TestCheckTime(t *testing.T) {
	const leeway = 30 * time.Second
	tests := []struct {
		name   string
		claims map[string]any
		leeway time.Duration
		now    time.Duration // offset from base
		code   policy.Code
		status int
	}{
		{name: "exp in the future passes", now: 0},
		{name: "exp passed is licenseExpired 401", now: time.Hour + time.Second,
			code: policy.CodeLicenseExpired, status: 401},
		{name: "a second before exp passes", now: time.Hour - time.Second},
		{name: "exactly at exp is licenseExpired (RFC 7519: now must be before exp)", now: time.Hour,
			code: policy.CodeLicenseExpired, status: 401},
		{name: "exp passed within leeway passes", leeway: leeway, now: time.Hour + leeway - time.Second},
		{name: "exp passed beyond leeway is licenseExpired", leeway: leeway, now: time.Hour + leeway + time.Second,
			code: policy.CodeLicenseExpired, status: 401},
		{name: "fractional exp is honoured to the nanosecond",
			claims: map[string]any{"exp": json.Number(itoa(base.Unix()) + ".5")},
			now:    499 * time.Millisecond},
		{name: "fractional exp passed is licenseExpired",
			claims: map[string]any{"exp": json.Number(itoa(base.Unix()) + ".5")},
			now:    501 * time.Millisecond, code: policy.CodeLicenseExpired, status: 401},

		{name: "nbf in the future is licenseValidityNotStarted 403",
			claims: map[string]any{"nbf": unix(time.Minute)},
			code:   policy.CodeValidityNotStarted, status: 403},
		{name: "nbf reached passes",
			claims: map[string]any{"nbf": unix(0)}},
		{name: "nbf in the past passes",
			claims: map[string]any{"nbf": unix(-time.Hour)}},
		{name: "nbf in the future within leeway passes", leeway: leeway,
			claims: map[string]any{"nbf": unix(leeway)}},
		{name: "nbf in the future beyond leeway is licenseValidityNotStarted", leeway: leeway,
			claims: map[string]any{"nbf": unix(leeway + time.Second)},
			code:   policy.CodeValidityNotStarted, status: 403},

		{name: "ibb in the future is licenseValidityNotStarted 403",
			claims: map[string]any{"ibb": unix(24 * time.Hour)},
			code:   policy.CodeValidityNotStarted, status: 403},
		{name: "ibb reached passes",
			claims: map[string]any{"ibb": unix(0)}},
		{name: "ibb in the future within leeway passes", leeway: leeway,
			claims: map[string]any{"ibb": unix(leeway)}},
		{name: "ibb in the future beyond leeway is licenseValidityNotStarted", leeway: leeway,
			claims: map[string]any{"ibb": unix(leeway + time.Second)},
			code:   policy.CodeValidityNotStarted, status: 403},

		{name: "ibe passed is licenseExpired 403",
			claims: map[string]any{"ibe": unix(-time.Second)},
			code:   policy.CodeLicenseExpired, status: 403},
		{name: "ibe in the future passes",
			claims: map[string]any{"ibe": unix(time.Second)}},
		{name: "ibe passed within leeway passes", leeway: leeway,
			claims: map[string]any{"ibe": unix(-leeway + time.Second)}},
		{name: "ibe passed beyond leeway is licenseExpired 403", leeway: leeway,
			claims: map[string]any{"ibe": unix(-leeway - time.Second)},
			code:   policy.CodeLicenseExpired, status: 403},

		{name: "exp is checked before ibe, so both passed is 401",
			claims: map[string]any{"exp": unix(-time.Second), "ibe": unix(-time.Second)},
			code:   policy.CodeLicenseExpired, status: 401},
		{name: "exp is checked before nbf",
			claims: map[string]any{"exp": unix(-time.Second), "nbf": unix(time.Hour)},
			code:   policy.CodeLicenseExpired, status: 401},
		{name: "nbf is checked before ibe",
			claims: map[string]any{"nbf": unix(time.Minute), "ibe": unix(-time.Minute)},
			code:   policy.CodeValidityNotStarted, status: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := license(t, tt.claims)
			r := &policy.Rules{Leeway: tt.leeway}
			wantReject(t, r.CheckTime(l, base.Add(tt.now)), tt.code, tt.status)
			// Check runs the same window first.
			q := &policy.Request{Now: base.Add(tt.now)}
			wantReject(t, r.Check(l, q), tt.code, tt.status)
		})
	}
}

func TestCheckItem(t *testing.T) {
	tests := []struct {
		name   string
		item   string
		claims map[string]any
		code   policy.Code
	}{
		{name: "item in the items array is licensed", item: "axesWord",
			claims: map[string]any{"items": []any{"axesPDF", "axesWord"}}},
		{name: "item missing from the items array is noLicenseFound", item: "axesWord",
			claims: map[string]any{"items": []any{"axesPDF"}}, code: policy.CodeNoLicenseFound},
		{name: "empty items array is noLicenseFound", item: "axesWord",
			claims: map[string]any{"items": []any{}}, code: policy.CodeNoLicenseFound},
		{name: "product string is licensed", item: "axesWord",
			claims: map[string]any{"product": "axesWord"}},
		{name: "other product string is noLicenseFound", item: "axesWord",
			claims: map[string]any{"product": "axesPDF"}, code: policy.CodeNoLicenseFound},
		{name: "product array is licensed", item: "axesWord",
			claims: map[string]any{"product": []any{"axesPDF", "axesWord"}}},
		{name: "items and product are merged", item: "axesWord",
			claims: map[string]any{"items": []any{"axesPDF"}, "product": "axesWord"}},
		{name: "item: true is licensed", item: "axesWord",
			claims: map[string]any{"axesWord": true}},
		{name: "item: false is noLicenseFound", item: "axesWord",
			claims: map[string]any{"axesWord": false}, code: policy.CodeNoLicenseFound},
		{name: "item: \"true\" string does not count", item: "axesWord",
			claims: map[string]any{"axesWord": "true"}, code: policy.CodeNoLicenseFound},
		{name: "item: 1 does not count", item: "axesWord",
			claims: map[string]any{"axesWord": 1}, code: policy.CodeNoLicenseFound},
		{name: "item names are case sensitive", item: "axesWord",
			claims: map[string]any{"items": []any{"axesword"}, "AxesWord": true}, code: policy.CodeNoLicenseFound},
		{name: "no item claims at all is noLicenseFound", item: "axesWord",
			code: policy.CodeNoLicenseFound},
		{name: "a route without require_item needs no item", item: ""},
		{name: "a registered claim is not an item", item: "exp", code: policy.CodeNoLicenseFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := license(t, tt.claims)
			r := &policy.Rules{RequireItem: tt.item}
			status := 0
			if tt.code != "" {
				status = 403
			}
			got := r.Check(l, &policy.Request{Now: base})
			wantReject(t, got, tt.code, status)
			if got != nil && !strings.Contains(got.Detail, tt.item) {
				t.Errorf("detail %q does not name the item", got.Detail)
			}
			if l.Licensed(tt.item) != (tt.code == "" && tt.item != "") {
				t.Errorf("Licensed(%q) = %v", tt.item, l.Licensed(tt.item))
			}
		})
	}
}

func TestCheckVersion(t *testing.T) {
	tests := []struct {
		name    string
		ver     any // the ver claim; nil for none
		version string
		sent    bool
		code    policy.Code
		status  int
	}{
		{name: "version inside the pattern passes", ver: "1-3.4-6.7-9", version: "2.5.8", sent: true},
		{name: "version outside range is unallowedClientVersion", ver: "1-3.4-6.7-9", version: "2.5.10", sent: true,
			code: policy.CodeUnallowedClientVersion, status: 403},
		{name: "unparseable version is unallowedClientVersion", ver: "1.*.*", version: "1.x.3", sent: true,
			code: policy.CodeUnallowedClientVersion, status: 403},
		{name: "version not sent is licenseAnchorMissing 400", ver: "1.*.*",
			code: policy.CodeAnchorMissing, status: 400},
		{name: "empty version is licenseAnchorMissing like an absent one", ver: "1.*.*", version: "", sent: true,
			code: policy.CodeAnchorMissing, status: 400},
		{name: "version matching the second of several patterns passes", ver: []any{"1.*.*", "25.*.*"},
			version: "25.3.0", sent: true},
		{name: "version matching none of several patterns is unallowedClientVersion", ver: []any{"1.*.*", "25.*.*"},
			version: "24.3.0", sent: true, code: policy.CodeUnallowedClientVersion, status: 403},
		{name: "no ver claim ignores a missing version", version: "", sent: false},
		{name: "no ver claim ignores a garbage version", version: "not a version", sent: true},
		{name: "exact version passes", ver: "1.6.14", version: "1.6.14", sent: true},
		{name: "version with leading zeros passes an exact pattern", ver: "1.6.14", version: "01.06.014", sent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var over map[string]any
			if tt.ver != nil {
				over = map[string]any{"ver": tt.ver}
			}
			l := license(t, over)
			r := &policy.Rules{}
			q := &policy.Request{Now: base, Version: tt.version, VersionSent: tt.sent}
			got := r.Check(l, q)
			wantReject(t, got, tt.code, tt.status)
		})
	}
}

func TestCheckVersionDetail(t *testing.T) {
	l := license(t, map[string]any{"ver": []any{"1.*.*", "25.*.*"}})
	r := &policy.Rules{}
	got := r.Check(l, &policy.Request{Now: base, Version: "24.0.0", VersionSent: true})
	if got == nil || !strings.Contains(got.Detail, "24.0.0") || !strings.Contains(got.Detail, "1.*.*, 25.*.*") {
		t.Fatalf("detail %v should name the version and the patterns", got)
	}
	long := strings.Repeat("x", 500) + "\n"
	got = r.Check(l, &policy.Request{Now: base, Version: long, VersionSent: true})
	if got == nil || !strings.Contains(got.Detail, "does not parse") {
		t.Fatalf("got %v; want a does-not-parse detail", got)
	}
	if len(got.Detail) > 100 || strings.Contains(got.Detail, "\n") {
		t.Errorf("detail %q should be short and quoted", got.Detail)
	}
}

func TestCheckHardware(t *testing.T) {
	tests := []struct {
		name     string
		claims   map[string]any
		hardware string
		sent     bool
		code     policy.Code
		status   int
	}{
		{name: "same hardware id passes", claims: map[string]any{"hw": "HW-1"}, hardware: "HW-1", sent: true},
		{name: "hardware id missing is licenseAnchorMissing 400", claims: map[string]any{"hw": "HW-1"},
			code: policy.CodeAnchorMissing, status: 400},
		{name: "empty hardware id is licenseAnchorMissing 400", claims: map[string]any{"hw": "HW-1"},
			hardware: "", sent: true, code: policy.CodeAnchorMissing, status: 400},
		{name: "hardware id differs is anchorLockedToAnotherLicense 403", claims: map[string]any{"hw": "HW-1"},
			hardware: "HW-2", sent: true, code: policy.CodeAnchorLocked, status: 403},
		{name: "hardware id is compared exactly, case included", claims: map[string]any{"hw": "HW-1"},
			hardware: "hw-1", sent: true, code: policy.CodeAnchorLocked, status: 403},
		{name: "hardware id prefix is anchorLocked", claims: map[string]any{"hw": "HW-1"},
			hardware: "HW-10", sent: true, code: policy.CodeAnchorLocked, status: 403},
		{name: "seats claim without hardware is licenseAnchorMissing 400", claims: map[string]any{"seats": 2},
			code: policy.CodeAnchorMissing, status: 400},
		{name: "seats claim with empty hardware is licenseAnchorMissing 400", claims: map[string]any{"seats": 2},
			hardware: "", sent: true, code: policy.CodeAnchorMissing, status: 400},
		{name: "seats claim with any hardware passes (seats are counted later)", claims: map[string]any{"seats": 2},
			hardware: "whatever", sent: true},
		{name: "seats and hw: the lock still applies", claims: map[string]any{"seats": 2, "hw": "HW-1"},
			hardware: "HW-2", sent: true, code: policy.CodeAnchorLocked, status: 403},
		{name: "no hw and no seats ignores a missing hardware id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := license(t, tt.claims)
			r := &policy.Rules{}
			q := &policy.Request{Now: base, Hardware: tt.hardware, HardwareSent: tt.sent}
			got := r.Check(l, q)
			wantReject(t, got, tt.code, tt.status)
			if got != nil && strings.Contains(got.Detail, "HW-") {
				t.Errorf("detail %q leaks a hardware id", got.Detail)
			}
		})
	}
}

func TestCheckIP(t *testing.T) {
	tests := []struct {
		name    string
		ip      any // the ip claim; nil for none
		client  string
		blocked bool
	}{
		{name: "IPv4 address equal passes", ip: "192.0.2.7", client: "192.0.2.7"},
		{name: "IPv4 address outside is clientIpAddressBlocked", ip: "192.0.2.7", client: "192.0.2.8", blocked: true},
		{name: "IPv4 CIDR inside passes", ip: "10.0.0.0/8", client: "10.200.3.4"},
		{name: "IPv4 CIDR outside is clientIpAddressBlocked", ip: "10.0.0.0/8", client: "11.0.0.1", blocked: true},
		{name: "IPv4 CIDR with host bits set is masked", ip: "10.1.2.3/16", client: "10.1.200.200"},
		{name: "IPv6 address equal passes", ip: "2001:db8::1", client: "2001:db8::1"},
		{name: "IPv6 address in another spelling passes", ip: "2001:0db8:0:0::1", client: "2001:db8::1"},
		{name: "IPv6 address outside is clientIpAddressBlocked", ip: "2001:db8::1", client: "2001:db8::2", blocked: true},
		{name: "IPv6 CIDR inside passes", ip: "2001:db8::/32", client: "2001:db8:ffff::1"},
		{name: "IPv6 CIDR outside is clientIpAddressBlocked", ip: "2001:db8::/32", client: "2001:db9::1", blocked: true},
		{name: "IPv6 client with a zone matches without it", ip: "fe80::/10", client: "fe80::1%eth0"},
		{name: "IPv4-mapped IPv6 client matches an IPv4 CIDR", ip: "192.0.2.0/24", client: "::ffff:192.0.2.9"},
		{name: "IPv4-mapped IPv6 client outside is blocked", ip: "192.0.2.0/24", client: "::ffff:198.51.100.1", blocked: true},
		{name: "IPv4-mapped IPv6 claim matches the IPv4 client", ip: "::ffff:192.0.2.7", client: "192.0.2.7"},
		{name: "IPv4-mapped IPv6 CIDR claim matches the IPv4 client", ip: "::ffff:192.0.2.0/120", client: "192.0.2.77"},
		{name: "IPv4 client is outside an IPv6 CIDR", ip: "::/0", client: "192.0.2.7", blocked: true},
		{name: "IPv6 client is outside an IPv4 CIDR", ip: "0.0.0.0/0", client: "2001:db8::1", blocked: true},
		{name: "one of several networks passes", ip: []any{"10.0.0.0/8", "2001:db8::/32", "192.0.2.7"}, client: "192.0.2.7"},
		{name: "none of several networks is blocked", ip: []any{"10.0.0.0/8", "2001:db8::/32"}, client: "192.0.2.7", blocked: true},
		{name: "invalid client address is clientIpAddressBlocked", ip: "0.0.0.0/0", client: "", blocked: true},
		{name: "no ip claim ignores the client address", client: "192.0.2.7"},
		{name: "no ip claim ignores an invalid client address", client: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var over map[string]any
			if tt.ip != nil {
				over = map[string]any{"ip": tt.ip}
			}
			l := license(t, over)
			var addr netip.Addr
			if tt.client != "" {
				addr = netip.MustParseAddr(tt.client)
			}
			r := &policy.Rules{}
			got := r.Check(l, &policy.Request{Now: base, ClientIP: addr})
			if tt.blocked {
				wantReject(t, got, policy.CodeClientIPBlocked, 403)
			} else {
				wantReject(t, got, "", 0)
			}
			if l.IPs != nil && policy.AllowedFrom(l.IPs, addr) == tt.blocked {
				t.Errorf("AllowedFrom(%v, %v) = %v", l.IPs, addr, !tt.blocked)
			}
		})
	}
}

func TestAllowedFromNothing(t *testing.T) {
	if policy.AllowedFrom(nil, netip.MustParseAddr("192.0.2.1")) {
		t.Error("an empty network list allows nobody")
	}
	if policy.AllowedFrom([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, netip.Addr{}) {
		t.Error("the zero address is never allowed")
	}
}

func TestCheckMatchClaim(t *testing.T) {
	tests := []struct {
		name   string
		claims map[string]any
		rules  []string
		values []string
		float  bool // decode numbers as float64 instead of json.Number
		fail   bool
	}{
		{name: "equal string claim passes", claims: map[string]any{"os": "Windows"},
			rules: []string{"os"}, values: []string{"Windows"}},
		{name: "string claim mismatch is notAuthorized 403", claims: map[string]any{"os": "Windows"},
			rules: []string{"os"}, values: []string{"Linux"}, fail: true},
		{name: "string claim compares case sensitively", claims: map[string]any{"os": "Windows"},
			rules: []string{"os"}, values: []string{"windows"}, fail: true},
		{name: "empty string claim matches an empty value", claims: map[string]any{"os": ""},
			rules: []string{"os"}, values: []string{""}},
		{name: "json.Number claim equal to its text passes", claims: map[string]any{"tier": json.Number("42")},
			rules: []string{"tier"}, values: []string{"42"}},
		{name: "json.Number claim compares by JSON text", claims: map[string]any{"tier": json.Number("42")},
			rules: []string{"tier"}, values: []string{"42.0"}, fail: true},
		{name: "json.Number claim mismatch is notAuthorized", claims: map[string]any{"tier": json.Number("42")},
			rules: []string{"tier"}, values: []string{"43"}, fail: true},
		{name: "float64 claim equal to its value passes", claims: map[string]any{"tier": 42.0},
			rules: []string{"tier"}, values: []string{"42"}, float: true},
		{name: "float64 claim compares numerically", claims: map[string]any{"tier": 42.0},
			rules: []string{"tier"}, values: []string{"42.0"}, float: true},
		{name: "float64 claim against a non-number is notAuthorized", claims: map[string]any{"tier": 42.0},
			rules: []string{"tier"}, values: []string{"forty-two"}, float: true, fail: true},
		{name: "bool true claim matches \"true\"", claims: map[string]any{"beta": true},
			rules: []string{"beta"}, values: []string{"true"}},
		{name: "bool true claim does not match \"1\"", claims: map[string]any{"beta": true},
			rules: []string{"beta"}, values: []string{"1"}, fail: true},
		{name: "bool false claim matches \"false\"", claims: map[string]any{"beta": false},
			rules: []string{"beta"}, values: []string{"false"}},
		{name: "bool false claim does not match \"true\"", claims: map[string]any{"beta": false},
			rules: []string{"beta"}, values: []string{"true"}, fail: true},
		{name: "bool false claim does not match an empty value", claims: map[string]any{"beta": false},
			rules: []string{"beta"}, values: []string{""}, fail: true},
		{name: "absent claim is notAuthorized", rules: []string{"os"}, values: []string{"Windows"}, fail: true},
		{name: "absent claim is notAuthorized even for an empty value", rules: []string{"os"}, values: []string{""}, fail: true},
		{name: "array claim never matches", claims: map[string]any{"os": []any{"Windows"}},
			rules: []string{"os"}, values: []string{"Windows"}, fail: true},
		{name: "object claim never matches", claims: map[string]any{"os": map[string]any{"name": "Windows"}},
			rules: []string{"os"}, values: []string{"Windows"}, fail: true},
		{name: "several rules all equal pass", claims: map[string]any{"os": "Windows", "tier": json.Number("2")},
			rules: []string{"os", "tier"}, values: []string{"Windows", "2"}},
		{name: "second of several rules failing is notAuthorized", claims: map[string]any{"os": "Windows", "tier": json.Number("2")},
			rules: []string{"os", "tier"}, values: []string{"Windows", "3"}, fail: true},
		{name: "a missing value compares as empty", claims: map[string]any{"os": "Windows"},
			rules: []string{"os"}, values: nil, fail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := claims(tt.claims)
			if !tt.float {
				c = roundTrip(t, c)
			}
			names := policy.DefaultClaimNames()
			l, err := policy.Decode(c, &names)
			if err != nil {
				t.Fatal(err)
			}
			r := &policy.Rules{MatchClaims: tt.rules}
			got := r.Check(l, &policy.Request{Now: base, MatchValues: tt.values})
			if tt.fail {
				wantReject(t, got, policy.CodeNotAuthorized, 403)
			} else {
				wantReject(t, got, "", 0)
			}
		})
	}
}

// TestCheckOrder: the constraints run in the order of README's reject table, so the
// first failing one decides the code.
func TestCheckOrder(t *testing.T) {
	all := map[string]any{
		"items": []any{"other"},
		"ver":   "1.*.*",
		"hw":    "HW-1",
		"ip":    "10.0.0.0/8",
		"os":    "Linux",
	}
	tests := []struct {
		name  string
		drop  []string // constraints satisfied, one after another
		nbf   bool
		wantC policy.Code
	}{
		{name: "validity window comes first", nbf: true, wantC: policy.CodeValidityNotStarted},
		{name: "item comes before version", wantC: policy.CodeNoLicenseFound},
		{name: "version comes before hardware", drop: []string{"items"}, wantC: policy.CodeUnallowedClientVersion},
		{name: "hardware comes before ip", drop: []string{"items", "ver"}, wantC: policy.CodeAnchorLocked},
		{name: "ip comes before match_claim", drop: []string{"items", "ver", "hw"}, wantC: policy.CodeClientIPBlocked},
		{name: "match_claim comes last", drop: []string{"items", "ver", "hw", "ip"}, wantC: policy.CodeNotAuthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			over := with(all)
			for _, k := range tt.drop {
				delete(over, k)
			}
			if len(tt.drop) > 0 { // dropping items means licensing the item
				over["items"] = []any{"axesWord"}
			}
			if tt.nbf {
				over["nbf"] = unix(time.Hour)
			}
			l := license(t, over)
			r := &policy.Rules{RequireItem: "axesWord", MatchClaims: []string{"os"}}
			q := &policy.Request{Now: base, MatchValues: []string{"Windows"},
				Version: "2.0.0", VersionSent: true, Hardware: "HW-2", HardwareSent: true,
				ClientIP: netip.MustParseAddr("192.0.2.7")}
			got := r.Check(l, q)
			if got == nil || got.Code != tt.wantC {
				t.Fatalf("got %v; want %s", got, tt.wantC)
			}
		})
	}
}

// TestCheckAllowsRealisticLicense passes every constraint at once.
func TestCheckAllowsRealisticLicense(t *testing.T) {
	l, r, q := realistic(t)
	if rej := r.Check(l, q); rej != nil {
		t.Fatalf("rejected: %v", rej)
	}
}

// TestCheckDoesNotAllocate holds Check to its doc comment on the allowed
// path (BenchmarkCheck reports the same).
func TestCheckDoesNotAllocate(t *testing.T) {
	l, r, q := realistic(t)
	if n := testing.AllocsPerRun(100, func() {
		if r.Check(l, q) != nil {
			t.Fatal("rejected")
		}
	}); n != 0 {
		t.Fatalf("Check allocates %v times per allowed request; want 0", n)
	}
}

func realistic(t testing.TB) (*policy.License, *policy.Rules, *policy.Request) {
	l := license(t, map[string]any{
		"lic":     "LIC-0042",
		"credits": 1000,
		"items":   []any{"axesPDF", "axesWord", "axesSlide"},
		"ver":     []any{"1-3.*.*", "25.*.*"},
		"hw":      "0F3A-77C1-99D2-AB10",
		"ip":      []any{"10.0.0.0/8", "2001:db8::/32", "192.0.2.7"},
		"ibb":     unix(-24 * time.Hour),
		"ibe":     unix(24 * time.Hour),
		"nbf":     unix(-time.Minute),
		"os":      "Windows",
	})
	r := &policy.Rules{RequireItem: "axesWord", Leeway: 30 * time.Second, MatchClaims: []string{"os"}}
	q := &policy.Request{
		Now:          base,
		ClientIP:     netip.MustParseAddr("192.0.2.7"),
		Version:      "25.4.17",
		VersionSent:  true,
		Hardware:     "0F3A-77C1-99D2-AB10",
		HardwareSent: true,
		MatchValues:  []string{"Windows"},
	}
	return l, r, q
}

func TestClaimString(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
		ok   bool
	}{
		{name: "string renders as itself", v: "abc", want: "abc", ok: true},
		{name: "json.Number renders as its text", v: json.Number("1e3"), want: "1e3", ok: true},
		{name: "float64 renders without exponent", v: 1e21, want: "1000000000000000000000", ok: true},
		{name: "float64 fraction renders shortest", v: 0.5, want: "0.5", ok: true},
		{name: "bool renders as true/false", v: true, want: "true", ok: true},
		{name: "array does not render", v: []any{"a"}},
		{name: "object does not render", v: map[string]any{}},
		{name: "null does not render", v: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := policy.ClaimString(tt.v)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("ClaimString(%#v) = %q, %v; want %q, %v", tt.v, got, ok, tt.want, tt.ok)
			}
		})
	}
}

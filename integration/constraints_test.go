package integration

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The license constraints (README's constraint rules) end to end through the real binary:
// licensed items, client version patterns, hardware lock, source IP (with
// and without trusted_proxies), match_claim rules, claim renaming, and
// constraint claims of the wrong shape. docs/constraints.md shows the same
// requests and responses.

// constraintCase is one request through the gate and what must come back.
type constraintCase struct {
	name   string
	path   string // path and query
	claims Claims
	// headers are name, value pairs sent with the request.
	headers []string
	// host overrides the Host header (the port is kept).
	host string
	// via6 dials [::1] instead of 127.0.0.1 (the Host stays 127.0.0.1).
	via6 bool

	// status is the expected status; 200 means the request passed.
	status int
	// code is the expected errorCode of a reject.
	code string
	// item is the expected prefix of the body's keys ("" for "license").
	item string
	// detail must occur in errorTechnical (or, when passed, in the body).
	detail string
	// check, when set, inspects a passed response further.
	check func(t *testing.T, resp *http.Response, body []byte)
}

// runConstraintCases runs each case as a parallel subtest against c.
func runConstraintCases(t *testing.T, c *Caddy, key *Key, cases []constraintCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, body := constraintRequest(t, c, key.Sign(t, tc.claims), tc)
			if tc.status == http.StatusOK {
				if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "passed") {
					t.Fatalf("want the request passed, got %d %s", resp.StatusCode, body)
				}
				if tc.detail != "" && !strings.Contains(string(body), tc.detail) {
					t.Errorf("body %q lacks %q", body, tc.detail)
				}
				if tc.check != nil {
					tc.check(t, resp, body)
				}
				return
			}
			rb := AssertReject(t, resp, body, tc.status, tc.code, tc.item)
			if tc.detail != "" && !strings.Contains(rb.Technical, tc.detail) {
				t.Errorf("errorTechnical %q lacks %q", rb.Technical, tc.detail)
			}
			if tc.status != http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") != "" {
				t.Errorf("a %d reject carries WWW-Authenticate %q", tc.status, resp.Header.Get("WWW-Authenticate"))
			}
			if resp.Header.Get("X-License-Credits-Remaining") != "" {
				t.Errorf("a reject carries X-License-Credits-Remaining")
			}
		})
	}
}

// constraintRequest sends GET tc.path with the bearer token, tc's headers,
// Host override and address family.
func constraintRequest(t *testing.T, c *Caddy, token string, tc constraintCase) (*http.Response, []byte) {
	t.Helper()
	u, err := url.Parse(c.URL)
	if err != nil {
		t.Fatal(err)
	}
	host := u.Host
	target := c.URL
	if tc.via6 {
		target = "http://[::1]:" + u.Port()
	}
	req, err := http.NewRequest(http.MethodGet, target+tc.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if tc.host != "" {
		req.Host = tc.host + ":" + u.Port()
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(tc.headers); i += 2 {
		req.Header.Set(tc.headers[i], tc.headers[i+1])
	}
	return Do(t, req)
}

// constraintNoPanics fails t when the Caddy process logged a panic; registered after
// StartCaddy, it runs after the subtests and before the process is killed.
func constraintNoPanics(t *testing.T, c *Caddy) {
	t.Cleanup(func() {
		if strings.Contains(c.Logs.String(), "panic") {
			t.Errorf("caddy logged a panic:\n%s", tail(c.Logs.String(), 4000))
		}
	})
}

// constraintSite is one Caddy site with a route per rule; each route has
// its own license_gate and answers "passed ..." when the gate lets the
// request through. The last lines close the harness's site block and open
// a second site on the same port for two tenant host names (the harness
// closes it), so that match_claim can be tested against the Host.
const constraintSite = `
	handle /items/* {
		license_gate {
			jwks_url JWKS
			require_item axesWord
		}
		respond "passed items" 200
	}
	handle /ver/* {
		license_gate {
			jwks_url JWKS
		}
		respond "passed ver" 200
	}
	handle /ver-app/* {
		license_gate {
			jwks_url JWKS
			version_from header X-App-Version
		}
		respond "passed ver-app" 200
	}
	handle /hw/* {
		license_gate {
			jwks_url JWKS
		}
		respond "passed hw" 200
	}
	handle /ip/* {
		license_gate {
			jwks_url JWKS
		}
		respond "passed ip {client_ip}" 200
	}
	handle /match/* {
		license_gate {
			jwks_url JWKS
			match_claim os {http.request.header.X-Client-OS}
			match_claim edition {http.request.header.X-Edition}
		}
		respond "passed match" 200
	}
	handle /match-axes4/* {
		license_gate {
			jwks_url JWKS
			match_claim OperatingSystemEnum {header.X-Client-OS}
		}
		respond "passed match-axes4" 200
	}
	handle /renamed/* {
		license_gate {
			jwks_url JWKS
			require_item axesWord
			claims {
				credits mc
				hw      LockingData
				product ProductEnum
				ver     Version
			}
		}
		respond "passed renamed" 200
	}
	handle /shape/* {
		license_gate {
			jwks_url JWKS
		}
		respond "passed shape" 200
	}
}

http://acme.localhost, http://globex.localhost {
	license_gate {
		jwks_url JWKS
		match_claim tenant {http.request.host}
	}
	respond "passed tenant {http.request.host}" 200
`

// TestConstraintRules runs every constraint rule through one Caddy without
// trusted_proxies.
func TestConstraintRules(t *testing.T) {
	t.Parallel()
	key := NewECKey(t, "constraints", "ES256")
	ks := NewKeyServer(t, JWKS(t, key))
	c := StartCaddy(t, strings.ReplaceAll(constraintSite, "JWKS", ks.JWKSURL()))
	constraintNoPanics(t, c)

	t.Run("items", func(t *testing.T) {
		t.Parallel()
		const item = "axesWord"
		runConstraintCases(t, c, key, []constraintCase{
			{name: "items array naming the item passes", path: "/items/a",
				claims: Std("items", []string{"axesWord"}), status: 200},
			{name: "items array with several items passes", path: "/items/a",
				claims: Std("items", []string{"axesFlip", "axesWord"}), status: 200},
			{name: "10Duke-style item true claim passes", path: "/items/a",
				claims: Std("axesWord", true), status: 200},
			{name: "axes4-style product claim passes", path: "/items/a",
				claims: Std("product", "axesWord"), status: 200},
			{name: "product list naming the item passes", path: "/items/a",
				claims: Std("product", []string{"axesFlip", "axesWord"}), status: 200},
			{name: "items array without the item is noLicenseFound", path: "/items/a",
				claims: Std("items", []string{"axesFlip"}), status: 403, code: "noLicenseFound", item: item,
				detail: "item axesWord is not licensed"},
			{name: "empty items array is noLicenseFound", path: "/items/a",
				claims: Std("items", []string{}), status: 403, code: "noLicenseFound", item: item},
			{name: "item false claim is noLicenseFound", path: "/items/a",
				claims: Std("axesWord", false), status: 403, code: "noLicenseFound", item: item},
			{name: "item claim as the string true is noLicenseFound", path: "/items/a",
				claims: Std("axesWord", "true"), status: 403, code: "noLicenseFound", item: item},
			{name: "product of another item is noLicenseFound", path: "/items/a",
				claims: Std("product", "axesFlip"), status: 403, code: "noLicenseFound", item: item},
			{name: "item names are case-sensitive", path: "/items/a",
				claims: Std("product", "axesword"), status: 403, code: "noLicenseFound", item: item},
			{name: "token without any item claim is noLicenseFound", path: "/items/a",
				claims: Std(), status: 403, code: "noLicenseFound", item: item},
			{name: "wrong-shaped claim on an item route is prefixed with the item", path: "/items/a",
				claims: Std("items", "axesWord"), status: 401, code: "notAuthorized", item: item,
				detail: "claim items"},
		})
	})

	t.Run("version", func(t *testing.T) {
		t.Parallel()
		ver := func(pattern any) Claims { return Std("ver", pattern) }
		hdr := func(v string) []string { return []string{"X-Client-Version", v} }
		runConstraintCases(t, c, key, []constraintCase{
			{name: "exact version passes", path: "/ver/a", claims: ver("1.6.14"), headers: hdr("1.6.14"), status: 200},
			{name: "other patch version is unallowedClientVersion", path: "/ver/a", claims: ver("1.6.14"),
				headers: hdr("1.6.15"), status: 403, code: "unallowedClientVersion", detail: "client version 1.6.15 is outside 1.6.14"},
			{name: "wildcard 1.*.* passes 1.99.0", path: "/ver/a", claims: ver("1.*.*"), headers: hdr("1.99.0"), status: 200},
			{name: "wildcard 1.*.* refuses 2.0.0", path: "/ver/a", claims: ver("1.*.*"), headers: hdr("2.0.0"),
				status: 403, code: "unallowedClientVersion"},
			{name: "axes4 wildcard 25.*.* passes 25.3.1", path: "/ver/a", claims: ver("25.*.*"), headers: hdr("25.3.1"), status: 200},
			{name: "axes4 wildcard 25.*.* refuses 24.9.9", path: "/ver/a", claims: ver("25.*.*"), headers: hdr("24.9.9"),
				status: 403, code: "unallowedClientVersion"},
			{name: "range pattern passes a version inside", path: "/ver/a", claims: ver("1-3.4-6.7-9"), headers: hdr("2.5.8"), status: 200},
			{name: "range pattern passes its upper bounds", path: "/ver/a", claims: ver("1-3.4-6.7-9"), headers: hdr("3.6.9"), status: 200},
			{name: "range pattern passes its lower bounds", path: "/ver/a", claims: ver("1-3.4-6.7-9"), headers: hdr("1.4.7"), status: 200},
			{name: "2.5.10 is outside 1-3.4-6.7-9 (numeric, not text, comparison)", path: "/ver/a", claims: ver("1-3.4-6.7-9"),
				headers: hdr("2.5.10"), status: 403, code: "unallowedClientVersion", detail: "client version 2.5.10 is outside 1-3.4-6.7-9"},
			{name: "major version above the range is unallowedClientVersion", path: "/ver/a", claims: ver("1-3.4-6.7-9"),
				headers: hdr("4.5.8"), status: 403, code: "unallowedClientVersion"},
			{name: "minor version below the range is unallowedClientVersion", path: "/ver/a", claims: ver("1-3.4-6.7-9"),
				headers: hdr("2.3.8"), status: 403, code: "unallowedClientVersion"},
			{name: "1.9.5 is below 1.10.* (numeric comparison)", path: "/ver/a", claims: ver("1.10.*"), headers: hdr("1.9.5"),
				status: 403, code: "unallowedClientVersion"},
			{name: "1.10.5 is inside 1.10.*", path: "/ver/a", claims: ver("1.10.*"), headers: hdr("1.10.5"), status: 200},
			{name: "mixed range, wildcard and exact component passes", path: "/ver/a", claims: ver("1-3.*.7"), headers: hdr("2.99.7"), status: 200},
			{name: "mixed pattern refuses a different exact component", path: "/ver/a", claims: ver("1-3.*.7"), headers: hdr("2.99.8"),
				status: 403, code: "unallowedClientVersion"},
			{name: "list of patterns passes a version matching any", path: "/ver/a", claims: ver([]string{"1.*.*", "3.2.1"}),
				headers: hdr("3.2.1"), status: 200},
			{name: "list of patterns refuses a version matching none", path: "/ver/a", claims: ver([]string{"1.*.*", "3.2.1"}),
				headers: hdr("3.2.2"), status: 403, code: "unallowedClientVersion", detail: "outside 1.*.*, 3.2.1"},
			{name: "leading zeros in the client version compare numerically", path: "/ver/a", claims: ver("1.6.14"),
				headers: hdr("01.06.014"), status: 200},
			{name: "leading zeros in the pattern compare numerically", path: "/ver/a", claims: ver("01.06.*"),
				headers: hdr("1.6.3"), status: 200},
			{name: "version from query parameter version passes", path: "/ver/a?version=1.6.14", claims: ver("1.6.14"), status: 200},
			{name: "version from query parameter version is checked", path: "/ver/a?version=1.7.0", claims: ver("1.6.14"),
				status: 403, code: "unallowedClientVersion", detail: "client version 1.7.0"},
			{name: "a header and a query that differ are BadArgument", path: "/ver/a?version=9.9.9", claims: ver("1.6.14"),
				headers: hdr("1.6.14"), status: 400, code: "BadArgument", detail: "two different client versions sent (header X-Client-Version and query version)"},
			{name: "a header and a query that agree pass", path: "/ver/a?version=1.6.14", claims: ver("1.6.14"),
				headers: hdr("1.6.14"), status: 200},
			{name: "unparseable version is unallowedClientVersion", path: "/ver/a", claims: ver("1.*.*"), headers: hdr("v1.6.14"),
				status: 403, code: "unallowedClientVersion", detail: "does not parse"},
			{name: "version with a letter component is unallowedClientVersion", path: "/ver/a", claims: ver("1.*.*"), headers: hdr("1.6.x"),
				status: 403, code: "unallowedClientVersion", detail: "does not parse"},
			{name: "missing version is licenseAnchorMissing", path: "/ver/a", claims: ver("1.6.14"),
				status: 400, code: "licenseAnchorMissing", detail: "requires a client version"},
			{name: "empty version header is licenseAnchorMissing", path: "/ver/a", claims: ver("1.6.14"), headers: hdr(""),
				status: 400, code: "licenseAnchorMissing"},
			{name: "token without ver needs no version", path: "/ver/a", claims: Std(), status: 200},
			{name: "custom version_from header is read", path: "/ver-app/a", claims: ver("1.6.14"),
				headers: []string{"X-App-Version", "1.6.14"}, status: 200},
			{name: "custom version_from header is checked", path: "/ver-app/a", claims: ver("1.6.14"),
				headers: []string{"X-App-Version", "1.6.13"}, status: 403, code: "unallowedClientVersion"},
			{name: "custom version_from replaces the default header", path: "/ver-app/a", claims: ver("1.6.14"),
				headers: hdr("1.6.14"), status: 400, code: "licenseAnchorMissing"},
			{name: "custom version_from replaces the default query", path: "/ver-app/a?version=1.6.14", claims: ver("1.6.14"),
				status: 400, code: "licenseAnchorMissing"},
		})
	})

	t.Run("hardware", func(t *testing.T) {
		t.Parallel()
		const tenDukeHW = "T29qb1RoYWU3aWV6MENoYWlkaWUyZXRoMWphMmFoQmUK"
		hw := func(id any) Claims { return Std("hw", id) }
		runConstraintCases(t, c, key, []constraintCase{
			{name: "hardware id from header X-Hardware-Id passes", path: "/hw/a", claims: hw("HW-1"),
				headers: []string{"X-Hardware-Id", "HW-1"}, status: 200},
			{name: "hardware id from query hw passes", path: "/hw/a?hw=HW-1", claims: hw("HW-1"), status: 200},
			{name: "10Duke base64 hardware id from query passes", path: "/hw/a?hw=" + tenDukeHW, claims: hw(tenDukeHW), status: 200},
			{name: "10Duke hw with a ;name= suffix passes", path: "/hw/a?hw=" + tenDukeHW + ";name=Alice%27s%20laptop",
				claims: hw(tenDukeHW), status: 200},
			{name: "missing hardware id is licenseAnchorMissing", path: "/hw/a", claims: hw("HW-1"),
				status: 400, code: "licenseAnchorMissing", detail: "requires a hardware id"},
			{name: "empty hardware id is licenseAnchorMissing", path: "/hw/a?hw=", claims: hw("HW-1"),
				status: 400, code: "licenseAnchorMissing"},
			{name: "different hardware id is anchorLockedToAnotherLicense", path: "/hw/a", claims: hw("HW-1"),
				headers: []string{"X-Hardware-Id", "HW-2"}, status: 403, code: "anchorLockedToAnotherLicense",
				detail: "hardware id differs"},
			{name: "different hardware id from query is anchorLockedToAnotherLicense", path: "/hw/a?hw=HW-2", claims: hw("HW-1"),
				status: 403, code: "anchorLockedToAnotherLicense"},
			{name: "hardware ids are case-sensitive", path: "/hw/a", claims: hw("HW-1"),
				headers: []string{"X-Hardware-Id", "hw-1"}, status: 403, code: "anchorLockedToAnotherLicense"},
			{name: "a header and a query that differ are BadArgument", path: "/hw/a?hw=HW-1", claims: hw("HW-1"),
				headers: []string{"X-Hardware-Id", "HW-2"}, status: 400, code: "BadArgument", detail: "two different hardware ids sent (header X-Hardware-Id and query hw)"},
			{name: "token without hw needs no hardware id", path: "/hw/a", claims: Std(), status: 200},
		})
	})

	t.Run("ip", func(t *testing.T) {
		t.Parallel()
		ip := func(v any) Claims { return Std("ip", v) }
		runConstraintCases(t, c, key, []constraintCase{
			{name: "single address string passes", path: "/ip/a", claims: ip("127.0.0.1"), status: 200, detail: "passed ip 127.0.0.1"},
			{name: "address array passes", path: "/ip/a", claims: ip([]string{"192.0.2.10", "127.0.0.1"}), status: 200},
			{name: "CIDR passes", path: "/ip/a", claims: ip("127.0.0.0/8"), status: 200},
			{name: "IPv4-mapped IPv6 form of the address passes", path: "/ip/a", claims: ip("::ffff:127.0.0.1"), status: 200},
			{name: "address outside is clientIpAddressBlocked", path: "/ip/a", claims: ip("192.0.2.10"),
				status: 403, code: "clientIpAddressBlocked", detail: "client address 127.0.0.1 is not allowed"},
			{name: "CIDR outside is clientIpAddressBlocked", path: "/ip/a", claims: ip([]string{"192.0.2.0/24", "10.0.0.0/8"}),
				status: 403, code: "clientIpAddressBlocked"},
			{name: "IPv6 address passes an IPv6 client", path: "/ip/a", via6: true, claims: ip("::1"),
				status: 200, detail: "passed ip ::1"},
			{name: "IPv6 CIDR passes an IPv6 client", path: "/ip/a", via6: true, claims: ip("::/64"), status: 200},
			{name: "mixed IPv4 and IPv6 array passes an IPv6 client", path: "/ip/a", via6: true,
				claims: ip([]string{"192.0.2.0/24", "::1"}), status: 200},
			{name: "IPv6 CIDR outside is clientIpAddressBlocked", path: "/ip/a", via6: true, claims: ip("2001:db8::/32"),
				status: 403, code: "clientIpAddressBlocked", detail: "client address ::1 is not allowed"},
			{name: "IPv4 address does not cover an IPv6 client", path: "/ip/a", via6: true, claims: ip("127.0.0.1"),
				status: 403, code: "clientIpAddressBlocked"},
			{name: "token without ip passes any address", path: "/ip/a", via6: true, claims: Std(), status: 200},
		})
	})

	// Without trusted_proxies, forwarding headers are the client's word and
	// change nothing: client_ip is the connection's peer.
	t.Run("trusted_proxies off", func(t *testing.T) {
		t.Parallel()
		ip := func(v any) Claims { return Std("ip", v) }
		runConstraintCases(t, c, key, []constraintCase{
			{name: "forged X-Forwarded-For does not unlock the forged address", path: "/ip/a", claims: ip("203.0.113.7"),
				headers: []string{"X-Forwarded-For", "203.0.113.7"}, status: 403, code: "clientIpAddressBlocked", detail: "client address 127.0.0.1 is not allowed"},
			{name: "forged X-Real-IP and Forwarded do not unlock the forged address", path: "/ip/a", claims: ip("203.0.113.7"),
				headers: []string{"X-Real-IP", "203.0.113.7", "Forwarded", "for=203.0.113.7"}, status: 403, code: "clientIpAddressBlocked", detail: "client address 127.0.0.1"},
			{name: "forged X-Forwarded-For does not lock out the real peer", path: "/ip/a", claims: ip("127.0.0.1"),
				headers: []string{"X-Forwarded-For", "203.0.113.7"}, status: 200, detail: "passed ip 127.0.0.1"},
			{name: "forged IPv4 X-Forwarded-For from an IPv6 peer changes nothing", path: "/ip/a", via6: true, claims: ip("127.0.0.1"),
				headers: []string{"X-Forwarded-For", "127.0.0.1"}, status: 403, code: "clientIpAddressBlocked",
				detail: "client address ::1"},
		})
	})

	t.Run("match_claim", func(t *testing.T) {
		t.Parallel()
		hdr := func(os, edition string) []string { return []string{"X-Client-OS", os, "X-Edition", edition} }
		runConstraintCases(t, c, key, []constraintCase{
			{name: "claims equal to the request headers pass", path: "/match/a",
				claims: Std("os", "Windows", "edition", "pro"), headers: hdr("Windows", "pro"), status: 200},
			{name: "numeric claim compares with its JSON text", path: "/match/a",
				claims: Std("os", "Linux", "edition", 2), headers: hdr("Linux", "2"), status: 200},
			{name: "different header is notAuthorized 403", path: "/match/a",
				claims: Std("os", "Windows", "edition", "pro"), headers: hdr("Linux", "pro"),
				status: 403, code: "notAuthorized", detail: "claim os does not match the request"},
			{name: "comparison is case-sensitive", path: "/match/a",
				claims: Std("os", "Windows", "edition", "pro"), headers: hdr("windows", "pro"),
				status: 403, code: "notAuthorized", detail: "claim os"},
			{name: "second rule failing is notAuthorized 403", path: "/match/a",
				claims: Std("os", "Windows", "edition", "pro"), headers: hdr("Windows", "basic"),
				status: 403, code: "notAuthorized", detail: "claim edition does not match the request"},
			{name: "missing header is notAuthorized 403", path: "/match/a",
				claims: Std("os", "Windows", "edition", "pro"), headers: []string{"X-Edition", "pro"},
				status: 403, code: "notAuthorized", detail: "claim os"},
			{name: "missing claim is notAuthorized 403", path: "/match/a",
				claims: Std("edition", "pro"), headers: hdr("Windows", "pro"),
				status: 403, code: "notAuthorized", detail: "claim os"},
			{name: "array claim never matches", path: "/match/a",
				claims: Std("os", []string{"Windows"}, "edition", "pro"), headers: hdr("Windows", "pro"),
				status: 403, code: "notAuthorized", detail: "claim os"},
			{name: "axes4 operating system against a header shorthand passes", path: "/match-axes4/a",
				claims: Std("OperatingSystemEnum", "Linux"), headers: []string{"X-Client-OS", "Linux"}, status: 200},
			{name: "axes4 operating system mismatch is notAuthorized 403", path: "/match-axes4/a",
				claims: Std("OperatingSystemEnum", "Linux"), headers: []string{"X-Client-OS", "Windows"},
				status: 403, code: "notAuthorized", detail: "claim OperatingSystemEnum"},
			{name: "tenant equal to the host passes", path: "/t", host: "acme.localhost",
				claims: Std("tenant", "acme.localhost"), status: 200, detail: "passed tenant acme.localhost"},
			{name: "tenant of another host is notAuthorized 403", path: "/t", host: "globex.localhost",
				claims: Std("tenant", "acme.localhost"), status: 403, code: "notAuthorized", detail: "claim tenant"},
			{name: "token without tenant is notAuthorized 403", path: "/t", host: "acme.localhost",
				claims: Std(), status: 403, code: "notAuthorized", detail: "claim tenant"},
		})
	})

	t.Run("claims renamed", func(t *testing.T) {
		t.Parallel()
		const item = "axesWord"
		// axes4 names the product, version and hardware lock its own way;
		// Data8 calls the credits mc.
		axes4 := func(pairs ...any) Claims {
			return Std(append([]any{"ProductEnum", "axesWord", "Version", "25.*.*", "LockingData", "SYS-1"}, pairs...)...)
		}
		anchors := []string{"X-Client-Version", "25.1.0", "X-Hardware-Id", "SYS-1"}
		credits := func(remaining, limit string) func(*testing.T, *http.Response, []byte) {
			return func(t *testing.T, resp *http.Response, _ []byte) {
				t.Helper()
				if got := resp.Header.Get("X-License-Credits-Remaining"); got != remaining {
					t.Errorf("X-License-Credits-Remaining %q, want %q", got, remaining)
				}
				if got := resp.Header.Get("X-License-Credits-Limit"); got != limit {
					t.Errorf("X-License-Credits-Limit %q, want %q", got, limit)
				}
			}
		}
		runConstraintCases(t, c, key, []constraintCase{
			{name: "axes4 token with ProductEnum, Version and LockingData passes", path: "/renamed/a",
				claims: axes4(), headers: anchors, status: 200},
			{name: "Data8 integer mc is the credits", path: "/renamed/a",
				claims: axes4("mc", 10), headers: anchors, status: 200, check: credits("9", "10")},
			{name: "Data8 mc as a decimal string (as Data8 issues it) is the credits", path: "/renamed/a",
				claims: axes4("mc", "10"), headers: anchors, status: 200, check: credits("9", "10")},
			{name: "ProductEnum of another product is noLicenseFound", path: "/renamed/a",
				claims: axes4("ProductEnum", "axesFlip"), headers: anchors, status: 403, code: "noLicenseFound", item: item},
			{name: "the default product claim no longer licenses", path: "/renamed/a",
				claims: axes4("ProductEnum", nil, "product", "axesWord"), headers: anchors,
				status: 403, code: "noLicenseFound", item: item},
			{name: "Version outside is unallowedClientVersion", path: "/renamed/a", claims: axes4(),
				headers: []string{"X-Client-Version", "24.0.0", "X-Hardware-Id", "SYS-1"}, status: 403, code: "unallowedClientVersion", item: item, detail: "outside 25.*.*"},
			{name: "LockingData of another system is anchorLockedToAnotherLicense", path: "/renamed/a", claims: axes4(),
				headers: []string{"X-Client-Version", "25.1.0", "X-Hardware-Id", "SYS-2"}, status: 403, code: "anchorLockedToAnotherLicense", item: item},
			{name: "LockingData without a hardware id is licenseAnchorMissing", path: "/renamed/a", claims: axes4(),
				headers: []string{"X-Client-Version", "25.1.0"}, status: 400, code: "licenseAnchorMissing", item: item},
			{name: "the default ver and hw claims are ordinary claims then", path: "/renamed/a",
				claims: axes4("ver", "abc", "hw", 42), headers: anchors, status: 200},
			{name: "Version that is no pattern is notAuthorized naming Version", path: "/renamed/a",
				claims: axes4("Version", "abc"), headers: anchors, status: 401, code: "notAuthorized", item: item,
				detail: "claim Version"},
			{name: "LockingData that is no string is notAuthorized naming LockingData", path: "/renamed/a",
				claims: axes4("LockingData", 42), headers: anchors, status: 401, code: "notAuthorized", item: item,
				detail: "claim LockingData"},
			{name: "negative mc is notAuthorized naming mc", path: "/renamed/a",
				claims: axes4("mc", -1), headers: anchors, status: 401, code: "notAuthorized", item: item,
				detail: "claim mc"},
		})
	})

	// A constraint claim of the wrong type or shape never lets the request
	// through: 401 notAuthorized, errorTechnical naming the claim.
	t.Run("wrong-shaped claims", func(t *testing.T) {
		t.Parallel()
		bad := func(name string, v any) constraintCase {
			b, _ := json.Marshal(v)
			return constraintCase{name: name + " " + string(b) + " is notAuthorized naming the claim", path: "/shape/a",
				claims: Std(name, v), headers: []string{"X-Client-Version", "1.0.0", "X-Hardware-Id", "HW-1"},
				status: 401, code: "notAuthorized", detail: "claim " + name + ":"}
		}
		runConstraintCases(t, c, key, []constraintCase{
			bad("ver", "abc"),
			bad("ver", "1.2.x"),
			bad("ver", "3-1.0.0"),
			bad("ver", 42),
			bad("ver", []string{}),
			bad("ver", []any{"1.*.*", 2}),
			bad("ver", constraintJSONNull),
			bad("ip", "not-an-ip"),
			bad("ip", "10.0.0.0/33"),
			bad("ip", "fe80::1%eth0"),
			bad("ip", []string{"127.0.0.1", "bogus"}),
			bad("ip", []string{}),
			bad("ip", 7),
			bad("items", "word"),
			bad("items", []int{1, 2}),
			bad("items", map[string]any{"axesWord": true}),
			bad("product", 5),
			bad("hw", 42),
			bad("hw", ""),
			bad("hw", []string{"HW-1"}),
			bad("credits", -1),
			bad("credits", 1.5),
			bad("credits", "ten"),
		})
	})
}

// constraintJSONNull is a JSON null claim value (Std drops nil values).
var constraintJSONNull = json.RawMessage("null")

// TestConstraintTrustedProxies checks that client_ip honours
// trusted_proxies: a trusted peer's X-Forwarded-For decides the client
// address (IPv4 and IPv6), an untrusted peer's is ignored.
func TestConstraintTrustedProxies(t *testing.T) {
	t.Parallel()
	key := NewECKey(t, "proxies", "ES256")
	ks := NewKeyServer(t, JWKS(t, key))
	c := StartCaddy(t, `
	license_gate {
		jwks_url `+ks.JWKSURL()+`
	}
	respond "passed ip {client_ip}" 200`, CaddyOptions{Globals: `servers {
		trusted_proxies static 127.0.0.1/32
	}`})
	constraintNoPanics(t, c)
	ip := func(v any) Claims { return Std("ip", v) }
	xff := func(v string) []string { return []string{"X-Forwarded-For", v} }
	runConstraintCases(t, c, key, []constraintCase{
		{name: "trusted peer's X-Forwarded-For is the client address", path: "/a", claims: ip("203.0.113.0/24"),
			headers: xff("203.0.113.7"), status: 200, detail: "passed ip 203.0.113.7"},
		{name: "the trusted proxy's own address no longer passes", path: "/a", claims: ip("127.0.0.1"),
			headers: xff("203.0.113.7"), status: 403, code: "clientIpAddressBlocked",
			detail: "client address 203.0.113.7 is not allowed"},
		{name: "IPv6 client behind the trusted proxy passes an IPv6 CIDR", path: "/a", claims: ip("2001:db8::/32"),
			headers: xff("2001:db8::42"), status: 200, detail: "passed ip 2001:db8::42"},
		{name: "IPv6 client outside the IPv6 CIDR is clientIpAddressBlocked", path: "/a",
			claims: ip([]string{"2001:db8:1::/48", "203.0.113.0/24"}), headers: xff("2001:db8::42"),
			status: 403, code: "clientIpAddressBlocked", detail: "client address 2001:db8::42 is not allowed"},
		{name: "first address of a forwarding chain is the client", path: "/a", claims: ip("203.0.113.0/24"),
			headers: xff("203.0.113.7, 198.51.100.1"), status: 200, detail: "passed ip 203.0.113.7"},
		{name: "trusted peer without X-Forwarded-For is the client itself", path: "/a", claims: ip("127.0.0.1"),
			status: 200, detail: "passed ip 127.0.0.1"},
		{name: "untrusted peer's forged X-Forwarded-For is ignored", path: "/a", via6: true, claims: ip("203.0.113.7"),
			headers: xff("203.0.113.7"), status: 403, code: "clientIpAddressBlocked", detail: "client address ::1 is not allowed"},
		{name: "untrusted peer is judged by its own address", path: "/a", via6: true, claims: ip("::1"),
			headers: xff("203.0.113.7"), status: 200, detail: "passed ip ::1"},
	})
}

// TestConstraintItemPrefixIsEscaped: the body keys are prefixed with the
// route's item as configured; an item name with characters JSON must
// escape still gives a JSON body.
func TestConstraintItemPrefixIsEscaped(t *testing.T) {
	t.Parallel()
	key := NewECKey(t, "prefix", "ES256")
	ks := NewKeyServer(t, JWKS(t, key))
	c := StartCaddy(t, `
	license_gate {
		jwks_url `+ks.JWKSURL()+`
		require_item "odd\"item"
	}
	respond "passed" 200`)
	constraintNoPanics(t, c)
	runConstraintCases(t, c, key, []constraintCase{
		{name: "noLicenseFound body keys carry the escaped item name", path: "/a", claims: Std("items", []string{"axesWord"}),
			status: 403, code: "noLicenseFound", item: `odd"item`},
		{name: "the odd item name licenses through items", path: "/a", claims: Std("items", []string{`odd"item`}),
			status: 200},
	})
}

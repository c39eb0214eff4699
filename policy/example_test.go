package policy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/licensegate/licensegate/policy"
)

// claimsOf decodes a token payload the way a JWT library hands it over:
// numbers as json.Number.
func claimsOf(payload string) map[string]any {
	dec := json.NewDecoder(strings.NewReader(payload))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		panic(err)
	}
	return raw
}

// Check a verified token's claims against a route's rules and the facts of
// one request. The signature is the caller's business (licensegate's Caddy
// module verifies it first); policy decides what the claims allow.
func ExampleRules_Check() {
	names := policy.DefaultClaimNames()
	lic, err := policy.Decode(claimsOf(`{
		"sub": "alice", "jti": "lic-42-t1", "exp": 1893456000,
		"items": ["axesWord"], "ver": "1-3.*.*", "hw": "machine-7"
	}`), &names)
	if err != nil {
		panic(err)
	}
	rules := policy.Rules{RequireItem: "axesWord", Leeway: 30 * time.Second}
	now := time.Unix(1767225600, 0)

	ok := policy.Request{Now: now, Version: "2.4.0", VersionSent: true, Hardware: "machine-7", HardwareSent: true}
	fmt.Println("matching client:", rules.Check(lic, &ok))

	old := ok
	old.Version = "0.9.1"
	rej := rules.Check(lic, &old)
	fmt.Println("old client:", rej.Code, rej.Status)

	other := ok
	other.Hardware = "machine-8"
	rej = rules.Check(lic, &other)
	fmt.Println("other machine:", rej.Code, rej.Status)
	// Output:
	// matching client: <nil>
	// old client: unallowedClientVersion 403
	// other machine: anchorLockedToAnotherLicense 403
}

// A reject is an error: errors.Is matches it by code (policy.Err* are the
// sentinels), so callers can test
// for one kind of failure without comparing strings.
func ExampleReject() {
	names := policy.DefaultClaimNames()
	lic, _ := policy.Decode(claimsOf(`{"jti": "t1", "exp": 1767225600, "ip": "192.0.2.0/24"}`), &names)
	rules := policy.Rules{}
	q := policy.Request{Now: time.Unix(1767225600-60, 0), ClientIP: netip.MustParseAddr("198.51.100.7")}
	var err error = rules.Check(lic, &q)
	fmt.Println(errors.Is(err, policy.ErrClientIPBlocked))
	fmt.Println(err)
	// Output:
	// true
	// clientIpAddressBlocked: client address 198.51.100.7 is not allowed
}

// Version patterns use axes4's syntax: each of the three parts is a number,
// a range or a wildcard.
func ExampleParseVersionPattern() {
	p, err := policy.ParseVersionPattern("1-3.4-6.*")
	if err != nil {
		panic(err)
	}
	for _, v := range []string{"2.5.17", "3.7.0", "4.4.4"} {
		fmt.Println(v, p.Match(v))
	}
	// Output:
	// 2.5.17 true
	// 3.7.0 false
	// 4.4.4 false
}

// The in-memory store counts credits and seats for a single gateway. Every
// charge is atomic: of three requests against a license of two credits, the
// third is refused, and two issuers' licenses never share a budget even
// when their counting keys are equal.
func ExampleMemory() {
	store := policy.NewMemory()
	ctx := context.Background()
	now := time.Unix(1767225600, 0)
	charge := func(iss string) policy.Outcome {
		res, err := store.Charge(ctx, &policy.Charge{
			Key:  policy.LicenseKey{Issuer: iss, Key: "lic-42"},
			Cost: 1, Limit: 2, Expires: now.Add(time.Hour), Now: now,
		})
		if err != nil {
			panic(err)
		}
		return res.Outcome
	}
	a := "https://license.example.com"
	fmt.Println(charge(a) == policy.Allowed, charge(a) == policy.Allowed, charge(a) == policy.CreditsExhausted)
	fmt.Println("another issuer, same key:", charge("https://other.example.com") == policy.Allowed)

	u, _ := store.Usage(ctx, policy.LicenseKey{Issuer: a, Key: "lic-42"}, now)
	fmt.Println("used", u.Used, "left", u.Left)
	// Output:
	// true true true
	// another issuer, same key: true
	// used 2 left 0
}

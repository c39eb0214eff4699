package policy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
)

// base is the fixed "now" of the check tests.
var base = time.Unix(1_763_900_000, 0)

// unix is a JSON-decoded timestamp base+d, as a decoder with UseNumber
// produces it.
func unix(d time.Duration) json.Number {
	return json.Number(itoa(base.Add(d).Unix()))
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// claims returns a valid claim set (exp one hour after base) with the
// given claims merged over it; a nil value deletes the claim.
func claims(over map[string]any) map[string]any {
	c := map[string]any{
		"sub": "alice",
		"jti": "tok-1",
		"iss": "https://license.example.com",
		"exp": unix(time.Hour),
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// roundTrip encodes c as JSON and decodes it back with UseNumber, so that
// a test sees exactly what the gate sees after verifying a token.
func roundTrip(t testing.TB, c map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatalf("marshal claims: %v", err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var out map[string]any
	if err := d.Decode(&out); err != nil {
		t.Fatalf("decode claims: %v", err)
	}
	return out
}

// license decodes claims(over) through JSON with the default claim names
// and fails the test when Decode refuses it.
func license(t testing.TB, over map[string]any) *policy.License {
	t.Helper()
	names := policy.DefaultClaimNames()
	l, err := policy.Decode(roundTrip(t, claims(over)), &names)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return l
}

// wantReject checks that got is nil when code is "", and otherwise a
// Reject with that code and status.
func wantReject(t *testing.T, got *policy.Reject, code policy.Code, status int) {
	t.Helper()
	if code == "" {
		if got != nil {
			t.Fatalf("rejected with %s (%d): %s; want allowed", got.Code, got.Status, got.Detail)
		}
		return
	}
	if got == nil {
		t.Fatalf("allowed; want %s (%d)", code, status)
	}
	if got.Code != code || got.Status != status {
		t.Fatalf("got %s (%d): %s; want %s (%d)", got.Code, got.Status, got.Detail, code, status)
	}
	if got.Detail == "" {
		t.Errorf("reject %s has no detail", got.Code)
	}
}

// wantClaimError checks that err is the 401 notAuthorized Reject of a
// malformed claim, naming claim.
func wantClaimError(t *testing.T, err error, claim string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Decode accepted the claims; want a reject naming %q", claim)
	}
	var rej *policy.Reject
	if !errors.As(err, &rej) {
		t.Fatalf("error %T %v is not a *policy.Reject", err, err)
	}
	if rej.Code != policy.CodeNotAuthorized || rej.Status != 401 {
		t.Fatalf("got %s (%d); want notAuthorized (401)", rej.Code, rej.Status)
	}
	if !errors.Is(err, policy.ErrNotAuthorized) {
		t.Errorf("errors.Is(err, ErrNotAuthorized) is false for %v", err)
	}
	if !strings.HasPrefix(rej.Detail, "claim "+claim+": ") {
		t.Errorf("detail %q does not name claim %q", rej.Detail, claim)
	}
}

// with returns a copy of m with the extra entries.
func with(m map[string]any, kv ...any) map[string]any {
	out := maps.Clone(m)
	if out == nil {
		out = map[string]any{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

package module

import (
	"strings"
	"testing"
)

func TestRevocationsOptionOfTheRedisStore(t *testing.T) {
	for _, tc := range []struct {
		name    string
		value   string
		pushed  bool
		errPart string
	}{
		{"no value pushes revocations", "", true, ""},
		{"pushed pushes revocations", RevocationsPushed, true, ""},
		{"per_request asks the store on every counting request", RevocationsPerRequest, false, ""},
		{"an unknown value is refused with the choices", "polled", false, `revocations must be pushed or per_request, not "polled"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pushed, err := (&StoreConfig{Type: "redis", Revocations: tc.value}).pushedRevocations()
			if tc.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("error %v, want one containing %q", err, tc.errPart)
				}
				return
			}
			if err != nil || pushed != tc.pushed {
				t.Fatalf("pushedRevocations = %v, %v; want %v", pushed, err, tc.pushed)
			}
		})
	}
}

func TestBlocksOptionOfTheRedisStore(t *testing.T) {
	for _, tc := range []struct {
		name, blocks, revocations string
		on, defaultedOff          bool
		errPart                   string
	}{
		{"no value serves from blocks", "", "", true, false, ""},
		{"on serves from blocks", BlocksOn, RevocationsPushed, true, false, ""},
		{"off makes one round trip per request", BlocksOff, "", false, false, ""},
		{"no value with revocations per_request is off, and says why", "", RevocationsPerRequest, false, true, ""},
		{"off with revocations per_request", BlocksOff, RevocationsPerRequest, false, false, ""},
		{"on with revocations per_request is refused", BlocksOn, RevocationsPerRequest, false, false, "blocks on needs revocations pushed"},
		{"an unknown value is refused with the choices", "yes", "", false, false, `blocks must be on or off, not "yes"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			on, defaultedOff, err := (&StoreConfig{Type: "redis", Blocks: tc.blocks, Revocations: tc.revocations}).blocksOn()
			if tc.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("error %v, want one containing %q", err, tc.errPart)
				}
				return
			}
			if err != nil || on != tc.on || defaultedOff != tc.defaultedOff {
				t.Fatalf("blocksOn = %v, %v, %v; want %v, %v", on, defaultedOff, err, tc.on, tc.defaultedOff)
			}
		})
	}
}

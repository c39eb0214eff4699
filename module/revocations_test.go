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

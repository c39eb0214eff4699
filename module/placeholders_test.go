package module

import (
	"testing"
	"time"
)

func TestUserPlaceholderOnlyWhenAllowed(t *testing.T) {
	t.Parallel()
	clk := newClock()
	k, other := newKey(t, "k", "ES256"), newKey(t, "k", "ES256")
	g, _ := provisioned(t, fileGate(t, k), clk)
	sg := fileGate(t, k)
	sg.Shadow = true
	sg.RequireItem = "axesWord"
	shadow, _ := provisioned(t, sg, clk)

	valid := k.sign(t, claimsAt(clk, "sub", "alice"), nil)
	expired := k.sign(t, claimsAt(clk, "sub", "mallory", "exp", clk.Now().Add(-time.Hour).Unix()), nil)
	forged := other.sign(t, claimsAt(clk, "sub", "mallory"), nil)
	tests := []struct {
		name       string
		g          *Gate
		tok        string
		user, cand string
	}{
		{"an allowed request names the user", g, valid, "alice", ""},
		{"an expired token is only a candidate", g, expired, "", "mallory"},
		{"a forged token names nobody", g, forged, "", ""},
		{"no token names nobody", g, "", "", ""},
		{"a shadow would-be reject is only a candidate", shadow, valid, "", "alice"},
		{"a shadow expired token is only a candidate", shadow, expired, "", "mallory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := serve(t, tc.g, bearer(tc.tok))
			// Both are always known, so header_up never sends a
			// placeholder's own text.
			for name, want := range map[string]string{"http.auth.user.id": tc.user, "http.auth.candidate.id": tc.cand} {
				if v, ok := out.repl.Get(name); !ok || v != want {
					t.Errorf("%s = %v, %v; want %q", name, v, ok, want)
				}
			}
		})
	}
}

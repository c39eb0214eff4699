package issuer

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// authzHandler provisions a Handler with the example's demo key and the
// in-memory store, without Caddy, and a license it signed.
func authzHandler(t testing.TB) (*Handler, string) {
	t.Helper()
	h := &Handler{Issuer: "https://license.test", SigningKeys: []string{"../../examples/issuer/demo.private.jwk.json"}}
	if err := h.provision(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	lic, err := h.signer.sign(map[string]any{"iss": h.issuer, "sub": "u", "jti": "lic-" + t.Name(), "exp": time.Now().Add(time.Hour).Unix(),
		"items": []string{"word"}, "seats": 2, "credits": 5})
	if err != nil {
		t.Fatal(err)
	}
	return h, lic
}

var passOn = caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
	w.WriteHeader(http.StatusTeapot)
	return nil
})

func serveAuthzTest(t testing.TB, h *Handler, target, auth string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://license.test/", nil)
	r.URL.Path, r.URL.RawQuery, _ = strings.Cut(target, "?")
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, passOn); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	return w
}

func TestServeAuthzReadsTheBearerToken(t *testing.T) {
	h, lic := authzHandler(t)
	tests := []struct {
		name, auth, want string
	}{
		{"a license as bearer gets a lease", "Bearer " + lic, "true"},
		{"the scheme is case-insensitive", "bearer " + lic, "true"},
		{"no header is refused", "", "false"},
		{"another scheme is refused", "Basic " + lic, "false"},
		{"a bearer of only spaces is refused", "Bearer    ", "false"},
		{"a token over 16 KiB is refused", "Bearer " + strings.Repeat("a", 17<<10), "false"},
		{"a malformed token is refused", "Bearer a.b.c", "false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serveAuthzTest(t, h, "/authz/?word&hw=dev", tt.auth)
			if w.Code != 200 || w.Body.String() != tt.want {
				t.Fatalf("%d %q; want 200 %q", w.Code, w.Body.String(), tt.want)
			}
		})
	}
}

func TestServeAuthzLeavesOtherPathsAlone(t *testing.T) {
	h, lic := authzHandler(t)
	for _, p := range []string{"/authz", "/other/authz/", "/authzx/"} {
		if w := serveAuthzTest(t, h, p+"?word", "Bearer "+lic); w.Code != http.StatusTeapot {
			t.Errorf("%s: %d; want the next handler", p, w.Code)
		}
	}
	if w := serveAuthzTest(t, h, "/authz/.xml?word", "Bearer "+lic); w.Code != http.StatusNotFound {
		t.Errorf("/authz/.xml: %d; want 404", w.Code)
	}
}

// FuzzServeAuthz: whatever the path suffix and query, /authz/ answers
// 200 (or 404 for an unknown format), never fails, and never echoes the
// license token.
func FuzzServeAuthz(f *testing.F) {
	for _, s := range []string{"?word&hw=a", ".json?word&slide&hw=a;name=x&consumeCount=2", ".jwt?release&x",
		".txt?word=;leaseId=l&hw=a", "?exp", "?word&consumeDuration=99999999999999", ".json?%ff&hw=%00"} {
		f.Add(s)
	}
	h, lic := authzHandler(f)
	f.Fuzz(func(t *testing.T, rest string) {
		if strings.ContainsAny(rest, "#") {
			return
		}
		w := serveAuthzTest(t, h, "/authz/"+rest, "Bearer "+lic)
		if w.Code != http.StatusOK && w.Code != http.StatusNotFound {
			t.Fatalf("%q: status %d: %s", rest, w.Code, w.Body.String())
		}
		if strings.Contains(w.Body.String(), lic) {
			t.Fatalf("%q: the answer echoes the license token", rest)
		}
	})
}

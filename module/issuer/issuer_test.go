package issuer

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func caddyDays(n int) caddy.Duration { return caddy.Duration(time.Duration(n) * 24 * time.Hour) }

// mustToken returns the token of a successful issue response.
func mustToken(t testing.TB, w *httptest.ResponseRecorder) string {
	t.Helper()
	var resp map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	for _, k := range []string{"token", "Token"} {
		if s, ok := resp[k].(string); ok {
			return s
		}
	}
	t.Fatalf("no token in %s", w.Body)
	return ""
}

func TestProvisionRefusesBadConfigurationWithoutShowingSecrets(t *testing.T) {
	t.Setenv("LG_TEST_SHORT_KEY", "short-secret")
	tests := []struct {
		name string
		mod  func(*Handler)
		want string
	}{
		{"no issuer is refused", func(h *Handler) { h.Issuer = "" }, "needs an issuer"},
		{"a relative issuer is refused", func(h *Handler) { h.Issuer = "license.example.com" }, "absolute http(s) URL"},
		{"an issuer with a query is refused", func(h *Handler) { h.Issuer = "https://l.example.com/?a=1" }, "query"},
		{"no signing key is refused", func(h *Handler) { h.SigningKeys = nil }, "signing_key"},
		{"an empty audience is refused", func(h *Handler) { h.Audiences = []string{""} }, "audience"},
		{"an API key without a name is refused", func(h *Handler) { h.APIKeys[0].Name = "" }, "needs a name"},
		{"an API key from an unset variable is refused", func(h *Handler) { h.APIKeys[0].Secret = "{env.LG_TEST_UNSET_KEY}" }, "api_key partner: the secret is empty or shorter than 16"},
		{"a short API key is refused", func(h *Handler) { h.APIKeys[0].Secret = "{env.LG_TEST_SHORT_KEY}" }, "shorter than 16"},
		{"two keys with one name are refused", func(h *Handler) { h.APIKeys[1].Name = "partner" }, "configured twice"},
		{"two keys with one secret are refused", func(h *Handler) { h.APIKeys[1].Secret = partnerSecret }, "same secret"},
		{"a key's product outside the catalog is refused", func(h *Handler) { h.APIKeys[0].Products = []string{"axesFlip"} }, `"axesFlip" is not in products`},
		{"negative max_credits are refused", func(h *Handler) { n := int64(-1); h.APIKeys[0].MaxCredits = &n }, "max_credits"},
		{"an empty product is refused", func(h *Handler) { h.Products = []string{""} }, "product name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &Handler{}
			err := func() (err error) {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("panic: %v", r)
					}
				}()
				base, _, _ := testHandler(t)
				*h = Handler{Issuer: base.Issuer, SigningKeys: base.SigningKeys, Audiences: base.Audiences,
					Products: append([]string(nil), base.Products...), APIKeys: append([]APIKey(nil), base.APIKeys...)}
				tc.mod(h)
				return h.provision()
			}()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			for _, s := range []string{partnerSecret, shopSecret, openSecret, "short-secret"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("the error shows a secret: %v", err)
				}
			}
		})
	}
}

func TestAPIKeysAreSecretsFromPlaceholders(t *testing.T) {
	t.Setenv("LG_TEST_PARTNER_KEY", "from-the-environment-0123")
	h, _, _ := testHandler(t, func(h *Handler) { h.APIKeys[0].Secret = "{env.LG_TEST_PARTNER_KEY}" })
	if w := post(t, h, PathAxes4, "{env.LG_TEST_PARTNER_KEY}", docAxes4); w.Code != 401 {
		t.Errorf("the placeholder itself authenticated: %d", w.Code)
	}
	if w := post(t, h, PathAxes4, "from-the-environment-0123", docAxes4); w.Code != 200 {
		t.Errorf("the replaced secret: %d %s", w.Code, w.Body)
	}

	// A secret file, as Docker and systemd credentials provide them, ends
	// with a newline that is no part of the key.
	path := filepath.Join(t.TempDir(), "shop-key")
	if err := os.WriteFile(path, []byte("from-a-secret-file-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, _, _ = testHandler(t, func(h *Handler) { h.APIKeys[1].Secret = "{file." + path + "}" })
	if w := post(t, h, PathData8, "from-a-secret-file-0123", `{"credits":1}`); w.Code != 200 {
		t.Errorf("the secret from a file: %d %s", w.Code, w.Body)
	}
}

func TestAuthenticateComparesEveryKey(t *testing.T) {
	h, _, _ := testHandler(t)
	for _, tc := range []struct {
		presented, want string
	}{
		{partnerSecret, "partner"}, {shopSecret, "shop"}, {openSecret, "open"},
		{"", ""}, {partnerSecret + " ", ""}, {strings.Repeat("k", 5000), ""},
	} {
		got := authenticate(h.keys, tc.presented)
		if (got == nil && tc.want != "") || (got != nil && got.name != tc.want) {
			t.Errorf("authenticate(%.10q) = %v, want %q", tc.presented, got, tc.want)
		}
	}
}

package caddyfile

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/licensegate/licensegate/module"
	"github.com/licensegate/licensegate/module/issuer"
)

// parseIssuerDirective runs ParseIssuer on the body of a license_issuer block.
func parseIssuerDirective(body string) (*issuer.Handler, error) {
	return ParseIssuer(caddyfile.NewTestDispenser("license_issuer {\n" + body + "\n}"))
}

const issuerBase = "issuer https://l.example.com\nsigning_key k.jwk\n"

func TestParseIssuerOptions(t *testing.T) {
	t.Parallel()
	base := issuer.Handler{Issuer: "https://l.example.com", SigningKeys: []string{"k.jwk"}}
	with := func(f func(*issuer.Handler)) issuer.Handler {
		h := base
		h.SigningKeys = append([]string(nil), base.SigningKeys...)
		f(&h)
		return h
	}
	tests := []struct {
		name, body string
		want       issuer.Handler
	}{
		{"issuer and one signing key are enough", "", base},
		{"signing_key repeats, the first signs", "signing_key k0.jwk", with(func(h *issuer.Handler) { h.SigningKeys = append(h.SigningKeys, "k0.jwk") })},
		{"audience repeats", "audience a\naudience b c", with(func(h *issuer.Handler) { h.Audiences = []string{"a", "b", "c"} })},
		{"default_validity takes days", "default_validity 30d", with(func(h *issuer.Handler) { h.DefaultValidity = caddy.Duration(30 * 24 * time.Hour) })},
		{"default_validity takes Go durations", "default_validity 36h30m", with(func(h *issuer.Handler) { h.DefaultValidity = dur("36h30m") })},
		{"products is the catalog", "products axesWord axesSlide", with(func(h *issuer.Handler) { h.Products = []string{"axesWord", "axesSlide"} })},
		{"max_body_size takes units", "max_body_size 8KiB", with(func(h *issuer.Handler) { h.MaxBodySize = 8 << 10 })},
		{"api_key without block keeps its placeholder", "api_key a {env.A_KEY}", with(func(h *issuer.Handler) {
			h.APIKeys = []issuer.APIKey{{Name: "a", Secret: "{env.A_KEY}"}}
		})},
		{"api_key with its grant", "api_key a {file./run/a} {\nproducts x y\nproducts z\nmax_validity 400d\nmax_credits 0\n}\napi_key b {env.B}", with(func(h *issuer.Handler) {
			h.APIKeys = []issuer.APIKey{
				{Name: "a", Secret: "{file./run/a}", Products: []string{"x", "y", "z"}, MaxValidity: caddy.Duration(400 * 24 * time.Hour), MaxCredits: ptr(int64(0))},
				{Name: "b", Secret: "{env.B}"},
			}
		})},
		{"store is the gate's store block", "store redis {\naddresses 10.0.0.1:6379 10.0.0.2:6379\npassword {env.REDIS_PASSWORD}\nprefix lg:\n}", with(func(h *issuer.Handler) {
			h.Store = &module.StoreConfig{Type: "redis", Addresses: []string{"10.0.0.1:6379", "10.0.0.2:6379"}, Password: "{env.REDIS_PASSWORD}", Prefix: "lg:"}
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseIssuerDirective(issuerBase + tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(tc.want)
				t.Errorf("got  %s\nwant %s", g, w)
			}
		})
	}
}

func TestParseIssuerErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, body, want string }{
		{"an unknown option is an error", issuerBase + "frobnicate 1", `unknown license_issuer option "frobnicate"`},
		{"a misspelt option gets a hint", issuerBase + "signing_keys k2.jwk", `unknown license_issuer option "signing_keys" (did you mean "signing_key"?)`},
		{"a misspelt api_key option gets a hint", issuerBase + "api_key a {env.A} {\nmax_credit 3\n}", `unknown api_key option "max_credit" (did you mean "max_credits"?)`},
		{"no issuer is an error", "signing_key k.jwk", "needs an issuer URL"},
		{"no signing key is an error", "issuer https://l", "needs a signing_key"},
		{"issuer takes one URL", "issuer https://a https://b\nsigning_key k", "wrong argument count"},
		{"a bad default_validity is an error", issuerBase + "default_validity soon", `bad duration "soon"`},
		{"a zero default_validity is an error", issuerBase + "default_validity 0s", "default_validity must be longer than zero"},
		{"api_key needs a secret", issuerBase + "api_key a", "api_key needs a name and a secret"},
		{"an unknown api_key option is an error", issuerBase + "api_key a {env.A} {\nmax_seats 3\n}", `unknown api_key option "max_seats"`},
		{"negative max_credits are an error", issuerBase + "api_key a {env.A} {\nmax_credits -1\n}", `max_credits: "-1" is not an integer ≥ 0`},
		{"a zero max_validity is an error", issuerBase + "api_key a {env.A} {\nmax_validity 0d\n}", "max_validity must be longer than zero"},
		{"an unknown store type is an error", issuerBase + "store etcd", `unknown store type "etcd"`},
		{"an unknown store option is an error", issuerBase + "store redis {\nfrobnicate\n}", `unknown store option "frobnicate"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseIssuerDirective(tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := ParseIssuer(caddyfile.NewTestDispenser("license_issuer extra {\n" + issuerBase + "}")); err == nil {
		t.Errorf("a directive argument was accepted")
	}
}

// TestAdaptIssuerGolden adapts a site that both issues and enforces: the
// issuer runs after basic_auth and before the gate (whose license it would
// otherwise need) and reverse_proxy, with no global order line.
func TestAdaptIssuerGolden(t *testing.T) {
	out := adaptGolden(t, "issuer")
	var order []string
	for _, r := range siteRoutes(t, out) {
		collectHandlers(r, &order)
	}
	idx := func(name string) int {
		for i, h := range order {
			if h == name {
				return i
			}
		}
		t.Fatalf("no %s handler in %v", name, order)
		return -1
	}
	if !(idx("authentication") < idx("license_issuer") && idx("license_issuer") < idx("license_gate") && idx("license_gate") < idx("reverse_proxy")) {
		t.Errorf("handler order %v: want authentication < license_issuer < license_gate < reverse_proxy", order)
	}

	// The adapted JSON decodes into the module as written.
	var h issuer.Handler
	i := bytes.Index(out, []byte(`{"api_keys"`))
	if i < 0 {
		t.Fatalf("no license_issuer config in %s", out)
	}
	if err := json.NewDecoder(bytes.NewReader(out[i:])).Decode(&h); err != nil {
		t.Fatal(err)
	}
	if h.APIKeys[0].Secret != "{env.PARTNER_A_KEY}" || h.APIKeys[1].Secret != "{file./run/secrets/shop}" || time.Duration(h.DefaultValidity) != 30*24*time.Hour {
		t.Errorf("decoded %+v", h)
	}
}

// TestReadmeIssuerBlockAdapts keeps README.md's license_issuer example
// (its "Issuing tokens" section) a Caddyfile that adapts as shown.
func TestReadmeIssuerBlockAdapts(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## Issuing tokens\n")
	if !ok {
		t.Fatal(`README.md has no "Issuing tokens" section`)
	}
	_, block, ok := strings.Cut(section, "```caddyfile\n")
	if !ok {
		t.Fatal("the section shows no Caddyfile")
	}
	block, _, _ = strings.Cut(block, "```")
	out, err := adapt(t, []byte(block))
	if err != nil {
		t.Fatalf("README.md's license_issuer example does not adapt: %v\n%s", err, block)
	}
	for _, want := range []string{`"handler":"license_issuer"`, `"max_credits":100000`, `"secret":"{env.PARTNER_A_KEY}"`, `"default_validity":2592000000000000`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("adapted README example lacks %s:\n%s", want, out)
		}
	}
}

// TestIssuerOptionListsMatchTheParser keeps IssuerOptions and
// APIKeyOptions in step with the cases of the parser's switches.
func TestIssuerOptionListsMatchTheParser(t *testing.T) {
	t.Parallel()
	cases := func(from, to string) []string { return parserCases(t, "issuer.go", from, to) }
	for _, tc := range []struct {
		what         string
		list, parsed []string
	}{
		{"license_issuer", IssuerOptions, cases("func parseIssuerOption(", "func parseAPIKey(")},
		{"api_key", APIKeyOptions, cases("func parseAPIKey(", "func positiveDuration(")},
	} {
		list := slices.Sorted(slices.Values(tc.list))
		slices.Sort(tc.parsed)
		if !slices.Equal(list, tc.parsed) {
			t.Errorf("%s: options %v, parser cases %v", tc.what, list, tc.parsed)
		}
	}
}

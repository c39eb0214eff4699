package caddyfile

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/licensegate/licensegate/module"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func dur(s string) caddy.Duration {
	d, err := caddy.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return caddy.Duration(d)
}

func ptr[T any](v T) *T { return &v }

// parse runs Parse on the body of a license_gate block.
func parse(body string) (*module.Gate, error) {
	return Parse(caddyfile.NewTestDispenser("license_gate {\n" + body + "\n}"))
}

// asJSON renders a gate as its JSON config, the form Caddy loads.
func asJSON(t *testing.T, g *module.Gate) string {
	t.Helper()
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want module.Gate
	}{
		{"jwks_url takes several URLs and repeats",
			"jwks_url https://a/jwks https://b/jwks\njwks_url https://c/jwks",
			module.Gate{JWKSURLs: []string{"https://a/jwks", "https://b/jwks", "https://c/jwks"}}},
		{"oidc_issuer", "oidc_issuer https://auth.example.com/realms/main",
			module.Gate{OIDCIssuers: []string{"https://auth.example.com/realms/main"}}},
		{"jwks_file", "jwks_file /etc/a.json\njwks_file b.json",
			module.Gate{JWKSFiles: []string{"/etc/a.json", "b.json"}}},
		{"refresh", "refresh 15m", module.Gate{Refresh: dur("15m")}},
		{"kid_refresh_interval", "kid_refresh_interval 30s", module.Gate{KidRefreshInterval: dur("30s")}},
		{"jwks_timeout", "jwks_timeout 1.5s", module.Gate{JWKSTimeout: dur("1500ms")}},
		{"jwks_max_size in MiB", "jwks_max_size 2MiB", module.Gate{JWKSMaxSize: 2 << 20}},
		{"issuer repeats and takes several", "issuer https://a\nissuer https://b https://c",
			module.Gate{Issuers: []string{"https://a", "https://b", "https://c"}}},
		{"an issuer block binds its key sources to the issuer",
			"issuer https://a {\n jwks_url https://a/jwks https://a/jwks2\n jwks_file a.json\n secret {env.A_HMAC}\n}\nissuer https://b {\n jwks_file b.json\n}",
			module.Gate{IssuerKeys: []module.IssuerKeys{
				{Issuer: "https://a", JWKSURLs: []string{"https://a/jwks", "https://a/jwks2"}, JWKSFiles: []string{"a.json"}, Secret: "{env.A_HMAC}"},
				{Issuer: "https://b", JWKSFiles: []string{"b.json"}},
			}}},
		{"a flat issuer and an issuer block stand side by side",
			"issuer https://x\njwks_file x.json\nissuer https://a {\n secret {env.A_HMAC}\n}",
			module.Gate{Issuers: []string{"https://x"}, JWKSFiles: []string{"x.json"},
				IssuerKeys: []module.IssuerKeys{{Issuer: "https://a", Secret: "{env.A_HMAC}"}}}},
		{"audience repeats", "audience api\naudience api2",
			module.Gate{Audiences: []string{"api", "api2"}}},
		{"algorithms", "algorithms RS256 PS256 ES256 EdDSA",
			module.Gate{Algorithms: []string{"RS256", "PS256", "ES256", "EdDSA"}}},
		{"secret keeps its placeholder", "secret {env.LICENSE_HMAC}", module.Gate{Secret: "{env.LICENSE_HMAC}"}},
		{"leeway", "leeway 45s", module.Gate{Leeway: ptr(dur("45s"))}},
		{"leeway 0s is kept, not the default", "leeway 0s", module.Gate{Leeway: ptr(caddy.Duration(0))}},
		{"max_token_size in KiB", "max_token_size 16KiB", module.Gate{MaxTokenSize: 16 << 10}},
		{"max_token_size in KB is decimal, as in Caddy", "max_token_size 8KB", module.Gate{MaxTokenSize: 8000}},
		{"max_token_size in KiB is binary", "max_token_size 8KiB", module.Gate{MaxTokenSize: 8 << 10}},
		{"max_token_size in bytes", "max_token_size 4096", module.Gate{MaxTokenSize: 4096}},
		{"max_token_size in MB", "max_token_size 1MB", module.Gate{MaxTokenSize: 1000000}},
		{"jwks_max_size in MiB", "jwks_max_size 2MiB", module.Gate{JWKSMaxSize: 2 << 20}},
		{"token_from header", "token_from header X-License",
			module.Gate{TokenFrom: &module.ValueSource{From: "header", Name: "X-License"}}},
		{"token_from query", "token_from query access_token",
			module.Gate{TokenFrom: &module.ValueSource{From: "query", Name: "access_token"}}},
		{"token_from cookie", "token_from cookie lic",
			module.Gate{TokenFrom: &module.ValueSource{From: "cookie", Name: "lic"}}},
		{"cache_size", "cache_size 100", module.Gate{CacheSize: 100}},
		{"require_item", "require_item axesWord", module.Gate{RequireItem: "axesWord"}},
		{"cost", "cost 3", module.Gate{Cost: ptr(int64(3))}},
		{"cost 0 is kept, not the default", "cost 0", module.Gate{Cost: ptr(int64(0))}},
		{"version_from takes several sources in order", "version_from header X-Client-Version query v",
			module.Gate{VersionFrom: []module.ValueSource{{From: "header", Name: "X-Client-Version"}, {From: "query", Name: "v"}}}},
		{"hardware_from repeats", "hardware_from header X-Hardware-Id\nhardware_from cookie hw",
			module.Gate{HardwareFrom: []module.ValueSource{{From: "header", Name: "X-Hardware-Id"}, {From: "cookie", Name: "hw"}}}},
		{"match_claim repeats and keeps placeholders", "match_claim os {http.request.header.X-Client-OS}\nmatch_claim tier gold",
			module.Gate{MatchClaims: []module.ClaimRule{{Claim: "os", Value: "{http.request.header.X-Client-OS}"}, {Claim: "tier", Value: "gold"}}}},
		{"claims renames roles", "claims {\n credits mc\n hw LockingData\n product ProductEnum\n credits_key lic\n}",
			module.Gate{Claims: map[string]string{"credits": "mc", "hw": "LockingData", "product": "ProductEnum", "credits_key": "lic"}}},
		{"store redis with every option",
			"store redis {\n addresses 10.0.0.1:6379 10.0.0.2:6379\n address 10.0.0.3:6379\n master_name mymaster\n username gate\n" +
				" password {env.REDIS_PASSWORD}\n db 3\n tls\n timeout 250ms\n pool_size 16\n prefix lg:\n}",
			module.Gate{Store: &module.StoreConfig{Type: "redis", Addresses: []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"},
				MasterName: "mymaster", Username: "gate", Password: "{env.REDIS_PASSWORD}", DB: 3, TLS: true,
				Timeout: dur("250ms"), PoolSize: 16, Prefix: "lg:"}}},
		{"store redis with revocations per request", "store redis {\n revocations per_request\n}",
			module.Gate{Store: &module.StoreConfig{Type: "redis", Revocations: "per_request"}}},
		{"store redis with revocations pushed", "store redis {\n revocations pushed\n}",
			module.Gate{Store: &module.StoreConfig{Type: "redis", Revocations: "pushed"}}},
		{"store redis with blocks off", "store redis {\n blocks off\n}",
			module.Gate{Store: &module.StoreConfig{Type: "redis", Blocks: "off"}}},
		{"store redis with blocks on", "store redis {\n blocks on\n}",
			module.Gate{Store: &module.StoreConfig{Type: "redis", Blocks: "on"}}},
		{"store redis without a block", "store redis", module.Gate{Store: &module.StoreConfig{Type: "redis"}}},
		{"durability asks for replicas", "store redis {\n durability replicas 2\n}",
			module.Gate{Store: &module.StoreConfig{Type: "redis", DurabilityReplicas: 2}}},
		{"durability with a timeout", "store redis {\n durability replicas 1 timeout 50ms\n}",
			module.Gate{Store: &module.StoreConfig{Type: "redis", DurabilityReplicas: 1, DurabilityTimeout: dur("50ms")}}},
		{"store memory", "store memory", module.Gate{Store: &module.StoreConfig{Type: "memory"}}},
		{"on_store_error fail_open", "on_store_error fail_open", module.Gate{OnStoreError: "fail_open"}},
		{"on_store_error fail_closed", "on_store_error fail_closed", module.Gate{OnStoreError: "fail_closed"}},
		{"refund_on classes and statuses", "refund_on 5xx 429\nrefund_on 4XX",
			module.Gate{RefundOn: []string{"5xx", "429", "4XX"}}},
		{"session_ttl", "session_ttl 10m", module.Gate{SessionTTL: dur("10m")}},
		{"shadow", "shadow", module.Gate{Shadow: true}},
		{"pass_preflight alone is on", "pass_preflight", module.Gate{PassPreflight: ptr(true)}},
		{"pass_preflight on", "pass_preflight on", module.Gate{PassPreflight: ptr(true)}},
		{"pass_preflight true", "pass_preflight true", module.Gate{PassPreflight: ptr(true)}},
		{"pass_preflight off", "pass_preflight off", module.Gate{PassPreflight: ptr(false)}},
		{"pass_preflight false", "pass_preflight false", module.Gate{PassPreflight: ptr(false)}},
		{"status repeats", "status maxUseCountExceed 429\nstatus notAuthorized 200",
			module.Gate{Status: map[string]int{"maxUseCountExceed": 429, "notAuthorized": 200}}},
		{"errors handle", "errors handle", module.Gate{Errors: module.ErrorsHandle}},
		{"errors respond", "errors respond", module.Gate{Errors: module.ErrorsRespond}},
		{"an empty block is the defaults", "", module.Gate{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g, err := parse(tc.body)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got, want := asJSON(t, g), asJSON(t, &tc.want); got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestParseWithoutBlock(t *testing.T) {
	t.Parallel()
	g, err := Parse(caddyfile.NewTestDispenser("license_gate"))
	if err != nil || asJSON(t, g) != "{}" {
		t.Fatalf("bare directive: %v %s", err, asJSON(t, g))
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want string
	}{
		{"an unknown option", "colour red", `unknown license_gate option "colour"`},
		{"a misspelt option", "jwks_uri https://a", `unknown license_gate option "jwks_uri"`},

		{"jwks_url without URL", "jwks_url", "wrong argument count"},
		{"oidc_issuer without URL", "oidc_issuer", "wrong argument count"},
		{"jwks_file without path", "jwks_file", "wrong argument count"},
		{"issuer without value", "issuer", "wrong argument count"},
		{"audience without value", "audience", "wrong argument count"},
		{"algorithms without value", "algorithms", "wrong argument count"},
		{"secret without value", "secret", "wrong argument count"},
		{"secret with two values", "secret a b", "wrong argument count"},
		{"require_item with two items", "require_item a b", "wrong argument count"},
		{"refresh without value", "refresh", "wrong argument count"},
		{"leeway with two values", "leeway 1s 2s", "wrong argument count"},
		{"cost without value", "cost", "wrong argument count"},
		{"shadow with a value", "shadow yes", "wrong argument count"},
		{"pass_preflight with two values", "pass_preflight on off", "wrong argument count"},
		{"claims with an argument", "claims x {\n credits mc\n}", "wrong argument count"},
		{"a claim role without name", "claims {\n credits\n}", "wrong argument count"},
		{"store without type", "store", "store needs a type"},
		{"store with two types", "store redis memory", "wrong argument count"},

		{"a bad refresh duration", "refresh soon", `bad duration "soon"`},
		{"a negative leeway", "leeway -1s", `bad duration "-1s"`},
		{"a bad session_ttl", "session_ttl 10", `bad duration "10"`},
		{"a bad store timeout", "store redis {\n timeout fast\n}", `bad duration "fast"`},

		{"a bad max_token_size", "max_token_size big", `bad size "big"`},
		{"a zero max_token_size", "max_token_size 0", `bad size "0"`},
		{"a negative jwks_max_size", "jwks_max_size -1", `bad size "-1"`},
		{"a size with an unknown unit", "max_token_size 16QB", `bad size "16QB"`},
		{"a size over 1GiB", "max_token_size 2GiB", `bad size "2GiB"`},

		{"a status that is not a number", "status notAuthorized abc", `"abc" is not an HTTP status`},
		{"a status under 200", "status notAuthorized 199", `"199" is not an HTTP status`},
		{"a status over 599", "status notAuthorized 600", `"600" is not an HTTP status`},
		{"status without HTTP status", "status notAuthorized", "status needs an error code and an HTTP status"},
		{"status with three values", "status notAuthorized 401 x", "status needs an error code and an HTTP status"},
		{"status of an unknown code", "status notAuthorised 403", `unknown error code "notAuthorised"`},

		{"an unknown claim role", "claims {\n colour c\n}", `unknown role "colour"`},

		{"an issuer block for two issuers", "issuer https://a https://b {\n jwks_file f.json\n}", "an issuer block binds keys to one issuer, not 2"},
		{"an empty issuer block", "issuer https://a {\n}", "the block of issuer https://a is empty"},
		{"an unknown option in an issuer block", "issuer https://a {\n audience api\n}", `unknown option "audience" in the block of issuer https://a`},
		{"oidc_issuer in an issuer block", "issuer https://a {\n oidc_issuer https://a\n}", `unknown option "oidc_issuer" in the block of issuer https://a`},
		{"two secrets in an issuer block", "issuer https://a {\n secret x\n secret y\n}", "issuer https://a has two secrets"},
		{"jwks_url without URL in an issuer block", "issuer https://a {\n jwks_url\n}", "wrong argument count"},
		{"secret with two values in an issuer block", "issuer https://a {\n secret x y\n}", "wrong argument count"},

		{"an unknown store type", "store etcd", `unknown store type "etcd"`},
		{"an unknown store option", "store redis {\n colour red\n}", `unknown store option "colour"`},
		{"the memory store with options", "store memory {\n prefix x\n}", "the memory store takes no options"},
		{"a negative redis db", "store redis {\n db -1\n}", `"-1" is not an integer`},
		{"redis tls with a value", "store redis {\n tls yes\n}", "wrong argument count"},
		{"a zero pool_size", "store redis {\n pool_size 0\n}", `"0" is not an integer`},
		{"addresses without address", "store redis {\n addresses\n}", "wrong argument count"},
		{"durability without replicas", "store redis {\n durability\n}", "expected replicas <n> [timeout <duration>]"},
		{"durability of zero replicas", "store redis {\n durability replicas 0\n}", `replicas "0" is not an integer ≥ 1`},
		{"durability of many replicas", "store redis {\n durability replicas x\n}", `replicas "x" is not an integer ≥ 1`},
		{"durability with a bad timeout", "store redis {\n durability replicas 1 timeout soon\n}", `bad timeout "soon"`},
		{"durability with a word instead of timeout", "store redis {\n durability replicas 1 wait 1s\n}", "expected replicas <n> [timeout <duration>]"},
		{"durability with a timeout but no value", "store redis {\n durability replicas 1 timeout\n}", "expected replicas <n> [timeout <duration>]"},
		{"revocations of an unknown kind", "store redis {\n revocations polled\n}", `revocations must be pushed or per_request, not "polled"`},
		{"revocations without a value", "store redis {\n revocations\n}", "wrong argument count"},
		{"blocks of an unknown value", "store redis {\n blocks maybe\n}", `blocks must be on or off, not "maybe"`},
		{"blocks misspelt gets a hint", "store redis {\n blocks of\n}", `blocks must be on or off, not "of" (did you mean "on"?)`},
		{"blocks without a value", "store redis {\n blocks\n}", "wrong argument count"},
		{"blocks given twice a value", "store redis {\n blocks on off\n}", "wrong argument count"},

		{"token_from from the body", "token_from body x", `unknown source "body"`},
		{"token_from without name", "token_from header", "expected <header|query|cookie> <name>"},
		{"token_from of two sources", "token_from header A query b", "expected <header|query|cookie> <name>"},
		{"version_from of an odd count", "version_from header A query", "expected <header|query|cookie> <name>"},
		{"hardware_from of an unknown source", "hardware_from form hw", `unknown source "form"`},

		{"match_claim with one value", "match_claim os", "match_claim needs a claim name and a value"},
		{"match_claim with three values", "match_claim os linux mac", "match_claim needs a claim name and a value"},

		{"refund_on without status", "refund_on", "refund_on needs statuses"},
		{"refund_on 6xx", "refund_on 6xx", `"6xx" is neither a status nor a class`},
		{"refund_on a word", "refund_on errors", `"errors" is neither a status nor a class`},
		{"refund_on 99", "refund_on 5xx 99", `"99" is neither a status nor a class`},

		{"pass_preflight maybe", "pass_preflight maybe", `pass_preflight takes on or off, not "maybe"`},
		{"on_store_error maybe", "on_store_error maybe", `on_store_error must be fail_closed or fail_open, not "maybe"`},
		{"a negative cost", "cost -1", `"-1" is not an integer`},
		{"a cost that is not a number", "cost one", `"one" is not an integer`},
		{"a zero cache_size", "cache_size 0", `"0" is not an integer`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g, err := parse(tc.body)
			if err == nil {
				t.Fatalf("parsed: %s", asJSON(t, g))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
			// Errors name the file and line.
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("error %q names no line", err)
			}
		})
	}
}

func TestParseRejectsDirectiveArguments(t *testing.T) {
	t.Parallel()
	if _, err := Parse(caddyfile.NewTestDispenser("license_gate extra {\n jwks_url https://a\n}")); err == nil {
		t.Error("an argument after the directive was accepted")
	}
}

// adapt runs the Caddyfile adapter, as "caddy adapt" does.
func adapt(t *testing.T, src []byte) ([]byte, error) {
	t.Helper()
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": "Caddyfile"})
	for _, w := range warnings {
		t.Logf("warning: %s", w)
	}
	return out, err
}

// adaptGolden adapts testdata/<name>.caddyfile and compares the indented
// JSON with testdata/<name>.json (rewritten with -update); it returns the
// adapted config.
func adaptGolden(t *testing.T, name string) []byte {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", name+".caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := adapt(t, src)
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, out, "", "\t"); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	golden := filepath.Join("testdata", name+".json")
	if *update {
		if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./caddyfile/ -run %s -update)", err, t.Name())
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("adapted config differs from %s (rerun with -update after checking):\n%s", golden, pretty.Bytes())
	}
	return out
}

// siteRoutes returns the top-level routes of an adapted config's servers.
func siteRoutes(t *testing.T, out []byte) []json.RawMessage {
	t.Helper()
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []json.RawMessage `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	var routes []json.RawMessage
	for _, srv := range cfg.Apps.HTTP.Servers {
		routes = append(routes, srv.Routes...)
	}
	return routes
}

func TestAdaptGolden(t *testing.T) {
	out := adaptGolden(t, "full")

	// The directive sits after basic_auth and before encode and
	// reverse_proxy, with no global order line.
	// The handlers of the api.example.com route, in order.
	var order []string
	for _, r := range siteRoutes(t, out) {
		if bytes.Contains(r, []byte("api.example.com")) {
			collectHandlers(r, &order)
		}
	}
	pos := func(name string) int {
		for i, h := range order {
			if h == name {
				return i
			}
		}
		t.Fatalf("no %s handler in %v", name, order)
		return -1
	}
	if !(pos("authentication") < pos("license_gate") && pos("license_gate") < pos("encode") && pos("encode") < pos("reverse_proxy")) {
		t.Errorf("handler order %v: want authentication < license_gate < encode < reverse_proxy", order)
	}
	// Both sites have a gate; the second behind its path matcher.
	if n := strings.Count(string(out), `"handler":"license_gate"`); n != 2 {
		t.Errorf("%d license_gate handlers, want 2", n)
	}
}

// collectHandlers lists handler names in route order, depth first.
func collectHandlers(raw json.RawMessage, out *[]string) {
	var v any
	_ = json.Unmarshal(raw, &v)
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if h, ok := x["handler"].(string); ok {
				*out = append(*out, h)
			}
			for _, k := range []string{"handle", "routes"} {
				if c, ok := x[k]; ok {
					walk(c)
				}
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
}

func TestAdaptedConfigDecodesIntoTheModule(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join("testdata", "full.caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := adapt(t, src)
	if err != nil {
		t.Fatal(err)
	}
	// Find the gate's JSON and decode it strictly, as Caddy does.
	var found []json.RawMessage
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["handler"] == "license_gate" {
				b, _ := json.Marshal(x)
				found = append(found, b)
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	var v any
	_ = json.Unmarshal(out, &v)
	walk(v)
	if len(found) != 2 {
		t.Fatalf("%d gates", len(found))
	}
	gate := found[0]
	if !bytes.Contains(gate, []byte("axesWord")) {
		gate = found[1]
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(gate, &m)
	delete(m, "handler")
	b, _ := json.Marshal(m)
	var g module.Gate
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		t.Fatalf("strict decode: %v", err)
	}
	if g.RequireItem != "axesWord" || g.Store == nil || g.Store.Type != "redis" || g.Status["notAuthorized"] != 200 ||
		g.PassPreflight == nil || *g.PassPreflight || g.Claims["hw"] != "LockingData" || len(g.MatchClaims) != 2 ||
		len(g.IssuerKeys) != 1 || g.IssuerKeys[0].Secret != "{env.LICENSE2_HMAC}" || len(g.Issuers) != 1 {
		t.Errorf("decoded gate %+v", g)
	}
}

func TestAdaptErrorsNameTheLine(t *testing.T) {
	t.Parallel()
	src := "http://a.example {\n\tlicense_gate {\n\t\tjwks_url https://k/jwks\n\t\tfrobnicate 1\n\t}\n}\n"
	_, err := adapt(t, []byte(src))
	if err == nil || !strings.Contains(err.Error(), `unknown license_gate option "frobnicate"`) || !strings.Contains(err.Error(), "Caddyfile:4") {
		t.Errorf("adapt error %v", err)
	}
}

// TestParseIntegerErrorsNameTheOption: an integer error names the option,
// as the other errors do ("cost: ..."), not the bad value twice.
func TestParseIntegerErrorsNameTheOption(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ body, want string }{
		{"cost -1", `cost: "-1" is not an integer ≥ 0`},
		{"cache_size 0", `cache_size: "0" is not an integer ≥ 1`},
		{"store redis {\n db x\n}", `db: "x" is not an integer ≥ 0`},
		{"store redis {\n pool_size 0\n}", `pool_size: "0" is not an integer ≥ 1`},
	} {
		_, err := parse(tc.body)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.body, err, tc.want)
		}
	}
}

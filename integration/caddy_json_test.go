package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/licensegate/licensegate/internal/testredis"
)

// readmeCaddyJSON returns the Caddyfile directive and the handler JSON of
// README.md's "Caddy JSON" section.
func readmeCaddyJSON(t *testing.T) (directive, handler string) {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n### Caddy JSON\n")
	if !ok {
		t.Fatal(`README.md has no "### Caddy JSON" section`)
	}
	block := func(lang string) string {
		_, rest, ok := strings.Cut(section, "```"+lang+"\n")
		if !ok {
			t.Fatalf("the Caddy JSON section has no %s block", lang)
		}
		body, _, _ := strings.Cut(rest, "```")
		return body
	}
	return block("caddyfile"), block("json")
}

// TestReadmeCaddyJSON: the JSON the README shows is what `caddy adapt`
// makes of the directive it shows, and a real Caddy loads and serves it.
func TestReadmeCaddyJSON(t *testing.T) {
	t.Parallel()
	directive, handler := readmeCaddyJSON(t)
	var want map[string]any
	if err := json.Unmarshal([]byte(handler), &want); err != nil {
		t.Fatalf("README's handler JSON: %v", err)
	}

	out, err := AdaptCaddyfile(t, "http://example.com {\n"+directive+"}\n")
	if err != nil {
		t.Fatalf("adapt: %v\n%s", err, out)
	}
	cfg, _ := splitAdaptOutput(t, out)
	var adapted any
	if err := json.Unmarshal(cfg, &adapted); err != nil {
		t.Fatal(err)
	}
	var found map[string]any
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["handler"] == "license_gate" {
				found = x
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(adapted)
	if !reflect.DeepEqual(found, want) {
		got, _ := json.MarshalIndent(found, "", "  ")
		t.Errorf("caddy adapt gives\n%s\nREADME shows\n%s", got, handler)
	}

	// Load the README's handler, with a real key file and Redis, as a
	// JSON config.
	key := NewECKey(t, "k1", "ES256")
	redis := testredis.Start(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), []byte(JWKS(t, key)), 0o600); err != nil {
		t.Fatal(err)
	}
	h := strings.NewReplacer("/etc/licensegate/jwks.json", filepath.Join(dir, "jwks.json"), "127.0.0.1:6379", redis.Addr()).Replace(handler)
	port, admin := freePort(t), freePort(t)
	full := fmt.Sprintf(`{
  "admin": {"listen": "127.0.0.1:%d", "config": {"persist": false}},
  "apps": {"http": {"servers": {"srv0": {
    "listen": ["127.0.0.1:%d"],
    "automatic_https": {"disable": true},
    "routes": [{"handle": [%s, {"handler": "static_response", "body": "hello {http.license.sub}"}]}],
    "errors": {"routes": [{"handle": [{"handler": "static_response", "status_code": "{http.error.status_code}", "body": "error page: {http.license.error_code}"}]}]}
  }}}}
}`, admin, port, h)
	cfgPath := filepath.Join(dir, "caddy.json")
	if err := os.WriteFile(cfgPath, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	runBinary(t, "caddy", dir, []string{"run", "--config", cfgPath}, exEnv(dir, nil), logs, fmt.Sprintf("127.0.0.1:%d", port), nil)
	c := &Caddy{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Logs: logs, Dir: dir}

	resp, body := c.Get(t, "/", key.Sign(t, Std("items", []string{"axesWord"}, "iss", "https://license.example.com", "credits", 5)))
	if resp.StatusCode != http.StatusOK || string(body) != "hello alice" || resp.Header.Get("X-License-Credits-Remaining") != "4" {
		t.Errorf("allowed: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = c.Get(t, "/", key.Sign(t, Std("items", []string{"axesWord"}, "iss", "https://elsewhere.example")))
	if resp.StatusCode != http.StatusUnauthorized || string(body) != "error page: notAuthorized" || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("wrong issuer: %d %q %v", resp.StatusCode, body, resp.Header)
	}
}

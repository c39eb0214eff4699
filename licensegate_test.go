package licensegate

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// manifest is xcaddy.json.
type manifest struct {
	Module       string   `json:"module"`
	CaddyVersion string   `json:"caddy_version"`
	GoVersion    string   `json:"go_version"`
	XcaddyVer    string   `json:"xcaddy_version"`
	Modules      []string `json:"modules"`
	Directives   []string `json:"directives"`
	Build        string   `json:"build"`
}

// TestManifestMatchesGoMod keeps xcaddy.json in step with go.mod and with
// what the package really registers.
func TestManifestMatchesGoMod(t *testing.T) {
	raw, err := os.ReadFile("xcaddy.json")
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("xcaddy.json: %v", err)
	}
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	mod := string(gomod)
	if got := regexp.MustCompile(`(?m)^module (\S+)`).FindStringSubmatch(mod); got == nil || got[1] != m.Module {
		t.Errorf("go.mod module %v, xcaddy.json module %q", got, m.Module)
	}
	caddyVer := regexp.MustCompile(`(?m)^(?:require\s+)?\s*github.com/caddyserver/caddy/v2 (v\S+)`).FindStringSubmatch(mod)
	if caddyVer == nil || caddyVer[1] != m.CaddyVersion {
		t.Errorf("go.mod requires caddy %v, xcaddy.json says %q", caddyVer, m.CaddyVersion)
	}
	goVer := regexp.MustCompile(`(?m)^go (\S+)`).FindStringSubmatch(mod)
	if goVer == nil || !strings.HasPrefix(goVer[1], m.GoVersion) {
		t.Errorf("go.mod go %v, xcaddy.json go_version %q", goVer, m.GoVersion)
	}
	// xcaddy runs "go get" for a module given without a version; the
	// module is not published, so the build names a pseudo-version and
	// replaces it with the clone.
	if want := "xcaddy build " + m.CaddyVersion + " --with " + m.Module + "@v0.0.0-00010101000000-000000000000=<path-to-clone>"; m.Build != want {
		t.Errorf("build line %q, want %q", m.Build, want)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	// README's Building section shows the same lines CI runs.
	_, building, _ := strings.Cut(string(readme), "\n## Building\n")
	building, _, _ = strings.Cut(building, "\n## ")
	for _, line := range []string{"go install github.com/caddyserver/xcaddy/cmd/xcaddy@" + m.XcaddyVer, m.Build} {
		if m.XcaddyVer == "" || !strings.Contains(building, "\n"+line+"\n") {
			t.Errorf("README's Building section lacks the line %q", line)
		}
	}
	for _, id := range m.Modules {
		if _, err := caddy.GetModule(id); err != nil {
			t.Errorf("module %s is not registered: %v", id, err)
		}
	}
	// The least block each directive adapts with.
	body := map[string]string{
		"license_gate":   "jwks_file keys.json",
		"license_issuer": "issuer https://license.example.com\n\t\tsigning_key k.private.jwk.json",
	}
	for _, d := range m.Directives {
		if body[d] == "" {
			t.Errorf("directive %s has no sample block in this test", d)
			continue
		}
		// Adapting without a global order line proves the directive is
		// registered and ordered before reverse_proxy.
		cf := "http://example.com {\n\treverse_proxy 127.0.0.1:9\n\t" + d + " {\n\t\t" + body[d] + "\n\t}\n}\n"
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
		if err != nil {
			t.Errorf("directive %s does not adapt: %v", d, err)
			continue
		}
		gate, proxy := strings.Index(string(out), `"handler":"`+d+`"`), strings.Index(string(out), `"handler":"reverse_proxy"`)
		if gate < 0 || proxy < 0 || gate > proxy {
			t.Errorf("directive %s is not ordered before reverse_proxy: %s", d, out)
		}
	}
}

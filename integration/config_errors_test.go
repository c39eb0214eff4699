package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMissingJWKSFileSaysWhereAndWhy: a jwks_file that does not exist is
// named with its Caddyfile line when the Caddyfile is adapted, and the
// start fails with a short last sentence naming the working directory.
func TestMissingJWKSFileSaysWhereAndWhy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := "{\n\tadmin off\n\tpersist_config off\n}\n\nhttp://127.0.0.1:" + strconv.Itoa(freePort(t)) +
		" {\n\tlicense_gate {\n\t\tjwks_file keys/jwks.json\n\t}\n\trespond ok\n}\n"
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "run", "--config", path)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("started with a missing jwks_file:\n%s", out)
	}
	text := string(out)
	if !strings.Contains(text, `"at":"`+path+`:8"`) || !strings.Contains(text, "jwks_file does not exist") {
		t.Errorf("no warning naming %s:8:\n%s", path, text)
	}
	// Caddy prefixes the module's error with the path through the config;
	// the module's own part is the last sentence.
	want := "jwks_file keys/jwks.json: no such file in the working directory " + dir +
		" (a relative path is read from the directory Caddy runs in)"
	found := false
	for _, line := range strings.Split(text, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["level"] == "error" {
			msg, _ := m["msg"].(string)
			found = found || strings.HasSuffix(msg, ": "+want)
		}
	}
	if !found {
		t.Errorf("no error line ending with\n%s\n%s", want, text)
	}
}

// TestUnreachableRedisIsAnErrorAtStart: Caddy starts with a Redis store
// nobody answers on, and says so at ERROR right away, before any request.
func TestUnreachableRedisIsAnErrorAtStart(t *testing.T) {
	t.Parallel()
	key := NewECKey(t, "k1", "ES256")
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t)) // nothing listens there
	c := StartKeyFileGate(t, key, `
	license_gate {
		jwks_file keys.json
		store redis {
			addresses `+addr+`
			timeout 200ms
		}
	}
	respond ok`)
	WaitFor(t, 10*time.Second, "the start-up ERROR line", func() bool {
		return len(c.Logs.logLines("counter store unreachable at start; requests that count get on_store_error until it answers")) > 0
	})
	line := c.Logs.logLines("counter store unreachable at start; requests that count get on_store_error until it answers")[0]
	if line["level"] != "error" || !strings.Contains(strings.Join(anyStrings(line["addresses"]), " "), addr) {
		t.Errorf("line %v", line)
	}
}

func anyStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

package integration

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
)

// readmeCaddyfile returns the Caddyfile of README.md's Operations section.
func readmeCaddyfile(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(raw), "cat > Caddyfile <<'CADDY'\n")
	if !ok {
		t.Fatal("README.md's Operations section has no Caddyfile heredoc")
	}
	cfg, _, ok := strings.Cut(rest, "\nCADDY\n")
	if !ok {
		t.Fatal("README.md's Caddyfile heredoc is not closed")
	}
	return cfg + "\n"
}

// TestReadmeOperations follows README.md's Operations section: the
// Caddyfile it shows, with Redis, serves a token; rejects can be counted
// by code from the JSON log; a token is revoked live through the admin API.
func TestReadmeOperations(t *testing.T) {
	t.Parallel()
	r := testredis.Start(t)
	key := NewRSAKey(t, "k1", "RS256")
	up := Upstream(t, http.StatusOK)
	port, admin := freePort(t), freePort(t)

	cfg := readmeCaddyfile(t)
	for old, new := range map[string]string{
		"admin localhost:2019": fmt.Sprintf("admin 127.0.0.1:%d\n\thttp_port %d\n\tauto_https off\n\tlog {\n\t\toutput stderr\n\t\tformat json\n\t}", admin, port),
		":8080 {":              fmt.Sprintf("http://127.0.0.1:%d {", port),
		"127.0.0.1:6379":       r.Addr(),
		"localhost:9000":       hostPort(up.URL),
	} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("README's Caddyfile no longer has %q:\n%s", old, cfg)
		}
		cfg = strings.Replace(cfg, old, new, 1)
	}
	c := StartCaddyfile(t, cfg, port, admin, map[string]string{"jwks.json": JWKS(t, key)})

	claims := Std("credits", 5)
	tok, jti := key.Sign(t, claims), claims["jti"].(string)
	if resp, body := c.Get(t, "/", tok); resp.StatusCode != 200 || resp.Header.Get("X-License-Credits-Remaining") != "4" {
		t.Fatalf("allowed request: %d %s", resp.StatusCode, body)
	}
	for i := 0; i < 2; i++ {
		c.Get(t, "/", "")
	}
	if resp, body := c.Get(t, "/", key.Sign(t, Std("exp", 1000))); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("expired token: %d %s", resp.StatusCode, body)
	}

	// jq -r 'select(.msg=="license rejected") | .code' | sort | uniq -c
	var byCode map[string]int
	WaitFor(t, 5*time.Second, "the reject lines", func() bool {
		byCode = map[string]int{}
		for _, l := range c.Logs.logLines("license rejected") {
			byCode[fmt.Sprint(l["code"])]++
		}
		return byCode["notAuthorized"] == 2 && byCode["licenseExpired"] == 1
	})
	if len(byCode) != 2 {
		t.Fatalf("rejects by code from the log: %v", byCode)
	}
	// The access log names the user.
	found := false
	for _, l := range c.Logs.logLines("handled request") {
		if l["user_id"] == "alice" {
			found = true
		}
	}
	if !found {
		t.Error("no access log line with user_id alice")
	}

	// Revoke live: the next request is refused.
	adminDo(t, c, http.MethodPost, "/license-gate/revocations", `{"jti":"`+jti+`"}`, 200)
	resp, body := c.Get(t, "/", tok)
	AssertReject(t, resp, body, http.StatusUnauthorized, "notAuthorized", "")
	adminDo(t, c, http.MethodDelete, "/license-gate/revocations/"+jti, "", 200)
	if resp, body := c.Get(t, "/", tok); resp.StatusCode != 200 {
		t.Fatalf("after unrevoke: %d %s", resp.StatusCode, body)
	}
}

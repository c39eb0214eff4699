package module

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestProvisionErrorsSayWhatToFix(t *testing.T) {
	t.Parallel()
	wd, _ := os.Getwd()
	tests := []struct {
		name     string
		gate     Gate
		want     []string
		maxBytes int
	}{
		{"a missing relative jwks_file names the working directory",
			Gate{JWKSFiles: []string{"keys/missing.json"}},
			[]string{"jwks_file keys/missing.json: no such file in the working directory " + wd, "relative path"}, 200 + len(wd)},
		{"a missing absolute jwks_file says no such file",
			Gate{JWKSFiles: []string{"/nonexistent/licensegate/jwks.json"}},
			[]string{"jwks_file /nonexistent/licensegate/jwks.json: no such file"}, 80},
		{"an empty secret names its placeholder",
			Gate{Secret: "{env.LG_TEST_NEVER_SET_SECRET}"},
			[]string{"secret is empty after replacing {env.LG_TEST_NEVER_SET_SECRET}: set it"}, 200},
		{"an unknown errors mode is refused",
			Gate{JWKSFiles: []string{"x"}, Errors: "render"},
			[]string{`errors must be respond or handle, not "render"`}, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.gate
			err := provisionSteps(&g, zap.NewNop())
			t.Cleanup(func() { _ = g.Cleanup() })
			if err == nil {
				t.Fatal("provisioned")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if len(err.Error()) > tc.maxBytes {
				t.Errorf("error of %d bytes: %q", len(err.Error()), err)
			}
		})
	}
}

func TestUnknownKidRejectNamesTheKid(t *testing.T) {
	t.Parallel()
	clk := newClock()
	k := newKey(t, "k1", "ES256")
	g, _ := provisioned(t, fileGate(t, k), clk)
	out := serve(t, g, bearer(k.sign(t, claimsAt(clk), map[string]any{"kid": "rotated-2027"})))
	if out.passed || out.rec.Code != 401 || code(t, out.rec, "license") != "notAuthorized" {
		t.Fatalf("%d %s", out.rec.Code, out.rec.Body.Bytes())
	}
	if !strings.Contains(out.rec.Body.String(), `kid \"rotated-2027\", alg ES256`) {
		t.Errorf("body does not name the kid: %s", out.rec.Body.Bytes())
	}
}

func TestUnreachableRedisIsLoggedAtStartWithoutFailing(t *testing.T) {
	t.Parallel()
	addr := "127.0.0.1:" + strconv.Itoa(testredis.FreePort(t)) // nothing listens there
	core, logs := observer.New(zapcore.DebugLevel)
	g := &Gate{JWKSFiles: fileGate(t, newKey(t, "k", "ES256")).JWKSFiles,
		Store: &StoreConfig{Type: "redis", Addresses: []string{addr}, Timeout: 0}}
	g.logger = zap.New(core)
	if err := g.provisionGate(); err != nil {
		t.Fatalf("provisioning failed: %v", err)
	}
	t.Cleanup(func() { _ = g.Cleanup() })
	<-g.checkStoreAtStart(g.store.(pinger), []string{addr}, 100*time.Millisecond)
	lines := logs.FilterMessageSnippet("counter store unreachable at start").FilterLevelExact(zapcore.ErrorLevel).All()
	if len(lines) == 0 {
		t.Fatalf("no ERROR line; logs: %v", logs.All())
	}
	if got := lines[0].ContextMap()["addresses"]; got == nil || !strings.Contains(strings.Join(toStrings(got), " "), addr) {
		t.Errorf("line does not name the address: %v", lines[0].ContextMap())
	}
}

func TestReachableRedisLogsNothingAtStart(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	core, logs := observer.New(zapcore.DebugLevel)
	g := &Gate{JWKSFiles: fileGate(t, newKey(t, "k", "ES256")).JWKSFiles,
		Store: &StoreConfig{Type: "redis", Addresses: []string{srv.Addr()}, Prefix: "startcheck:"}}
	g.logger = zap.New(core)
	if err := g.provisionGate(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Cleanup() })
	<-g.checkStoreAtStart(g.store.(pinger), []string{srv.Addr()}, time.Second)
	if n := logs.FilterLevelExact(zapcore.ErrorLevel).Len(); n != 0 {
		t.Errorf("%d ERROR lines: %v", n, logs.All())
	}
}

func toStrings(v any) []string {
	switch x := v.(type) {
	case []string:
		return x
	case []any:
		out := make([]string, len(x))
		for i, e := range x {
			out[i], _ = e.(string)
		}
		return out
	}
	return nil
}

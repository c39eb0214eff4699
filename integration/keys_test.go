package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	jwxjwt "github.com/lestrrat-go/jwx/v2/jwt"
)

// Key sources end to end: every asymmetric algorithm, tokens of a second
// JOSE implementation, rotation through the unknown-kid refresh, a key
// server that fails, a kid flood, OpenID discovery, key files, and a config
// reload that keeps the fetched keys.

// keysSite is a gate with the given options in front of an echo upstream.
func keysSite(up, opts string) string {
	return fmt.Sprintf(`
	license_gate {
		%s
	}
	reverse_proxy %s`, opts, up)
}

// mustPass sends the token and fails unless the upstream answered.
func mustPass(t testing.TB, c *Caddy, tok string) {
	t.Helper()
	resp, body := c.Get(t, "/", tok)
	assertPassed(t, resp, body)
}

// jwxSign signs claims with lestrrat-go/jwx, independently of golang-jwt.
func jwxSign(t testing.TB, k *Key, alg jwa.SignatureAlgorithm, sub string) string {
	t.Helper()
	tok, err := jwxjwt.NewBuilder().
		Subject(sub).
		JwtID(fmt.Sprintf("jwx-%d", jtiSeq.Add(1))).
		IssuedAt(time.Now()).
		Expiration(time.Now().Add(time.Hour)).
		Claim("credits", 5).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.KeyIDKey, k.Kid); err != nil {
		t.Fatal(err)
	}
	signed, err := jwxjwt.Sign(tok, jwxjwt.WithKey(alg, k.Signer, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

func TestKeysEveryAlgorithm(t *testing.T) {
	t.Parallel()
	keys := []*Key{
		NewRSAKey(t, "rs256", "RS256"),
		NewRSAKey(t, "rs384", "RS384"),
		NewRSAKey(t, "rs512", "RS512"),
		NewRSAKey(t, "ps256", "PS256"),
		NewRSAKey(t, "ps512", "PS512"),
		NewECKey(t, "es256", "ES256"),
		NewECKey(t, "es384", "ES384"),
		NewECKey(t, "es512", "ES512"),
		NewEdKey(t, "ed"),
	}
	ks := NewKeyServer(t, JWKS(t, keys...))
	up := echoUpstream(t)
	c := StartCaddy(t, keysSite(hostPort(up.URL), "jwks_url "+ks.JWKSURL()))
	for _, k := range keys {
		t.Run(k.Alg+" is accepted", func(t *testing.T) {
			t.Parallel()
			mustPass(t, c, k.Sign(t, Std()))
		})
	}
	// A key of one type never verifies a token claiming another alg with
	// the same kid (an ES384 key named by an ES256 token).
	t.Run("an alg that does not fit the key is notAuthorized", func(t *testing.T) {
		t.Parallel()
		wrong := &Key{Kid: "es384", Alg: "ES256", Signer: NewECKey(t, "", "ES256").Signer}
		resp, body := c.Get(t, "/", wrong.Sign(t, Std()))
		assertRejected(t, resp, body, 401, "notAuthorized", "", "kid")
	})

	t.Run("tokens signed by lestrrat-go/jwx are accepted", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			key *Key
			alg jwa.SignatureAlgorithm
		}{
			{keys[0], jwa.RS256}, {keys[3], jwa.PS256}, {keys[5], jwa.ES256}, {keys[7], jwa.ES512}, {keys[8], jwa.EdDSA},
		} {
			tok := jwxSign(t, tc.key, tc.alg, "jwx-user")
			resp, body := c.Get(t, "/", tok)
			assertPassed(t, resp, body)
			if resp.Header.Get("X-License-Credits-Remaining") != "4" {
				t.Errorf("%s: credits of a jwx token not counted: %v", tc.alg, resp.Header)
			}
		}
	})
	if n := ks.Fetches.Load(); n != 1 {
		t.Errorf("%d key set fetches, want 1", n)
	}
}

func TestKeysRotationThroughUnknownKid(t *testing.T) {
	t.Parallel()
	k1, k2 := NewECKey(t, "k1", "ES256"), NewRSAKey(t, "k2", "PS256")
	ks := NewKeyServer(t, JWKS(t, k1))
	up := echoUpstream(t)
	// The periodic refresh (15m by default) never runs during the test.
	c := StartCaddy(t, keysSite(hostPort(up.URL), "jwks_url "+ks.JWKSURL()))
	mustPass(t, c, k1.Sign(t, Std()))
	if n := ks.Fetches.Load(); n != 1 {
		t.Fatalf("%d fetches before rotation", n)
	}

	ks.Set(JWKS(t, k1, k2), http.StatusOK)
	// The first token naming k2 starts an early refresh and is answered at
	// once from the keys at hand (no request waits for a key server); k2
	// is known as soon as that one fetch lands.
	resp, body := c.Get(t, "/", k2.Sign(t, Std()))
	assertRejected(t, resp, body, 401, "notAuthorized", "", "kid")
	WaitFor(t, 10*time.Second, "the early refresh", func() bool { return ks.Fetches.Load() == 2 })
	WaitFor(t, 10*time.Second, "k2 to be accepted", func() bool {
		resp, _ := c.Get(t, "/", k2.Sign(t, Std()))
		return resp.StatusCode == http.StatusOK
	})
	if n := ks.Fetches.Load(); n != 2 {
		t.Errorf("%d fetches after the rotation, want 2", n)
	}
	mustPass(t, c, k1.Sign(t, Std()))

	// k1 retired: its new tokens keep working until a refresh drops it
	// (the unknown-kid refresh is rate-limited, 10s by default).
	ks.Set(JWKS(t, k2), http.StatusOK)
	mustPass(t, c, k1.Sign(t, Std()))
	mustPass(t, c, k2.Sign(t, Std()))
	if n := ks.Fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want still 2", n)
	}
}

func TestKeysServerFailureKeepsCachedKeys(t *testing.T) {
	t.Parallel()
	for _, fail := range []struct {
		name   string
		break_ func(ks *KeyServer)
	}{
		{"a 500", func(ks *KeyServer) { ks.Set(`{"error":"boom"}`, http.StatusInternalServerError) }},
		{"an HTML page", func(ks *KeyServer) { ks.Set(`<html>maintenance</html>`, http.StatusOK) }},
		{"an empty key set", func(ks *KeyServer) { ks.Set(`{"keys":[]}`, http.StatusOK) }},
		{"a closed server", func(ks *KeyServer) { ks.Close() }},
	} {
		t.Run(fail.name, func(t *testing.T) {
			t.Parallel()
			k1 := NewECKey(t, "k1", "ES256")
			ks := NewKeyServer(t, JWKS(t, k1))
			up := echoUpstream(t)
			c := StartCaddy(t, keysSite(hostPort(up.URL), "jwks_url "+ks.JWKSURL()+"\n\t\trefresh 100ms"))
			mustPass(t, c, k1.Sign(t, Std()))

			fail.break_(ks)
			// Wait until a periodic refresh has failed.
			WaitFor(t, 10*time.Second, "a failed refresh", func() bool {
				return len(c.Logs.logLines("key set fetch failed; keeping the last good keys")) > 0
			})
			before := ks.Fetches.Load()
			if fail.name != "a closed server" {
				WaitFor(t, 10*time.Second, "two more failed refreshes", func() bool { return ks.Fetches.Load() >= before+2 })
			}
			// Fresh tokens (not in the verified-token cache) still pass.
			for i := 0; i < 3; i++ {
				mustPass(t, c, k1.Sign(t, Std()))
			}
			// An unknown kid is still notAuthorized, not serviceUnavailable.
			resp, body := c.Get(t, "/", k1.Sign(t, Std(), map[string]any{"kid": "k9"}))
			assertRejected(t, resp, body, 401, "notAuthorized", "", "kid")
			for _, l := range c.Logs.logLines("key set fetch failed; keeping the last good keys") {
				if l["level"] != "error" || l["have_keys"] != true {
					t.Errorf("failure line %v", l)
				}
			}
			// Logged once per failure window, not on every retry.
			if n := len(c.Logs.logLines("key set fetch failed; keeping the last good keys")); n != 1 {
				t.Errorf("%d failure lines, want 1", n)
			}
		})
	}
}

func TestKeysKidFloodIsRateLimited(t *testing.T) {
	t.Parallel()
	k1 := NewECKey(t, "k1", "ES256")
	ks := NewKeyServer(t, JWKS(t, k1))
	up := echoUpstream(t)
	c := StartCaddy(t, keysSite(hostPort(up.URL), "jwks_url "+ks.JWKSURL()))
	mustPass(t, c, k1.Sign(t, Std()))

	const n = 300
	reqs := make([]*http.Request, n)
	for i := range reqs {
		kid := make([]byte, 8)
		_, _ = rand.Read(kid)
		tok := k1.Sign(t, Std(), map[string]any{"kid": hex.EncodeToString(kid)})
		reqs[i] = c.request(t, http.MethodGet, "/", "Authorization", "Bearer "+tok)
	}
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan *http.Request)
	var mu sync.Mutex
	statuses := map[int]int{}
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for req := range work {
				resp, err := httpClient.Do(req)
				if err != nil {
					t.Error(err)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
				if !bytes.Contains(body, []byte(`"license_errorCode": "notAuthorized"`)) {
					t.Errorf("flood answer %d %s", resp.StatusCode, body)
				}
			}
		}()
	}
	for _, r := range reqs {
		work <- r
	}
	close(work)
	wg.Wait()
	took := time.Since(start)
	if statuses[401] != n {
		t.Errorf("statuses %v, want %d × 401", statuses, n)
	}
	// One fetch at start, one early refresh; a third only if the flood
	// outlasted kid_refresh_interval (10s).
	limit := int64(2)
	if took > 10*time.Second {
		limit = 3
	}
	if f := ks.Fetches.Load(); f > limit {
		t.Errorf("%d unknown kids in %v caused %d key set fetches, want at most %d", n, took, f, limit)
	}
	mustPass(t, c, k1.Sign(t, Std()))
}

func TestKeysOIDCDiscovery(t *testing.T) {
	t.Parallel()
	k1 := NewRSAKey(t, "kc-1", "RS256")
	ks := NewKeyServer(t, JWKS(t, k1))
	up := echoUpstream(t)
	c := StartCaddy(t, keysSite(hostPort(up.URL), "oidc_issuer "+ks.URL))

	mustPass(t, c, k1.Sign(t, Std("iss", ks.URL, "typ", "Bearer", "azp", "app"), map[string]any{"typ": "JWT"}))
	mustPass(t, c, k1.Sign(t, Std("iss", ks.URL), map[string]any{"typ": "at+jwt"}))
	for name, iss := range map[string]any{
		"another issuer is notAuthorized":          "https://evil.example/realms/main",
		"the issuer with a slash is notAuthorized": ks.URL + "/",
		"no issuer is notAuthorized":               nil,
	} {
		resp, body := c.Get(t, "/", k1.Sign(t, Std("iss", iss)))
		if resp.StatusCode != 401 {
			t.Errorf("%s: %d", name, resp.StatusCode)
			continue
		}
		assertRejected(t, resp, body, 401, "notAuthorized", "", "issuer")
	}
	if n := ks.Fetches.Load(); n != 1 {
		t.Errorf("%d key set fetches through discovery, want 1", n)
	}
}

func TestKeysJWKSFile(t *testing.T) {
	t.Parallel()
	single := NewEdKey(t, "file-ed")
	a, b := NewECKey(t, "file-a", "ES384"), NewRSAKey(t, "file-b", "RS256")
	oneJWK, err := json.Marshal(single.PublicJWK(t))
	if err != nil {
		t.Fatal(err)
	}
	up := echoUpstream(t)
	c := StartCaddy(t, fmt.Sprintf(`
	handle /single/* {
		license_gate {
			jwks_file single.json
		}
		reverse_proxy %[1]s
	}
	handle /set/* {
		license_gate {
			jwks_file set.json
		}
		reverse_proxy %[1]s
	}`, hostPort(up.URL)), CaddyOptions{Files: map[string]string{
		"single.json": string(oneJWK),
		"set.json":    JWKS(t, a, b),
	}})
	for _, tc := range []struct {
		path string
		key  *Key
		ok   bool
	}{
		{"/single/x", single, true},
		{"/set/x", a, true},
		{"/set/x", b, true},
		{"/single/x", a, false},
		{"/set/x", single, false},
	} {
		resp, body := c.Get(t, tc.path, tc.key.Sign(t, Std()))
		if tc.ok {
			assertPassed(t, resp, body)
		} else {
			assertRejected(t, resp, body, 401, "notAuthorized", "", "kid")
		}
	}
}

func TestKeysJWKSFileErrorsStopTheConfig(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"missing file":    "",
		"only an oct key": `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`,
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "jwks.json")
		if body != "" {
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		cfg := fmt.Sprintf(`{
	admin off
}
:%d {
	license_gate {
		jwks_file %s
	}
	respond "ok"
}
`, freePort(t), path)
		p := filepath.Join(dir, "Caddyfile")
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := execValidate(p)
		if err == nil || !strings.Contains(out, "jwks_file") {
			t.Errorf("%s: validate passed or did not name jwks_file: %v\n%s", name, err, out)
		}
	}
}

func TestKeysReloadKeepsFetchedKeys(t *testing.T) {
	t.Parallel()
	k1 := NewECKey(t, "k1", "ES256")
	ks := NewKeyServer(t, JWKS(t, k1))
	up := echoUpstream(t)
	c := StartCaddy(t, keysSite(hostPort(up.URL), "jwks_url "+ks.JWKSURL()))
	mustPass(t, c, k1.Sign(t, Std()))
	if n := ks.Fetches.Load(); n != 1 {
		t.Fatalf("%d fetches at start", n)
	}
	cfg, err := os.ReadFile(filepath.Join(c.Dir, "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		loads := len(c.Logs.logLines("server running"))
		req, _ := http.NewRequest(http.MethodPost, c.AdminURL+"/load", bytes.NewReader(cfg))
		req.Header.Set("Content-Type", "text/caddyfile")
		// The same config is only reloaded when forced.
		req.Header.Set("Cache-Control", "must-revalidate")
		resp, body := Do(t, req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("reload: %d %s", resp.StatusCode, body)
		}
		WaitFor(t, 10*time.Second, "the reloaded server", func() bool { return len(c.Logs.logLines("server running")) > loads })
		if len(c.Logs.logLines("config is unchanged")) > 0 {
			t.Fatal("the reload was skipped as unchanged")
		}
		mustPass(t, c, k1.Sign(t, Std()))
	}
	if n := ks.Fetches.Load(); n != 1 {
		t.Errorf("%d key set fetches after two reloads, want 1 (the key set is shared across reloads)", n)
	}
	// The shared key set still refreshes on an unknown kid after the reload.
	k2 := NewECKey(t, "k2", "ES256")
	ks.Set(JWKS(t, k1, k2), http.StatusOK)
	_, _ = c.Get(t, "/", k2.Sign(t, Std())) // starts the early refresh
	WaitFor(t, 10*time.Second, "k2 to be accepted", func() bool {
		resp, _ := c.Get(t, "/", k2.Sign(t, Std()))
		return resp.StatusCode == http.StatusOK
	})
	if n := ks.Fetches.Load(); n != 2 {
		t.Errorf("%d fetches after rotation, want 2", n)
	}
}

// execValidate runs "licensegate validate" on a Caddyfile.
func execValidate(path string) (string, error) {
	out, err := exec.Command(binPath, "validate", "--config", path, "--adapter", "caddyfile").CombinedOutput()
	return string(out), err
}

// TestKeysUnknownKeyTypesAreSkipped: a key set that also publishes keys the
// gate cannot use (a post-quantum kty, an oct key, an encryption key, a
// malformed key) still loads its usable keys (RFC 7517 §5).
func TestKeysUnknownKeyTypesAreSkipped(t *testing.T) {
	t.Parallel()
	k1 := NewECKey(t, "k1", "ES256")
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(JWKS(t, k1)), &doc); err != nil {
		t.Fatal(err)
	}
	enc := NewRSAKey(t, "enc", "RS256").PublicJWK(t)
	enc["use"] = "enc"
	doc.Keys = append([]map[string]any{
		{"kty": "AKP", "alg": "ML-DSA-44", "kid": "pq", "pub": "AAAA"},
		{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
		{"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
		enc,
	}, doc.Keys...)
	b, _ := json.Marshal(doc)
	ks := NewKeyServer(t, string(b))
	up := echoUpstream(t)
	c := StartCaddy(t, keysSite(hostPort(up.URL), "jwks_url "+ks.JWKSURL()))
	mustPass(t, c, k1.Sign(t, Std()))
	WaitFor(t, 5*time.Second, "the refused keys logged", func() bool {
		return len(c.Logs.logLines("key refused")) >= 4
	})
}

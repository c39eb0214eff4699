package integration

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
)

// A key speaks only for its issuer: through real Caddy, a token signed
// with one issuer's key and claiming another issuer is refused, however
// the two are configured side by side.

const issuerHMAC = "issuer-binding-hmac-secret-0123456789abcdef"

// hs256 signs claims with an HMAC secret.
func hs256(t testing.TB, secret string, claims Claims) string {
	t.Helper()
	return (&Key{Alg: "HS256", Secret: []byte(secret)}).Sign(t, claims)
}

// TestIssuerKeysForgedIssuerIsRefused: the configurations below are the
// ones where, before keys were bound to issuers, any configured key
// verified a token claiming any accepted issuer.
func TestIssuerKeysForgedIssuerIsRefused(t *testing.T) {
	t.Parallel()
	kA, kB, kF := NewECKey(t, "a1", "ES256"), NewECKey(t, "b1", "ES256"), NewECKey(t, "f1", "ES256")
	ksA, ksB := NewKeyServer(t, JWKS(t, kA)), NewKeyServer(t, JWKS(t, kB))
	const issF, issD = "https://files.example", "https://hmac.example"
	up := echoUpstream(t)
	c := StartCaddy(t, fmt.Sprintf(`
	handle /two-oidc/* {
		license_gate {
			oidc_issuer %[1]s
			oidc_issuer %[2]s
		}
		reverse_proxy %[3]s
	}
	handle /oidc-file/* {
		license_gate {
			oidc_issuer %[1]s
			issuer %[4]s
			jwks_file f.json
		}
		reverse_proxy %[3]s
	}
	handle /oidc-secret/* {
		license_gate {
			oidc_issuer %[1]s
			issuer %[5]s
			secret {env.ISSUER_HMAC}
		}
		reverse_proxy %[3]s
	}`, ksA.URL, ksB.URL, hostPort(up.URL), issF, issD),
		CaddyOptions{Files: map[string]string{"f.json": JWKS(t, kF)}, Env: []string{"ISSUER_HMAC=" + issuerHMAC}})

	rows := []struct {
		name, path, token string
		ok                bool
		detail            string
	}{
		{"A's key for A passes", "/two-oidc/x", kA.Sign(t, Std("iss", ksA.URL)), true, ""},
		{"B's key for B passes", "/two-oidc/x", kB.Sign(t, Std("iss", ksB.URL)), true, ""},
		{"B's key claiming A is notAuthorized", "/two-oidc/x", kB.Sign(t, Std("iss", ksA.URL, "sub", "victim")), false, "kid"},
		{"A's key claiming B is notAuthorized", "/two-oidc/x", kA.Sign(t, Std("iss", ksB.URL)), false, "kid"},

		{"the file's key for its issuer passes", "/oidc-file/x", kF.Sign(t, Std("iss", issF)), true, ""},
		{"the file's key claiming the oidc issuer is notAuthorized", "/oidc-file/x", kF.Sign(t, Std("iss", ksA.URL, "sub", "victim")), false, "kid"},
		{"the oidc issuer's key claiming the file's issuer is notAuthorized", "/oidc-file/x", kA.Sign(t, Std("iss", issF)), false, "kid"},

		{"the secret for its issuer passes", "/oidc-secret/x", hs256(t, issuerHMAC, Std("iss", issD)), true, ""},
		{"the secret claiming the oidc issuer is notAuthorized", "/oidc-secret/x", hs256(t, issuerHMAC, Std("iss", ksA.URL, "sub", "victim")), false, "secret"},
		{"the oidc issuer's key still passes beside the secret", "/oidc-secret/x", kA.Sign(t, Std("iss", ksA.URL)), true, ""},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			resp, body := c.Get(t, r.path, r.token)
			if r.ok {
				assertPassed(t, resp, body)
				return
			}
			assertRejected(t, resp, body, http.StatusUnauthorized, "notAuthorized", "", r.detail)
		})
	}
}

// TestIssuerKeysBlocks: the issuer block binds jwks_url, jwks_file and
// secret to its issuer, beside an oidc_issuer.
func TestIssuerKeysBlocks(t *testing.T) {
	t.Parallel()
	kA, kF, kU := NewECKey(t, "a1", "ES256"), NewECKey(t, "f1", "ES256"), NewEdKey(t, "u1")
	ksA, ksU := NewKeyServer(t, JWKS(t, kA)), NewKeyServer(t, JWKS(t, kU))
	const issF, issU = "https://files.example", "https://url.example"
	up := echoUpstream(t)
	c := StartCaddy(t, fmt.Sprintf(`
	license_gate {
		oidc_issuer %[1]s
		issuer %[2]s {
			jwks_file f.json
			secret {env.ISSUER_HMAC}
		}
		issuer %[3]s {
			jwks_url %[4]s
		}
	}
	reverse_proxy %[5]s`, ksA.URL, issF, issU, ksU.JWKSURL(), hostPort(up.URL)),
		CaddyOptions{Files: map[string]string{"f.json": JWKS(t, kF)}, Env: []string{"ISSUER_HMAC=" + issuerHMAC}})

	for _, r := range []struct {
		name, token string
		ok          bool
		detail      string
	}{
		{"the oidc issuer's key passes", kA.Sign(t, Std("iss", ksA.URL)), true, ""},
		{"a block's key file passes for its issuer", kF.Sign(t, Std("iss", issF)), true, ""},
		{"a block's secret passes for its issuer", hs256(t, issuerHMAC, Std("iss", issF)), true, ""},
		{"a block's key URL passes for its issuer", kU.Sign(t, Std("iss", issU)), true, ""},
		{"a block's key file claiming another block's issuer is notAuthorized", kF.Sign(t, Std("iss", issU)), false, "kid"},
		{"a block's secret claiming the oidc issuer is notAuthorized", hs256(t, issuerHMAC, Std("iss", ksA.URL)), false, "secret"},
		{"a block's key URL claiming the oidc issuer is notAuthorized", kU.Sign(t, Std("iss", ksA.URL)), false, "kid"},
		{"an issuer the gate does not name is notAuthorized", kF.Sign(t, Std("iss", "https://evil.example")), false, "issuer"},
		{"a token without iss is notAuthorized", kF.Sign(t, Std()), false, "issuer"},
	} {
		resp, body := c.Get(t, "/", r.token)
		if r.ok {
			assertPassed(t, resp, body)
			continue
		}
		rb := assertRejected(t, resp, body, http.StatusUnauthorized, "notAuthorized", "", r.detail)
		if t.Failed() {
			t.Fatalf("%s: %+v", r.name, rb)
		}
	}
}

// TestIssuerKeysUnboundSourcesStopTheConfig: flat key sources that cannot
// be bound to one issuer are a configuration error, and the message shows
// the block form.
func TestIssuerKeysUnboundSourcesStopTheConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, opts string
		want       []string
	}{
		{"two issuers with a flat jwks_url",
			"jwks_url https://a.example/jwks.json\n\t\tissuer https://a.example\n\t\tissuer https://b.example",
			[]string{"not bound to an issuer", "issuer https://a.example { jwks_url https://a.example/jwks.json }"}},
		{"an oidc_issuer with a flat jwks_file and no issuer",
			"oidc_issuer https://auth.example\n\t\tjwks_file /etc/licensegate/jwks.json",
			[]string{"not bound to an issuer", "issuer <iss> { jwks_file /etc/licensegate/jwks.json }"}},
		{"an oidc_issuer with a flat secret and no issuer",
			"oidc_issuer https://auth.example\n\t\tsecret " + issuerHMAC,
			[]string{"not bound to an issuer", "issuer <iss> { secret <hmac key> }"}},
	} {
		cfg := fmt.Sprintf("{\n\tadmin off\n}\n:%d {\n\tlicense_gate {\n\t\t%s\n\t}\n\trespond \"ok\"\n}\n", freePort(t), tc.opts)
		out, err := execValidate(writeCaddyfile(t, cfg))
		if err == nil {
			t.Errorf("%s: validated", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.name, w, out)
			}
		}
		if strings.Contains(out, issuerHMAC) {
			t.Errorf("%s: the output shows the secret", tc.name)
		}
	}
}

// readmeKeysAndIssuers returns the Caddyfile snippet of README.md's "Keys
// and issuers" section.
func readmeKeysAndIssuers(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "### Keys and issuers\n")
	if !ok {
		t.Fatal(`README.md has no "Keys and issuers" section`)
	}
	_, rest, ok := strings.Cut(section, "```caddyfile\n")
	if !ok {
		t.Fatal(`README.md's "Keys and issuers" has no Caddyfile`)
	}
	snippet, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal(`README.md's "Keys and issuers" Caddyfile is not closed`)
	}
	return snippet
}

// TestIssuerKeysReadmeExample runs README.md's "Keys and issuers" example
// (its OpenID provider and key file replaced by loopback stand-ins): each
// issuer's tokens pass, and none of its keys vouches for another issuer.
func TestIssuerKeysReadmeExample(t *testing.T) {
	t.Parallel()
	kc, own := NewRSAKey(t, "kc", "RS256"), NewECKey(t, "own", "ES256")
	ks := NewKeyServer(t, JWKS(t, kc))
	snippet := readmeKeysAndIssuers(t)
	for old, new := range map[string]string{
		"https://auth.example.com/realms/main": ks.URL,
		"/etc/licensegate/jwks.json":           "jwks.json",
	} {
		if !strings.Contains(snippet, old) {
			t.Fatalf("README's example no longer has %q:\n%s", old, snippet)
		}
		snippet = strings.Replace(snippet, old, new, 1)
	}
	up := echoUpstream(t)
	c := StartCaddy(t, snippet+"\treverse_proxy "+hostPort(up.URL), CaddyOptions{
		Files: map[string]string{"jwks.json": JWKS(t, own)},
		Env:   []string{"DATA8_JWT_SECRET=" + issuerHMAC},
	})
	const ownIss = "https://license.example.com"
	for _, r := range []struct {
		name, token string
		ok          bool
	}{
		{"the provider's token passes", kc.Sign(t, Std("iss", ks.URL)), true},
		{"our license server's token passes", own.Sign(t, Std("iss", ownIss)), true},
		{"the partner's HMAC token passes", hs256(t, issuerHMAC, Std("iss", "Data8")), true},
		{"the partner's secret claiming the provider is notAuthorized", hs256(t, issuerHMAC, Std("iss", ks.URL)), false},
		{"our key claiming the provider is notAuthorized", own.Sign(t, Std("iss", ks.URL)), false},
		{"the provider's key claiming our license server is notAuthorized", kc.Sign(t, Std("iss", ownIss)), false},
	} {
		resp, body := c.Get(t, "/", r.token)
		if r.ok {
			assertPassed(t, resp, body)
		} else {
			assertRejected(t, resp, body, http.StatusUnauthorized, "notAuthorized", "", "")
		}
		if t.Failed() {
			t.Fatalf("%s", r.name)
		}
	}
}

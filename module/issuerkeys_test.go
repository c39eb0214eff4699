package module

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
)

// hsToken signs claims with an HMAC secret.
func hsToken(t testing.TB, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestKeysSpeakOnlyForTheirIssuer: a token claiming issuer A verifies only
// with keys bound to A. Each row's forged token is accepted when every key
// verifies every accepted issuer.
func TestKeysSpeakOnlyForTheirIssuer(t *testing.T) {
	t.Parallel()
	clk := newClock()
	ka, kb, kf := newKey(t, "a1", "ES256"), newKey(t, "b1", "ES256"), newKey(t, "f1", "ES256")
	srvA := newJWKSServer(t, jwksDoc(ka.public(t)))
	srvB := newJWKSServer(t, jwksDoc(kb.public(t)))
	file := writeFile(t, "f.json", jwksDoc(kf.public(t)))
	const secret = "issuer-d-hmac-secret-0123456789abcdef"
	const issF, issD = "https://files.example", "https://hmac.example"

	type row struct {
		name   string
		token  func() string
		passes bool
		detail string // in errorTechnical of a reject
	}
	tests := []struct {
		name string
		gate Gate
		rows []row
	}{
		{"two oidc_issuers", Gate{OIDCIssuers: []string{srvA.URL, srvB.URL}}, []row{
			{"A's key for A passes", func() string { return ka.sign(t, claimsAt(clk, "iss", srvA.URL), nil) }, true, ""},
			{"B's key for B passes", func() string { return kb.sign(t, claimsAt(clk, "iss", srvB.URL), nil) }, true, ""},
			{"B's key claiming A is notAuthorized", func() string { return kb.sign(t, claimsAt(clk, "iss", srvA.URL), nil) }, false, "kid"},
			{"B's key claiming A without kid is notAuthorized", func() string {
				return kb.sign(t, claimsAt(clk, "iss", srvA.URL), map[string]any{"kid": nil})
			}, false, "signature"},
		}},
		{"an oidc_issuer beside a flat jwks_file with its issuer", Gate{OIDCIssuers: []string{srvA.URL}, Issuers: []string{issF}, JWKSFiles: []string{file}}, []row{
			{"the file's key for its issuer passes", func() string { return kf.sign(t, claimsAt(clk, "iss", issF), nil) }, true, ""},
			{"the file's key claiming the oidc issuer is notAuthorized", func() string { return kf.sign(t, claimsAt(clk, "iss", srvA.URL), nil) }, false, "kid"},
			{"the oidc issuer's key claiming the file's issuer is notAuthorized", func() string { return ka.sign(t, claimsAt(clk, "iss", issF), nil) }, false, "kid"},
		}},
		{"an oidc_issuer beside an issuer block with a secret", Gate{OIDCIssuers: []string{srvA.URL}, IssuerKeys: []IssuerKeys{{Issuer: issD, Secret: secret}}}, []row{
			{"the secret for its issuer passes", func() string { return hsToken(t, secret, claimsAt(clk, "iss", issD)) }, true, ""},
			{"the secret claiming the oidc issuer is notAuthorized", func() string { return hsToken(t, secret, claimsAt(clk, "iss", srvA.URL)) }, false, "secret"},
			{"the oidc issuer's key still passes", func() string { return ka.sign(t, claimsAt(clk, "iss", srvA.URL), nil) }, true, ""},
		}},
		{"an oidc_issuer beside a flat secret with its issuer", Gate{OIDCIssuers: []string{srvA.URL}, Issuers: []string{issD}, Secret: secret}, []row{
			{"the secret for its issuer passes", func() string { return hsToken(t, secret, claimsAt(clk, "iss", issD)) }, true, ""},
			{"the secret claiming the oidc issuer is notAuthorized", func() string { return hsToken(t, secret, claimsAt(clk, "iss", srvA.URL)) }, false, "secret"},
		}},
		{"issuer blocks sharing one key file", Gate{IssuerKeys: []IssuerKeys{{Issuer: issF, JWKSFiles: []string{file}}, {Issuer: issD, JWKSFiles: []string{file}}}}, []row{
			{"the file's key for the first issuer passes", func() string { return kf.sign(t, claimsAt(clk, "iss", issF), nil) }, true, ""},
			{"the file's key for the second issuer passes", func() string { return kf.sign(t, claimsAt(clk, "iss", issD), nil) }, true, ""},
			{"an issuer with no block is notAuthorized", func() string { return kf.sign(t, claimsAt(clk, "iss", "https://other.example"), nil) }, false, "issuer"},
			{"a token without iss is notAuthorized", func() string { return kf.sign(t, claimsAt(clk), nil) }, false, "names no issuer"},
			{"an iss that is not a string is notAuthorized", func() string { return kf.sign(t, claimsAt(clk, "iss", 7), nil) }, false, "iss is not a string"},
		}},
		{"flat sources and no issuer verify any iss, as before", Gate{JWKSFiles: []string{file}, Secret: secret}, []row{
			{"a key-file token of any issuer passes", func() string { return kf.sign(t, claimsAt(clk, "iss", "https://any.example"), nil) }, true, ""},
			{"a key-file token without iss passes", func() string { return kf.sign(t, claimsAt(clk), nil) }, true, ""},
			{"an HMAC token of any issuer passes", func() string { return hsToken(t, secret, claimsAt(clk, "iss", "x")) }, true, ""},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := tc.gate
			provisioned(t, &g, clk)
			for _, src := range g.verifier.bindings.byIssuer {
				for _, s := range src.sources {
					waitFor(t, "the keys of "+s.name(), func() bool { return s.current() != nil })
				}
			}
			for _, r := range tc.rows {
				out := serve(t, &g, bearer(r.token()))
				if out.passed != r.passes {
					t.Errorf("%s: passed %v, want %v: %d %s", r.name, out.passed, r.passes, out.rec.Code, out.rec.Body.Bytes())
					continue
				}
				if r.passes {
					continue
				}
				if out.rec.Code != http.StatusUnauthorized || code(t, out.rec, "license") != "notAuthorized" ||
					!strings.Contains(out.rec.Body.String(), r.detail) {
					t.Errorf("%s: got %d %s, want 401 notAuthorized naming %q", r.name, out.rec.Code, out.rec.Body.Bytes(), r.detail)
				}
			}
		})
	}
}

// TestBindingErrors: key sources that cannot be bound to one issuer stop
// the config, with a message that shows the block form.
func TestBindingErrors(t *testing.T) {
	t.Parallel()
	k := newKey(t, "k", "ES256")
	file := writeFile(t, "jwks.json", jwksDoc(k.public(t)))
	const secret = "a-secret-that-must-never-appear-in-errors"
	tests := []struct {
		name    string
		g       Gate
		unbound bool     // wraps ErrUnboundKeys
		want    []string // in the message
	}{
		{"a flat jwks_url with two issuers", Gate{JWKSURLs: []string{"https://a.example/jwks.json"}, Issuers: []string{"https://a.example", "https://b.example"}},
			true, []string{"several issuers", "issuer https://a.example { jwks_url https://a.example/jwks.json }"}},
		{"a flat jwks_file beside an oidc_issuer and no issuer", Gate{JWKSFiles: []string{file}, OIDCIssuers: []string{"https://auth.example"}},
			true, []string{"jwks_file outside an issuer block", `"https://auth.example"`, "issuer <iss> { jwks_file " + file + " }"}},
		{"a flat secret beside an oidc_issuer and no issuer", Gate{Secret: secret, OIDCIssuers: []string{"https://auth.example"}},
			true, []string{"secret outside an issuer block", "issuer <iss> { secret <hmac key> }"}},
		{"a flat secret beside an issuer block and no issuer", Gate{Secret: secret, IssuerKeys: []IssuerKeys{{Issuer: "https://a.example", JWKSFiles: []string{file}}}},
			true, []string{"secret outside an issuer block"}},
		{"an issuer with no key source", Gate{Issuers: []string{"https://lonely.example"}, OIDCIssuers: []string{"https://auth.example"}},
			true, []string{`issuer "https://lonely.example" has no key source`, "issuer https://lonely.example { jwks_url <url> }"}},
		{"an issuer block with no key source", Gate{IssuerKeys: []IssuerKeys{{Issuer: "https://a.example"}}},
			false, []string{"names no key source"}},
		{"an issuer block without issuer", Gate{IssuerKeys: []IssuerKeys{{JWKSFiles: []string{file}}}},
			false, []string{"needs the issuer"}},
		{"two secrets for one issuer", Gate{Issuers: []string{"https://a.example"}, Secret: secret,
			IssuerKeys: []IssuerKeys{{Issuer: "https://a.example", Secret: secret + "-2"}}},
			false, []string{`issuer "https://a.example" has two secrets`}},
		{"a block secret empty after replacing", Gate{IssuerKeys: []IssuerKeys{{Issuer: "https://a.example", Secret: "{env.LICENSEGATE_TEST_UNSET_VARIABLE}"}}},
			false, []string{"secret is empty"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := tc.g
			err := provisionSteps(&g, zap.NewNop())
			_ = g.Cleanup()
			if err == nil {
				t.Fatal("provisioned")
			}
			if errors.Is(err, ErrUnboundKeys) != tc.unbound {
				t.Errorf("errors.Is(ErrUnboundKeys) = %v, want %v: %v", !tc.unbound, tc.unbound, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Error("the error shows the secret")
			}
		})
	}
}

// TestBindingsOfValidConfigs: which issuers each valid config accepts.
func TestBindingsOfValidConfigs(t *testing.T) {
	k := newKey(t, "k", "ES256")
	file := writeFile(t, "jwks.json", jwksDoc(k.public(t)))
	t.Setenv("LICENSEGATE_TEST_ISSUER", "https://env.example")
	tests := []struct {
		name    string
		g       Gate
		accepts []string
		refuses []string
	}{
		{"one flat issuer binds the flat sources", Gate{JWKSFiles: []string{file}, Issuers: []string{"https://a.example"}},
			[]string{"https://a.example"}, []string{"", "https://b.example"}},
		{"a flat issuer named twice is one issuer", Gate{JWKSFiles: []string{file}, Issuers: []string{"https://a.example", "https://a.example"}},
			[]string{"https://a.example"}, []string{"https://b.example"}},
		{"a flat issuer that is also the oidc_issuer", Gate{JWKSFiles: []string{file}, Issuers: []string{"https://a.example"}, OIDCIssuers: []string{"https://a.example"}},
			[]string{"https://a.example"}, []string{"https://b.example"}},
		{"an issuer with a placeholder", Gate{JWKSFiles: []string{file}, Issuers: []string{"{env.LICENSEGATE_TEST_ISSUER}"}},
			[]string{"https://env.example"}, []string{"{env.LICENSEGATE_TEST_ISSUER}"}},
		{"no issuer accepts any", Gate{JWKSFiles: []string{file}}, []string{"", "https://any.example"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.g
			provisioned(t, &g, nil)
			for _, iss := range tc.accepts {
				if !g.verifier.bindings.accepts(iss) {
					t.Errorf("%q refused", iss)
				}
			}
			for _, iss := range tc.refuses {
				if g.verifier.bindings.accepts(iss) {
					t.Errorf("%q accepted", iss)
				}
			}
		})
	}
}

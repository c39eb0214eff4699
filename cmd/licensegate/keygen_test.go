package main

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/spf13/cobra"
)

// runCmd runs a subcommand the way the binary would (same flags, same RunE)
// and returns its stdout.
func runCmd(t *testing.T, setup func(*cobra.Command), args ...string) (string, error) {
	t.Helper()
	cmd := &cobra.Command{Use: "test", SilenceUsage: true, SilenceErrors: true}
	setup(cmd)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// keygen runs license-keygen into a temp dir; it returns the private key
// and JWKS paths.
func keygen(t *testing.T, args ...string) (privPath, jwksPath string) {
	t.Helper()
	dir := t.TempDir()
	privPath = filepath.Join(dir, "private.jwk.json")
	jwksPath = filepath.Join(dir, "jwks.json")
	args = append([]string{"--out-private", privPath, "--out-jwks", jwksPath}, args...)
	if _, err := runCmd(t, keygenCobra, args...); err != nil {
		t.Fatalf("license-keygen %v: %v", args, err)
	}
	return privPath, jwksPath
}

// privateMembers are the JWK members that must never appear in a JWKS.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

func TestCommandsRegistered(t *testing.T) {
	cmds := caddycmd.Commands()
	for _, name := range []string{"license-keygen", "license-token"} {
		c, ok := cmds[name]
		if !ok {
			t.Errorf("%s is not registered", name)
			continue
		}
		if c.CobraFunc == nil || c.Short == "" || c.Long == "" || c.Usage == "" {
			t.Errorf("%s: incomplete registration %+v", name, c)
		}
	}
}

func TestKeygenAlgorithms(t *testing.T) {
	cases := []struct {
		alg, kty, crv string
	}{
		{"RS256", "RSA", ""},
		{"PS256", "RSA", ""},
		{"ES256", "EC", "P-256"},
		{"ES384", "EC", "P-384"},
		{"ES512", "EC", "P-521"},
		{"EdDSA", "OKP", "Ed25519"},
	}
	for _, tc := range cases {
		t.Run(tc.alg, func(t *testing.T) {
			privPath, jwksPath := keygen(t, "--alg", tc.alg)

			// private key file: mode 0600, kid/alg/use, private material
			st, err := os.Stat(privPath)
			if err != nil {
				t.Fatal(err)
			}
			if mode := st.Mode().Perm(); mode != 0o600 {
				t.Errorf("private key mode = %o, want 600", mode)
			}
			priv := readJSON(t, privPath)
			if priv["alg"] != tc.alg || priv["use"] != "sig" || priv["kty"] != tc.kty {
				t.Errorf("private JWK alg/use/kty = %v/%v/%v", priv["alg"], priv["use"], priv["kty"])
			}
			if tc.crv != "" && priv["crv"] != tc.crv {
				t.Errorf("crv = %v, want %s", priv["crv"], tc.crv)
			}
			if _, ok := priv["d"]; !ok {
				t.Error(`private JWK has no "d"`)
			}
			kid, _ := priv["kid"].(string)
			if kid == "" {
				t.Fatal("private JWK has no kid")
			}
			// default kid: RFC 7638 thumbprint
			pk, err := jwk.ParseKey(mustRead(t, privPath))
			if err != nil {
				t.Fatal(err)
			}
			tp, err := pk.Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if want := base64.RawURLEncoding.EncodeToString(tp); kid != want {
				t.Errorf("kid = %q, want thumbprint %q", kid, want)
			}

			// JWKS: one key, public only, same kid/alg/use
			set := readJSON(t, jwksPath)
			if len(set) != 1 {
				t.Errorf("JWKS has members %v, want only keys", keysOf(set))
			}
			keys, _ := set["keys"].([]any)
			if len(keys) != 1 {
				t.Fatalf("JWKS keys = %v", set["keys"])
			}
			pub := keys[0].(map[string]any)
			for _, m := range privateMembers {
				if _, ok := pub[m]; ok {
					t.Errorf("JWKS key has private member %q", m)
				}
			}
			if pub["kid"] != kid || pub["alg"] != tc.alg || pub["use"] != "sig" || pub["kty"] != tc.kty {
				t.Errorf("JWKS key kid/alg/use/kty = %v/%v/%v/%v", pub["kid"], pub["alg"], pub["use"], pub["kty"])
			}

			// a token signed with the private key verifies against the JWKS
			tok := mintToken(t, "--key", privPath, "--sub", "alice")
			parseWithJWKS(t, tok, jwksPath)
		})
	}
}

func TestKeygenKidAndBits(t *testing.T) {
	privPath, jwksPath := keygen(t, "--alg", "rs256", "--kid", "demo-rs256", "--bits", "3072")
	priv := readJSON(t, privPath)
	if priv["kid"] != "demo-rs256" || priv["alg"] != "RS256" {
		t.Errorf("kid/alg = %v/%v", priv["kid"], priv["alg"])
	}
	n, _ := base64.RawURLEncoding.DecodeString(priv["n"].(string))
	if bits := len(n) * 8; bits != 3072 {
		t.Errorf("modulus has %d bits, want 3072", bits)
	}
	pub := readJSON(t, jwksPath)["keys"].([]any)[0].(map[string]any)
	if pub["kid"] != "demo-rs256" {
		t.Errorf("JWKS kid = %v", pub["kid"])
	}
}

func TestKeygenRefusesWeakRSA(t *testing.T) {
	for _, bits := range []string{"1024", "2047", "512"} {
		dir := t.TempDir()
		priv := filepath.Join(dir, "p.json")
		_, err := runCmd(t, keygenCobra, "--alg", "RS256", "--bits", bits,
			"--out-private", priv, "--out-jwks", filepath.Join(dir, "j.json"))
		if err == nil || !strings.Contains(err.Error(), "at least 2048 bits") {
			t.Errorf("--bits %s: err = %v, want refusal", bits, err)
		}
		if _, err := os.Stat(priv); err == nil {
			t.Errorf("--bits %s: private key written despite the refusal", bits)
		}
	}
}

func TestKeygenBadFlags(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "exists.json")
	if err := os.WriteFile(existing, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "p.json")
	j := filepath.Join(dir, "j.json")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no alg", []string{"--out-private", p, "--out-jwks", j}, "--alg is required"},
		{"hmac alg", []string{"--alg", "HS256", "--out-private", p, "--out-jwks", j}, `unsupported --alg "HS256"`},
		{"none alg", []string{"--alg", "none", "--out-private", p, "--out-jwks", j}, "unsupported --alg"},
		{"bits for EC", []string{"--alg", "ES256", "--bits", "4096", "--out-private", p, "--out-jwks", j}, "--bits applies to RSA algorithms only"},
		{"huge RSA", []string{"--alg", "RS256", "--bits", "65536", "--out-private", p, "--out-jwks", j}, "at most 16384"},
		{"empty kid", []string{"--alg", "ES256", "--kid", "", "--out-private", p, "--out-jwks", j}, "--kid must not be empty"},
		{"same file", []string{"--alg", "ES256", "--out-private", p, "--out-jwks", p}, "are the same file"},
		{"exists", []string{"--alg", "ES256", "--out-private", existing, "--out-jwks", j}, "already exists; use --force"},
		{"positional arg", []string{"--alg", "ES256", "extra"}, "unknown command"},
		{"unknown flag", []string{"--alg", "ES256", "--curve", "P-256"}, "unknown flag"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runCmd(t, keygenCobra, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := os.Stat(j); err == nil {
		t.Error("a failed keygen wrote the JWKS")
	}
}

func TestKeygenForceOverwrites(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "p.json")
	j := filepath.Join(dir, "j.json")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runCmd(t, keygenCobra, "--alg", "EdDSA", "--out-private", p, "--out-jwks", j, "--force"); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("overwritten private key mode = %o, want 600", st.Mode().Perm())
	}
	if readJSON(t, p)["kty"] != "OKP" {
		t.Error("private key not overwritten")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

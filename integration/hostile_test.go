package integration

import (
	"bytes"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/licensegate/licensegate/internal/testredis"
)

// Hostile input end to end: every known JWT and JWKS attack through the
// real binary, each group next to valid tokens that still pass on the same
// Caddy. Foundation and keys tests already cover typ, oversized tokens,
// tampered payloads, unknown kids, a kid flood and a failing key server
// (500, HTML, empty set, closed); these cover the rest.

// b64s is the segment encoding of a JWS.
func b64s(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// rawSign signs header and claims given as JSON text with k, so the token
// carries exactly these bytes: duplicates, nesting and all.
func rawSign(t testing.TB, k *Key, header, claims string) string {
	t.Helper()
	input := b64s(header) + "." + b64s(claims)
	var key any = k.Signer
	if k.Secret != nil {
		key = k.Secret
	}
	sig, err := jwt.GetSigningMethod(k.Alg).Sign(input, key)
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// expIn is an exp claim value an hour ahead, as JSON text.
func expIn() string { return strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10) }

// hostileRow is one request through the hostile site.
type hostileRow struct {
	name    string
	path    string   // default "/"
	token   string   // sent as a bearer token unless headers are given
	headers []string // name, value pairs replacing the Authorization header
	status  int      // 200: passed to the upstream
	code    string
	detail  string // in errorTechnical
}

// runRows sends every row in parallel and checks status, code and body.
func runRows(t *testing.T, c *Caddy, rows []hostileRow) {
	t.Helper()
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := tc.path
			if path == "" {
				path = "/"
			}
			headers := tc.headers
			if headers == nil && tc.token != "" {
				headers = []string{"Authorization", "Bearer " + tc.token}
			}
			resp, body := Do(t, c.request(t, http.MethodGet, path, headers...))
			if tc.status == 200 {
				assertPassed(t, resp, body)
				return
			}
			rb := assertRejected(t, resp, body, tc.status, tc.code, "", tc.detail)
			if tc.token != "" && len(tc.token) > 20 && strings.Contains(string(body)+resp.Header.Get("WWW-Authenticate"), tc.token) {
				t.Errorf("the reject echoes the token")
			}
			_ = rb
		})
	}
}

// hostileSite: "/" verifies against the key server, "/query/*" reads the
// token from the query, "/hs/*" also has an HMAC secret.
func hostileSite(ks *KeyServer, up string) string {
	return fmt.Sprintf(`
	handle /query/* {
		license_gate {
			jwks_url %[1]s
			token_from query access_token
		}
		reverse_proxy %[2]s
	}
	handle /hs/* {
		license_gate {
			jwks_url %[1]s
			secret {env.HOSTILE_HMAC}
		}
		reverse_proxy %[2]s
	}
	handle {
		license_gate {
			jwks_url %[1]s
		}
		reverse_proxy %[2]s
	}`, ks.JWKSURL(), up)
}

const hostileHMAC = "hostile-hmac-secret-0123456789abcdef"

// hostileKeys are the trusted keys of the hostile site.
type hostileKeys struct {
	rs, es, ed *Key
	ks         *KeyServer
	c          *Caddy
}

func startHostile(t *testing.T) *hostileKeys {
	t.Helper()
	h := &hostileKeys{rs: NewRSAKey(t, "rs", "RS256"), es: NewECKey(t, "es", "ES256"), ed: NewEdKey(t, "ed")}
	h.ks = NewKeyServer(t, JWKS(t, h.rs, h.es, h.ed))
	up := echoUpstream(t)
	h.c = StartCaddy(t, hostileSite(h.ks, hostPort(up.URL)), CaddyOptions{Env: []string{"HOSTILE_HMAC=" + hostileHMAC}})
	return h
}

func TestHostileAlgorithms(t *testing.T) {
	t.Parallel()
	h := startHostile(t)
	claims := b64s(`{"sub":"mallory","exp":` + expIn() + `}`)
	none := func(alg, sig string) string {
		return b64s(`{"alg":"`+alg+`","kid":"rs"}`) + "." + claims + "." + sig
	}
	pubDER, err := x509.MarshalPKIXPublicKey(h.rs.Signer.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hsWith := func(secret []byte, kid string) string {
		return (&Key{Kid: kid, Alg: "HS256", Secret: secret}).Sign(t, Std("sub", "mallory"))
	}
	other := struct{ rsa, ec, ec384 *Key }{NewRSAKey(t, "", "RS256"), NewECKey(t, "", "ES256"), NewECKey(t, "", "ES384")}
	// as signs with signer's key but names kid and alg.
	as := func(signer *Key, kid, alg string) string {
		return (&Key{Kid: kid, Alg: alg, Signer: signer.Signer}).Sign(t, Std())
	}

	rows := []hostileRow{
		{name: "an RS256 token passes", token: h.rs.Sign(t, Std()), status: 200},
		{name: "an ES256 token passes", token: h.es.Sign(t, Std()), status: 200},
		{name: "an EdDSA token passes", token: h.ed.Sign(t, Std()), status: 200},
		{name: "an HS256 token with the configured secret passes where a secret is set", path: "/hs/x",
			token: hsWith([]byte(hostileHMAC), ""), status: 200},
	}
	// alg none, in every casing, with and without a signature.
	for _, alg := range []string{"none", "None", "NONE", "nOnE", "none "} {
		for _, sig := range []string{"", b64s("sig")} {
			rows = append(rows, hostileRow{name: fmt.Sprintf("alg %q with signature %q is notAuthorized", alg, sig),
				token: none(alg, sig), status: 401, code: "notAuthorized", detail: "not verified"})
			rows = append(rows, hostileRow{name: fmt.Sprintf("alg %q with signature %q is notAuthorized where a secret is set", alg, sig),
				path: "/hs/x", token: none(alg, sig), status: 401, code: "notAuthorized", detail: "not verified"})
		}
	}
	rows = append(rows,
		hostileRow{name: "no alg is notAuthorized", token: b64s(`{"kid":"rs"}`) + "." + claims + ".", status: 401, code: "notAuthorized"},
		hostileRow{name: "an alg that is not a string is notAuthorized", token: b64s(`{"alg":256,"kid":"rs"}`) + "." + claims + ".", status: 401, code: "notAuthorized"},
		hostileRow{name: "an unknown alg is notAuthorized", token: b64s(`{"alg":"RS1","kid":"rs"}`) + "." + claims + "." + b64s("x"), status: 401, code: "notAuthorized"},

		// Algorithm confusion: the RSA public key as an HMAC secret.
		hostileRow{name: "HS256 signed with the RSA public key (PEM) is notAuthorized", token: hsWith(pubPEM, "rs"), status: 401, code: "notAuthorized", detail: "HS256"},
		hostileRow{name: "HS256 signed with the RSA public key (DER) is notAuthorized", token: hsWith(pubDER, "rs"), status: 401, code: "notAuthorized", detail: "HS256"},
		hostileRow{name: "HS256 signed with the RSA public key is notAuthorized where a secret is set", path: "/hs/x",
			token: hsWith(pubPEM, "rs"), status: 401, code: "notAuthorized", detail: "not verified"},
		hostileRow{name: "HS256 signed with the RSA modulus is notAuthorized where a secret is set", path: "/hs/x",
			token: hsWith(h.rs.Signer.Public().(*rsa.PublicKey).N.Bytes(), "rs"), status: 401, code: "notAuthorized", detail: "not verified"},
		hostileRow{name: "HS256 without a secret configured is notAuthorized", token: hsWith([]byte(hostileHMAC), ""), status: 401, code: "notAuthorized", detail: "HS256"},

		// An algorithm that does not fit the key's type.
		hostileRow{name: "ES256 naming the RSA key is notAuthorized", token: as(other.ec, "rs", "ES256"), status: 401, code: "notAuthorized", detail: "kid"},
		hostileRow{name: "RS256 naming the EC key is notAuthorized", token: as(other.rsa, "es", "RS256"), status: 401, code: "notAuthorized", detail: "kid"},
		hostileRow{name: "PS256 naming the EC key is notAuthorized", token: as(other.rsa, "es", "PS256"), status: 401, code: "notAuthorized", detail: "kid"},
		hostileRow{name: "ES384 naming the P-256 key is notAuthorized", token: as(other.ec384, "es", "ES384"), status: 401, code: "notAuthorized", detail: "kid"},
		hostileRow{name: "ES256 naming the Ed25519 key is notAuthorized", token: as(other.ec, "ed", "ES256"), status: 401, code: "notAuthorized", detail: "kid"},
		hostileRow{name: "EdDSA naming the RSA key is notAuthorized", token: as(NewEdKey(t, ""), "rs", "EdDSA"), status: 401, code: "notAuthorized", detail: "kid"},
		hostileRow{name: "RS256 without kid signed by another RSA key is notAuthorized", token: as(other.rsa, "", "RS256"), status: 401, code: "notAuthorized", detail: "not verified"},
	)
	runRows(t, h.c, rows)
}

// countingServer counts every request it gets, on any path.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"keys":[]}`)
	}))
	t.Cleanup(s.Close)
	return s, &n
}

func TestHostileHeaderKeysBringNoTrust(t *testing.T) {
	t.Parallel()
	h := startHostile(t)
	trap, hits := countingServer(t)

	attacker := NewECKey(t, "es", "ES256") // claims the trusted kid
	atkJWK := attacker.PublicJWK(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "licensegate trusted issuer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, attacker.Signer.Public(), attacker.Signer)
	if err != nil {
		t.Fatal(err)
	}
	x5c := []string{base64.StdEncoding.EncodeToString(der)}
	sign := func(k *Key, hdr map[string]any) string {
		return k.Sign(t, Std("sub", "mallory", "credits", 1000000), hdr)
	}

	rows := []hostileRow{
		{name: "a trusted token passes", token: h.es.Sign(t, Std()), status: 200},
		// A trusted token that names a key URL is verified with the
		// configured keys; the URL is never fetched.
		{name: "a trusted token naming a jku passes without fetching it", token: h.es.Sign(t, Std(), map[string]any{"jku": trap.URL + "/jwks.json"}), status: 200},
		{name: "a trusted token naming an x5u passes without fetching it", token: h.es.Sign(t, Std(), map[string]any{"x5u": trap.URL + "/cert.pem"}), status: 200},
	}
	for _, kid := range []any{"es", "attacker-key", nil} {
		for name, hdr := range map[string]map[string]any{
			"an embedded jwk":       {"jwk": atkJWK},
			"a jku":                 {"jku": trap.URL + "/jwks.json"},
			"an x5u":                {"x5u": trap.URL + "/cert.pem"},
			"an x5c":                {"x5c": x5c},
			"jwk, jku, x5u and x5c": {"jwk": atkJWK, "jku": trap.URL + "/jwks.json", "x5u": trap.URL + "/cert.pem", "x5c": x5c},
		} {
			hdr["kid"] = kid
			detail := "not verified" // the configured key does not verify it
			if kid == "attacker-key" {
				detail = "kid" // no configured key has that kid
			}
			rows = append(rows, hostileRow{name: fmt.Sprintf("%s with kid %v is notAuthorized", name, kid),
				token: sign(attacker, hdr), status: 401, code: "notAuthorized", detail: detail})
		}
	}
	t.Run("rows", func(t *testing.T) { runRows(t, h.c, rows) })
	time.Sleep(100 * time.Millisecond)
	if n := hits.Load(); n != 0 {
		t.Errorf("a URL from a token header was fetched %d times", n)
	}
	mustPass(t, h.c, h.ed.Sign(t, Std()))
}

func TestHostileKids(t *testing.T) {
	t.Parallel()
	h := startHostile(t)
	rows := []hostileRow{{name: "a token with a known kid passes", token: h.rs.Sign(t, Std()), status: 200}}
	for name, kid := range map[string]any{
		"a path traversal":                   "../../../../etc/passwd",
		"an absolute path":                   "/dev/zero",
		"a file URL":                         "file:///etc/shadow",
		"a URL":                              h.ks.JWKSURL(),
		"SQL":                                "' OR '1'='1",
		"SQL that drops a table":             "rs'; DROP TABLE keys; --",
		"a NUL byte":                         "rs\x00",
		"a CRLF log injection":               "rs\r\n{\"level\":\"info\",\"msg\":\"license allowed\"}",
		"a kid of 257 characters":            strings.Repeat("k", 257),
		"a kid of 10000 characters":          strings.Repeat("k", 10000),
		"the known kid in another case":      "RS",
		"the known kid with a space":         "rs ",
		"an empty kid":                       "",
		"a number":                           7,
		"a bool":                             true,
		"null":                               json.RawMessage(`null`),
		"an array holding the known kid":     []string{"rs"},
		"an object holding the known kid":    map[string]string{"kid": "rs"},
		"a template placeholder":             "{env.HOSTILE_HMAC}",
		"a Caddy placeholder of the request": "{http.request.header.Authorization}",
		"a format verb":                      "%s%s%s%n",
		"an HTML fragment":                   "<script>alert(1)</script>",
	} {
		var tok string
		if raw, ok := kid.(json.RawMessage); ok {
			tok = rawSign(t, h.rs, `{"alg":"RS256","kid":`+string(raw)+`}`, `{"exp":`+expIn()+`}`)
		} else {
			tok = h.rs.Sign(t, Std(), map[string]any{"kid": kid})
		}
		rows = append(rows, hostileRow{name: "a kid that is " + name + " is notAuthorized", token: tok, status: 401, code: "notAuthorized", detail: "kid"})
	}
	// A kid spelled with a JSON escape is the same kid: it passes.
	rows = append(rows, hostileRow{name: "a known kid spelled with a JSON escape passes",
		token: rawSign(t, h.rs, `{"alg":"RS256","kid":"r\u0073"}`, `{"exp":`+expIn()+`}`), status: 200})
	t.Run("rows", func(t *testing.T) { runRows(t, h.c, rows) })
	// The unknown kids cost at most one early refresh.
	if n := h.ks.Fetches.Load(); n > 2 {
		t.Errorf("%d key set fetches", n)
	}
	logs := h.c.Logs.String()
	if strings.Contains(logs, hostileHMAC) {
		t.Error("a placeholder in a kid was replaced with the secret")
	}
	for _, l := range h.c.Logs.logLines("license allowed") {
		if l["level"] != "debug" {
			t.Errorf("a kid injected a log line: %v", l)
		}
	}
}

// flipTrailingBits changes the unused low bits of a segment's last
// character: the same bytes, another spelling.
func flipTrailingBits(t testing.TB, seg string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	spare := map[int]int{2: 4, 3: 2}[len(seg)%4]
	if spare == 0 {
		t.Fatalf("segment of length %d has no spare bits", len(seg))
	}
	v := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[v|1])
}

func TestHostileSignaturesAndEncoding(t *testing.T) {
	t.Parallel()
	h := startHostile(t)
	good := h.rs.Sign(t, Std())
	p := strings.Split(good, ".")
	other := strings.Split(h.rs.Sign(t, Std("sub", "mallory", "credits", 1000000)), ".")
	esTok := strings.Split(h.es.Sign(t, Std("sub", "mallory")), ".")
	// A token whose signature holds both - and _, to be respelled in the
	// standard alphabet.
	var std []string
	for std == nil {
		s := strings.Split(h.rs.Sign(t, Std()), ".")
		if strings.ContainsAny(s[2], "-") && strings.ContainsAny(s[2], "_") {
			std = s
		}
	}
	join := func(s ...string) string { return strings.Join(s, ".") }
	query := func(raw string) string { return "/query/x?access_token=" + raw }
	jweHeader := b64s(`{"alg":"RSA-OAEP","enc":"A256GCM","kid":"rs"}`)
	rnd := func(n int) string {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	// The query's token must pass on the query route too, through the
	// same encoding (a query-escaped token).
	fresh := func() []string { return strings.Split(h.rs.Sign(t, Std()), ".") }

	rows := []hostileRow{
		{name: "a valid token passes", token: good, status: 200},
		{name: "a valid token in the query passes", path: query(url.QueryEscape(join(fresh()...))), status: 200},

		// Signatures.
		{name: "the ECDSA psychic signature (r = s = 0) is notAuthorized", token: join(esTok[0], esTok[1], b64s(string(make([]byte, 64)))), status: 401, code: "notAuthorized", detail: "not verified"},
		{name: "r = s = n (the group order) is notAuthorized", token: join(esTok[0], esTok[1],
			base64.RawURLEncoding.EncodeToString(append(elliptic.P256().Params().N.FillBytes(make([]byte, 32)), elliptic.P256().Params().N.FillBytes(make([]byte, 32))...))),
			status: 401, code: "notAuthorized", detail: "not verified"},
		{name: "the signature of another token is notAuthorized", token: join(other[0], other[1], p[2]), status: 401, code: "notAuthorized", detail: "not verified"},
		{name: "another token's claims under this signature are notAuthorized", token: join(p[0], other[1], p[2]), status: 401, code: "notAuthorized", detail: "not verified"},
		{name: "a stripped signature (h.p.) is notAuthorized", token: join(p[0], p[1], ""), status: 401, code: "notAuthorized", detail: "not verified"},
		{name: "a stripped signature with alg none is notAuthorized", token: join(b64s(`{"alg":"none"}`), p[1], ""), status: 401, code: "notAuthorized"},
		{name: "an ES256 signature in DER form is notAuthorized", token: join(esTok[0], esTok[1], rnd(72)), status: 401, code: "notAuthorized", detail: "not verified"},

		// Base64.
		{name: "a truncated signature is malformed", token: join(p[0], p[1], p[2][:len(p[2])-1]), status: 401, code: "notAuthorized", detail: "malformed"},
		{name: "a signature short of two characters is notAuthorized", token: join(p[0], p[1], p[2][:len(p[2])-2]), status: 401, code: "notAuthorized"},
		{name: "a truncated claims segment is notAuthorized", token: join(p[0], p[1][:len(p[1])-1], p[2]), status: 401, code: "notAuthorized", detail: "malformed"},
		{name: "a padded signature is malformed", token: join(p[0], p[1], p[2]+"=="), status: 401, code: "notAuthorized", detail: "malformed"},
		{name: "a padded claims segment is malformed", token: join(p[0], p[1]+"=", p[2]), status: 401, code: "notAuthorized", detail: "malformed"},
		{name: "the standard base64 alphabet is malformed", token: join(std[0], std[1], strings.NewReplacer("-", "+", "_", "/").Replace(std[2])),
			status: 401, code: "notAuthorized", detail: "malformed"},
		{name: "a signature with changed trailing bits is malformed", token: join(p[0], p[1], flipTrailingBits(t, p[2])), status: 401, code: "notAuthorized", detail: "not canonical"},
		{name: "a signature with changed trailing bits in the query is malformed", path: query(join(p[0], p[1], flipTrailingBits(t, p[2]))), status: 401, code: "notAuthorized", detail: "not canonical"},

		// Segments.
		{name: "one segment is malformed", token: p[1], status: 401, code: "notAuthorized", detail: "malformed"},
		{name: "two segments are malformed", token: join(p[0], p[1]), status: 401, code: "notAuthorized", detail: "malformed"},
		{name: "four segments are malformed", token: join(p[0], p[1], p[2], ""), status: 401, code: "notAuthorized", detail: "malformed"},
		{name: "a valid token with two more segments is malformed", token: join(p[0], p[1], p[2], p[1], p[2]), status: 401, code: "notAuthorized", detail: "5 segments"},
		{name: "a 5-segment JWE is not a JWS", token: join(jweHeader, rnd(256), rnd(12), rnd(64), rnd(16)), status: 401, code: "notAuthorized", detail: "5 segments"},
		{name: "a 5-segment JWE with dir and no key is not a JWS", token: join(b64s(`{"alg":"dir","enc":"A128GCM"}`), "", rnd(12), rnd(40), rnd(16)), status: 401, code: "notAuthorized", detail: "5 segments"},
		{name: "dots alone are malformed", token: "..", status: 401, code: "notAuthorized", detail: "malformed"},
		{name: "an empty claims segment is malformed", token: join(p[0], "", p[2]), status: 401, code: "notAuthorized", detail: "malformed"},

		// Whitespace inside: Go's base64 decoder skips CR and LF.
		{name: "a newline inside the signature (query) is malformed", path: query(url.QueryEscape(join(p[0], p[1], p[2][:100]+"\n"+p[2][100:]))), status: 401, code: "notAuthorized", detail: "malformed"},
		{name: "a CR LF inside the signature (query) is malformed", path: query(url.QueryEscape(join(p[0], p[1], p[2][:100]+"\r\n"+p[2][100:]))), status: 401, code: "notAuthorized", detail: "malformed"},
		{name: "a trailing newline (query) is malformed", path: query(url.QueryEscape(good + "\n")), status: 401, code: "notAuthorized", detail: "malformed"},
		{name: "a space inside (query) is malformed", path: query(url.QueryEscape(join(p[0], p[1][:10]+" "+p[1][10:], p[2]))), status: 401, code: "notAuthorized", detail: "malformed"},
		{name: "a plus inside (query) is malformed", path: query(join(p[0], p[1][:10]+"+"+p[1][10:], p[2])), status: 401, code: "notAuthorized", detail: "malformed"},
		{name: "a tab inside is malformed", headers: []string{"Authorization", "Bearer " + join(p[0], p[1][:10]+"\t"+p[1][10:], p[2])}, status: 401, code: "notAuthorized", detail: "malformed"},
		{name: "a space inside is malformed", headers: []string{"Authorization", "Bearer " + join(p[0], p[1], p[2][:50]+" "+p[2][50:])}, status: 401, code: "notAuthorized", detail: "malformed"},
		{name: "a space after a dot is malformed", headers: []string{"Authorization", "Bearer " + p[0] + ". " + p[1] + "." + p[2]}, status: 401, code: "notAuthorized", detail: "malformed"},
		{name: "non-ASCII inside is malformed", headers: []string{"Authorization", "Bearer " + join(p[0], p[1], p[2]+"\u00e9")}, status: 401, code: "notAuthorized", detail: "malformed"},
	}
	runRows(t, h.c, rows)
}

func TestHostileHeaderAndClaims(t *testing.T) {
	t.Parallel()
	h := startHostile(t)
	hdr := `{"alg":"RS256","kid":"rs"}`
	exp := expIn()
	sign := func(header, claims string) string { return rawSign(t, h.rs, header, claims) }
	claims := func(extra string) string {
		return fmt.Sprintf(`{"sub":"mallory","jti":"hc-%d","exp":%s%s}`, jtiSeq.Add(1), exp, extra)
	}
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

	rows := []hostileRow{
		{name: "a raw-signed token passes", token: sign(hdr, claims("")), status: 200},
		{name: "nesting of 32 levels passes", token: sign(hdr, claims(`,"x":`+nest(31))), status: 200},
		{name: "credits of 2^53-1 pass", token: sign(hdr, claims(`,"credits":9007199254740991`)), status: 200},

		// crit (RFC 7515 §4.1.11): no extension is understood.
		{name: "an unknown crit parameter is notAuthorized", token: sign(`{"alg":"RS256","kid":"rs","crit":["http://example.com/ext"],"http://example.com/ext":true}`, claims("")), status: 401, code: "notAuthorized", detail: "crit"},
		{name: "crit b64 false is notAuthorized", token: sign(`{"alg":"RS256","kid":"rs","crit":["b64"],"b64":false}`, claims("")), status: 401, code: "notAuthorized", detail: "crit"},
		{name: "crit naming exp is notAuthorized", token: sign(`{"alg":"RS256","kid":"rs","crit":["exp"],"exp":1}`, claims("")), status: 401, code: "notAuthorized", detail: "crit"},
		{name: "an empty crit is notAuthorized", token: sign(`{"alg":"RS256","kid":"rs","crit":[]}`, claims("")), status: 401, code: "notAuthorized", detail: "crit"},
		{name: "a crit that is a string is notAuthorized", token: sign(`{"alg":"RS256","kid":"rs","crit":"b64"}`, claims("")), status: 401, code: "notAuthorized", detail: "crit"},

		// Claims of the wrong type.
		{name: "exp as a string is notAuthorized", token: sign(hdr, `{"exp":"`+exp+`"}`), status: 401, code: "notAuthorized", detail: "exp"},
		{name: "exp as a bool is notAuthorized", token: sign(hdr, `{"exp":true}`), status: 401, code: "notAuthorized", detail: "exp"},
		{name: "exp of 1e300 is notAuthorized, not expired", token: sign(hdr, `{"exp":1e300}`), status: 401, code: "notAuthorized", detail: "exp"},
		{name: "exp of -1e300 is notAuthorized, not expired", token: sign(hdr, `{"exp":-1e300}`), status: 401, code: "notAuthorized", detail: "exp"},
		{name: "exp null is notAuthorized", token: sign(hdr, `{"exp":null}`), status: 401, code: "notAuthorized", detail: "exp"},
		{name: "aud as a number is notAuthorized", token: sign(hdr, claims(`,"aud":7`)), status: 401, code: "notAuthorized", detail: "aud"},
		{name: "aud holding a number is notAuthorized", token: sign(hdr, claims(`,"aud":["api",7]`)), status: 401, code: "notAuthorized", detail: "aud"},
		{name: "aud as an object is notAuthorized", token: sign(hdr, claims(`,"aud":{"api":true}`)), status: 401, code: "notAuthorized", detail: "aud"},
		{name: "iss as a number is notAuthorized", token: sign(hdr, claims(`,"iss":7`)), status: 401, code: "notAuthorized", detail: "iss"},
		{name: "sub as an object is notAuthorized", token: sign(hdr, `{"exp":`+exp+`,"sub":{"id":"alice"}}`), status: 401, code: "notAuthorized", detail: "sub"},
		{name: "nbf as a string is notAuthorized", token: sign(hdr, claims(`,"nbf":"now"`)), status: 401, code: "notAuthorized", detail: "nbf"},
		{name: "iat as a string is notAuthorized", token: sign(hdr, claims(`,"iat":"now"`)), status: 401, code: "notAuthorized", detail: "iat"},
		{name: "credits as a float is notAuthorized", token: sign(hdr, claims(`,"credits":1.5`)), status: 401, code: "notAuthorized", detail: "credits"},
		{name: "credits in exponent form is notAuthorized", token: sign(hdr, claims(`,"credits":1e3`)), status: 401, code: "notAuthorized", detail: "credits"},
		{name: "credits of 1e30 is notAuthorized", token: sign(hdr, claims(`,"credits":1000000000000000000000000000000`)), status: 401, code: "notAuthorized", detail: "credits"},
		{name: "credits of 2^53 is notAuthorized", token: sign(hdr, claims(`,"credits":9007199254740992`)), status: 401, code: "notAuthorized", detail: "credits"},
		{name: "credits beyond int64 is notAuthorized", token: sign(hdr, claims(`,"credits":99999999999999999999`)), status: 401, code: "notAuthorized", detail: "credits"},
		{name: "negative credits are notAuthorized", token: sign(hdr, claims(`,"credits":-1`)), status: 401, code: "notAuthorized", detail: "credits"},
		{name: "credits as a bool are notAuthorized", token: sign(hdr, claims(`,"credits":true`)), status: 401, code: "notAuthorized", detail: "credits"},
		{name: "an expired token with a malformed claim is notAuthorized", token: sign(hdr, `{"exp":1,"credits":1.5}`), status: 401, code: "notAuthorized", detail: "credits"},

		// Nesting.
		{name: "claims nested 33 levels deep are notAuthorized", token: sign(hdr, claims(`,"x":`+nest(32))), status: 401, code: "notAuthorized", detail: "deeper than 32"},
		{name: "claims nested 3000 levels deep are notAuthorized", token: sign(hdr, claims(`,"x":`+nest(3000))), status: 401, code: "notAuthorized", detail: "deeper than 32"},
		{name: "objects nested 40 levels deep are notAuthorized", token: sign(hdr, claims(`,"x":`+strings.Repeat(`{"a":`, 40)+`1`+strings.Repeat(`}`, 40))), status: 401, code: "notAuthorized", detail: "deeper than 32"},
		{name: "a header nested 33 levels deep is notAuthorized", token: sign(`{"alg":"RS256","kid":"rs","x":`+nest(32)+`}`, claims("")), status: 401, code: "notAuthorized", detail: "deeper than 32"},

		// Duplicate keys: encoding/json keeps the last, other parsers the first.
		{name: "a duplicate alg is notAuthorized", token: sign(`{"alg":"none","kid":"rs","alg":"RS256"}`, claims("")), status: 401, code: "notAuthorized", detail: "duplicate"},
		{name: "a duplicate kid is notAuthorized", token: sign(`{"alg":"RS256","kid":"other","kid":"rs"}`, claims("")), status: 401, code: "notAuthorized", detail: "duplicate"},
		{name: "a duplicate crit is notAuthorized", token: sign(`{"alg":"RS256","kid":"rs","crit":["x"],"x":1,"crit":null}`, claims("")), status: 401, code: "notAuthorized", detail: "duplicate"},
		{name: "duplicate credits are notAuthorized", token: sign(hdr, claims(`,"credits":1,"credits":1000000`)), status: 401, code: "notAuthorized", detail: "duplicate"},
		{name: "a duplicate exp is notAuthorized", token: sign(hdr, `{"exp":1,"sub":"mallory","exp":`+exp+`}`), status: 401, code: "notAuthorized", detail: "duplicate"},
		{name: "a duplicate sub is notAuthorized", token: sign(hdr, claims(`,"sub":"alice"`)), status: 401, code: "notAuthorized", detail: "duplicate"},
		{name: "a duplicate spelled with an escape is notAuthorized", token: sign(hdr, claims(`,"cr\u0065dits":1,"credits":1000`)), status: 401, code: "notAuthorized", detail: "duplicate"},
		{name: "a duplicate inside a nested object is notAuthorized", token: sign(hdr, claims(`,"org":{"id":"a","id":"b"}`)), status: 401, code: "notAuthorized", detail: "duplicate"},
		{name: "a duplicate inside an array of objects is notAuthorized", token: sign(hdr, claims(`,"x":[{"a":1},{"b":1,"b":2}]`)), status: 401, code: "notAuthorized", detail: "duplicate"},
		{name: "the same key in sibling objects passes", token: sign(hdr, claims(`,"x":[{"a":1},{"a":2}],"y":{"a":3}`)), status: 200},

		// Data after the claims object: encoding/json's decoder stops after
		// the first value.
		{name: "a second claims object after the first is notAuthorized", token: sign(hdr, claims("")+`{"credits":1000000}`), status: 401, code: "notAuthorized", detail: "malformed"},
		{name: "garbage after the claims object is notAuthorized", token: sign(hdr, claims("")+` xyz`), status: 401, code: "notAuthorized", detail: "malformed"},
		{name: "claims that are an array are notAuthorized", token: sign(hdr, `[`+claims("")+`]`), status: 401, code: "notAuthorized", detail: "malformed"},
		{name: "a header that is not an object is notAuthorized", token: sign(`"RS256"`, claims("")), status: 401, code: "notAuthorized", detail: "malformed"},
	}
	runRows(t, h.c, rows)
}

// privateJWK renders a private key as a JWK map with kid and use sig.
func privateJWK(t testing.TB, raw any, kid string) map[string]any {
	t.Helper()
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(k)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	m["kid"], m["use"] = kid, "sig"
	return m
}

func TestHostileKeySets(t *testing.T) {
	t.Parallel()
	good, rs := NewECKey(t, "es", "ES256"), NewRSAKey(t, "rs", "RS256")
	dupA, dupB := NewECKey(t, "dup", "ES256"), NewECKey(t, "dup", "ES256")
	rsPriv, ecPriv, edPriv := NewRSAKey(t, "rsapriv", "RS256"), NewECKey(t, "ecpriv", "ES256"), NewEdKey(t, "edpriv")
	short1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	short := &Key{Kid: "short", Alg: "RS256", Signer: short1024}
	enc := NewRSAKey(t, "enc", "RS256")
	octSecret := []byte("an-oct-key-secret-from-the-jwks-0123456789")
	huge := new(big.Int).SetBit(new(big.Int), 9000, 1) // a 9001-bit odd modulus
	huge.SetBit(huge, 0, 1)

	var keys []map[string]any
	for _, k := range []*Key{good, rs, dupA, dupB} {
		keys = append(keys, k.PublicJWK(t))
	}
	encJWK := enc.PublicJWK(t)
	encJWK["use"] = "enc"
	rsPrivJWK, ecPrivJWK, edPrivJWK := privateJWK(t, rsPriv.Signer, "rsapriv"), privateJWK(t, ecPriv.Signer, "ecpriv"), privateJWK(t, edPriv.Signer, "edpriv")
	keys = append(keys,
		map[string]any{"kty": "oct", "kid": "hmac", "k": base64.RawURLEncoding.EncodeToString(octSecret), "use": "sig"},
		map[string]any{"kty": "oct", "kid": "rs", "k": base64.RawURLEncoding.EncodeToString(octSecret), "alg": "HS256"},
		rsPrivJWK, ecPrivJWK, edPrivJWK,
		short.PublicJWK(t), encJWK,
		map[string]any{"kty": "RSA", "kid": "huge", "n": base64.RawURLEncoding.EncodeToString(huge.Bytes()), "e": "AQAB"},
	)
	doc, _ := json.Marshal(map[string]any{"keys": keys})
	ks := NewKeyServer(t, string(doc))
	up := echoUpstream(t)
	site := fmt.Sprintf(`
	handle /hs/* {
		license_gate {
			jwks_url %[1]s
			refresh 200ms
			secret {env.HOSTILE_KEYSET_HMAC}
		}
		reverse_proxy %[2]s
	}
	handle {
		license_gate {
			jwks_url %[1]s
			refresh 200ms
		}
		reverse_proxy %[2]s
	}`, ks.JWKSURL(), hostPort(up.URL))
	c := StartCaddy(t, site, CaddyOptions{Env: []string{"HOSTILE_KEYSET_HMAC=" + hostileHMAC}})

	hs := func(secret []byte, kid string) string {
		return (&Key{Kid: kid, Alg: "HS256", Secret: secret}).Sign(t, Std())
	}
	rows := []hostileRow{
		{name: "the good EC key verifies", token: good.Sign(t, Std()), status: 200},
		{name: "the good RSA key verifies", token: rs.Sign(t, Std()), status: 200},
		{name: "the first key of a duplicate kid verifies", token: dupA.Sign(t, Std()), status: 200},
		{name: "the second key of a duplicate kid verifies", token: dupB.Sign(t, Std()), status: 200},
		{name: "HS256 with the configured secret passes", path: "/hs/x", token: hs([]byte(hostileHMAC), ""), status: 200},

		{name: "HS256 with a JWKS oct key is notAuthorized", token: hs(octSecret, "hmac"), status: 401, code: "notAuthorized", detail: "HS256"},
		{name: "HS256 with a JWKS oct key is notAuthorized where a secret is set", path: "/hs/x", token: hs(octSecret, "hmac"), status: 401, code: "notAuthorized", detail: "not verified"},
		{name: "HS256 with an oct key sharing an RSA kid is notAuthorized where a secret is set", path: "/hs/x", token: hs(octSecret, "rs"), status: 401, code: "notAuthorized", detail: "not verified"},
		{name: "a token of a refused RSA private key is notAuthorized", token: rsPriv.Sign(t, Std()), status: 401, code: "notAuthorized", detail: "kid"},
		{name: "a token of a refused EC private key is notAuthorized", token: ecPriv.Sign(t, Std()), status: 401, code: "notAuthorized", detail: "kid"},
		{name: "a token of a refused Ed25519 private key is notAuthorized", token: edPriv.Sign(t, Std()), status: 401, code: "notAuthorized", detail: "kid"},
		{name: "a token of a refused 1024-bit RSA key is notAuthorized", token: short.Sign(t, Std()), status: 401, code: "notAuthorized", detail: "kid"},
		{name: "a token of a refused encryption key is notAuthorized", token: enc.Sign(t, Std()), status: 401, code: "notAuthorized", detail: "kid"},
		{name: "a token naming a refused 9001-bit RSA key is notAuthorized", token: (&Key{Kid: "huge", Alg: "RS256", Signer: rs.Signer}).Sign(t, Std()), status: 401, code: "notAuthorized", detail: "kid"},
		{name: "a kid-less token of a refused private key is notAuthorized", token: (&Key{Alg: "RS256", Signer: rsPriv.Signer}).Sign(t, Std()), status: 401, code: "notAuthorized", detail: "not verified"},
	}
	t.Run("rows", func(t *testing.T) { runRows(t, c, rows) })

	refused := map[string]string{
		"hmac": "symmetric", "rs": "symmetric", "rsapriv": "private key material", "ecpriv": "private key material",
		"edpriv": "private key material", "short": "1024 bits", "enc": "use is enc", "huge": "over 8192",
	}
	WaitFor(t, 10*time.Second, "every refused key logged", func() bool {
		return len(c.Logs.logLines("key refused")) >= len(refused)
	})
	// Several refreshes of the same document later, each refusal is still
	// logged once, not once per refresh.
	before := ks.Fetches.Load()
	WaitFor(t, 10*time.Second, "three more refreshes", func() bool { return ks.Fetches.Load() >= before+3 })
	seen := map[string]int{}
	for _, l := range c.Logs.logLines("key refused") {
		kid, _ := l["kid"].(string)
		seen[kid]++
		if l["level"] != "error" {
			t.Errorf("key refused at %v: %v", l["level"], l)
		}
		if want, ok := refused[kid]; !ok || !strings.Contains(fmt.Sprint(l["reason"]), want) {
			t.Errorf("refusal %v, want reason %q", l, want)
		}
	}
	for kid := range refused {
		if seen[kid] != 1 {
			t.Errorf("kid %s refused in %d log lines, want 1", kid, seen[kid])
		}
	}
	logs := c.Logs.String()
	for name, m := range map[string]map[string]any{"rsa": rsPrivJWK, "ec": ecPrivJWK, "ed": edPrivJWK} {
		if d, _ := m["d"].(string); d == "" || strings.Contains(logs, d) {
			t.Errorf("the %s private key material appears in the logs (or has no d)", name)
		}
	}
	if strings.Contains(logs, base64.RawURLEncoding.EncodeToString(octSecret)) || strings.Contains(logs, string(octSecret)) ||
		strings.Contains(logs, hostileHMAC) {
		t.Error("a secret appears in the logs")
	}

	// HS* never comes from a key set: an allowlist naming HS256 without a
	// secret is a configuration error.
	path := writeCaddyfile(t, fmt.Sprintf(`{
	admin off
}
:%d {
	license_gate {
		jwks_url %s
		algorithms HS256 RS256
	}
	respond "ok"
}
`, freePort(t), ks.JWKSURL()))
	if out, err := execValidate(path); err == nil || !strings.Contains(out, "HS256 needs a secret") {
		t.Errorf("algorithms HS256 without a secret validated: %v\n%s", err, out)
	}
}

// writeCaddyfile writes a Caddyfile into a temp dir and returns its path.
func writeCaddyfile(t testing.TB, body string) string {
	t.Helper()
	p := t.TempDir() + "/Caddyfile"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// hostileKeyServer serves a good key set until told to misbehave.
type hostileKeyServer struct {
	*httptest.Server
	good    string
	mode    atomic.Value // "ok", "hang", "loop", "garbage", "big"
	fetches atomic.Int64
}

func newHostileKeyServer(t *testing.T, good string) *hostileKeyServer {
	t.Helper()
	s := &hostileKeyServer{good: good}
	s.mode.Store("ok")
	stop := make(chan struct{})
	big := strings.TrimSuffix(good, "}") + `,"pad":"` + strings.Repeat("x", 1<<20) + `"}` // valid, just over 1 MiB
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jwks.json" {
			http.NotFound(w, r)
			return
		}
		s.fetches.Add(1)
		switch s.mode.Load() {
		case "hang":
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		case "loop":
			http.Redirect(w, r, "/jwks.json", http.StatusFound)
			return
		case "garbage":
			b := make([]byte, 2048)
			_, _ = rand.Read(b)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(b)
			return
		case "big":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, big)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, s.good)
	}))
	t.Cleanup(func() { close(stop); s.Close() })
	return s
}

func TestHostileKeyServerFailures(t *testing.T) {
	t.Parallel()
	const failed, recovered = "key set fetch failed; keeping the last good keys", "key set fetch recovered"
	for _, mode := range []string{"hang", "loop", "garbage", "big"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			k := NewECKey(t, "k1", "ES256")
			ks := newHostileKeyServer(t, JWKS(t, k))
			up := echoUpstream(t)
			c := StartCaddy(t, keysSite(hostPort(up.URL), "jwks_url "+ks.URL+"/jwks.json\n\t\trefresh 200ms\n\t\tjwks_timeout 2s\n\t\tkid_refresh_interval 1m"))
			mustPass(t, c, k.Sign(t, Std()))

			ks.mode.Store(mode)
			start := ks.fetches.Load()
			WaitFor(t, 30*time.Second, "three failed refreshes", func() bool { return ks.fetches.Load() >= start+3 })
			// Fresh tokens (not in the verified-token cache) still pass,
			// and fast, while the key server misbehaves.
			for i := 0; i < 5; i++ {
				t0 := time.Now()
				mustPass(t, c, k.Sign(t, Std()))
				if d := time.Since(t0); d > 700*time.Millisecond {
					t.Errorf("a valid token took %v while the key server is %s", d, mode)
				}
			}
			// The first unknown kid spends the early refresh; the next ones
			// must not queue behind a fetch in flight.
			resp, body := c.Get(t, "/", k.Sign(t, Std(), map[string]any{"kid": "k-new-0"}))
			assertRejected(t, resp, body, 401, "notAuthorized", "", "kid")
			for i := 1; i <= 8; i++ {
				t0 := time.Now()
				resp, body := c.Get(t, "/", k.Sign(t, Std(), map[string]any{"kid": fmt.Sprintf("k-new-%d", i)}))
				assertRejected(t, resp, body, 401, "notAuthorized", "", "kid")
				if d := time.Since(t0); d > 700*time.Millisecond {
					t.Errorf("an unknown kid took %v while the key server is %s", d, mode)
				}
			}
			lines := c.Logs.logLines(failed)
			if len(lines) != 1 {
				t.Fatalf("%d %q lines after %d failed fetches, want 1", len(lines), failed, ks.fetches.Load()-start)
			}
			if l := lines[0]; l["level"] != "error" || l["have_keys"] != true {
				t.Errorf("failure line %v", l)
			}

			// Recovery closes the window; the next failure opens another.
			ks.mode.Store("ok")
			WaitFor(t, 15*time.Second, "the recovery", func() bool { return len(c.Logs.logLines(recovered)) == 1 })
			mustPass(t, c, k.Sign(t, Std()))
			ks.mode.Store(mode)
			WaitFor(t, 15*time.Second, "the second failure window", func() bool { return len(c.Logs.logLines(failed)) == 2 })
			mustPass(t, c, k.Sign(t, Std()))
			if n := len(c.Logs.logLines(failed)); n != 2 {
				t.Errorf("%d failure lines for two windows", n)
			}
		})
	}
}

// rss reads the resident set size of a process in KiB (0 where /proc is
// not available).
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func TestHostileGarbageFlood(t *testing.T) {
	t.Parallel()
	k := NewECKey(t, "es", "ES256")
	ks := NewKeyServer(t, JWKS(t, k))
	up := echoUpstream(t)
	c := StartCaddy(t, keysSite(hostPort(up.URL), "jwks_url "+ks.JWKSURL()))
	mustPass(t, c, k.Sign(t, Std()))
	pid := c.cmd.Process.Pid
	baseline := rss(pid)

	attacker := NewECKey(t, "", "ES256")
	hdr := b64s(`{"alg":"ES256","kid":"es"}`)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	garbage := func(r *mrand.Rand, i int) string {
		randStr := func(n int, chars string) string {
			b := make([]byte, n)
			for j := range b {
				b[j] = chars[r.IntN(len(chars))]
			}
			return string(b)
		}
		switch i % 6 {
		case 0: // random base64url segments
			return randStr(1+r.IntN(400), alphabet) + "." + randStr(r.IntN(2000), alphabet) + "." + randStr(r.IntN(400), alphabet)
		case 1: // signed by the attacker under a random kid
			kid := make([]byte, 8)
			for j := range kid {
				kid[j] = byte(r.Uint32())
			}
			return (&Key{Kid: hex.EncodeToString(kid), Alg: "ES256", Signer: attacker.Signer}).Sign(t, Std())
		case 2: // big but under the cap, with the trusted kid: a real verification
			return hdr + "." + b64s(`{"exp":`+expIn()+`,"pad":"`+randStr(11000, alphabet)+`"}`) + "." + randStr(86, alphabet)
		case 3: // random visible bytes and UTF-8
			return randStr(1+r.IntN(4000), "abc.-_ !\"#$%&'()*+,/:;<=>?@[\\]^`{|}~\u00e9\u4e2d")
		case 4: // deep nesting and duplicates under the trusted kid
			return hdr + "." + b64s(`{"exp":1,"exp":2,"x":`+strings.Repeat("[", 1+r.IntN(5000))+`}`) + "." + randStr(86, alphabet)
		default: // over the cap
			return randStr(16<<10+1+r.IntN(1000), alphabet)
		}
	}

	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if v := rss(pid); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()

	const workers, perWorker = 8, 600
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[string]int{}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := mrand.New(mrand.NewPCG(uint64(w), 42))
			for i := 0; i < perWorker; i++ {
				valid := i%10 == 0
				tok := ""
				if valid {
					tok = k.Sign(t, Std())
				} else {
					tok = garbage(r, i)
				}
				req, _ := http.NewRequest(http.MethodGet, c.URL+"/", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := httpClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				kind := "garbage"
				if valid {
					kind = "valid"
				}
				mu.Lock()
				statuses[fmt.Sprintf("%s %d", kind, resp.StatusCode)]++
				mu.Unlock()
				switch {
				case valid && resp.StatusCode != 200:
					t.Errorf("a valid token got %d %s", resp.StatusCode, body)
				case !valid && (resp.StatusCode != 401 || !bytes.Contains(body, []byte(`"license_errorCode": "notAuthorized"`))):
					t.Errorf("garbage kind %d got %d %s", i%6, resp.StatusCode, body)
				}
			}
		}(w)
	}
	wg.Wait()
	close(stop)
	<-sampled
	t.Logf("statuses %v; RSS baseline %d KiB, peak %d KiB", statuses, baseline, peak.Load())
	if statuses["valid 200"] != workers*perWorker/10 {
		t.Errorf("%d valid tokens passed, want %d", statuses["valid 200"], workers*perWorker/10)
	}
	// Generous: the process must not grow with the flood.
	if p := peak.Load(); p > 400<<10 {
		t.Errorf("RSS peaked at %d KiB under the flood", p)
	}
	// The random kids cost one early refresh (two if the flood outlasts
	// kid_refresh_interval).
	if n := ks.Fetches.Load(); n > 3 {
		t.Errorf("%d key set fetches", n)
	}
	mustPass(t, c, k.Sign(t, Std()))
}

func TestHostileNoSecretsInLogsOrBodies(t *testing.T) {
	t.Parallel()
	r := testredis.Start(t)
	right, wrong := "redis-right-"+randHex(8), "redis-wrong-"+randHex(8)
	if _, err := r.Do("CONFIG", "SET", "requirepass", right); err != nil {
		t.Fatal(err)
	}
	secret := "hmac-secret-" + randHex(16)
	up := Upstream(t, http.StatusOK) // not the echo upstream: it would echo the token
	route := func(path, extra string) string {
		return fmt.Sprintf(`
	handle %s {
		license_gate {
			secret {env.HOSTILE_SECRET}
			%s
		}
		reverse_proxy %s
	}`, path, extra, hostPort(up.URL))
	}
	store := func(env string) string {
		return "store redis {\n\t\t\t\taddresses " + r.Addr() + "\n\t\t\t\tpassword {env." + env + "}\n\t\t\t\ttimeout 500ms\n\t\t\t}"
	}
	c := StartCaddy(t, route("/right/*", store("HOSTILE_REDIS_RIGHT"))+route("/wrong/*", store("HOSTILE_REDIS_WRONG"))+
		route("/q/*", "token_from query t")+route("", ""),
		CaddyOptions{Env: []string{"HOSTILE_SECRET=" + secret, "HOSTILE_REDIS_RIGHT=" + right, "HOSTILE_REDIS_WRONG=" + wrong}})

	hk := &Key{Alg: "HS256", Secret: []byte(secret)}
	forged := &Key{Alg: "HS256", Secret: []byte("not-the-secret-" + randHex(8))}
	var tokens []string
	tok := func(k *Key, claims Claims) string {
		s := k.Sign(t, claims)
		tokens = append(tokens, s)
		return s
	}
	type call struct {
		path, token string
		status      int
	}
	calls := []call{
		{"/right/a", tok(hk, Std("credits", 5)), 200},
		{"/wrong/a", tok(hk, Std("credits", 5)), 503},
		{"/right/a", tok(forged, Std()), 401},
		{"/wrong/a", tok(hk, Std("exp", time.Now().Add(-time.Hour).Unix())), 401},
		{"/x", tok(hk, Std("credits", 1.5)), 401},
		{"/x", secret, 401},                 // the secret sent as a token
		{"/x", right, 401},                  // the Redis password sent as a token
		{"/x", "a." + secret + ".b", 401},   // inside a token
		{"/x", b64s(secret) + ".e30.", 401}, // as a header segment
		{"/right/a", tok(hk, Std()) + "x", 401},
	}
	var seen bytes.Buffer
	for _, cl := range calls {
		resp, body := c.Get(t, cl.path, cl.token)
		if resp.StatusCode != cl.status {
			t.Errorf("%s: %d %s, want %d", cl.path, resp.StatusCode, body, cl.status)
		}
		seen.Write(body)
		for name, v := range resp.Header {
			fmt.Fprintf(&seen, "%s: %s\n", name, strings.Join(v, ","))
		}
	}
	qtok := tok(hk, Std("exp", time.Now().Add(-time.Hour).Unix()))
	resp, body := c.Get(t, "/q/x?t="+qtok, "")
	assertRejected(t, resp, body, 401, "licenseExpired", "", "")
	seen.Write(body)

	WaitFor(t, 5*time.Second, "the store failure logged", func() bool { return len(c.Logs.logLines("counter store failed")) > 0 })
	time.Sleep(100 * time.Millisecond)
	logs := c.Logs.String()
	for name, s := range map[string]string{"the HMAC secret": secret, "the Redis password": right, "the wrong Redis password": wrong} {
		if strings.Contains(logs, s) {
			t.Errorf("%s appears in the logs", name)
		}
		if strings.Contains(seen.String(), s) {
			t.Errorf("%s appears in a response", name)
		}
		if enc := b64s(s); strings.Contains(logs, enc) {
			t.Errorf("%s appears base64url-encoded in the logs", name)
		}
	}
	for _, tk := range tokens {
		sig := tk[strings.LastIndex(tk, ".")+1:]
		if strings.Contains(logs, tk) || strings.Contains(logs, sig) {
			t.Errorf("a token appears in the logs")
		}
		if strings.Contains(seen.String(), sig) {
			t.Errorf("a token appears in a response")
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

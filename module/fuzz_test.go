package module

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/licensegate/licensegate/policy"
)

// Fuzz targets for hostile input: the request path up to the decision
// (token extraction, the compact form, header and claims decoding,
// signature, constraints, counting), the key set parser, and the strict
// JSON check against encoding/json. .ci/run runs each for FUZZTIME.
//
//	go test -run '^$' -fuzz '^FuzzVerify$' -fuzztime 60s ./module/

// designStatuses are the statuses README's reject table gives each code (before any
// status override, which the fuzzed gates do not have).
var designStatuses = map[policy.Code][]int{
	policy.CodeNotAuthorized:          {401, 403},
	policy.CodeLicenseExpired:         {401, 403},
	policy.CodeValidityNotStarted:     {403},
	policy.CodeNoLicenseFound:         {403},
	policy.CodeUnallowedClientVersion: {403},
	policy.CodeAnchorMissing:          {400},
	policy.CodeBadArgument:            {400},
	policy.CodeAnchorLocked:           {403},
	policy.CodeClientIPBlocked:        {403},
	policy.CodeMaxUseCountExceed:      {403},
	policy.CodeMaxConcurrentSessions:  {429},
	policy.CodeServiceUnavailable:     {503},
}

// checkReject fails unless rej is a reject of README's table that does not echo
// the token.
func checkReject(t *testing.T, rej *policy.Reject, tok string) {
	t.Helper()
	if rej == nil {
		t.Fatal("nil reject")
	}
	st := rej.Status
	if st == 0 {
		st = rej.Code.Status()
	}
	want, ok := designStatuses[rej.Code]
	if !ok {
		t.Fatalf("code %q is not a known reject code", rej.Code)
	}
	if !containsInt(want, st) {
		t.Fatalf("code %s with status %d, README says %v", rej.Code, st, want)
	}
	if len(tok) >= 24 && strings.Contains(rej.Detail, tok) {
		t.Fatalf("the reject detail echoes the token: %q", rej.Detail)
	}
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// checkServed fails unless a served request either passed or got a reject
// reject body (see respond.go).
func checkServed(t *testing.T, out served, prefix, tok string) {
	t.Helper()
	if out.passed {
		if out.rec.Code != http.StatusNoContent {
			t.Fatalf("passed with status %d", out.rec.Code)
		}
		return
	}
	var m map[string]any
	if err := json.Unmarshal(out.rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("reject body is not JSON: %v: %q", err, out.rec.Body.Bytes())
	}
	c, _ := m[prefix+"_errorCode"].(string)
	want, ok := designStatuses[policy.Code(c)]
	if !ok || !containsInt(want, out.rec.Code) {
		t.Fatalf("reject %q with status %d", c, out.rec.Code)
	}
	if len(tok) >= 24 && (strings.Contains(out.rec.Body.String(), tok) ||
		strings.Contains(out.rec.Header().Get("WWW-Authenticate"), tok)) {
		t.Fatal("the reject echoes the token")
	}
}

// fuzzGate is a gate over an Ed25519 and a P-256 key, with the clock fixed.
type fuzzGate struct {
	clk      *testClock
	ed, es   *testKey
	plain    *Gate // no item required
	itemGate *Gate // require_item axesWord
}

func newFuzzGate(f *testing.F) *fuzzGate {
	f.Helper()
	fg := &fuzzGate{clk: newClock(), ed: newKey(f, "ed", "EdDSA"), es: newKey(f, "es", "ES256")}
	fg.plain, _ = provisioned(f, fileGate(f, fg.ed, fg.es), fg.clk)
	item := fileGate(f, fg.ed, fg.es)
	item.RequireItem = "axesWord"
	fg.itemGate, _ = provisioned(f, item, fg.clk)
	return fg
}

// seedClaims are claim sets that reach every constraint.
func (fg *fuzzGate) seedClaims() []jwt.MapClaims {
	c := fg.clk
	now := c.Now()
	return []jwt.MapClaims{
		claimsAt(c),
		claimsAt(c, "items", []string{"axesWord"}, "credits", 3),
		claimsAt(c, "product", "axesWord", "ver", "1-3.*.*", "hw", "HW-1", "seats", 2),
		claimsAt(c, "ip", []string{"192.0.2.0/24", "2001:db8::/32"}, "lic", "L-1", "iss", "https://iss"),
		claimsAt(c, "ibb", now.Add(-time.Hour).Unix(), "ibe", now.Add(time.Hour).Unix(), "aud", []string{"a", "b"}),
		claimsAt(c, "exp", now.Add(-time.Hour).Unix()),
		claimsAt(c, "nbf", now.Add(time.Hour).Unix()),
		claimsAt(c, "credits", 0, "axesWord", true),
	}
}

// b64 is the segment encoding of a JWS.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// canonical reports whether every segment re-encodes to itself.
func canonical(tok string) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil || b64(b) != p {
			return false
		}
	}
	return true
}

// independentlyVerified checks an accepted token's signature with
// lestrrat-go/jwx against the public key its alg names.
func (fg *fuzzGate) independentlyVerified(tok string) error {
	parts := strings.Split(tok, ".")
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return err
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return err
	}
	var key any
	var alg jwa.SignatureAlgorithm
	switch h.Alg {
	case "EdDSA":
		key, alg = fg.ed.signer.Public(), jwa.EdDSA
	case "ES256":
		key, alg = fg.es.signer.Public(), jwa.ES256
	default:
		return errors.New("accepted alg " + h.Alg)
	}
	_, err = jws.Verify([]byte(tok), jws.WithKey(alg, key))
	return err
}

// FuzzVerify sends arbitrary token strings through the verifier and the
// whole handler. Nothing panics; every failure is a known reject;
// a token that passes is in canonical compact form and its signature
// verifies with another JOSE implementation.
func FuzzVerify(f *testing.F) {
	fg := newFuzzGate(f)
	for _, c := range fg.seedClaims() {
		for _, k := range []*testKey{fg.ed, fg.es} {
			tok := k.sign(f, c, nil)
			f.Add(tok)
			f.Add(k.sign(f, c, map[string]any{"kid": nil, "typ": "at+jwt"}))
			parts := strings.Split(tok, ".")
			f.Add(parts[0] + "." + parts[1] + ".")                                    // stripped signature
			f.Add(tok + "=")                                                          // padded
			f.Add(parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] + "B") // trailing bits
			f.Add(parts[0] + "\n." + parts[1] + "." + parts[2])                       // whitespace
			f.Add(tok + ".e30.e30")                                                   // 5 segments
		}
	}
	hdr := func(s string) string { return b64([]byte(s)) }
	body := b64([]byte(`{"exp":1900000000,"sub":"a"}`))
	for _, h := range []string{
		`{"alg":"none"}`, `{"alg":"NoNe"}`, `{"alg":"HS256","kid":"ed"}`, `{"alg":"EdDSA","kid":"ed","kid":"es"}`,
		`{"alg":"EdDSA","kid":["ed"]}`, `{"alg":"EdDSA","crit":["exp"],"exp":1}`, `{"alg":"EdDSA","jku":"http://127.0.0.1:1/"}`,
		`{"alg":"ES256","kid":"es"}`, `{"alg":"EdDSA","kid":"../../etc/passwd"}`, `{"alg":"EdDSA","x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
	} {
		f.Add(hdr(h) + "." + body + "." + b64(make([]byte, 64)))
	}
	f.Add("")
	f.Add("..")
	f.Add("a.b.c")
	f.Add(strings.Repeat("A", 20000))

	ctx := context.Background()
	f.Fuzz(func(t *testing.T, tok string) {
		now := fg.clk.Now()
		for _, g := range []*Gate{fg.plain, fg.itemGate} {
			if len(tok) <= g.maxTokenSize && tok != "" {
				ent, rej := g.verifier.verify(ctx, tok, now)
				if rej != nil {
					checkReject(t, rej, tok)
				} else {
					if ent.lic == nil {
						t.Fatal("verified without a license")
					}
					if !canonical(tok) {
						t.Fatalf("accepted a token not in canonical compact form: %q", tok)
					}
					if err := fg.independentlyVerified(tok); err != nil {
						t.Fatalf("accepted a token jwx does not verify: %v: %q", err, tok)
					}
					if checkCompact(tok) != nil {
						t.Fatalf("accepted a token checkCompact refuses: %q", tok)
					}
					if rej := g.rules.Check(ent.lic, &policy.Request{Now: now}); rej != nil {
						checkReject(t, rej, tok)
					}
				}
			}
			r := bearer("")
			r.Header["Authorization"] = []string{"Bearer " + tok}
			checkServed(t, serve(t, g, r), g.bodyPrefix, tok)
		}
	})
}

// FuzzSignedToken signs arbitrary header and claims bytes with the gate's
// own key, so that the fuzzer gets past the signature into header checks,
// claims decoding, the constraints and the store, with arbitrary client
// version and hardware id. Nothing panics, every outcome is a pass or a
// known reject, and what passes has a well-formed header and
// claims set.
func FuzzSignedToken(f *testing.F) {
	fg := newFuzzGate(f)
	for _, c := range fg.seedClaims() {
		cb, _ := json.Marshal(c)
		f.Add([]byte(`{"alg":"EdDSA","kid":"ed","typ":"JWT"}`), cb, "2.5.1", "HW-1")
		f.Add([]byte(`{"alg":"EdDSA"}`), cb, "", "")
	}
	for _, s := range []string{
		`{"exp":1800003600,"exp":1}`,
		`{"exp":1800003600,"credits":1.5}`,
		`{"exp":1800003600,"credits":1e300}`,
		`{"exp":"1800003600"}`,
		`{"exp":1e300}`,
		`{"exp":1800003600,"aud":7}`,
		`{"exp":1800003600,"x":` + strings.Repeat("[", 33) + strings.Repeat("]", 33) + `}`,
		`{"exp":1800003600} {"exp":1}`,
		`{"exp":1800003600,"ver":"1.*.*","hw":"A","seats":1}`,
		`{"exp":1800003600,"items":["axesWord"],"credits":1,"ip":"192.0.2.7"}`,
	} {
		f.Add([]byte(`{"alg":"EdDSA","kid":"ed"}`), []byte(s), "1.2.3", "A;name=laptop")
	}
	f.Add([]byte(`{"alg":"EdDSA","kid":"ed","kid":"es"}`), []byte(`{"exp":1800003600}`), "", "")
	f.Add([]byte(`{"alg":"EdDSA","kid":"ed","crit":["b64"],"b64":false}`), []byte(`{"exp":1800003600}`), "", "")
	f.Add([]byte(`{"alg":"EdDSA","kid":"ed","typ":"dpop+jwt"}`), []byte(`{"exp":1800003600}`), "", "")
	f.Add([]byte(`{"alg":"EdDSA","kid":"ed"}`), []byte(`{"exp":1800003600,"hw":"A"}`), "", "%zz")
	f.Add([]byte(`{"alg":"EdDSA","kid":"ed"}`), []byte(`{"exp":1800003600,"ver":"1.*.*"}`), strings.Repeat("9", 300), "")

	priv := fg.ed.signer.(ed25519.PrivateKey)
	f.Fuzz(func(t *testing.T, header, claims []byte, version, hardware string) {
		input := b64(header) + "." + b64(claims)
		tok := input + "." + b64(ed25519.Sign(priv, []byte(input)))
		for _, g := range []*Gate{fg.plain, fg.itemGate} {
			r := bearer(tok)
			r.Header["X-Client-Version"] = []string{version}
			r.Header["X-Hardware-Id"] = []string{hardware}
			out := serve(t, g, r)
			checkServed(t, out, g.bodyPrefix, tok)
			if !out.passed {
				continue
			}
			if len(tok) > g.maxTokenSize {
				t.Fatal("a token over max_token_size passed")
			}
			if checkJSON(header) != nil || checkJSON(claims) != nil {
				t.Fatalf("passed with header %q claims %q", header, claims)
			}
			var h map[string]any
			if err := json.Unmarshal(header, &h); err != nil {
				t.Fatal(err)
			}
			if h["alg"] != "EdDSA" || h["crit"] != nil || checkHeader(h) != nil {
				t.Fatalf("passed with header %q", header)
			}
			if kid, ok := h["kid"]; ok && kid != "ed" {
				t.Fatalf("passed with kid %v", kid)
			}
			var c map[string]any
			d := json.NewDecoder(bytes.NewReader(claims))
			d.UseNumber()
			if err := d.Decode(&c); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Token(); err != io.EOF {
				t.Fatalf("passed with data after the claims: %q", claims)
			}
			lic, err := policy.Decode(c, &g.verifier.names)
			if err != nil {
				t.Fatalf("passed with claims Decode refuses: %v", err)
			}
			if fg.clk.Now().After(lic.Expires.Add(g.rules.Leeway)) {
				t.Fatalf("passed with exp %v", lic.Expires)
			}
		}
	})
}

// FuzzTokenFrom extracts tokens from arbitrary header values, query
// strings and cookies, for every kind of token_from.
func FuzzTokenFrom(f *testing.F) {
	for _, s := range [][3]string{
		{"Bearer abc.def.ghi", "access_token=abc.def.ghi", "lic=abc.def.ghi"},
		{"bearer   abc", "a=1&access_token=x%2By&b=2", "a=b; lic=c"},
		{"Basic YWxpY2U6c2VjcmV0", "access%5Ftoken=1", `lic="quoted"`},
		{"Bearer", "access_token", "lic"},
		{"Bearer ", "access_token=", "lic="},
		{"BEARER\tx", "access_token=%zz&access_token=b", "lic=a;lic=b"},
		{"", ";access_token=x", "\x00"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	sources := []ValueSource{
		{From: "header", Name: "Authorization"},
		{From: "header", Name: "X-License"},
		{From: "query", Name: "access_token"},
		{From: "cookie", Name: "lic"},
	}
	f.Fuzz(func(t *testing.T, header, rawQuery, cookie string) {
		r := httptest.NewRequest(http.MethodGet, "http://gate.test/", nil)
		r.Header["Authorization"] = []string{header}
		r.Header["X-License"] = []string{header}
		r.Header["Cookie"] = []string{cookie}
		r.URL.RawQuery = rawQuery
		for _, s := range sources {
			tok, why := tokenFrom(s, r)
			if (tok == "") == (why == "") {
				t.Fatalf("%s: token %q and reason %q", s, tok, why)
			}
			if tok == "" {
				continue
			}
			switch {
			case s.From == "header" && s.Name == "Authorization":
				scheme, _, _ := strings.Cut(header, " ")
				if !strings.EqualFold(scheme, "Bearer") || !strings.HasSuffix(header, tok) || tok[0] == ' ' {
					t.Fatalf("token %q from Authorization %q", tok, header)
				}
			case s.From == "header":
				if !strings.HasSuffix(header, tok) || len(tok) > len(header) {
					t.Fatalf("token %q from header %q", tok, header)
				}
			case s.From == "query":
				// Where the standard parser reads the query without error,
				// the gate reads the one value it holds.
				if q, err := url.ParseQuery(rawQuery); err == nil && unambiguous(q[s.Name]) != tok {
					t.Fatalf("token %q from query %q, url.ParseQuery says %q", tok, rawQuery, q[s.Name])
				}
			}
		}
		if q, err := url.ParseQuery(rawQuery); err == nil {
			// Several different values (an empty one included) are two
			// tokens: the gate reads none rather than pick one.
			if tok, _ := tokenFrom(sources[2], r); tok != unambiguous(q["access_token"]) {
				t.Fatalf("query %q: gate read %q, url.ParseQuery %q", rawQuery, tok, q["access_token"])
			}
		}
	})
}

// unambiguous is the value all of vals agree on, or "" when they differ
// or there are none.
func unambiguous(vals []string) string {
	for _, v := range vals[min(1, len(vals)):] {
		if v != vals[0] {
			return ""
		}
	}
	if len(vals) == 0 {
		return ""
	}
	return vals[0]
}

// FuzzParseKeySet parses arbitrary key set documents. Nothing panics, and
// a set that loads holds only public signature keys of the supported
// types and sizes: never an oct key, private key material or a short RSA
// key.
func FuzzParseKeySet(f *testing.F) {
	ed, es := newKey(f, "ed", "EdDSA"), newKey(f, "es", "ES384")
	rsaPriv := sharedRSA(f)
	for _, keys := range [][]map[string]any{
		{ed.public(f), es.public(f)},
		{jwkMap(f, &rsaPriv.PublicKey, map[string]any{"kid": "rs", "alg": "RS256"})},
		{jwkMap(f, rsaPriv, map[string]any{"kid": "priv"})},
		{jwkMap(f, es.signer, map[string]any{"kid": "ecpriv"}), ed.public(f)},
		{{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}, ed.public(f)},
		{{"kty": "RSA", "kid": "short", "n": b64(big.NewInt(1<<62 + 1).Bytes()), "e": "AQAB"}},
		{{"kty": "EC", "crv": "P-256", "kid": "off-curve", "x": b64(make([]byte, 32)), "y": b64(make([]byte, 32))}},
		{{"kty": "OKP", "crv": "Ed25519", "kid": "short-ed", "x": "AAAA"}},
		{{"kty": "OKP", "crv": "Ed25519", "kid": "ed-priv", "x": b64(make([]byte, 32)), "d": b64(make([]byte, 32))}},
		{ed.public(f), ed.public(f)},
	} {
		f.Add(jwksDoc(keys...))
	}
	single, _ := json.Marshal(ed.public(f))
	f.Add(single)
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`{"keys":[1,"x",null,[],{}]}`))
	f.Add([]byte(`{"kty":"oct","k":"AAAA"}`))
	f.Add([]byte(`<html>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		ks, refused, err := parseKeySet(doc)
		if err != nil {
			if ks != nil {
				t.Fatal("a key set returned with an error")
			}
			return
		}
		if ks == nil || len(ks.all) == 0 {
			t.Fatal("no error but no usable key")
		}
		n := 0
		for kid, list := range ks.byKid {
			for _, k := range list {
				if k.kid != kid {
					t.Fatalf("key of kid %q filed under %q", k.kid, kid)
				}
			}
			n += len(list)
		}
		if n != len(ks.all) {
			t.Fatalf("byKid holds %d keys, all %d", n, len(ks.all))
		}
		for _, k := range ks.all {
			switch p := k.key.(type) {
			case *rsa.PublicKey:
				if b := p.N.BitLen(); b < minRSABits || b > maxRSABits {
					t.Fatalf("RSA key of %d bits loaded", b)
				}
			case *ecdsa.PublicKey:
				if p.Curve != elliptic.P256() && p.Curve != elliptic.P384() && p.Curve != elliptic.P521() {
					t.Fatalf("curve %v loaded", p.Curve.Params().Name)
				}
				if _, err := p.ECDH(); err != nil {
					t.Fatalf("EC key off its curve loaded: %v", err)
				}
			case ed25519.PublicKey:
				if len(p) != ed25519.PublicKeySize {
					t.Fatalf("Ed25519 key of %d bytes loaded", len(p))
				}
			default:
				t.Fatalf("key of type %T loaded", k.key)
			}
		}
		for _, r := range refused {
			if r.reason == "" {
				t.Fatal("a key refused without a reason")
			}
		}
	})
}

// FuzzCheckJSON compares the strict JSON check with encoding/json: it
// accepts exactly the valid documents that are one object, nest at most
// maxJSONDepth deep and repeat no key (after decoding) in any object.
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":1,"a":2}`, `{"a":{"b":1,"b":2}}`, `{"a":[{"x":1},{"x":1}]}`,
		`{"a":1,"\u0061":2}`, `{"\ud800":1,"\udbff":2}`, "{\"\xff\":1,\"\xfe\":2}", `{"a\/b":1,"a/b":2}`,
		`{"a":` + strings.Repeat("[", 31) + strings.Repeat("]", 31) + `}`,
		`{"a":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`,
		`{"a":-0.5e+7,"b":true,"c":false,"d":null,"e":"\n\t\"\\"}`,
		`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":-}`, `{"a":tru}`, `{"a":1,}`, `[1]`, `"x"`, `{"a":1} x`,
		` { "a" : [ 1 , 2 ] } `, "{\"a\":\"\x01\"}", `{"a":"\x"}`, `{"a":"\u12"}`,
		`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k3":3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		err := checkJSON(doc)
		want := referenceCheck(doc)
		switch {
		case want == errJSONSyntax:
			if err == nil {
				t.Fatalf("accepted JSON encoding/json refuses: %q", doc)
			}
		case want == nil:
			if err != nil {
				t.Fatalf("refused %q: %v", doc, err)
			}
		default:
			if err == nil || err == errJSONSyntax {
				t.Fatalf("%q: got %v, want %v", doc, err, want)
			}
		}
	})
}

// referenceCheck is checkJSON written with encoding/json.
func referenceCheck(doc []byte) error {
	if !json.Valid(doc) {
		return errJSONSyntax
	}
	if t := bytes.TrimLeft(doc, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return errJSONNotObject
	}
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	type frame struct {
		keys   map[string]bool
		object bool
		key    bool // the next string is a key
	}
	var stack []*frame
	var result error
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return result
		}
		if err != nil {
			return errJSONSyntax
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if s, ok := tok.(string); ok && top != nil && top.object && top.key {
			if top.keys[s] && result == nil {
				result = errJSONDuplicate
			}
			top.keys[s] = true
			top.key = false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			stack = append(stack, &frame{keys: map[string]bool{}, object: tok == json.Delim('{'), key: tok == json.Delim('{')})
			if len(stack) > maxJSONDepth && result == nil {
				result = errJSONDepth
			}
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: in an object the next string is a key again.
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = true
		}
	}
}

// TestCheckCompact: the strict form of a compact JWS, table by table.
func TestCheckCompact(t *testing.T) {
	t.Parallel()
	seg := func(s string) string { return b64([]byte(s)) }
	h := seg(`{"alg":"EdDSA","kid":"ed"}`)
	p := seg(`{"exp":1900000000}`)
	sig := b64(bytes.Repeat([]byte{7}, 64)) // 86 characters: 2 spare bits
	valid := h + "." + p + "." + sig
	tests := []struct {
		name string
		tok  string
		want string // in the detail; "" means accepted
	}{
		{"a canonical token is accepted", valid, ""},
		{"an empty signature is left to the signature check", h + "." + p + ".", ""},
		{"nesting of 32 levels is accepted", h + "." + seg(`{"a":`+strings.Repeat("[", 31)+strings.Repeat("]", 31)+`}`) + "." + sig, ""},
		{"17 distinct keys are accepted", h + "." + seg(`{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1,"g":1,"h":1,"i":1,"j":1,"k":1,"l":1,"m":1,"n":1,"o":1,"p":1,"q":1}`) + "." + sig, ""},

		{"two segments are malformed", h + "." + p, "2 segments"},
		{"four segments are malformed", valid + ".", "4 segments"},
		{"a five-segment JWE is not a JWS", h + "." + p + "." + sig + "." + sig + "." + sig, "5 segments"},
		{"padding is refused", h + "." + p + "." + sig + "==", "not base64url"},
		{"the standard alphabet is refused", h + "." + p + "." + strings.NewReplacer("-", "+", "_", "/").Replace(b64(bytes.Repeat([]byte{0xfb, 0xff}, 32))), "not base64url"},
		{"a newline inside is refused", h + "." + p + "." + sig[:10] + "\n" + sig[10:], "not base64url"},
		{"a carriage return inside is refused", h + "\r." + p + "." + sig, "not base64url"},
		{"a space inside is refused", h + ". " + p + "." + sig, "not base64url"},
		{"a tab inside is refused", h + "." + p + "\t." + sig, "not base64url"},
		{"a NUL is refused", h + "." + p + "." + sig + "\x00", "not base64url"},
		{"non-zero trailing bits are refused", h + "." + p + "." + sig[:len(sig)-1] + string(sig[len(sig)-1]+1), "not canonical"},
		{"a truncated segment is refused", h + "." + p + "." + sig[:len(sig)-1], "not canonical"},
		{"a header that is not JSON is refused", seg(`{alg}`) + "." + p + "." + sig, "header: invalid JSON"},
		{"a header that is a string is refused", seg(`"alg"`) + "." + p + "." + sig, "header: not a JSON object"},
		{"a header that is an array is refused", seg(`["alg"]`) + "." + p + "." + sig, "header: not a JSON object"},
		{"claims that are null are refused", h + "." + seg(`null`) + "." + sig, "claims: not a JSON object"},
		{"a duplicate header key is refused", seg(`{"alg":"EdDSA","alg":"none"}`) + "." + p + "." + sig, "header: duplicate"},
		{"a duplicate claim is refused", h + "." + seg(`{"exp":1900000000,"sub":"a","exp":1}`) + "." + sig, "claims: duplicate"},
		{"a duplicate key spelled with an escape is refused", h + "." + seg(`{"sub":"a","s\u0075b":"b","exp":1}`) + "." + sig, "claims: duplicate"},
		{"a duplicate key deep inside is refused", h + "." + seg(`{"exp":1,"x":[{"a":{"b":1,"b":2}}]}`) + "." + sig, "claims: duplicate"},
		{"a duplicate among many keys is refused", h + "." + seg(`{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1,"g":1,"h":1,"i":1,"j":1,"k":1,"l":1,"m":1,"n":1,"o":1,"p":1,"q":1,"a":2}`) + "." + sig, "claims: duplicate"},
		{"nesting of 33 levels is refused", h + "." + seg(`{"a":`+strings.Repeat("[", 32)+strings.Repeat("]", 32)+`}`) + "." + sig, "deeper than 32"},
		{"nesting of 5000 levels is refused", h + "." + seg(`{"a":`+strings.Repeat("[", 5000)+strings.Repeat("]", 5000)+`}`) + "." + sig, "deeper than 32"},
		{"data after the claims object is refused", h + "." + seg(`{"exp":1900000000} {"exp":1}`) + "." + sig, "claims: invalid JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rej := checkCompact(tc.tok)
			if tc.want == "" {
				if rej != nil {
					t.Fatalf("refused: %v", rej)
				}
				return
			}
			if rej == nil {
				t.Fatal("accepted")
			}
			if rej.Code != policy.CodeNotAuthorized || rej.Status != 401 || !strings.Contains(rej.Detail, tc.want) {
				t.Fatalf("reject %+v, want notAuthorized 401 with %q", rej, tc.want)
			}
		})
	}
}

// TestTokenHashAllocatesNothing: hashing the token for the cache lookup
// allocates nothing (the copy goes to a buffer on the stack).
func TestTokenHashAllocatesNothing(t *testing.T) {
	tok := strings.Repeat("eyJhbGciOiJFUzI1NiJ9", 50)
	want := tokenHash(tok)
	if n := testing.AllocsPerRun(100, func() {
		if tokenHash(tok) != want {
			t.Fatal("hash changed")
		}
	}); n != 0 {
		t.Errorf("tokenHash allocates %v times", n)
	}
}

// TestCheckCompactIsCheap: the strict check of a typical token allocates
// nothing.
func TestCheckCompactIsCheap(t *testing.T) {
	clk := newClock()
	k := newKey(t, "k", "ES256")
	tok := k.sign(t, claimsAt(clk, "items", []string{"axesWord"}, "credits", 10, "ver", "1.*.*"), nil)
	if n := testing.AllocsPerRun(100, func() {
		if checkCompact(tok) != nil {
			t.Fatal("refused")
		}
	}); n != 0 {
		t.Errorf("checkCompact allocates %v times for a typical token", n)
	}
}

package integration

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/licensegate/licensegate/internal/testredis"
)

// licenseView is the admin API's view of a license in one store.
type licenseView struct {
	Store        string `json:"store"`
	Issuer       string `json:"iss"`
	Key          string `json:"key"`
	Used         int64  `json:"credits_used"`
	Leased       int64  `json:"credits_leased"`
	Limit        *int64 `json:"credits_limit"`
	Left         *int64 `json:"credits_left"`
	Seats        int64  `json:"seats_in_use"`
	Revoked      bool   `json:"revoked"`
	RevokedUntil int64  `json:"revoked_until"`
}

// storesView is the admin API's view of a license across several stores.
type storesView struct {
	Issuer string        `json:"iss"`
	Key    string        `json:"key"`
	Stores []licenseView `json:"stores"`
}

func decodeView[T any](t testing.TB, s string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("admin answer %s: %v", s, err)
	}
	return v
}

// escapeKey escapes a counting key for an admin path: every byte but
// letters, digits and - _ ~ is %-escaped, the dots of "." and ".." too.
func escapeKey(k string) string {
	return strings.ReplaceAll(url.PathEscape(k), ".", "%2E")
}

// TestCountersBelongToIssuers: issuer B's token with the same jti as
// issuer A's spends its own budget, never A's; a revocation of B's leaves
// A's alone; the admin API needs the issuer while the config names two.
func TestCountersBelongToIssuers(t *testing.T) {
	t.Parallel()
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			ka, kb := NewRSAKey(t, "issuer-a", "RS256"), NewECKey(t, "issuer-b", "ES256")
			a, b := NewKeyServer(t, JWKS(t, ka)), NewKeyServer(t, JWKS(t, kb))
			c := StartCaddy(t, keysSite(hostPort(echoUpstream(t).URL),
				"oidc_issuer "+a.URL+"\n\t\toidc_issuer "+b.URL+"\n\t\t"+sc.store(t)))

			const jti = "lic-42-t1"
			tokA := ka.Sign(t, Std("iss", a.URL, "jti", jti, "credits", 1))
			tokB := kb.Sign(t, Std("iss", b.URL, "jti", jti, "credits", 1))
			mustPass(t, c, tokA)
			// Before the namespace, B's first request found A's credit spent: 403.
			mustPass(t, c, tokB)
			resp, body := c.Get(t, "/", tokA)
			AssertReject(t, resp, body, http.StatusForbidden, "maxUseCountExceed", "")

			// The admin API: the issuer is needed, and picks the license.
			out := adminDo(t, c, http.MethodGet, "/license-gate/licenses/"+jti, "", http.StatusBadRequest)
			if !strings.Contains(out, "iss") {
				t.Errorf("no hint to name the issuer: %s", out)
			}
			va := decodeView[licenseView](t, adminDo(t, c, http.MethodGet, "/license-gate/licenses/"+jti+"?iss="+url.QueryEscape(a.URL), "", 200))
			vb := decodeView[licenseView](t, adminDo(t, c, http.MethodGet, "/license-gate/licenses/"+jti+"?iss="+url.QueryEscape(b.URL), "", 200))
			if va.Issuer != a.URL || va.Used != 1 || *va.Limit != 1 || vb.Issuer != b.URL || vb.Used != 1 || *vb.Limit != 1 {
				t.Fatalf("A %+v, B %+v", va, vb)
			}
			body2, _ := json.Marshal(map[string]any{"jti": jti, "iss": b.URL})
			adminDo(t, c, http.MethodPost, "/license-gate/revocations", string(body2), 200)
			resp, body = c.Get(t, "/", tokB)
			AssertReject(t, resp, body, http.StatusUnauthorized, "notAuthorized", "")
			resp, body = c.Get(t, "/", tokA)
			AssertReject(t, resp, body, http.StatusForbidden, "maxUseCountExceed", "")
			// A top up of A's license in the body's issuer lets A through.
			body3, _ := json.Marshal(map[string]any{"add": 1, "iss": a.URL})
			adminDo(t, c, http.MethodPost, "/license-gate/licenses/"+jti+"/credits", string(body3), 200)
			mustPass(t, c, tokA)
		})
	}
}

// TestAdminAPIPerStore: a config with a memory route and a Redis route is
// answered store by store, by name; a top up names its store; a
// revocation reaches both.
func TestAdminAPIPerStore(t *testing.T) {
	t.Parallel()
	key := NewRSAKey(t, "k1", "RS256")
	ks := NewKeyServer(t, JWKS(t, key))
	up := hostPort(echoUpstream(t).URL)
	r := testredis.Start(t)
	c := StartCaddy(t, `
	handle /m/* {
		license_gate {
			jwks_url `+ks.JWKSURL()+`
		}
		reverse_proxy `+up+`
	}
	handle /r/* {
		license_gate {
			jwks_url `+ks.JWKSURL()+`
			store redis {
				addresses `+r.Addr()+`
			}
		}
		reverse_proxy `+up+`
	}`)
	redisName := "redis " + r.Addr() + " lg:"
	claims := Std("credits", 5)
	tok, jti := key.Sign(t, claims), claims["jti"].(string)
	for _, p := range []string{"/m/1", "/m/2", "/r/1"} {
		if resp, body := c.Get(t, p, tok); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", p, resp.StatusCode, body)
		}
	}
	used := func() map[string]int64 {
		t.Helper()
		v := decodeView[storesView](t, adminDo(t, c, http.MethodGet, "/license-gate/licenses/"+jti, "", 200))
		out := map[string]int64{}
		for _, s := range v.Stores {
			out[s.Store] = s.Used
		}
		if v.Key != jti || len(v.Stores) != 2 {
			t.Fatalf("view %+v", v)
		}
		return out
	}
	// Before, only the first store (memory) was reported.
	if u := used(); u["memory"] != 2 || u[redisName] != 1 {
		t.Fatalf("used per store %v, want memory 2 and %q 1", u, redisName)
	}
	one := decodeView[licenseView](t, adminDo(t, c, http.MethodGet, "/license-gate/licenses/"+jti+"?store="+url.QueryEscape(redisName), "", 200))
	if one.Store != redisName || one.Used != 1 {
		t.Fatalf("the Redis store alone: %+v", one)
	}
	adminDo(t, c, http.MethodGet, "/license-gate/licenses/"+jti+"?store=nope", "", http.StatusNotFound)

	// A top up without a store would grant it twice over: refused.
	adminDo(t, c, http.MethodPost, "/license-gate/licenses/"+jti+"/credits", `{"add": 3}`, http.StatusBadRequest)
	adminDo(t, c, http.MethodPost, "/license-gate/licenses/"+jti+"/credits?store=memory", `{"add": 3}`, 200)
	if u := used(); u["memory"] != -1 || u[redisName] != 1 {
		t.Fatalf("after topping up memory by 3: %v", u)
	}

	// A revocation reaches every store.
	v := decodeView[storesView](t, adminDo(t, c, http.MethodPost, "/license-gate/revocations", `{"jti":"`+jti+`"}`, 200))
	for _, s := range v.Stores {
		if !s.Revoked {
			t.Errorf("store %q not revoked: %+v", s.Store, s)
		}
	}
	for _, p := range []string{"/m/3", "/r/3"} {
		resp, body := c.Get(t, p, tok)
		AssertReject(t, resp, body, http.StatusUnauthorized, "notAuthorized", "")
	}
	adminDo(t, c, http.MethodDelete, "/license-gate/revocations/"+jti, "", 200)
	for _, p := range []string{"/m/3", "/r/3"} {
		if resp, body := c.Get(t, p, tok); resp.StatusCode != 200 {
			t.Fatalf("%s after unrevoking: %d %s", p, resp.StatusCode, body)
		}
	}
}

// adminGate is a gate on sc's store in front of an echo upstream, and the
// key its tokens are signed with.
func adminGate(t *testing.T, sc storeCase) (*Caddy, *Key) {
	key := NewRSAKey(t, "k1", "RS256")
	ks := NewKeyServer(t, JWKS(t, key))
	return StartCaddy(t, keysSite(hostPort(echoUpstream(t).URL), "jwks_url "+ks.JWKSURL()+"\n\t\t"+sc.store(t))), key
}

// TestAdminAPIKeysWithAnyCharacters: a key holding "/", "%", "?", "#",
// spaces, braces or unicode, or being "." or "..", is read, revoked and
// unrevoked through its escaped path, on both stores.
func TestAdminAPIKeysWithAnyCharacters(t *testing.T) {
	t.Parallel()
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			c, key := adminGate(t, sc)
			for _, jti := range []string{"lic/42/../t1", "a b?c#d%e&f=g", "}x{", "ключ 🔑", ".", "..", "a//b/"} {
				tok := key.Sign(t, Std("jti", jti, "credits", 3))
				mustPass(t, c, tok)
				path := "/license-gate/licenses/" + escapeKey(jti)
				v := decodeView[licenseView](t, adminDo(t, c, http.MethodGet, path, "", 200))
				if v.Key != jti || v.Used != 1 {
					t.Fatalf("%q: view %+v", jti, v)
				}
				adminDo(t, c, http.MethodPost, path+"/credits", `{"add": 1}`, 200)
				body, _ := json.Marshal(map[string]any{"jti": jti})
				adminDo(t, c, http.MethodPost, "/license-gate/revocations", string(body), 200)
				resp, rb := c.Get(t, "/", tok)
				AssertReject(t, resp, rb, http.StatusUnauthorized, "notAuthorized", "")
				v = decodeView[licenseView](t, adminDo(t, c, http.MethodDelete, "/license-gate/revocations/"+escapeKey(jti), "", 200))
				if v.Revoked || v.Used != 0 {
					t.Fatalf("%q after unrevoking: %+v", jti, v)
				}
				mustPass(t, c, tok)
			}
		})
	}
}

// TestAdminAPIRefusesOutOfRangeInput: an end beyond year 9999, an expiry
// in the past or a top up beyond the credits' range is 400 and changes
// nothing (before, a far end overflowed and silently lifted a Redis
// revocation while answering "revoked": true).
func TestAdminAPIRefusesOutOfRangeInput(t *testing.T) {
	t.Parallel()
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			c, key := adminGate(t, sc)
			claims := Std("credits", 5)
			tok, jti := key.Sign(t, claims), claims["jti"].(string)
			mustPass(t, c, tok)
			path := "/license-gate/licenses/" + jti
			adminDo(t, c, http.MethodPost, "/license-gate/revocations", `{"jti":"`+jti+`","until":4102444800}`, 200)
			before := adminDo(t, c, http.MethodGet, path, "", 200)
			for _, bad := range []struct{ path, body string }{
				{"/license-gate/revocations", `{"jti":"` + jti + `","until":253402300800}`},
				{"/license-gate/revocations", `{"jti":"` + jti + `","until":9223372036854775807}`},
				{"/license-gate/revocations", `{"jti":"` + jti + `","until":-1}`},
				{"/license-gate/revocations", `{"jti":"` + jti + `","until":9223372036854775808}`},
				{path + "/credits", `{"add": 1, "expires": 1}`},
				{path + "/credits", `{"add": 1, "expires": 253402300800}`},
				{path + "/credits", `{"reset": true, "expires": 1000}`},
				{path + "/credits", `{"add": 9007199254740992}`},
				{path + "/credits", `{"add": -9223372036854775808}`},
				{path + "/credits", `{"add": 1, "iss": 7}`},
				{path + "/credits?iss=x", `{"add": 1, "iss": "y"}`},
				{"/license-gate/licenses/" + strings.Repeat("k", 17<<10), ``},
			} {
				method := http.MethodPost
				if bad.body == "" {
					method = http.MethodGet
				}
				out := adminDo(t, c, method, bad.path, bad.body, http.StatusBadRequest)
				if !strings.Contains(out, `"error"`) {
					t.Errorf("%s %s: no error message: %s", bad.path, bad.body, out)
				}
			}
			if after := adminDo(t, c, http.MethodGet, path, "", 200); after != before {
				t.Fatalf("refused input changed the license:\nbefore %s\nafter  %s", before, after)
			}
			resp, body := c.Get(t, "/", tok)
			AssertReject(t, resp, body, http.StatusUnauthorized, "notAuthorized", "")
		})
	}
}

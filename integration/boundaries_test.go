package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The edges of the gate's trust through the real binary: the token goes
// nowhere but the gate, only an allowed request names a user, client
// anchors are bounded and unambiguous, and a preflight that passes
// unchecked carries nothing.

// received is what echoUpstream saw.
type received struct {
	Method  string      `json:"method"`
	URI     string      `json:"uri"`
	Headers http.Header `json:"headers"`
	Body    string      `json:"body"`
}

// upstreamSaw checks that a response came from echoUpstream and reads what
// it received: upstreamSaw(t)(c.Get(...)).
func upstreamSaw(t testing.TB) func(*http.Response, []byte) received {
	return func(resp *http.Response, body []byte) received {
		t.Helper()
		assertPassed(t, resp, body)
		var r received
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("upstream body %s: %v", body, err)
		}
		return r
	}
}

// plainGate starts a site with a default license_gate in front of
// echoUpstream and returns its key.
func plainGate(t testing.TB) (*Key, *Caddy) {
	t.Helper()
	key := NewRSAKey(t, "k1", "RS256")
	ks := NewKeyServer(t, JWKS(t, key))
	up := echoUpstream(t)
	return key, StartCaddy(t, `
	license_gate {
		jwks_url `+ks.JWKSURL()+`
	}
	reverse_proxy `+hostPort(up.URL))
}

// logFilter is the format README gives for Caddy's access and error logs
// when the token comes from the query or a custom header.
const logFilter = `format filter {
			wrap json
			request>uri query {
				delete access_token
			}
			request>headers>X-License delete
		}`

func TestTokenGoesNowhereElse(t *testing.T) {
	t.Parallel()
	key, other := NewRSAKey(t, "k1", "RS256"), NewRSAKey(t, "k1", "RS256")
	ks := NewKeyServer(t, JWKS(t, key))
	up := echoUpstream(t)
	port, admin, closed := freePort(t), freePort(t), freePort(t)
	gate := func(extra string) string {
		return "license_gate {\n\t\t\tjwks_url " + ks.JWKSURL() + "\n\t\t\t" + extra + "\n\t\t}"
	}
	// Caddy's debug logs (reverse_proxy's among them) are not filtered:
	// they show what the gate passed on. Caddy's access log and its error
	// log print the request as it arrived and get README's filter.
	cfg := fmt.Sprintf(`{
	admin 127.0.0.1:%[1]d
	http_port %[2]d
	auto_https off
	persist_config off
	debug
	log default {
		output stderr
		format json
		level DEBUG
		exclude http.log.error
	}
	log errors {
		output stderr
		include http.log.error
		level DEBUG
		%[6]s
	}
}

http://127.0.0.1:%[2]d {
	log {
		output stderr
		level DEBUG
		%[6]s
	}
	handle /q/* {
		%[3]s
		reverse_proxy %[4]s {
			header_up X-Uri {http.request.uri}
			header_up X-Orig-Query {http.request.orig_uri.query}
		}
	}
	handle /shadow/* {
		%[7]s
		reverse_proxy %[4]s
	}
	handle /h/* {
		%[8]s
		reverse_proxy %[4]s
	}
	handle /down/* {
		%[3]s
		reverse_proxy 127.0.0.1:%[5]d
	}
	handle_errors {
		respond "error uri={http.request.uri}" 502
	}
}
`, admin, port, gate("token_from query access_token"), hostPort(up.URL), closed, logFilter,
		gate("token_from query access_token\n\t\t\tshadow\n\t\t\trequire_item axesWord"), gate("token_from header X-License"))
	c := StartCaddyfile(t, cfg, port, admin, nil)

	var tokens []string
	sign := func(k *Key, claims Claims) string {
		s := k.Sign(t, claims)
		tokens = append(tokens, s)
		return s
	}
	expired := Std("exp", time.Now().Add(-time.Hour).Unix())

	t.Run("a query token is removed and the other parameters stay as sent", func(t *testing.T) {
		tok := sign(key, Std())
		got := upstreamSaw(t)(c.Get(t, "/q/x?b=2&access_token="+tok+"&a=%20x+y&a=1&%61ccess_token="+tok, ""))
		if got.URI != "/q/x?b=2&a=%20x+y&a=1" {
			t.Errorf("upstream got %q", got.URI)
		}
		if u, q := got.Headers.Get("X-Uri"), got.Headers.Get("X-Orig-Query"); u != got.URI || q != "b=2&a=%20x+y&a=1" {
			t.Errorf("{http.request.uri} %q, {http.request.orig_uri.query} %q", u, q)
		}
	})
	t.Run("a query token that is the only parameter leaves no query", func(t *testing.T) {
		got := upstreamSaw(t)(c.Get(t, "/q/y?access_token="+sign(key, Std()), ""))
		if got.URI != "/q/y" {
			t.Errorf("upstream got %q", got.URI)
		}
	})
	t.Run("a shadow route passes the request on without the token", func(t *testing.T) {
		got := upstreamSaw(t)(c.Get(t, "/shadow/x?access_token="+sign(key, expired)+"&k=v", ""))
		if got.URI != "/shadow/x?k=v" {
			t.Errorf("upstream got %q", got.URI)
		}
	})
	t.Run("a preflight's URL loses the token too", func(t *testing.T) {
		req := c.request(t, http.MethodOptions, "/q/pre?access_token="+sign(key, Std())+"&y=1",
			"Origin", "https://app.example", "Access-Control-Request-Method", "GET")
		got := upstreamSaw(t)(Do(t, req))
		if got.URI != "/q/pre?y=1" {
			t.Errorf("upstream got %q", got.URI)
		}
	})
	t.Run("a custom header token is removed", func(t *testing.T) {
		got := upstreamSaw(t)(c.Get(t, "/h/x", "", "X-License", sign(key, Std()), "X-Other", "stays"))
		if v, ok := got.Headers["X-License"]; ok || got.Headers.Get("X-Other") != "stays" {
			t.Errorf("upstream got X-License %q, headers %v", v, got.Headers)
		}
	})
	t.Run("rejected query and header tokens", func(t *testing.T) {
		resp, body := c.Get(t, "/q/x?access_token="+sign(key, expired)+"&z=1", "")
		assertRejected(t, resp, body, 401, "licenseExpired", "", "")
		resp, body = c.Get(t, "/q/x?access_token="+sign(other, Std()), "")
		assertRejected(t, resp, body, 401, "notAuthorized", "", "")
		resp, body = c.Get(t, "/h/x", "", "X-License", sign(other, Std()))
		assertRejected(t, resp, body, 401, "notAuthorized", "", "")
	})
	t.Run("two different query tokens are refused", func(t *testing.T) {
		resp, body := c.Get(t, "/q/x?access_token="+sign(key, Std())+"&access_token="+sign(key, Std()), "")
		assertRejected(t, resp, body, 401, "notAuthorized", "", "two different tokens in query access_token")
	})
	t.Run("an upstream failure's error log holds no token", func(t *testing.T) {
		resp, body := c.Get(t, "/down/x?access_token="+sign(key, Std())+"&k=v", "")
		if resp.StatusCode != http.StatusBadGateway || string(body) != "error uri=/down/x?k=v" {
			t.Fatalf("got %d %q, want 502 from handle_errors without the token", resp.StatusCode, body)
		}
	})

	// Every request has its access log line, and reverse_proxy's debug
	// lines show the request it sent.
	WaitFor(t, 5*time.Second, "the access log lines", func() bool { return len(c.Logs.logLines("handled request")) >= 10 })
	var proxied []string
	for _, l := range c.Logs.logLines("selected upstream") {
		proxied = append(proxied, fmt.Sprint(l["request"]))
	}
	for _, l := range c.Logs.logLines("upstream roundtrip") {
		proxied = append(proxied, fmt.Sprint(l["request"]))
	}
	if !strings.Contains(strings.Join(proxied, "\n"), "/q/x?b=2&a=%20x+y&a=1") {
		t.Errorf("reverse_proxy's debug lines do not show the proxied request:\n%s", strings.Join(proxied, "\n"))
	}
	if !strings.Contains(c.Logs.String(), `"logger":"http.log.error`) {
		t.Errorf("no error log line for the upstream failure")
	}
	logs := c.Logs.String()
	for i, tok := range tokens {
		if sig := tok[strings.LastIndex(tok, ".")+1:]; strings.Contains(logs, sig) {
			for _, line := range strings.Split(logs, "\n") {
				if strings.Contains(line, sig) {
					t.Errorf("token %d is in a log line: %s", i, line)
				}
			}
		}
	}
	warned := map[string]bool{}
	for _, l := range c.Logs.logLines("the gate removes the token from the request it passes on, but Caddy's access and error logs " +
		"print the request as it arrived; keep the token out of them with a filter in each log's format") {
		warned[fmt.Sprint(l["token_from"], " -> ", l["format"])] = l["level"] == "warn"
	}
	for _, w := range []string{"query access_token -> filter { request>uri query { delete access_token } }",
		"header X-License -> filter { request>headers>X-License delete }"} {
		if !warned[w] {
			t.Errorf("no warning %q at provisioning: %v", w, warned)
		}
	}
}

func TestOnlyAnAllowedRequestNamesAUser(t *testing.T) {
	t.Parallel()
	key, other := NewRSAKey(t, "k1", "RS256"), NewRSAKey(t, "k1", "RS256")
	ks := NewKeyServer(t, JWKS(t, key))
	up := echoUpstream(t)
	route := func(path, extra string) string {
		return fmt.Sprintf(`
	handle %s {
		license_gate {
			jwks_url %s
			%s
		}
		reverse_proxy %s {
			header_up X-User {http.auth.user.id}
			header_up X-Candidate {http.auth.candidate.id}
		}
	}`, path, ks.JWKSURL(), extra, hostPort(up.URL))
	}
	c := StartCaddy(t, "log {\n\t\toutput stderr\n\t\tformat json\n\t}"+
		route("/shadow/*", "shadow\n\t\t\trequire_item axesWord")+route("", "require_item axesWord"))
	expired := func(sub string) Claims {
		return Std("sub", sub, "items", []string{"axesWord"}, "exp", time.Now().Add(-time.Hour).Unix())
	}
	tests := []struct {
		name, path string
		tok        string
		user, cand string
	}{
		{"an allowed request names the user", "/shadow/ok", key.Sign(t, Std("sub", "alice", "items", []string{"axesWord"})), "alice", ""},
		{"an expired token in shadow mode is only a candidate", "/shadow/expired", key.Sign(t, expired("mallory")), "", "mallory"},
		{"a forged token in shadow mode names nobody", "/shadow/forged", other.Sign(t, Std("sub", "mallory", "items", []string{"axesWord"})), "", ""},
		{"a shadow would-be reject is only a candidate", "/shadow/unlicensed", key.Sign(t, Std("sub", "bob")), "", "bob"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := upstreamSaw(t)(c.Get(t, tc.path, tc.tok))
			if u, cand := got.Headers.Get("X-User"), got.Headers.Get("X-Candidate"); u != tc.user || cand != tc.cand {
				t.Errorf("upstream got X-User %q, X-Candidate %q; want %q, %q", u, cand, tc.user, tc.cand)
			}
		})
	}

	// Outside shadow mode nothing reaches the upstream; Caddy's access log
	// names the user of an allowed request only.
	resp, body := c.Get(t, "/strict/expired", key.Sign(t, expired("mallory")))
	assertRejected(t, resp, body, 401, "licenseExpired", "axesWord", "")
	resp, body = c.Get(t, "/strict/unlicensed", key.Sign(t, Std("sub", "bob")))
	assertRejected(t, resp, body, 403, "noLicenseFound", "axesWord", "")
	upstreamSaw(t)(c.Get(t, "/strict/ok", key.Sign(t, Std("sub", "alice", "items", []string{"axesWord"}))))
	want := map[string]string{"/strict/expired": "", "/strict/unlicensed": "", "/strict/ok": "alice", "/shadow/expired": "", "/shadow/ok": "alice"}
	WaitFor(t, 5*time.Second, "the access log lines", func() bool { return len(c.Logs.logLines("handled request")) >= 7 })
	for _, l := range c.Logs.logLines("handled request") {
		req, _ := l["request"].(map[string]any)
		uri, _ := req["uri"].(string)
		if w, ok := want[uri]; ok {
			if l["user_id"] != w {
				t.Errorf("access log of %s: user_id %q, want %q", uri, l["user_id"], w)
			}
			delete(want, uri)
		}
	}
	if len(want) > 0 {
		t.Errorf("no access log line for %v", want)
	}
}

func TestClientAnchorsAreBoundedAndUnambiguous(t *testing.T) {
	t.Parallel()
	key, c := plainGate(t)

	long := strings.Repeat("h", 257)
	tests := []struct {
		name   string
		query  string
		header []string // name, value pairs, each added
		detail string
	}{
		{"a hardware id over 256 bytes", "version=1.0.0", []string{"X-Hardware-Id", long}, "hardware id in header X-Hardware-Id has 257 bytes, more than 256"},
		{"a hardware id over 256 bytes in the query", "version=1.0.0&hw=" + long, nil, "hardware id in query hw has 257 bytes"},
		{"a version over 256 bytes", "hw=HW-1", []string{"X-Client-Version", "1.0." + long}, "client version in header X-Client-Version has 261 bytes"},
		{"two hardware id headers that differ", "version=1.0.0", []string{"X-Hardware-Id", "HW-1", "X-Hardware-Id", "HW-2"}, "two different hardware ids sent (header X-Hardware-Id, twice)"},
		{"two hw parameters that differ", "version=1.0.0&hw=HW-1&hw=HW-2", nil, "two different hardware ids sent (query hw, twice)"},
		{"a hardware id header and parameter that differ", "version=1.0.0&hw=HW-2", []string{"X-Hardware-Id", "HW-1"}, "(header X-Hardware-Id and query hw)"},
		{"two versions that differ", "hw=HW-1&version=1.0.0", []string{"X-Client-Version", "1.0.1"}, "two different client versions sent (header X-Client-Version and query version)"},
	}
	for _, tc := range tests {
		t.Run(tc.name+" is BadArgument and costs nothing", func(t *testing.T) {
			claims := Std("credits", 1, "seats", 1, "ver", "1.*.*")
			tok, jti := key.Sign(t, claims), claims["jti"].(string)
			req := c.request(t, http.MethodGet, "/x?"+tc.query)
			req.Header.Set("Authorization", "Bearer "+tok)
			for i := 0; i+1 < len(tc.header); i += 2 {
				req.Header.Add(tc.header[i], tc.header[i+1])
			}
			resp, body := Do(t, req)
			assertRejected(t, resp, body, http.StatusBadRequest, "BadArgument", "", tc.detail)
			var u map[string]any
			if err := json.Unmarshal([]byte(adminDo(t, c, http.MethodGet, "/license-gate/licenses/"+jti, "", 200)), &u); err != nil {
				t.Fatal(err)
			}
			if u["credits_used"] != 0.0 || u["seats_in_use"] != 0.0 {
				t.Errorf("after the reject: %v", u)
			}
			// The credit and the seat are there for another device.
			got := upstreamSaw(t)(c.Get(t, "/x?hw=HW-3&version=1.0.0", tok))
			if got.URI != "/x?hw=HW-3&version=1.0.0" {
				t.Errorf("upstream got %q", got.URI)
			}
		})
	}
	t.Run("the same id sent three times and a 256-byte id pass", func(t *testing.T) {
		id := strings.Repeat("h", 256)
		req := c.request(t, http.MethodGet, "/x?version=1.2.3&hw="+id)
		req.Header.Set("Authorization", "Bearer "+key.Sign(t, Std("seats", 1, "ver", "1.*.*", "hw", id)))
		req.Header.Add("X-Hardware-Id", id)
		req.Header.Add("X-Hardware-Id", id)
		req.Header.Add("X-Client-Version", "1.2.3")
		upstreamSaw(t)(Do(t, req))
	})
	t.Run("a token without ver, hw or seats does not read the anchors", func(t *testing.T) {
		resp, body := c.Get(t, "/x?hw=A&hw=B", key.Sign(t, Std()), "X-Hardware-Id", long)
		assertPassed(t, resp, body)
	})
}

func TestPreflightsCarryNothing(t *testing.T) {
	t.Parallel()
	key, c := plainGate(t)
	preflight := func(t *testing.T, body string, length int64, chunked bool) (*http.Response, []byte) {
		req, err := http.NewRequest(http.MethodOptions, c.URL+"/x", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", "https://app.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.ContentLength = length
		if chunked {
			req.TransferEncoding = []string{"chunked"}
		}
		return Do(t, req)
	}
	t.Run("a preflight without a body passes unchecked", func(t *testing.T) {
		if got := upstreamSaw(t)(preflight(t, "", 0, false)); got.Method != http.MethodOptions || got.Body != "" {
			t.Errorf("upstream got %+v", got)
		}
	})
	t.Run("a preflight with Content-Length 0 passes unchecked", func(t *testing.T) {
		req := c.request(t, http.MethodOptions, "/x", "Origin", "https://app.example", "Access-Control-Request-Method", "POST")
		req.Body, req.ContentLength = http.NoBody, 0
		upstreamSaw(t)(Do(t, req))
	})
	t.Run("a preflight with a body is checked", func(t *testing.T) {
		resp, body := preflight(t, "smuggled", 8, false)
		assertRejected(t, resp, body, 401, "notAuthorized", "", "no token")
	})
	t.Run("a preflight with a chunked body is checked", func(t *testing.T) {
		resp, body := preflight(t, "smuggled", -1, true)
		assertRejected(t, resp, body, 401, "notAuthorized", "", "no token")
	})
	t.Run("a preflight with a body and a valid token passes, checked", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodOptions, c.URL+"/x", strings.NewReader("data"))
		req.Header.Set("Origin", "https://app.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Authorization", "Bearer "+key.Sign(t, Std()))
		if got := upstreamSaw(t)(Do(t, req)); got.Body != "data" {
			t.Errorf("upstream got %+v", got)
		}
	})
}

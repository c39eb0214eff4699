package integration

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/licensegate/licensegate/internal/testredis"
)

// binPath is the licensegate binary built once for the whole package.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "licensegate-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "licensegate")
	build := exec.Command("go", "build", "-o", binPath, "../cmd/licensegate")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building licensegate:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback TCP port that was free a moment ago and is
// handed out once per test process (shared with testredis).
func freePort(t testing.TB) int { return testredis.FreePort(t) }

// syncBuffer collects a process's output safely.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logLines returns the JSON log lines whose msg equals msg.
func (s *syncBuffer) logLines(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(s.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// Caddy is one running licensegate binary.
type Caddy struct {
	URL      string // http://127.0.0.1:<port>
	AdminURL string
	Logs     *syncBuffer
	Dir      string
	cmd      *exec.Cmd
}

// CaddyOptions shape the generated Caddyfile.
type CaddyOptions struct {
	Globals string            // extra global options
	Env     []string          // extra environment
	Files   map[string]string // files written beside the Caddyfile
}

// StartCaddy writes a Caddyfile with one site on a free port whose body
// is site, starts the binary and waits until it serves.
func StartCaddy(t testing.TB, site string, o ...CaddyOptions) *Caddy {
	t.Helper()
	var opt CaddyOptions
	if len(o) > 0 {
		opt = o[0]
	}
	dir := t.TempDir()
	port, admin := freePort(t), freePort(t)
	for name, body := range opt.Files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return runCaddyfile(t, dir, SiteCaddyfile(port, admin, opt.Globals, site), port, admin, opt.Env)
}

// SiteCaddyfile is the Caddyfile StartCaddy runs: JSON logs at DEBUG on
// stderr, the extra global options, and one site on port whose body is site.
func SiteCaddyfile(port, admin int, globals, site string) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	http_port %d
	auto_https off
	persist_config off
	log {
		output stderr
		format json
		level DEBUG
	}
	%s
}

http://127.0.0.1:%d {
	%s
}
`, admin, port, globals, port, site)
}

// StartKeyFileGate is StartCaddy for a site whose license_gate reads
// key's public key set from keys.json (jwks_file keys.json).
func StartKeyFileGate(t testing.TB, key *Key, site string) *Caddy {
	t.Helper()
	return StartCaddy(t, site, CaddyOptions{Files: map[string]string{"keys.json": JWKS(t, key)}})
}

// StartCaddyfile runs the binary on a whole Caddyfile of the caller's (in a
// fresh directory holding files), whose site listens on port and whose
// admin endpoint is on admin, and waits until it serves.
func StartCaddyfile(t testing.TB, cfg string, port, admin int, files map[string]string, env ...string) *Caddy {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return runCaddyfile(t, dir, cfg, port, admin, env)
}

func runCaddyfile(t testing.TB, dir, cfg string, port, admin int, env []string) *Caddy {
	t.Helper()
	cfgPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &Caddy{
		URL:      fmt.Sprintf("http://127.0.0.1:%d", port),
		AdminURL: fmt.Sprintf("http://127.0.0.1:%d", admin),
		Logs:     &syncBuffer{},
		Dir:      dir,
	}
	env = append(append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir), env...)
	c.cmd = runBinary(t, "caddy", dir, []string{"run", "--config", cfgPath, "--adapter", "caddyfile"}, env, c.Logs,
		fmt.Sprintf("127.0.0.1:%d", port), func() (bool, error) {
			// Make sure the listener is this process's: its admin
			// endpoint serves this config.
			resp, err := http.Get(c.AdminURL + "/config/")
			if err != nil {
				return false, nil
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), fmt.Sprintf(":%d", port)) {
				return false, fmt.Errorf("port %d or %d is served by another process:\n%s", port, admin, body)
			}
			return true, nil
		})
	return c
}

// runBinary starts the licensegate binary with args in dir (env its whole
// environment, output into logs), kills it when the test ends,
// and waits until addr accepts connections and ready, when given, says so.
// It fails the test when the process exits first or never gets ready.
func runBinary(t testing.TB, name, dir string, args, env []string, logs *syncBuffer, addr string,
	ready func() (bool, error)) *exec.Cmd {
	t.Helper()
	return runProgram(t, name, binPath, dir, args, env, logs, addr, ready)
}

// runProgram is runBinary for any program (such as prometheus).
func runProgram(t testing.TB, name, program, dir string, args, env []string, logs *syncBuffer, addr string,
	ready func() (bool, error)) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(program, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s logs:\n%s", name, tail(logs.String(), 8000))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s exited: %v\n%s", name, err, logs.String())
		default:
		}
		if conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			conn.Close()
			ok, err := true, error(nil)
			if ready != nil {
				ok, err = ready()
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				return cmd
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not start listening on %s:\n%s", name, addr, logs.String())
	return nil
}

// AdaptCaddyfile runs the binary's adapt command on a Caddyfile and
// returns its output.
func AdaptCaddyfile(t testing.TB, caddyfile string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(p, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binPath, "adapt", "--config", p, "--adapter", "caddyfile")
	// From the repository root, as the examples' READMEs run them: their
	// relative key files are found there.
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Do sends a request and returns the response with its body read.
func Do(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

var httpClient = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// Get sends GET path with the token as a bearer token (none when empty)
// and extra headers as name, value pairs.
func (c *Caddy) Get(t testing.TB, path, token string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return Do(t, req)
}

// RejectBody is the parsed 10Duke-style error body.
type RejectBody struct {
	Code, Key, Message, Technical string
	Iss                           string
	Iat                           int64
	Fields                        map[string]any
}

// AssertReject checks status, headers and the body shape of a reject.
func AssertReject(t testing.TB, resp *http.Response, body []byte, status int, code, item string) RejectBody {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	if status == http.StatusUnauthorized {
		if wa := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(wa, `Bearer error="invalid_token"`) {
			t.Errorf("WWW-Authenticate %q", wa)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, body)
	}
	if item == "" {
		item = "license"
	}
	want := []string{item + "_errorCode", item + "_errorKey", item + "_errorMessage", item + "_errorTechnical", "iss", "iat"}
	if len(m) != len(want) {
		t.Errorf("body has %d fields, want %d: %s", len(m), len(want), body)
	}
	rb := RejectBody{Fields: m}
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Errorf("body lacks %s: %s", k, body)
		}
	}
	rb.Code, _ = m[item+"_errorCode"].(string)
	rb.Key, _ = m[item+"_errorKey"].(string)
	rb.Message, _ = m[item+"_errorMessage"].(string)
	rb.Technical, _ = m[item+"_errorTechnical"].(string)
	rb.Iss, _ = m["iss"].(string)
	if f, ok := m["iat"].(float64); ok {
		rb.Iat = int64(f)
	}
	if rb.Code != code || rb.Key != code {
		t.Errorf("errorCode %q / errorKey %q, want %q: %s", rb.Code, rb.Key, code, body)
	}
	if rb.Iss != "licensegate" || rb.Iat == 0 || rb.Message == "" {
		t.Errorf("body iss/iat/message wrong: %s", body)
	}
	return rb
}

// Key is a signing key with its kid and alg.
type Key struct {
	Kid    string
	Alg    string
	Signer crypto.Signer
	Secret []byte // for HS*
}

func NewRSAKey(t testing.TB, kid, alg string) *Key {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &Key{Kid: kid, Alg: alg, Signer: k}
}

func NewECKey(t testing.TB, kid, alg string) *Key {
	t.Helper()
	curve := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &Key{Kid: kid, Alg: alg, Signer: k}
}

func NewEdKey(t testing.TB, kid string) *Key {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &Key{Kid: kid, Alg: "EdDSA", Signer: k}
}

// PublicJWK renders the public key as a JWK map.
func (k *Key) PublicJWK(t testing.TB) map[string]any {
	t.Helper()
	jk, err := jwk.FromRaw(k.Signer.Public())
	if err != nil {
		t.Fatal(err)
	}
	_ = jk.Set(jwk.KeyIDKey, k.Kid)
	_ = jk.Set(jwk.KeyUsageKey, "sig")
	b, err := json.Marshal(jk)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// JWKS renders the public keys as a key set document.
func JWKS(t testing.TB, keys ...*Key) string {
	t.Helper()
	list := make([]any, 0, len(keys))
	for _, k := range keys {
		list = append(list, k.PublicJWK(t))
	}
	b, _ := json.Marshal(map[string]any{"keys": list})
	return string(b)
}

// Claims are a token's claims.
type Claims = jwt.MapClaims

// Sign mints a compact JWT with golang-jwt; header holds extra header
// fields (kid is set from the key unless header overrides it).
func (k *Key) Sign(t testing.TB, claims Claims, header ...map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(k.Alg), claims)
	if k.Kid != "" {
		tok.Header["kid"] = k.Kid
	}
	for _, h := range header {
		for name, v := range h {
			if v == nil {
				delete(tok.Header, name)
			} else {
				tok.Header[name] = v
			}
		}
	}
	var key any = k.Signer
	if k.Secret != nil {
		key = k.Secret
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Std returns claims with exp one hour ahead plus the given pairs.
func Std(pairs ...any) Claims {
	c := Claims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
		"jti": fmt.Sprintf("jti-%d", jtiSeq.Add(1))}
	for i := 0; i+1 < len(pairs); i += 2 {
		name := pairs[i].(string)
		if pairs[i+1] == nil {
			delete(c, name)
		} else {
			c[name] = pairs[i+1]
		}
	}
	return c
}

var jtiSeq atomic.Int64

// KeyServer serves a key set over HTTP on loopback and counts fetches.
type KeyServer struct {
	*httptest.Server
	mu      sync.Mutex
	doc     string
	status  int
	hang    time.Duration
	Fetches atomic.Int64
}

// NewKeyServer serves doc at /jwks.json (and discovery at
// /.well-known/openid-configuration naming the server as issuer).
func NewKeyServer(t testing.TB, doc string) *KeyServer {
	t.Helper()
	ks := &KeyServer{doc: doc, status: http.StatusOK}
	ks.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.mu.Lock()
		doc, status, hang := ks.doc, ks.status, ks.hang
		ks.mu.Unlock()
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": ks.URL, "jwks_uri": ks.URL + "/jwks.json"})
			return
		case "/jwks.json":
		default:
			http.NotFound(w, r)
			return
		}
		ks.Fetches.Add(1)
		if hang > 0 {
			select {
			case <-time.After(hang):
			case <-r.Context().Done():
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, doc)
	}))
	t.Cleanup(ks.Close)
	return ks
}

// Set replaces the served document and status.
func (ks *KeyServer) Set(doc string, status int) {
	ks.mu.Lock()
	ks.doc, ks.status = doc, status
	ks.mu.Unlock()
}

// Hang makes fetches stall for d.
func (ks *KeyServer) Hang(d time.Duration) {
	ks.mu.Lock()
	ks.hang = d
	ks.mu.Unlock()
}

// JWKSURL is the key set's URL.
func (ks *KeyServer) JWKSURL() string { return ks.URL + "/jwks.json" }

// Upstream is a trivial backend that echoes what the gate forwarded.
func Upstream(t testing.TB, status int) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", "yes")
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, "upstream %s %s", r.Method, r.URL.Path)
	}))
	t.Cleanup(s.Close)
	return s
}

// hostPort strips the scheme of an httptest URL.
func hostPort(u string) string { return strings.TrimPrefix(u, "http://") }

// WaitFor polls cond until it holds or the deadline passes.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

package module

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// jwksServer serves a mutable document at /jwks.json and discovery at
// /.well-known/openid-configuration, counting key set fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	doc     []byte
	status  int
	issuer  string // "" means the server's own URL
	jwksURI string // "" means the server's /jwks.json
	fetches atomic.Int64
}

func newJWKSServer(t testing.TB, doc []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{doc: doc, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		doc, status, iss, uri := s.doc, s.status, s.issuer, s.jwksURI
		s.mu.Unlock()
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			if iss == "" {
				iss = s.URL
			}
			if uri == "" {
				uri = s.URL + "/jwks.json"
			}
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "jwks_uri": uri})
		case "/jwks.json":
			s.fetches.Add(1)
			w.WriteHeader(status)
			_, _ = w.Write(doc)
		case "/moved":
			http.Redirect(w, r, "/jwks.json", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(doc []byte, status int) {
	s.mu.Lock()
	s.doc, s.status = doc, status
	s.mu.Unlock()
}

func remoteFor(t testing.TB, url string, discovery bool, mod ...func(*remoteOptions)) *remoteKeys {
	t.Helper()
	o := remoteOptions{url: url, discovery: discovery, refresh: time.Hour, minEarly: 10 * time.Second,
		timeout: 2 * time.Second, maxBytes: 1 << 20, retryInitial: time.Hour}
	for _, m := range mod {
		m(&o)
	}
	r := newRemoteKeys(o)
	t.Cleanup(func() { _ = r.Destruct() })
	return r
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRemoteKeysEarlyRefreshIsRateLimited(t *testing.T) {
	t.Parallel()
	k1, k2 := newKey(t, "k1", "ES256"), newKey(t, "k2", "ES256")
	srv := newJWKSServer(t, jwksDoc(k1.public(t)))
	r := remoteFor(t, srv.URL+"/jwks.json", false)
	clk := newClock()
	r.now = clk.Now
	waitFor(t, "the first fetch", func() bool { return r.current().has("k1") })
	ctx := context.Background()
	idle := func() { waitFor(t, "the refresh to end", func() bool { return r.inFlight() == nil }) }

	if !r.refreshFor(ctx, "k1", true) || srv.fetches.Load() != 1 {
		t.Fatalf("a known kid caused a fetch: %d", srv.fetches.Load())
	}
	if r.refreshFor(ctx, "nope", true) {
		t.Fatal("an unknown kid was reported found")
	}
	waitFor(t, "the early refresh", func() bool { return srv.fetches.Load() == 2 })
	idle()
	for i := 0; i < 100; i++ {
		if r.refreshFor(ctx, "flood", true) {
			t.Fatal("unknown kid found")
		}
	}
	idle()
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("100 unknown kids within the interval caused %d fetches, want 2 in all", n)
	}
	if r.refreshFor(ctx, "k1", false) || srv.fetches.Load() != 2 {
		t.Fatal("a token without kid that no key fits caused a refresh")
	}
	srv.set(jwksDoc(k1.public(t), k2.public(t)), http.StatusOK)
	if r.refreshFor(ctx, "k2", true) {
		t.Fatal("k2 found before the interval passed")
	}
	idle()
	if r.current().has("k2") || srv.fetches.Load() != 2 {
		t.Fatal("k2 fetched before the interval passed")
	}
	clk.Add(10 * time.Second)
	r.refreshFor(ctx, "k2", true)
	waitFor(t, "k2 after the interval", func() bool { return r.current().has("k2") })
	if n := srv.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches, want 3", n)
	}
}

func TestRemoteKeysKeepTheLastGoodSet(t *testing.T) {
	t.Parallel()
	k1 := newKey(t, "k1", "ES256")
	srv := newJWKSServer(t, jwksDoc(k1.public(t)))
	r := remoteFor(t, srv.URL+"/jwks.json", false, func(o *remoteOptions) { o.maxBytes = 4096 })
	waitFor(t, "the first fetch", func() bool { return r.current().has("k1") })

	for _, bad := range []struct {
		name   string
		doc    []byte
		status int
	}{
		{"a 500", []byte(`oops`), http.StatusInternalServerError},
		{"a 404", []byte(`{"keys":[]}`), http.StatusNotFound},
		{"HTML", []byte(`<html></html>`), http.StatusOK},
		{"an empty set", []byte(`{"keys":[]}`), http.StatusOK},
		{"only refused keys", jwksDoc(map[string]any{"kty": "oct", "k": "c2VjcmV0"}), http.StatusOK},
		{"an oversized document", []byte(`{"keys":[],"pad":"` + strings.Repeat("x", 5000) + `"}`), http.StatusOK},
	} {
		srv.set(bad.doc, bad.status)
		before := srv.fetches.Load()
		if r.fetch() == nil {
			t.Fatalf("%s: the fetch succeeded", bad.name)
		}
		if srv.fetches.Load() != before+1 {
			t.Fatalf("%s: no fetch happened", bad.name)
		}
		if !r.current().has("k1") {
			t.Fatalf("%s replaced the last good key set", bad.name)
		}
	}
	srv.Close()
	if r.fetch() == nil {
		t.Fatal("a fetch from a closed server succeeded")
	}
	if !r.current().has("k1") {
		t.Fatal("a key server that is down dropped the keys")
	}
}

func TestRemoteKeysRetryUntilTheFirstSuccess(t *testing.T) {
	t.Parallel()
	k1 := newKey(t, "k1", "ES256")
	srv := newJWKSServer(t, []byte(`down`))
	srv.set([]byte(`down`), http.StatusServiceUnavailable)
	r := remoteFor(t, srv.URL+"/jwks.json", false, func(o *remoteOptions) { o.retryInitial = 10 * time.Millisecond })
	waitFor(t, "a few retries", func() bool { return srv.fetches.Load() >= 3 })
	if r.current() != nil {
		t.Fatal("keys loaded from a failing server")
	}
	srv.set(jwksDoc(k1.public(t)), http.StatusOK)
	waitFor(t, "the keys after the server recovers", func() bool { return r.current().has("k1") })
}

func TestRemoteKeysRefuseRedirectsAndLargeDocuments(t *testing.T) {
	t.Parallel()
	k1 := newKey(t, "k1", "ES256")
	srv := newJWKSServer(t, jwksDoc(k1.public(t)))
	redirected := remoteFor(t, srv.URL+"/moved", false)
	capped := remoteFor(t, srv.URL+"/jwks.json", false, func(o *remoteOptions) { o.maxBytes = 50 })
	for name, r := range map[string]*remoteKeys{"redirect": redirected, "size cap": capped} {
		err := r.fetch()
		if err == nil || r.current() != nil {
			t.Errorf("%s: keys loaded (err %v)", name, err)
		}
	}
}

func TestRemoteKeysDiscovery(t *testing.T) {
	t.Parallel()
	k1 := newKey(t, "k1", "ES256")
	srv := newJWKSServer(t, jwksDoc(k1.public(t)))
	r := remoteFor(t, srv.URL, true)
	waitFor(t, "keys through discovery", func() bool { return r.current().has("k1") })
	if got := *r.jwksURL.Load(); got != srv.URL+"/jwks.json" {
		t.Errorf("jwks_uri %q", got)
	}

	for name, mod := range map[string]func(*jwksServer){
		"another issuer":          func(s *jwksServer) { s.issuer = "https://evil.example" },
		"a jwks_uri that is file": func(s *jwksServer) { s.jwksURI = "file:///etc/passwd" },
	} {
		bad := newJWKSServer(t, jwksDoc(k1.public(t)))
		mod(bad)
		r := remoteFor(t, bad.URL, true)
		if err := r.fetch(); err == nil || r.current() != nil {
			t.Errorf("%s: discovery accepted (err %v)", name, err)
		}
		if bad.fetches.Load() != 0 {
			t.Errorf("%s: the key set was fetched", name)
		}
	}
}

func TestRemoteKeysDestructStopsTheRefresher(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, jwksDoc(newKey(t, "k1", "ES256").public(t)))
	r := newRemoteKeys(remoteOptions{url: srv.URL + "/jwks.json", refresh: 5 * time.Millisecond, minEarly: time.Second,
		timeout: time.Second, maxBytes: 1 << 20, retryInitial: 5 * time.Millisecond})
	waitFor(t, "periodic refreshes", func() bool { return srv.fetches.Load() >= 3 })
	done := make(chan struct{})
	go func() { _ = r.Destruct(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Destruct did not return")
	}
	// A request sent just before Destruct may still reach the server's
	// handler (and be counted) a moment later.
	time.Sleep(20 * time.Millisecond)
	n := srv.fetches.Load()
	time.Sleep(50 * time.Millisecond) // ten refresh periods: none may happen
	if srv.fetches.Load() != n {
		t.Error("the refresher kept fetching after Destruct")
	}
}

func TestKeyPoolSharesRemoteSetsAcrossGates(t *testing.T) {
	t.Parallel()
	k1 := newKey(t, "k1", "ES256")
	srv := newJWKSServer(t, jwksDoc(k1.public(t)))
	clk := newClock()
	url := srv.URL + "/jwks.json"
	a, _ := provisioned(t, &Gate{JWKSURLs: []string{url}}, clk)
	b, _ := provisioned(t, &Gate{JWKSURLs: []string{url}}, clk)
	if a.verifier.bindings.anyIssuer.sources[0] != b.verifier.bindings.anyIssuer.sources[0] {
		t.Fatal("two gates with the same jwks_url do not share the key set")
	}
	waitFor(t, "the first fetch", func() bool { return a.verifier.bindings.anyIssuer.sources[0].current() != nil })
	tok := k1.sign(t, claimsAt(clk), nil)
	for _, g := range []*Gate{a, b} {
		if out := serve(t, g, bearer(tok)); !out.passed {
			t.Fatalf("rejected: %s", out.rec.Body.Bytes())
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Errorf("two gates fetched %d times, want 1", n)
	}
}

func TestNoKeyEverLoadedIsServiceUnavailable(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, nil)
	url := srv.URL + "/jwks.json"
	srv.Close() // down since start
	clk := newClock()
	g, logs := provisioned(t, &Gate{JWKSURLs: []string{url}}, clk)
	k := newKey(t, "k1", "ES256")
	for _, tok := range []string{k.sign(t, claimsAt(clk), nil), k.sign(t, claimsAt(clk), map[string]any{"kid": nil})} {
		out := serve(t, g, bearer(tok))
		if out.passed || out.rec.Code != http.StatusServiceUnavailable || code(t, out.rec, "license") != "serviceUnavailable" {
			t.Fatalf("got %d %s", out.rec.Code, out.rec.Body.Bytes())
		}
		if out.rec.Header().Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	}
	for _, e := range logs.TakeAll() {
		if e.Message == "license rejected" && e.Level.String() != "error" {
			t.Errorf("serviceUnavailable logged at %s", e.Level)
		}
	}
}

// TestEarlyRefreshOutlivesTheRequest: the client that presented the new kid
// hanging up does not abort the refresh it caused (whose rate-limit slot
// is spent either way).
func TestEarlyRefreshOutlivesTheRequest(t *testing.T) {
	t.Parallel()
	k1, k2 := newKey(t, "k1", "ES256"), newKey(t, "k2", "ES256")
	srv := newJWKSServer(t, jwksDoc(k1.public(t)))
	r := remoteFor(t, srv.URL+"/jwks.json", false)
	waitFor(t, "the first fetch", func() bool { return r.current().has("k1") })
	srv.set(jwksDoc(k1.public(t), k2.public(t)), http.StatusOK)

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client is gone
	r.refreshFor(ctx, "k2", true)
	waitFor(t, "the refresh to end", func() bool { return r.inFlight() == nil })
	if !r.current().has("k2") {
		t.Fatal("the early refresh was aborted with the request; k2 stays unknown for kid_refresh_interval")
	}
}

// blockingServer serves a key set until blocked; then each key set request
// announces itself on entered and waits until release is closed (or the
// test ends), whatever the client does meanwhile.
type blockingServer struct {
	*httptest.Server
	doc     []byte
	blocked atomic.Bool
	entered chan struct{}
	release chan struct{}
	fetches atomic.Int64
}

func newBlockingServer(t testing.TB, doc []byte) *blockingServer {
	t.Helper()
	s := &blockingServer{doc: doc, entered: make(chan struct{}, 64), release: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jwks.json" {
			http.NotFound(w, r)
			return
		}
		s.fetches.Add(1)
		if s.blocked.Load() {
			s.entered <- struct{}{}
			<-s.release
		}
		_, _ = w.Write(s.doc)
	}))
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() { close(s.release) })
		s.Close()
	})
	return s
}

// completes runs f and fails the test when it has not returned after a
// guard far longer than any answer should take (the key server stays
// blocked all that time, so returning at all proves f did not wait for it).
func completes(t testing.TB, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s waited for the blocked key server", what)
	}
}

// TestLoadedKeysNeverWaitForAFetch: once keys are loaded, neither a token
// of a known kid nor one of an unknown kid waits for a fetch that hangs
// (jwks_timeout is an hour here, so a request that waited would hang).
func TestLoadedKeysNeverWaitForAFetch(t *testing.T) {
	t.Parallel()
	clk := newClock()
	k1 := newKey(t, "k1", "ES256")
	srv := newBlockingServer(t, jwksDoc(k1.public(t)))
	g, _ := provisioned(t, &Gate{JWKSURLs: []string{srv.URL + "/jwks.json"}, JWKSTimeout: caddy.Duration(time.Hour)}, clk)
	r := g.verifier.bindings.anyIssuer.sources[0].(*remoteKeys)
	waitFor(t, "the first load", func() bool { return r.current().has("k1") })

	srv.blocked.Store(true)
	go func() { _ = r.fetch() }() // a periodic refresh that hangs
	<-srv.entered

	completes(t, "a token of a known kid", func() {
		if out := serve(t, g, bearer(k1.sign(t, claimsAt(clk), nil))); !out.passed {
			t.Errorf("rejected: %s", out.rec.Body.Bytes())
		}
	})
	completes(t, "a token of an unknown kid", func() {
		out := serve(t, g, bearer(k1.sign(t, claimsAt(clk, "jti", "other"), map[string]any{"kid": "k-new"})))
		if out.passed || out.rec.Code != http.StatusUnauthorized || code(t, out.rec, "license") != "notAuthorized" {
			t.Errorf("got %d %s, want 401 notAuthorized", out.rec.Code, out.rec.Body.Bytes())
		}
	})
	completes(t, "an unknown kid at the source", func() {
		if r.refreshFor(context.Background(), "k-other", true) {
			t.Error("an unknown kid reported found")
		}
	})
	if n := srv.fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2: the unknown kids joined the fetch in flight", n)
	}
}

// TestFirstLoadIsSharedAndBounded: before the first load, concurrent
// requests share the one fetch in flight (the key server sees one
// request, not one per waiting request) and each gives up after
// jwks_timeout, while the key server still holds that fetch.
func TestFirstLoadIsSharedAndBounded(t *testing.T) {
	t.Parallel()
	k1 := newKey(t, "k1", "ES256")
	srv := newBlockingServer(t, jwksDoc(k1.public(t)))
	srv.blocked.Store(true)
	const timeout = 2 * time.Second
	r := remoteFor(t, srv.URL+"/jwks.json", false, func(o *remoteOptions) { o.timeout = timeout })
	<-srv.entered // the first load is in flight, and hangs

	const n = 8
	waits := make([]time.Duration, n)
	var wg sync.WaitGroup
	completes(t, "requests before the first load", func() {
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				if r.refreshFor(context.Background(), "k1", true) {
					t.Error("keys reported from a hanging server")
				}
				waits[i] = time.Since(start)
			}()
		}
		wg.Wait()
	})
	if got := srv.fetches.Load(); got != 1 {
		t.Errorf("%d requests waiting for the first load made %d fetches, want 1", n, got)
	}
	t.Logf("with jwks_timeout %v, requests waited %v", timeout, waits)
}

// TestAnUnloadedSourceDoesNotTurnOthersInto503: a key server down since
// start makes only the tokens that no loaded source can serve 503.
func TestAnUnloadedSourceDoesNotTurnOthersInto503(t *testing.T) {
	t.Parallel()
	clk := newClock()
	k1, stray := newKey(t, "k1", "ES256"), newKey(t, "k9", "ES256")
	file := writeFile(t, "jwks.json", jwksDoc(k1.public(t)))
	down := newJWKSServer(t, nil)
	downURL := down.URL
	down.Close()
	const issF = "https://files.example"
	tests := []struct {
		name   string
		gate   Gate
		token  string
		status int
		code   string
	}{
		{"an unknown kid beside a source that never loaded is notAuthorized",
			Gate{JWKSFiles: []string{file}, JWKSURLs: []string{downURL + "/jwks.json"}},
			stray.sign(t, claimsAt(clk), nil), 401, "notAuthorized"},
		{"a known kid beside a source that never loaded passes",
			Gate{JWKSFiles: []string{file}, JWKSURLs: []string{downURL + "/jwks.json"}},
			k1.sign(t, claimsAt(clk), nil), 0, ""},
		{"an unknown kid of an issuer whose keys loaded is notAuthorized while another issuer's never did",
			Gate{IssuerKeys: []IssuerKeys{{Issuer: issF, JWKSFiles: []string{file}}}, OIDCIssuers: []string{downURL}},
			stray.sign(t, claimsAt(clk, "iss", issF), nil), 401, "notAuthorized"},
		{"a token of the issuer whose keys never loaded is serviceUnavailable",
			Gate{IssuerKeys: []IssuerKeys{{Issuer: issF, JWKSFiles: []string{file}}}, OIDCIssuers: []string{downURL}},
			stray.sign(t, claimsAt(clk, "iss", downURL), nil), 503, "serviceUnavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := tc.gate
			g.JWKSTimeout = caddy.Duration(time.Second)
			provisioned(t, &g, clk)
			out := serve(t, &g, bearer(tc.token))
			if tc.status == 0 {
				if !out.passed {
					t.Fatalf("rejected: %d %s", out.rec.Code, out.rec.Body.Bytes())
				}
				return
			}
			if out.passed || out.rec.Code != tc.status || code(t, out.rec, "license") != tc.code {
				t.Fatalf("got %d %s, want %d %s", out.rec.Code, out.rec.Body.Bytes(), tc.status, tc.code)
			}
		})
	}
}

func TestFirstLoadRetryDelayIsCapped(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		delay, refresh time.Duration
		want           time.Duration
	}{
		{"a short delay doubles", time.Second, 15 * time.Minute, 2 * time.Second},
		{"a delay near the cap stops at a minute", 40 * time.Second, 15 * time.Minute, time.Minute},
		{"a delay at the cap stays", time.Minute, 15 * time.Minute, time.Minute},
		{"a short refresh caps it sooner", 20 * time.Second, 30 * time.Second, 30 * time.Second},
	}
	for _, tc := range tests {
		if got := nextRetryDelay(tc.delay, tc.refresh); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	// From the default first delay, the backoff reaches its cap after
	// seven retries, about two minutes in all; then a retry a minute.
	d, sum := defaultRetryInitial, time.Duration(0)
	for range 7 {
		sum += d
		d = nextRetryDelay(d, DefaultRefresh)
	}
	if d != maxRetryDelay || sum > 130*time.Second {
		t.Errorf("after seven retries the delay is %v (%v waited in all)", d, sum)
	}
}

// TestDiscoveryRefusesAnHTTPDowngrade: an https issuer's discovery
// document naming an http jwks_uri is refused and logged at ERROR.
func TestDiscoveryRefusesAnHTTPDowngrade(t *testing.T) {
	t.Parallel()
	k1 := newKey(t, "k1", "ES256")
	var jwksURI atomic.Pointer[string]
	var fetches atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": "https://" + r.Host, "jwks_uri": *jwksURI.Load()})
		case "/jwks.json":
			fetches.Add(1)
			_, _ = w.Write(jwksDoc(k1.public(t)))
		}
	}))
	t.Cleanup(srv.Close)
	plain := "http://" + strings.TrimPrefix(srv.URL, "https://") + "/jwks.json"
	secure := srv.URL + "/jwks.json"

	for _, tc := range []struct {
		name    string
		uri     string
		refused bool
	}{
		{"an http jwks_uri is refused", plain, true},
		{"an https jwks_uri is used", secure, false},
	} {
		jwksURI.Store(&tc.uri)
		core, logs := observer.New(zapcore.DebugLevel)
		r := &remoteKeys{opts: remoteOptions{url: srv.URL, discovery: true, timeout: 5 * time.Second, maxBytes: 1 << 20},
			client: srv.Client(), now: time.Now}
		r.logger.Store(zap.New(core))
		err := r.fetchNow(context.Background())
		if !tc.refused {
			if err != nil || !r.current().has("k1") {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, errDowngrade) || r.current() != nil {
			t.Errorf("%s: err %v, keys %v", tc.name, err, r.current().kids())
		}
		lines := logs.FilterLevelExact(zapcore.ErrorLevel).FilterMessage("key set fetch failed; keeping the last good keys").All()
		if len(lines) != 1 || !strings.Contains(lines[0].ContextMap()["error"].(string), "http jwks_uri") {
			t.Errorf("%s: ERROR lines %v", tc.name, lines)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d key set fetches, want 1 (the https one)", n)
	}
}

// TestPooledKeySetLogsThroughTheNewestConfig: a key set shared across a
// reload logs through the logger of the config provisioned last, not the
// one of the config that created it (whose logs may be closed).
func TestPooledKeySetLogsThroughTheNewestConfig(t *testing.T) {
	t.Parallel()
	k1 := newKey(t, "k1", "ES256")
	srv := newJWKSServer(t, jwksDoc(k1.public(t)))
	url := srv.URL + "/jwks.json"
	old, oldLogs := provisioned(t, &Gate{JWKSURLs: []string{url}}, nil)
	r := old.verifier.bindings.anyIssuer.sources[0].(*remoteKeys)
	waitFor(t, "the first load", func() bool { return r.current() != nil })
	cur, curLogs := provisioned(t, &Gate{JWKSURLs: []string{url}}, nil)
	if cur.verifier.bindings.anyIssuer.sources[0] != r {
		t.Fatal("the reloaded config does not share the key set")
	}
	_ = old.Cleanup() // the old config goes away, as after a reload

	srv.set([]byte(`down`), http.StatusServiceUnavailable)
	if r.fetch() == nil {
		t.Fatal("the fetch succeeded")
	}
	const msg = "key set fetch failed; keeping the last good keys"
	if n := curLogs.FilterMessage(msg).Len(); n != 1 {
		t.Errorf("the current config's logger has %d failure lines, want 1", n)
	}
	if n := oldLogs.FilterMessage(msg).Len(); n != 0 {
		t.Errorf("the old config's logger got %d failure lines", n)
	}
}

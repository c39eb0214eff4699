package module

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
	if a.verifier.bindings.any.sources[0] != b.verifier.bindings.any.sources[0] {
		t.Fatal("two gates with the same jwks_url do not share the key set")
	}
	waitFor(t, "the first fetch", func() bool { return a.verifier.bindings.any.sources[0].current() != nil })
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

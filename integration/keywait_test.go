package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Nothing waits on a key server: through real Caddy, with a loopback key
// server that holds its answers until the test releases them.

// blockingKeyServer serves a key set; once blocked, each key set request
// is announced on entered and held until the test ends, whatever the
// client does meanwhile.
type blockingKeyServer struct {
	*httptest.Server
	blocked atomic.Bool
	entered chan struct{}
	held    atomic.Int64 // requests being held now
	fetches atomic.Int64
}

func newBlockingKeyServer(t testing.TB, doc string) *blockingKeyServer {
	t.Helper()
	s := &blockingKeyServer{entered: make(chan struct{}, 256)}
	release := make(chan struct{})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jwks.json" {
			http.NotFound(w, r)
			return
		}
		s.fetches.Add(1)
		if s.blocked.Load() {
			s.held.Add(1)
			s.entered <- struct{}{}
			<-release
			s.held.Add(-1)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, doc)
	}))
	t.Cleanup(func() { close(release); s.Close() })
	return s
}

// TestKeyWaitLoadedGateNeverWaits: once keys are loaded, a request never
// waits for a key server that hangs: not a fresh token of a known kid, not
// a token naming an unknown kid (which used to wait behind the hanging
// periodic refresh, then for its own fetch).
func TestKeyWaitLoadedGateNeverWaits(t *testing.T) {
	t.Parallel()
	k1 := NewECKey(t, "k1", "ES256")
	ks := newBlockingKeyServer(t, JWKS(t, k1))
	up := echoUpstream(t)
	// jwks_timeout is long: a request that waited for the fetch would
	// outlast the test client's own timeout.
	c := StartCaddy(t, keysSite(hostPort(up.URL), "jwks_url "+ks.URL+"/jwks.json\n\t\trefresh 100ms\n\t\tjwks_timeout 1m"))
	mustPass(t, c, k1.Sign(t, Std()))

	ks.blocked.Store(true)
	<-ks.entered // a periodic refresh is in flight and hangs
	var took []time.Duration
	for i := range 3 {
		start := time.Now()
		mustPass(t, c, k1.Sign(t, Std()))
		resp, body := c.Get(t, "/", k1.Sign(t, Std(), map[string]any{"kid": fmt.Sprintf("k-new-%d", i)}))
		assertRejected(t, resp, body, 401, "notAuthorized", "", "kid")
		took = append(took, time.Since(start))
	}
	if n := ks.held.Load(); n != 1 {
		t.Errorf("%d fetches held by the key server, want the one periodic refresh (the unknown kids joined it)", n)
	}
	t.Logf("a known and an unknown kid answered in %v while the key server held a fetch", took)
}

// TestKeyWaitBeforeTheFirstLoad: before any key is loaded, requests share
// the fetch in flight and answer 503 serviceUnavailable once jwks_timeout
// has passed, while the key server still holds that fetch.
func TestKeyWaitBeforeTheFirstLoad(t *testing.T) {
	t.Parallel()
	k1 := NewECKey(t, "k1", "ES256")
	ks := newBlockingKeyServer(t, JWKS(t, k1))
	ks.blocked.Store(true)
	up := echoUpstream(t)
	c := StartCaddy(t, keysSite(hostPort(up.URL), "jwks_url "+ks.URL+"/jwks.json\n\t\tjwks_timeout 3s"))
	<-ks.entered // the first load is in flight, and hangs

	const n = 8
	reqs := make([]*http.Request, n)
	for i := range reqs {
		reqs[i] = c.request(t, http.MethodGet, "/", "Authorization", "Bearer "+k1.Sign(t, Std()))
	}
	var wg sync.WaitGroup
	took := make([]time.Duration, n)
	for i, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			resp, body := Do(t, req)
			took[i] = time.Since(start)
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Errorf("%d %v %s, want 503 with Retry-After", resp.StatusCode, resp.Header, body)
				return
			}
			assertRejected(t, resp, body, 503, "serviceUnavailable", "", "key")
		}()
	}
	wg.Wait()
	if got := ks.held.Load(); got < 1 {
		t.Error("the key server released the fetch before the requests were answered")
	}
	// One fetch: the requests joined the first load (sent well within its
	// jwks_timeout) instead of queueing for it and then starting another.
	if got := ks.fetches.Load(); got != 1 {
		t.Errorf("%d requests waiting for the first load caused %d fetches, want 1", n, got)
	}
	t.Logf("with jwks_timeout 3s and the key server hanging, %d requests waited %v (%d fetches)", n, took, ks.fetches.Load())
}

// TestKeyWaitUnloadedSourceDoesNotMakeOthers503: a key URL down since start
// beside a key file: a token naming a kid neither has is notAuthorized,
// not serviceUnavailable; the file's tokens pass.
func TestKeyWaitUnloadedSourceDoesNotMakeOthers503(t *testing.T) {
	t.Parallel()
	k1, stray := NewECKey(t, "k1", "ES256"), NewECKey(t, "k9", "ES256")
	down := NewKeyServer(t, "{}")
	downURL := down.JWKSURL()
	down.Close()
	up := echoUpstream(t)
	c := StartCaddy(t, keysSite(hostPort(up.URL), "jwks_file f.json\n\t\tjwks_url "+downURL+"\n\t\tjwks_timeout 1s"),
		CaddyOptions{Files: map[string]string{"f.json": JWKS(t, k1)}})
	mustPass(t, c, k1.Sign(t, Std()))
	resp, body := c.Get(t, "/", stray.Sign(t, Std()))
	assertRejected(t, resp, body, 401, "notAuthorized", "", "kid")
}

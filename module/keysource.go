package module

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// keySource is where a gate gets verification keys from.
type keySource interface {
	// current returns the newest usable key set, nil when none was ever
	// loaded.
	current() *keySet
	// version changes whenever current may give other keys than before
	// (it only grows); a source that never changes keeps 0. A set is
	// made current before its version is counted, so a verification that
	// read the version first never ran on keys newer than it says.
	version() uint64
	// refreshFor is called when no key of the current set fits a token
	// (kid, when hasKid, is the kid it names). Once keys are loaded it
	// never waits: it may start a rate-limited refresh in the background
	// and reports at once. Before the first load it waits, at most
	// jwks_timeout and never behind a fetch queue, for the one fetch in
	// flight. It reports whether the current set may now fit the token.
	refreshFor(ctx context.Context, kid string, hasKid bool) bool
	// name identifies the source in logs.
	name() string
}

// staticKeys is a key set read once from a file at provisioning.
type staticKeys struct {
	path string
	set  *keySet
}

func (s *staticKeys) current() *keySet                              { return s.set }
func (s *staticKeys) version() uint64                               { return 0 }
func (s *staticKeys) refreshFor(context.Context, string, bool) bool { return false }
func (s *staticKeys) name() string                                  { return s.path }

// loadKeyFile reads a JWKS file (or a single JWK) from disk.
func loadKeyFile(path string, logger *zap.Logger) (*staticKeys, error) {
	doc, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading jwks_file: %w", err)
	}
	doc = wrapSingleKey(doc)
	ks, refused, err := parseKeySet(doc)
	logRefused(logger, path, refused)
	if err != nil {
		return nil, fmt.Errorf("jwks_file %s: %w", path, err)
	}
	return &staticKeys{path: path, set: ks}, nil
}

// wrapSingleKey turns a lone JWK document into a JWKS.
func wrapSingleKey(doc []byte) []byte {
	var probe struct {
		Keys json.RawMessage `json:"keys"`
		Kty  string          `json:"kty"`
	}
	if json.Unmarshal(doc, &probe) == nil && probe.Keys == nil && probe.Kty != "" {
		return append(append([]byte(`{"keys":[`), doc...), ']', '}')
	}
	return doc
}

func logRefused(logger *zap.Logger, source string, refused []refusedKey) {
	for _, r := range refused {
		logger.Error("key refused", zap.String("source", source), zap.String("kid", clip(r.kid)), zap.String("reason", r.reason))
	}
}

// remoteOptions configure a fetched key set.
type remoteOptions struct {
	url          string        // the JWKS URL, or the issuer for discovery
	discovery    bool          // url is an OpenID issuer
	refresh      time.Duration // periodic refresh
	minEarly     time.Duration // least time between two request-started fetches
	timeout      time.Duration // per fetch, and the longest a request waits for one
	maxBytes     int64         // response size cap
	retryInitial time.Duration // first retry delay while nothing is loaded
}

// maxRetryDelay caps the backoff of the first load: a key server that was
// down at start is tried again at least once a minute, not once per
// refresh interval.
const maxRetryDelay = time.Minute

// poolKey identifies a shareable remote source.
func (o remoteOptions) poolKey() string {
	return fmt.Sprintf("keys|%t|%s|%s|%s|%s|%d", o.discovery, o.url, o.refresh, o.minEarly, o.timeout, o.maxBytes)
}

// remoteKeys is a key set fetched over HTTP(S) and refreshed in the
// background. It keeps the last good set when the key server fails, and is
// shared across config reloads through keyPool.
//
// At most one fetch runs at a time, and nobody queues for it: the
// periodic refresher, an early refresh for an unknown kid and the requests
// waiting for the first load all share the fetch in flight. Once a set is
// loaded, requests only read it (an atomic load) and never wait.
type remoteKeys struct {
	opts   remoteOptions
	client *http.Client
	now    func() time.Time

	// logger is the logger of the newest config using this source: the
	// source outlives reloads, the config that created it does not.
	logger atomic.Pointer[zap.Logger]

	set     atomic.Pointer[keySet]
	jwksURL atomic.Pointer[string] // resolved by discovery
	// loads counts the key set documents that differed from the one
	// before (see keySource.version); lastDoc is the SHA-256 of the last
	// one, touched only by the fetch in flight.
	loads   atomic.Uint64
	lastDoc [32]byte

	lastRefused string // the refusals last logged; only the fetch in flight touches it
	failing     atomic.Bool

	flightMu sync.Mutex
	flight   *fetchFlight // the fetch in flight, nil when none; guarded by flightMu
	closed   bool         // Destruct began: no new fetch; guarded by flightMu
	fetches  sync.WaitGroup

	// The early-refresh limiter is one timestamp, whatever the number of
	// kids presented.
	earlyMu   sync.Mutex
	lastEarly time.Time // guarded by earlyMu

	ctx    context.Context // ends at Destruct; fetches run under it
	cancel context.CancelFunc
	done   chan struct{}
}

// fetchFlight is one fetch in flight; done is closed when it ends.
type fetchFlight struct {
	done chan struct{}
	err  error // set before done is closed
}

// keyPool shares remote key sets across config reloads, so a reload
// neither refetches keys nor starts a second refresher.
var keyPool = caddy.NewUsagePool()

// errNoRedirects stops redirect chains: a key URL is configured exactly.
var errNoRedirects = errors.New("key server redirects are not followed")

// errDowngrade refuses a discovery document that would move an https
// issuer's keys to plain http, where anyone on the path could swap them.
var errDowngrade = errors.New("the discovery document of an https issuer names an http jwks_uri")

func newRemoteKeys(o remoteOptions) *remoteKeys {
	ctx, cancel := context.WithCancel(context.Background())
	r := &remoteKeys{
		opts: o,
		client: &http.Client{
			Timeout: o.timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return errNoRedirects
			},
		},
		now:    time.Now,
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	r.logger.Store(caddy.Log().Named("http.handlers.license_gate"))
	if !o.discovery {
		u := o.url
		r.jwksURL.Store(&u)
	}
	go r.run()
	return r
}

// setLogger makes the source log through l from now on; each config that
// uses the source calls it at provisioning.
func (r *remoteKeys) setLogger(l *zap.Logger) {
	if l != nil {
		r.logger.Store(l)
	}
}

func (r *remoteKeys) log() *zap.Logger { return r.logger.Load() }

// Destruct stops the refresher and waits for the fetch in flight; it
// implements caddy.Destructor.
func (r *remoteKeys) Destruct() error {
	r.cancel()
	<-r.done
	r.flightMu.Lock()
	r.closed = true
	r.flightMu.Unlock()
	r.fetches.Wait()
	return nil
}

func (r *remoteKeys) current() *keySet { return r.set.Load() }
func (r *remoteKeys) version() uint64  { return r.loads.Load() }
func (r *remoteKeys) name() string     { return r.opts.url }

// run loads the keys, retrying with backoff (capped at maxRetryDelay) until
// the first success, then refreshes them every opts.refresh until Destruct.
func (r *remoteKeys) run() {
	defer close(r.done)
	delay := r.opts.retryInitial
	for {
		f := r.startFetch()
		if f == nil {
			return
		}
		select {
		case <-r.ctx.Done():
			return
		case <-f.done:
		}
		wait := r.opts.refresh
		if r.set.Load() == nil {
			wait = delay
			delay = nextRetryDelay(delay, r.opts.refresh)
		}
		t := time.NewTimer(wait)
		select {
		case <-r.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// nextRetryDelay doubles the first-load retry delay, up to maxRetryDelay
// (and never beyond the refresh interval).
func nextRetryDelay(delay, refresh time.Duration) time.Duration {
	return min(delay*2, maxRetryDelay, refresh)
}

// startFetch returns the fetch in flight, starting one when none is; nil
// after Destruct. The fetch runs under the source's own context: a client
// hanging up does not abort a fetch others may be waiting for.
func (r *remoteKeys) startFetch() *fetchFlight {
	r.flightMu.Lock()
	defer r.flightMu.Unlock()
	if r.closed {
		return nil
	}
	if r.flight != nil {
		return r.flight
	}
	f := &fetchFlight{done: make(chan struct{})}
	r.flight = f
	r.fetches.Add(1)
	go func() {
		defer r.fetches.Done()
		f.err = r.fetchNow(r.ctx)
		r.flightMu.Lock()
		r.flight = nil
		r.flightMu.Unlock()
		close(f.done)
	}()
	return f
}

// inFlight returns the fetch in flight, nil when none is.
func (r *remoteKeys) inFlight() *fetchFlight {
	r.flightMu.Lock()
	defer r.flightMu.Unlock()
	return r.flight
}

// takeEarlySlot reports whether a request may start a fetch now: at most
// one per opts.minEarly, whatever the number of kids presented.
func (r *remoteKeys) takeEarlySlot() bool {
	r.earlyMu.Lock()
	defer r.earlyMu.Unlock()
	now := r.now()
	if !r.lastEarly.IsZero() && now.Sub(r.lastEarly) < r.opts.minEarly {
		return false
	}
	r.lastEarly = now
	return true
}

// refreshFor implements keySource.
func (r *remoteKeys) refreshFor(ctx context.Context, kid string, hasKid bool) bool {
	if set := r.set.Load(); set != nil {
		if !hasKid {
			// No kid: every key was tried; a refresh would not know
			// what to look for.
			return false
		}
		if set.has(kid) {
			return true
		}
		// An unknown kid: refresh in the background, answer now. A
		// kid published just before its first token is known within
		// one fetch; a flood of made-up kids costs at most one fetch
		// per minEarly.
		if r.takeEarlySlot() {
			r.startFetch()
		}
		return false
	}
	// Nothing loaded yet: join the fetch in flight (the first load, or a
	// retry), or start one when the limiter allows, and wait for it at
	// most opts.timeout.
	f := r.inFlight()
	if f == nil && r.takeEarlySlot() {
		f = r.startFetch()
	}
	if f == nil {
		return false
	}
	t := time.NewTimer(r.opts.timeout)
	defer t.Stop()
	select {
	case <-f.done:
	case <-t.C:
	case <-ctx.Done():
	}
	return r.set.Load() != nil
}

// fetch runs one fetch now, sharing the one in flight, and waits for it;
// tests use it.
func (r *remoteKeys) fetch() error {
	f := r.startFetch()
	if f == nil {
		return errors.New("key source closed")
	}
	<-f.done
	return f.err
}

// fetchNow loads the key set once (resolving discovery first when needed)
// and stores it when usable. Failures keep the previous set. Only the
// fetch in flight calls it.
func (r *remoteKeys) fetchNow(ctx context.Context) error {
	err := r.load(ctx)
	if err != nil {
		jwksRefreshes.WithLabelValues("error").Inc()
		// Log once per failure window: the first failure, then the
		// recovery, not every retry.
		if !r.failing.Swap(true) {
			r.log().Error("key set fetch failed; keeping the last good keys",
				zap.String("source", r.opts.url), zap.Bool("have_keys", r.set.Load() != nil), zap.Error(err))
		}
		return err
	}
	jwksRefreshes.WithLabelValues("ok").Inc()
	if r.failing.Swap(false) {
		r.log().Info("key set fetch recovered", zap.String("source", r.opts.url))
	}
	return nil
}

func (r *remoteKeys) load(ctx context.Context) error {
	u := r.jwksURL.Load()
	if u == nil {
		found, err := r.discover(ctx)
		if err != nil {
			return err
		}
		u = &found
		r.jwksURL.Store(u)
	}
	doc, err := r.get(ctx, *u)
	if err != nil {
		return err
	}
	ks, refused, err := parseKeySet(doc)
	// Refused keys are logged when the refusals change, not on every
	// refresh of the same document.
	if key := refusedKeyString(refused); key != r.lastRefused {
		logRefused(r.log(), *u, refused)
		r.lastRefused = key
	}
	if err != nil {
		return err
	}
	r.set.Store(ks)
	if sum := sha256.Sum256(doc); r.loads.Load() == 0 || sum != r.lastDoc {
		r.lastDoc = sum
		r.loads.Add(1)
	}
	return nil
}

// refusedKeyString identifies a list of refusals.
func refusedKeyString(refused []refusedKey) string {
	var b strings.Builder
	for _, k := range refused {
		b.WriteString(k.kid)
		b.WriteByte(0)
		b.WriteString(k.reason)
		b.WriteByte(0)
	}
	return b.String()
}

// discover reads the OpenID provider configuration and returns jwks_uri.
func (r *remoteKeys) discover(ctx context.Context) (string, error) {
	doc, err := r.get(ctx, strings.TrimSuffix(r.opts.url, "/")+"/.well-known/openid-configuration")
	if err != nil {
		return "", err
	}
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(doc, &meta); err != nil {
		return "", fmt.Errorf("discovery document: %w", err)
	}
	if meta.Issuer != r.opts.url {
		return "", fmt.Errorf("discovery document names issuer %q, expected %q", meta.Issuer, r.opts.url)
	}
	if !strings.HasPrefix(meta.JWKSURI, "https://") && !strings.HasPrefix(meta.JWKSURI, "http://") {
		return "", fmt.Errorf("discovery document has no usable jwks_uri")
	}
	if strings.HasPrefix(r.opts.url, "https://") && !strings.HasPrefix(meta.JWKSURI, "https://") {
		return "", fmt.Errorf("%w (%.200s); refused", errDowngrade, meta.JWKSURI)
	}
	return meta.JWKSURI, nil
}

// get fetches a document with the size cap and timeout.
func (r *remoteKeys) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.opts.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if int64(len(body)) > r.opts.maxBytes {
		return nil, fmt.Errorf("GET %s: response larger than %d bytes", url, r.opts.maxBytes)
	}
	return body, nil
}

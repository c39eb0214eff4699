package module

import (
	"context"
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
	// refreshFor asks for an early refresh because a token names a kid the
	// set does not have. It is rate-limited; it reports whether the set
	// now has the kid.
	refreshFor(ctx context.Context, kid string) bool
	// name identifies the source in logs.
	name() string
}

// staticKeys is a key set read once from a file at provisioning.
type staticKeys struct {
	path string
	set  *keySet
}

func (s *staticKeys) current() *keySet                        { return s.set }
func (s *staticKeys) refreshFor(context.Context, string) bool { return false }
func (s *staticKeys) name() string                            { return s.path }

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
	minEarly     time.Duration // least time between two kid-triggered refreshes
	timeout      time.Duration // per fetch
	maxBytes     int64         // response size cap
	retryInitial time.Duration // first retry delay while nothing is loaded
}

// poolKey identifies a shareable remote source.
func (o remoteOptions) poolKey() string {
	return fmt.Sprintf("keys|%t|%s|%s|%s|%s|%d", o.discovery, o.url, o.refresh, o.minEarly, o.timeout, o.maxBytes)
}

// remoteKeys is a key set fetched over HTTP(S) and refreshed in the
// background. It keeps the last good set when the key server fails, and is
// shared across config reloads through keyPool.
type remoteKeys struct {
	opts   remoteOptions
	client *http.Client
	logger *zap.Logger
	now    func() time.Time

	set     atomic.Pointer[keySet]
	jwksURL atomic.Pointer[string] // resolved by discovery

	fetchMu     sync.Mutex // one fetch at a time
	lastRefused string     // the refusals last logged; guarded by fetchMu
	failing     atomic.Bool

	// The kid-refresh limiter is one timestamp, whatever the number of
	// kids presented. It has its own lock so that requests naming unknown
	// kids never queue behind a fetch from a hanging key server.
	earlyMu   sync.Mutex
	lastEarly time.Time // guarded by earlyMu

	cancel context.CancelFunc
	done   chan struct{}
}

// keyPool shares remote key sets across config reloads, so a reload
// neither refetches keys nor starts a second refresher.
var keyPool = caddy.NewUsagePool()

// errNoRedirects stops redirect chains: a key URL is configured exactly.
var errNoRedirects = errors.New("key server redirects are not followed")

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
		logger: caddy.Log().Named("http.handlers.license_gate"),
		now:    time.Now,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	if !o.discovery {
		u := o.url
		r.jwksURL.Store(&u)
	}
	go r.run(ctx)
	return r
}

// Destruct stops the refresher; it implements caddy.Destructor.
func (r *remoteKeys) Destruct() error {
	r.cancel()
	<-r.done
	return nil
}

func (r *remoteKeys) current() *keySet { return r.set.Load() }
func (r *remoteKeys) name() string     { return r.opts.url }

// run loads the keys, retrying with backoff until the first success, then
// refreshes them every opts.refresh until the context ends.
func (r *remoteKeys) run(ctx context.Context) {
	defer close(r.done)
	delay := r.opts.retryInitial
	for {
		err := r.fetch(ctx)
		wait := r.opts.refresh
		if err != nil && r.set.Load() == nil {
			wait = delay
			delay = min(delay*2, r.opts.refresh)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// refreshFor implements keySource: at most one early fetch per minEarly,
// whatever the number of unknown kids presented.
func (r *remoteKeys) refreshFor(ctx context.Context, kid string) bool {
	if r.set.Load().has(kid) {
		return true
	}
	if r.set.Load() == nil {
		// Nothing loaded yet: the first load may be in flight; wait for
		// it rather than answer 503 at once. Once keys are loaded, no
		// request waits for a fetch it did not start.
		r.fetchMu.Lock()
		r.fetchMu.Unlock()
		if r.set.Load().has(kid) {
			return true
		}
	}
	r.earlyMu.Lock()
	now := r.now()
	if !r.lastEarly.IsZero() && now.Sub(r.lastEarly) < r.opts.minEarly {
		r.earlyMu.Unlock()
		// Another request's refresh may have brought the kid meanwhile.
		return r.set.Load().has(kid)
	}
	r.lastEarly = now
	r.earlyMu.Unlock()
	// The fetch outlives the request that caused it: a client hanging up
	// must not abort it, since the rate limit's slot is spent either way
	// (opts.timeout still bounds it).
	_ = r.fetchFor(context.WithoutCancel(ctx), kid)
	return r.set.Load().has(kid)
}

// fetch loads the key set once (resolving discovery first when needed) and
// stores it when usable. Failures keep the previous set.
func (r *remoteKeys) fetch(ctx context.Context) error { return r.fetchFor(ctx, "") }

// fetchFor is fetch for a kid: it skips the fetch when one that ran while
// it waited brought the kid.
func (r *remoteKeys) fetchFor(ctx context.Context, kid string) error {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	if kid != "" && r.set.Load().has(kid) {
		return nil
	}
	err := r.fetchLocked(ctx)
	if err != nil {
		jwksRefreshes.WithLabelValues("error").Inc()
		// Log once per failure window: the first failure, then the
		// recovery, not every retry.
		if !r.failing.Swap(true) {
			r.logger.Error("key set fetch failed; keeping the last good keys",
				zap.String("source", r.opts.url), zap.Bool("have_keys", r.set.Load() != nil), zap.Error(err))
		}
		return err
	}
	jwksRefreshes.WithLabelValues("ok").Inc()
	if r.failing.Swap(false) {
		r.logger.Info("key set fetch recovered", zap.String("source", r.opts.url))
	}
	return nil
}

func (r *remoteKeys) fetchLocked(ctx context.Context) error {
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
		logRefused(r.logger, *u, refused)
		r.lastRefused = key
	}
	if err != nil {
		return err
	}
	r.set.Store(ks)
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

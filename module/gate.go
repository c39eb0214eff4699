// Package module is the Caddy HTTP handler http.handlers.license_gate: it
// verifies license JWTs against the issuer's keys, runs the policy checks,
// charges credits in the counter store, and either passes the request on or
// answers with a 10Duke-style error body.
//
// It wires policy to Caddy, the key servers (jwx, golang-jwt) and the
// counter stores (module/redisstore); policy never imports it, and the
// caddyfile package only parses into its types.
package module

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/licensegate/licensegate/policy"
)

func init() {
	caddy.RegisterModule(Gate{})
}

// Defaults of the options.
const (
	DefaultRefresh       = 15 * time.Minute
	DefaultLeeway        = 30 * time.Second
	DefaultMaxTokenSize  = 16 << 10
	DefaultSessionTTL    = 15 * time.Minute
	DefaultCacheSize     = 131072
	DefaultJWKSMaxSize   = 1 << 20
	DefaultJWKSTimeout   = 5 * time.Second
	DefaultKidRefresh    = 10 * time.Second
	defaultCacheTTL      = 5 * time.Minute
	storeRetryAfter      = 5 * time.Second
	defaultRetryInitial  = time.Second
	defaultVersionHeader = "X-Client-Version"
	defaultHardwareHdr   = "X-Hardware-Id"
)

// Gate is the license_gate handler. It verifies a bearer license or access
// JWT against the configured keys, enforces the license's validity window
// and constraints, charges credits, and passes the request to the next
// handler, or rejects it with a 10Duke-style JSON error body.
type Gate struct {
	// JWKSURLs are key set URLs, refreshed every Refresh; a token naming an
	// unknown kid triggers one early, rate-limited refresh in the
	// background. Like JWKSFiles and Secret, they are flat sources: bound
	// to the one entry of Issuers, or to any issuer when the gate names
	// none (see IssuerKeys for several issuers).
	JWKSURLs []string `json:"jwks_urls,omitempty"`
	// OIDCIssuers are OpenID issuers: their discovery document gives the
	// jwks_uri, and the keys found there verify only tokens whose iss is
	// that issuer (which is accepted as iss).
	OIDCIssuers []string `json:"oidc_issuers,omitempty"`
	// JWKSFiles are key set (or single JWK) files read at provisioning;
	// flat sources, bound as JWKSURLs are.
	JWKSFiles []string `json:"jwks_files,omitempty"`
	// IssuerKeys bind key sources to their issuer, one entry per issuer
	// (the Caddyfile's issuer <iss> { ... } block): a key verifies only
	// tokens of the issuer it is bound to.
	IssuerKeys []IssuerKeys `json:"issuer_keys,omitempty"`
	// Refresh is the periodic key set refresh interval. Default 15m.
	Refresh caddy.Duration `json:"refresh,omitempty"`
	// KidRefreshInterval is the least time between two refreshes caused
	// by unknown kids. Default 10s.
	KidRefreshInterval caddy.Duration `json:"kid_refresh_interval,omitempty"`
	// JWKSTimeout bounds one key set fetch. Default 5s.
	JWKSTimeout caddy.Duration `json:"jwks_timeout,omitempty"`
	// JWKSMaxSize caps a key set response in bytes. Default 1 MiB.
	JWKSMaxSize int64 `json:"jwks_max_size,omitempty"`

	// Issuers: when set, iss must equal one of them, or of OIDCIssuers
	// and IssuerKeys. The flat sources (JWKSURLs, JWKSFiles, Secret) bind
	// to the only entry; with two or more, they must move into IssuerKeys.
	Issuers []string `json:"issuers,omitempty"`
	// Audiences: when set, aud must contain one of them.
	Audiences []string `json:"audiences,omitempty"`
	// Algorithms is the allowlist; default every asymmetric algorithm
	// (plus HS256/384/512 when a secret is set).
	Algorithms []string `json:"algorithms,omitempty"`
	// Secret is the HMAC key for HS* tokens; placeholders such as
	// {env.LICENSE_HMAC} are replaced at provisioning. Never logged. A
	// flat source, bound as JWKSURLs are.
	Secret string `json:"secret,omitempty"`
	// Leeway is the clock skew allowed on exp, nbf, ibb and ibe. Default 30s.
	Leeway *caddy.Duration `json:"leeway,omitempty"`
	// MaxTokenSize caps the token in bytes, checked before any decoding.
	// Default 16 KiB.
	MaxTokenSize int64 `json:"max_token_size,omitempty"`
	// TokenFrom is where the token is read. Default: header Authorization
	// (Bearer scheme, case-insensitive). A query parameter, or a header
	// other than Authorization, is removed from the request before it goes
	// on.
	TokenFrom *ValueSource `json:"token_from,omitempty"`
	// CacheSize bounds the verified-token cache. Default 131072: 100,000
	// live tokens with the room their uneven spread over the cache's 32
	// shards needs (4096 per shard); at about 480 bytes per cached
	// license, some 60 to 80 MB when full.
	CacheSize int `json:"cache_size,omitempty"`

	// RequireItem is the licensed item this route needs.
	RequireItem string `json:"require_item,omitempty"`
	// Cost is the credits charged per request. Default 1.
	Cost *int64 `json:"cost,omitempty"`
	// VersionFrom are the sources of the client version. Every value sent
	// in them must agree and be at most 256 bytes. Default: header
	// X-Client-Version and query version.
	VersionFrom []ValueSource `json:"version_from,omitempty"`
	// HardwareFrom are the sources of the hardware id. Every value sent in
	// them must agree and be at most 256 bytes. Default: header
	// X-Hardware-Id and query hw.
	HardwareFrom []ValueSource `json:"hardware_from,omitempty"`
	// MatchClaims are equality rules: the claim must equal the value,
	// whose placeholders are replaced per request.
	MatchClaims []ClaimRule `json:"match_claims,omitempty"`
	// Claims renames claim roles (credits, credits_key, items, product,
	// ver, hw, ip, seats, ibb, ibe, lic) to the names tokens use.
	Claims map[string]string `json:"claims,omitempty"`

	// Store configures the counter store; nil is the in-memory store.
	Store *StoreConfig `json:"store,omitempty"`
	// OnStoreError is fail_closed (default: 503) or fail_open.
	OnStoreError string `json:"on_store_error,omitempty"`
	// RefundOn lists upstream statuses ("5xx", "502") whose credits are
	// given back.
	RefundOn []string `json:"refund_on,omitempty"`
	// SessionTTL is how long a seat is held after its last request.
	// Default 15m.
	SessionTTL caddy.Duration `json:"session_ttl,omitempty"`
	// Shadow evaluates and logs, but never rejects.
	Shadow bool `json:"shadow,omitempty"`
	// PassPreflight lets CORS preflight requests without a body through
	// unchecked. Default true.
	PassPreflight *bool `json:"pass_preflight,omitempty"`
	// Status overrides the HTTP status per error code.
	Status map[string]int `json:"status,omitempty"`
	// Errors is "respond" (default: a reject is answered with the
	// 10Duke-style JSON body) or "handle": a reject is returned to Caddy
	// as an HTTP error with the reject's status, so the site's
	// handle_errors routes render the response, with
	// {http.error.status_code} and {http.license.error_code} at hand.
	// WWW-Authenticate, Retry-After and RateLimit headers are set either
	// way.
	Errors string `json:"errors,omitempty"`

	ctx            caddy.Context
	events         *caddyevents.App
	logger         *zap.Logger
	verifier       *verifier
	rules          policy.Rules
	matchValues    []string
	store          policy.Counters
	storeInProcess bool                  // the memory store: it never loses a reply
	revocationView policy.RevocationView // the store's in-process revocations, if it keeps them
	voids          *voidQueue
	blocks         *blockTable   // the store's credit blocks, nil when off
	seatFresh      time.Duration // a seat the store confirmed this recently is not refreshed
	storeKey       string
	keyKeys        []string
	statusOverride map[policy.Code]int
	bodyPrefix     string
	tokenFrom      ValueSource
	maxTokenSize   int
	cost           int64
	sessionTTL     time.Duration
	failOpen       bool
	passPreflight  bool
	handleErrors   bool
	refund         []statusMatch
	now            func() time.Time
}

// ClaimRule is one match_claim rule.
type ClaimRule struct {
	// Claim is the claim name.
	Claim string `json:"claim"`
	// Value is compared with the claim; it may hold placeholders.
	Value string `json:"value"`
}

// CaddyModule returns the Caddy module information.
func (Gate) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.license_gate",
		New: func() caddy.Module { return new(Gate) },
	}
}

// Provision loads keys, builds the verifier, the rules and the store.
func (g *Gate) Provision(ctx caddy.Context) error {
	g.ctx = ctx
	g.logger = ctx.Logger()
	eventsApp, err := ctx.App("events")
	if err != nil {
		return fmt.Errorf("getting events app: %w", err)
	}
	g.events, _ = eventsApp.(*caddyevents.App)
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	if err := g.provisionGate(); err != nil {
		return err
	}
	g.warnTokenInLogs()
	// The admin API takes a license's issuer as understood when the
	// running config names only one.
	registerIssuers(g, g.acceptedIssuers())
	return nil
}

// provisionGate builds everything that does not need a loaded Caddy
// config (options, verifier, store) once g.logger is set; unit tests and
// benchmarks, which have no config for ctx.App, start here.
func (g *Gate) provisionGate() error {
	if g.now == nil {
		g.now = time.Now
	}
	if err := g.provisionOptions(); err != nil {
		return err
	}
	if err := g.provisionVerifier(); err != nil {
		return err
	}
	if err := g.provisionStore(); err != nil {
		return err
	}
	// Resolved once: the hot path asks the view, not the type system.
	g.revocationView, _ = g.store.(policy.RevocationView)
	return nil
}

func (g *Gate) provisionOptions() error {
	leeway := DefaultLeeway
	if g.Leeway != nil {
		leeway = time.Duration(*g.Leeway)
	}
	if leeway < 0 {
		return fmt.Errorf("leeway must not be negative")
	}
	g.rules = policy.Rules{RequireItem: g.RequireItem, Leeway: leeway}
	for _, m := range g.MatchClaims {
		if m.Claim == "" {
			return fmt.Errorf("match_claim needs a claim name")
		}
		g.rules.MatchClaims = append(g.rules.MatchClaims, m.Claim)
		g.matchValues = append(g.matchValues, m.Value)
	}
	g.bodyPrefix = "license"
	if g.RequireItem != "" {
		g.bodyPrefix = g.RequireItem
	}
	g.maxTokenSize = DefaultMaxTokenSize
	if g.MaxTokenSize < 0 {
		return fmt.Errorf("max_token_size must be positive")
	}
	if g.MaxTokenSize > 0 {
		g.maxTokenSize = int(g.MaxTokenSize)
	}
	g.tokenFrom = ValueSource{From: "header", Name: "Authorization"}
	if g.TokenFrom != nil {
		g.tokenFrom = *g.TokenFrom
	}
	if err := g.tokenFrom.validate(); err != nil {
		return fmt.Errorf("token_from: %w", err)
	}
	if len(g.VersionFrom) == 0 {
		g.VersionFrom = []ValueSource{{From: "header", Name: defaultVersionHeader}, {From: "query", Name: "version"}}
	}
	if len(g.HardwareFrom) == 0 {
		g.HardwareFrom = []ValueSource{{From: "header", Name: defaultHardwareHdr}, {From: "query", Name: "hw"}}
	}
	for i := range g.VersionFrom {
		if err := g.VersionFrom[i].validate(); err != nil {
			return fmt.Errorf("version_from: %w", err)
		}
	}
	for i := range g.HardwareFrom {
		if err := g.HardwareFrom[i].validate(); err != nil {
			return fmt.Errorf("hardware_from: %w", err)
		}
	}
	g.cost = 1
	if g.Cost != nil {
		g.cost = *g.Cost
	}
	if g.cost < 0 {
		return fmt.Errorf("cost must not be negative")
	}
	g.sessionTTL = DefaultSessionTTL
	if g.SessionTTL > 0 {
		g.sessionTTL = time.Duration(g.SessionTTL)
	}
	g.seatFresh = min(maxSeatFresh, g.sessionTTL/4)
	switch g.OnStoreError {
	case "", "fail_closed":
	case "fail_open":
		g.failOpen = true
	default:
		return fmt.Errorf("on_store_error must be fail_closed or fail_open, not %q", g.OnStoreError)
	}
	g.passPreflight = g.PassPreflight == nil || *g.PassPreflight
	g.statusOverride = make(map[policy.Code]int, len(g.Status))
	for code, st := range g.Status {
		if !policy.Code(code).Valid() {
			return fmt.Errorf("status: unknown error code %q", code)
		}
		if st < 200 || st > 599 {
			return fmt.Errorf("status: %d is not an HTTP status", st)
		}
		g.statusOverride[policy.Code(code)] = st
	}
	var err error
	if g.refund, err = parseStatusMatches(g.RefundOn); err != nil {
		return fmt.Errorf("refund_on: %w", err)
	}
	return g.provisionErrors()
}

func (g *Gate) provisionVerifier() error {
	repl := caddy.NewReplacer()
	plan, err := g.planBindings(repl)
	if err != nil {
		return err
	}
	names := policy.DefaultClaimNames()
	for role, name := range g.Claims {
		if err := names.Set(role, name); err != nil {
			return fmt.Errorf("claims: %w", err)
		}
	}
	v := &verifier{
		names:    names,
		cache:    newTokenCache(cmpOr(g.CacheSize, DefaultCacheSize)),
		memo:     newTokenMemo(),
		flights:  new(singleflight.Group),
		strings:  new(stringPool),
		cacheTTL: defaultCacheTTL,
		leeway:   g.rules.Leeway,
		keep:     append(make([]string, 0, len(g.rules.MatchClaims)), g.rules.MatchClaims...),
	}
	refresh := DefaultRefresh
	if g.Refresh > 0 {
		refresh = time.Duration(g.Refresh)
	}
	if refresh < defaultCacheTTL {
		v.cacheTTL = refresh
	}
	base := remoteOptions{
		refresh:      refresh,
		minEarly:     durationOr(g.KidRefreshInterval, DefaultKidRefresh),
		timeout:      durationOr(g.JWKSTimeout, DefaultJWKSTimeout),
		maxBytes:     cmpOr(g.JWKSMaxSize, DefaultJWKSMaxSize),
		retryInitial: defaultRetryInitial,
	}
	if v.bindings, err = g.openBindings(plan, base); err != nil {
		return err
	}
	algs, err := algorithmsFor(g.Algorithms, v.bindings.hasSecret())
	if err != nil {
		return err
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(g.rules.Leeway),
		jwt.WithJSONNumber(),
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(func() time.Time { return g.now() }),
	}
	if len(g.Audiences) > 0 {
		opts = append(opts, jwt.WithAudience(g.Audiences...))
	}
	v.parser = jwt.NewParser(opts...)
	g.verifier = v
	return nil
}

// openBindings opens the planned key sources: key files are read now,
// remote key sets come from keyPool (shared with other gates and across
// reloads) and log through this config's logger from now on.
func (g *Gate) openBindings(p *bindingPlan, base remoteOptions) (*keyBindings, error) {
	files := make(map[string]*staticKeys)
	open := func(spec *issuerSpec) (*issuerKeys, error) {
		ik := &issuerKeys{}
		if spec.secret != "" {
			ik.secret = []byte(spec.secret)
		}
		for _, src := range spec.sources {
			if src.kind == "jwks_file" {
				f := files[src.arg]
				if f == nil {
					var err error
					if f, err = loadKeyFile(src.arg, g.logger); err != nil {
						return nil, jwksFileError(src.arg, err)
					}
					files[src.arg] = f
				}
				ik.sources = append(ik.sources, f)
				continue
			}
			o := base
			o.url, o.discovery = src.arg, src.kind == "oidc_issuer"
			if !strings.HasPrefix(o.url, "https://") && !strings.HasPrefix(o.url, "http://") {
				return nil, fmt.Errorf("key source %q is not an http(s) URL", o.url)
			}
			val, _, err := keyPool.LoadOrNew(o.poolKey(), func() (caddy.Destructor, error) {
				return newRemoteKeys(o), nil
			})
			if err != nil {
				return nil, err
			}
			g.keyKeys = append(g.keyKeys, o.poolKey())
			rk := val.(*remoteKeys)
			rk.setLogger(g.logger)
			ik.sources = append(ik.sources, rk)
		}
		return ik, nil
	}
	b := &keyBindings{}
	if p.anyIssuer != nil {
		var err error
		b.anyIssuer, err = open(p.anyIssuer)
		return b, err
	}
	b.byIssuer = make(map[string]*issuerKeys, len(p.byIssuer))
	for _, iss := range p.order {
		ik, err := open(p.byIssuer[iss])
		if err != nil {
			return nil, err
		}
		b.byIssuer[iss] = ik
	}
	return b, nil
}

// Cleanup releases the shared key sets and store.
func (g *Gate) Cleanup() error {
	unregisterIssuers(g)
	for _, k := range g.keyKeys {
		_, _ = keyPool.Delete(k)
	}
	g.keyKeys = nil
	if g.storeKey != "" {
		_, _ = storePool.Delete(g.storeKey)
		g.storeKey = ""
	}
	return nil
}

// statusMatch is one refund_on entry: an exact status or a class (5xx).
type statusMatch struct{ lo, hi int }

// ValidRefundStatus reports whether s is a refund_on entry: a status
// (100-599) or a class such as 5xx.
func ValidRefundStatus(s string) bool {
	_, err := parseStatusMatches([]string{s})
	return err == nil
}

func parseStatusMatches(list []string) ([]statusMatch, error) {
	var out []statusMatch
	for _, s := range list {
		if len(s) == 3 && (s[1] == 'x' || s[1] == 'X') && (s[2] == 'x' || s[2] == 'X') && s[0] >= '1' && s[0] <= '5' {
			c := int(s[0]-'0') * 100
			out = append(out, statusMatch{c, c + 99})
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 100 || n > 599 {
			return nil, fmt.Errorf("%q is neither a status nor a class like 5xx", s)
		}
		out = append(out, statusMatch{n, n})
	}
	return out, nil
}

// refundsClientGone reports whether refund_on names 499 itself (not
// through 4xx): only then is a client's hang-up refunded.
func (g *Gate) refundsClientGone() bool {
	for _, m := range g.refund {
		if m.lo == statusClientClosed && m.hi == statusClientClosed {
			return true
		}
	}
	return false
}

func (g *Gate) refundFor(status int) bool {
	for _, m := range g.refund {
		if status >= m.lo && status <= m.hi {
			return true
		}
	}
	return false
}

func cmpOr[T int | int64](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

func durationOr(d caddy.Duration, def time.Duration) time.Duration {
	if d > 0 {
		return time.Duration(d)
	}
	return def
}

// clientIP reads Caddy's client_ip (which honours trusted_proxies).
func clientIP(r *http.Request) netip.Addr {
	s, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Gate)(nil)
	_ caddy.CleanerUpper          = (*Gate)(nil)
	_ caddyhttp.MiddlewareHandler = (*Gate)(nil)
)

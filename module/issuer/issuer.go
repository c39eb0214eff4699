// Package issuer is the Caddy HTTP handler http.handlers.license_issuer:
// it signs the license tokens license_gate enforces. It publishes its
// public keys (OpenID discovery and a JWKS under the issuer URL, so a gate
// with oidc_issuer finds them), and issues tokens on three endpoints: the
// axes4 token issue server's, Data8's GetJWT and a native one, each
// authenticated by a named API key with a grant (products, validity,
// credits). See README.md, "Issuing tokens".
package issuer

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/licensegate/licensegate/module"
	"github.com/licensegate/licensegate/policy"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults of the options.
const (
	DefaultValidity    = 30 * 24 * time.Hour
	DefaultMaxBodySize = 64 << 10
	// MinSecretLength is the shortest API key secret accepted: a key
	// anyone can guess grants tokens.
	MinSecretLength = 16
)

// Handler is the license_issuer handler. Requests under the issuer URL's
// path that name one of its endpoints are answered; every other request
// goes to the next handler.
type Handler struct {
	// Issuer is the iss of every token, an absolute http(s) URL. Discovery
	// (/.well-known/openid-configuration), the key set
	// (/.well-known/jwks.json) and the issue endpoints are served under
	// its path.
	Issuer string `json:"issuer"`
	// SigningKeys are private JWK files (as license-keygen writes them:
	// RSA, EC P-256/384/521 or Ed25519). The first signs; all are
	// published, so a rotation adds the new key first and drops the old
	// one once its tokens have expired. Placeholders are replaced.
	SigningKeys []string `json:"signing_keys"`
	// Audiences are the aud of every token (one: a string, several: an
	// array); none leaves aud out.
	Audiences []string `json:"audiences,omitempty"`
	// DefaultValidity is a token's lifetime when the request names no
	// expiry. Default 30 days.
	DefaultValidity caddy.Duration `json:"default_validity,omitempty"`
	// Products, when set, is the catalog: a product or item outside it is
	// refused with 400 (unknown product). Unset, any product name is known.
	Products []string `json:"products,omitempty"`
	// APIKeys are the keys clients authenticate with (header x-api-key).
	APIKeys []APIKey `json:"api_keys,omitempty"`
	// MaxBodySize caps a request body in bytes. Default 64 KiB.
	MaxBodySize int64 `json:"max_body_size,omitempty"`
	// Store is the counter store of leases, shared with the gates; nil is
	// the in-memory store.
	Store *module.StoreConfig `json:"store,omitempty"`
	// LeaseTTL is the longest /authz/ lease (a client's consumeDuration
	// may ask for less; the license's end caps it too). Default 1h.
	LeaseTTL caddy.Duration `json:"lease_ttl,omitempty"`
	// TrustedOIDCIssuers are OpenID issuers whose tokens /authz/ also
	// accepts as licenses, verified as a license_gate with oidc_issuer
	// verifies them (discovery, their keys, iss pinned).
	TrustedOIDCIssuers []string `json:"trusted_oidc_issuers,omitempty"`

	authz     *authz        // the /authz/ endpoint (authz.go)
	ctx       caddy.Context // for the gate that verifies trusted issuers' licenses
	logger    *zap.Logger
	issuer    string // Issuer after placeholders
	basePath  string // the issuer URL's path without a trailing slash
	signer    *signer
	keys      []*apiKey
	catalog   map[string]bool
	validity  time.Duration
	maxBody   int64
	routes    []route
	discovery []byte // the discovery document
	now       func() time.Time
}

// APIKey is one API key and what it may issue.
type APIKey struct {
	// Name identifies the key in logs and metrics-free diagnostics.
	Name string `json:"name"`
	// Secret is the key clients send as x-api-key, normally a placeholder
	// ({env.PARTNER_A_KEY}, {file./run/secrets/partner-a}) replaced at
	// provisioning; at least 16 bytes. Never logged.
	Secret string `json:"secret"`
	// Products lists what the key may issue (product, items and
	// "<item>": true claims); empty means any.
	Products []string `json:"products,omitempty"`
	// MaxValidity caps a token's lifetime (from its start, or now when it
	// starts earlier); 0 means no cap.
	MaxValidity caddy.Duration `json:"max_validity,omitempty"`
	// MaxCredits, when set, caps the credits of a token; a token without
	// credits (unlimited use) is then beyond the grant.
	MaxCredits *int64 `json:"max_credits,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.license_issuer",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision loads the signing keys and the API keys and builds the
// published documents.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.ctx = ctx
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	return h.provision()
}

// provision is everything Provision does that needs no Caddy context, so
// unit tests can start here once logger is set.
func (h *Handler) provision() error {
	if h.logger == nil {
		h.logger = zap.NewNop()
	}
	if h.now == nil {
		h.now = time.Now
	}
	repl := caddy.NewReplacer()
	var err error
	if h.issuer, h.basePath, err = parseIssuer(repl.ReplaceAll(h.Issuer, "")); err != nil {
		return err
	}
	if len(h.SigningKeys) == 0 {
		return errors.New("license_issuer needs a signing_key")
	}
	paths := make([]string, len(h.SigningKeys))
	for i, p := range h.SigningKeys {
		paths[i] = repl.ReplaceAll(p, "")
	}
	if h.signer, err = loadSigner(paths); err != nil {
		return err
	}
	for _, a := range h.Audiences {
		if a == "" {
			return errors.New("audience must not be empty")
		}
	}
	h.validity = DefaultValidity
	if h.DefaultValidity < 0 {
		return errors.New("default_validity must not be negative")
	}
	if h.DefaultValidity > 0 {
		h.validity = time.Duration(h.DefaultValidity)
	}
	h.maxBody = DefaultMaxBodySize
	if h.MaxBodySize < 0 {
		return errors.New("max_body_size must not be negative")
	}
	if h.MaxBodySize > 0 {
		h.maxBody = h.MaxBodySize
	}
	if len(h.Products) > 0 {
		h.catalog = make(map[string]bool, len(h.Products))
		for _, p := range h.Products {
			if err := checkItemName(p); err != nil {
				return fmt.Errorf("products: %w", err)
			}
			h.catalog[p] = true
		}
	}
	if h.Store != nil && h.Store.Type != "" && h.Store.Type != "memory" && h.Store.Type != "redis" {
		return fmt.Errorf("store: unknown type %q (memory or redis)", h.Store.Type)
	}
	if h.keys, err = provisionKeys(h.APIKeys, repl, h.catalog); err != nil {
		return err
	}
	if len(h.keys) == 0 {
		h.logger.Warn("license_issuer has no api_key: every issue request is refused", zap.String("issuer", h.issuer))
	}
	if h.discovery, err = discoveryDocument(h.issuer, h.signer.algorithms()); err != nil {
		return err
	}
	if err := h.provisionAuthz(); err != nil {
		return err
	}
	h.routes = h.routeTable()
	return nil
}

// parseIssuer checks the issuer URL and returns it with its path.
func parseIssuer(s string) (string, string, error) {
	if s == "" {
		return "", "", errors.New("license_issuer needs an issuer URL")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", "", fmt.Errorf("issuer %q is not an absolute http(s) URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", "", fmt.Errorf("issuer %q must not have a query, a fragment or user info", s)
	}
	return s, strings.TrimSuffix(u.Path, "/"), nil
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

// checkItemName refuses product and item names a gate could not match.
func checkItemName(s string) error {
	if s == "" || len(s) > maxNameLen {
		return fmt.Errorf("a product name has 1 to %d bytes", maxNameLen)
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("product %q has a control character", s)
		}
	}
	return nil
}

// maxNameLen bounds product names and other short text fields.
const maxNameLen = 256

// defaultNames are the gate's default claim names, which issued tokens use.
var defaultNames = policy.DefaultClaimNames()

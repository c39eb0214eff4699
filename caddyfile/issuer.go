package caddyfile

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/licensegate/licensegate/module/issuer"
)

// IssuerDirective is the license_issuer directive's name.
const IssuerDirective = "license_issuer"

// IssuerOptions is every option of the license_issuer block, and
// APIKeyOptions every option of its api_key blocks, for "did you mean"
// hints; a test keeps them in step with the parser's switches.
var (
	IssuerOptions = []string{"issuer", "signing_key", "audience", "products", "default_validity", "max_body_size", "api_key", "store", "lease_ttl", "trust_oidc_issuer"}
	APIKeyOptions = []string{"products", "max_validity", "max_credits"}
)

func init() {
	httpcaddyfile.RegisterHandlerDirective(IssuerDirective, parseIssuerCaddyfile)
	// Right after basic_auth, as license_gate is: this file's init runs
	// after caddyfile.go's (files initialise in name order), so the issuer
	// lands between basic_auth and license_gate. A site that both issues
	// and enforces thus answers its issue endpoints before the gate asks
	// for a license, and both still run before reverse_proxy.
	httpcaddyfile.RegisterDirectiveOrder(IssuerDirective, httpcaddyfile.After, "basic_auth")
}

func parseIssuerCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	return ParseIssuer(h.Dispenser)
}

// ParseIssuer reads one license_issuer directive (the dispenser positioned
// on it) into a Handler. Unknown options and bad values are errors naming
// the line.
func ParseIssuer(d *caddyfile.Dispenser) (*issuer.Handler, error) {
	h := new(issuer.Handler)
	d.Next() // the directive name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		if err := parseIssuerOption(d, h, d.Val()); err != nil {
			return nil, err
		}
	}
	if h.Issuer == "" {
		return nil, d.Err("license_issuer needs an issuer URL")
	}
	if len(h.SigningKeys) == 0 {
		return nil, d.Err("license_issuer needs a signing_key")
	}
	return h, nil
}

func parseIssuerOption(d *caddyfile.Dispenser, h *issuer.Handler, opt string) error {
	switch opt {
	case "issuer":
		return oneArg(d, &h.Issuer)
	case "signing_key":
		return appendArgs(d, &h.SigningKeys)
	case "audience":
		return appendArgs(d, &h.Audiences)
	case "products":
		return appendArgs(d, &h.Products)
	case "default_validity":
		return positiveDuration(d, &h.DefaultValidity)
	case "max_body_size":
		return sizeArg(d, &h.MaxBodySize)
	case "lease_ttl":
		return positiveDuration(d, &h.LeaseTTL)
	case "trust_oidc_issuer":
		return appendArgs(d, &h.TrustedOIDCIssuers)
	case "api_key":
		k, err := parseAPIKey(d)
		if err != nil {
			return err
		}
		h.APIKeys = append(h.APIKeys, k)
	case "store":
		sc, err := parseStoreConfig(d)
		if err != nil {
			return err
		}
		h.Store = sc
	default:
		return d.Errf("unknown license_issuer option %q%s", opt, didYouMean(opt, IssuerOptions))
	}
	return nil
}

// parseAPIKey reads `api_key <name> <secret> [{ products …; max_validity …;
// max_credits … }]`.
func parseAPIKey(d *caddyfile.Dispenser) (issuer.APIKey, error) {
	var k issuer.APIKey
	args := d.RemainingArgs()
	if len(args) != 2 {
		return k, d.Err("api_key needs a name and a secret (a placeholder such as {env.PARTNER_KEY})")
	}
	k.Name, k.Secret = args[0], args[1]
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "products":
			if err := appendArgs(d, &k.Products); err != nil {
				return k, err
			}
		case "max_validity":
			if err := positiveDuration(d, &k.MaxValidity); err != nil {
				return k, err
			}
		case "max_credits":
			var n int64
			if err := intArg(d, &n, 0); err != nil {
				return k, err
			}
			k.MaxCredits = &n
		default:
			return k, d.Errf("unknown api_key option %q%s", opt, didYouMean(opt, APIKeyOptions))
		}
	}
	return k, nil
}

// positiveDuration reads a duration greater than zero: a Go duration or
// days (30d).
func positiveDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	opt := d.Val()
	if err := durationArg(d, dst); err != nil {
		return err
	}
	if *dst <= 0 {
		return d.Errf("%s must be longer than zero", opt)
	}
	return nil
}

// Package caddyfile parses the license_gate and license_issuer Caddyfile
// directives into the modules' configuration and registers the directives
// with their order (after basic_auth, so before reverse_proxy and the other
// handlers; license_issuer before license_gate).
//
// It only parses: it builds the module's exported configuration and holds no
// runtime state; checks that need more than the tokens live in the module's
// Provision, so the JSON config gets them too.
package caddyfile

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/licensegate/licensegate/module"
)

// Directive is the directive's name.
const Directive = "license_gate"

func init() {
	httpcaddyfile.RegisterHandlerDirective(Directive, parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder(Directive, httpcaddyfile.After, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	return Parse(h.Dispenser)
}

// Parse reads one license_gate directive (the dispenser positioned on it)
// into a Gate. Unknown options and bad values are errors naming the line.
func Parse(d *caddyfile.Dispenser) (*module.Gate, error) {
	g := new(module.Gate)
	d.Next() // the directive name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		if err := parseOption(d, g, opt); err != nil {
			return nil, err
		}
	}
	return g, nil
}

func parseOption(d *caddyfile.Dispenser, g *module.Gate, opt string) error {
	switch opt {
	case "jwks_url":
		return appendArgs(d, &g.JWKSURLs)
	case "oidc_issuer":
		return appendArgs(d, &g.OIDCIssuers)
	case "jwks_file":
		n := len(g.JWKSFiles)
		if err := appendArgs(d, &g.JWKSFiles); err != nil {
			return err
		}
		warnMissingFiles(d, g.JWKSFiles[n:])
	case "issuer":
		return parseIssuer(d, g)
	case "audience":
		return appendArgs(d, &g.Audiences)
	case "algorithms":
		return appendArgs(d, &g.Algorithms)
	case "refresh":
		return durationArg(d, &g.Refresh)
	case "kid_refresh_interval":
		return durationArg(d, &g.KidRefreshInterval)
	case "jwks_timeout":
		return durationArg(d, &g.JWKSTimeout)
	case "session_ttl":
		return durationArg(d, &g.SessionTTL)
	case "leeway":
		var l caddy.Duration
		if err := durationArg(d, &l); err != nil {
			return err
		}
		g.Leeway = &l
	case "jwks_max_size":
		return sizeArg(d, &g.JWKSMaxSize)
	case "max_token_size":
		return sizeArg(d, &g.MaxTokenSize)
	case "secret":
		return oneArg(d, &g.Secret)
	case "require_item":
		return oneArg(d, &g.RequireItem)
	case "on_store_error":
		if err := oneArg(d, &g.OnStoreError); err != nil {
			return err
		}
		if g.OnStoreError != "fail_closed" && g.OnStoreError != "fail_open" {
			return d.Errf("on_store_error must be fail_closed or fail_open, not %q", g.OnStoreError)
		}
	case "cache_size":
		var n int64
		if err := intArg(d, &n, 1); err != nil {
			return err
		}
		g.CacheSize = int(n)
	case "cost":
		var n int64
		if err := intArg(d, &n, 0); err != nil {
			return err
		}
		g.Cost = &n
	case "token_from":
		srcs, err := sources(d, true)
		if err != nil {
			return err
		}
		g.TokenFrom = &srcs[0]
	case "version_from":
		srcs, err := sources(d, false)
		if err != nil {
			return err
		}
		g.VersionFrom = append(g.VersionFrom, srcs...)
	case "hardware_from":
		srcs, err := sources(d, false)
		if err != nil {
			return err
		}
		g.HardwareFrom = append(g.HardwareFrom, srcs...)
	case "match_claim":
		args := d.RemainingArgs()
		if len(args) != 2 {
			return d.Err("match_claim needs a claim name and a value")
		}
		g.MatchClaims = append(g.MatchClaims, module.ClaimRule{Claim: args[0], Value: args[1]})
	case "claims":
		return parseClaims(d, g)
	case "store":
		return parseStore(d, g)
	case "refund_on":
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.Err("refund_on needs statuses, such as 5xx or 502")
		}
		for _, a := range args {
			if !module.ValidRefundStatus(a) {
				return d.Errf("refund_on: %q is neither a status nor a class like 5xx", a)
			}
		}
		g.RefundOn = append(g.RefundOn, args...)
	case "shadow":
		if d.NextArg() {
			return d.ArgErr()
		}
		g.Shadow = true
	case "pass_preflight":
		on := true
		if d.NextArg() {
			switch d.Val() {
			case "on", "true":
			case "off", "false":
				on = false
			default:
				return d.Errf("pass_preflight takes on or off, not %q", d.Val())
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		}
		g.PassPreflight = &on
	case "errors":
		if err := oneArg(d, &g.Errors); err != nil {
			return err
		}
		if g.Errors != module.ErrorsRespond && g.Errors != module.ErrorsHandle {
			return d.Errf("errors takes %s or %s, not %q", module.ErrorsRespond, module.ErrorsHandle, g.Errors)
		}
	case "status":
		args := d.RemainingArgs()
		if len(args) != 2 {
			return d.Err("status needs an error code and an HTTP status")
		}
		st, err := strconv.Atoi(args[1])
		if err != nil || st < 200 || st > 599 {
			return d.Errf("status: %q is not an HTTP status", args[1])
		}
		if !module.ValidCode(args[0]) {
			return d.Errf("status: unknown error code %q", args[0])
		}
		if g.Status == nil {
			g.Status = make(map[string]int)
		}
		g.Status[args[0]] = st
	default:
		return d.Errf("unknown license_gate option %q%s", opt, didYouMean(opt, Options))
	}
	return nil
}

func parseClaims(d *caddyfile.Dispenser, g *module.Gate) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	if g.Claims == nil {
		g.Claims = make(map[string]string)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		role := d.Val()
		var name string
		if err := oneArg(d, &name); err != nil {
			return err
		}
		if !module.ValidClaimRole(role) {
			return d.Errf("claims: unknown role %q", role)
		}
		g.Claims[role] = name
	}
	return nil
}

func parseStore(d *caddyfile.Dispenser, g *module.Gate) error {
	sc, err := parseStoreConfig(d)
	if err != nil {
		return err
	}
	g.Store = sc
	return nil
}

// parseStoreConfig reads a store block (license_gate's and
// license_issuer's), the dispenser on the store option.
func parseStoreConfig(d *caddyfile.Dispenser) (*module.StoreConfig, error) {
	if !d.NextArg() {
		return nil, d.Err("store needs a type: memory or redis")
	}
	sc := &module.StoreConfig{Type: d.Val()}
	if sc.Type != "memory" && sc.Type != "redis" {
		return nil, d.Errf("unknown store type %q (memory or redis)", sc.Type)
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if sc.Type == "memory" {
			return nil, d.Errf("the memory store takes no options")
		}
		switch opt := d.Val(); opt {
		case "addresses", "address":
			if err := appendArgs(d, &sc.Addresses); err != nil {
				return nil, err
			}
		case "master_name":
			if err := oneArg(d, &sc.MasterName); err != nil {
				return nil, err
			}
		case "username":
			if err := oneArg(d, &sc.Username); err != nil {
				return nil, err
			}
		case "password":
			if err := oneArg(d, &sc.Password); err != nil {
				return nil, err
			}
		case "db":
			var n int64
			if err := intArg(d, &n, 0); err != nil {
				return nil, err
			}
			sc.DB = int(n)
		case "tls":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			sc.TLS = true
		case "timeout":
			if err := durationArg(d, &sc.Timeout); err != nil {
				return nil, err
			}
		case "pool_size":
			var n int64
			if err := intArg(d, &n, 1); err != nil {
				return nil, err
			}
			sc.PoolSize = int(n)
		case "prefix":
			if err := oneArg(d, &sc.Prefix); err != nil {
				return nil, err
			}
		case "durability":
			if err := parseDurability(d, sc); err != nil {
				return nil, err
			}
		case "revocations":
			if err := oneArg(d, &sc.Revocations); err != nil {
				return nil, err
			}
			if sc.Revocations != module.RevocationsPushed && sc.Revocations != module.RevocationsPerRequest {
				return nil, d.Errf("revocations must be %s or %s, not %q", module.RevocationsPushed, module.RevocationsPerRequest, sc.Revocations)
			}
		case "blocks":
			if err := oneArg(d, &sc.Blocks); err != nil {
				return nil, err
			}
			if sc.Blocks != module.BlocksOn && sc.Blocks != module.BlocksOff {
				return nil, d.Errf("blocks must be %s or %s, not %q%s", module.BlocksOn, module.BlocksOff, sc.Blocks,
					didYouMean(sc.Blocks, []string{module.BlocksOn, module.BlocksOff}))
			}
		default:
			return nil, d.Errf("unknown store option %q%s", opt, didYouMean(opt, StoreOptions))
		}
	}
	return sc, nil
}

// parseDurability reads `durability replicas <n> [timeout <d>]`.
func parseDurability(d *caddyfile.Dispenser, sc *module.StoreConfig) error {
	args := d.RemainingArgs()
	if (len(args) != 2 && len(args) != 4) || args[0] != "replicas" || (len(args) == 4 && args[2] != "timeout") {
		return d.Err("durability: expected replicas <n> [timeout <duration>]")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil || n < 1 {
		return d.Errf("durability: replicas %q is not an integer ≥ 1", args[1])
	}
	sc.DurabilityReplicas = n
	if len(args) == 4 {
		dur, err := caddy.ParseDuration(args[3])
		if err != nil || dur <= 0 {
			return d.Errf("durability: bad timeout %q", args[3])
		}
		sc.DurabilityTimeout = caddy.Duration(dur)
	}
	return nil
}

func appendArgs(d *caddyfile.Dispenser, dst *[]string) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	*dst = append(*dst, args...)
	return nil
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	opt := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil || dur < 0 {
		return d.Errf("%s: bad duration %q: a number with a unit, e.g. 30s, 15m or 1h", opt, s)
	}
	*dst = caddy.Duration(dur)
	return nil
}

func intArg(d *caddyfile.Dispenser, dst *int64, min int64) error {
	opt := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < min {
		return d.Errf("%s: %q is not an integer ≥ %d", opt, s, min)
	}
	*dst = n
	return nil
}

func sizeArg(d *caddyfile.Dispenser, dst *int64) error {
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	n, ok := parseSize(s)
	if !ok {
		return d.Errf("bad size %q (such as 16KiB, 1MiB or 4096, at most 1GiB; KB and MB are decimal, as in Caddy)", s)
	}
	*dst = n
	return nil
}

// parseSize reads a size the way Caddy's own size options do (go-humanize):
// "4096", "16KiB" and "1MiB" are binary, "16KB" and "1MB" decimal (16000,
// 1000000), and a space before the unit is allowed. Sizes above 1GiB are
// refused: no token or key set is that large.
func parseSize(s string) (int64, bool) {
	n, err := humanize.ParseBytes(s)
	if err != nil || n == 0 || n > 1<<30 {
		return 0, false
	}
	return int64(n), true
}

// sources reads "<header|query|cookie> <name>" pairs; token_from takes
// exactly one.
func sources(d *caddyfile.Dispenser, single bool) ([]module.ValueSource, error) {
	args := d.RemainingArgs()
	if len(args) == 0 || len(args)%2 != 0 || (single && len(args) != 2) {
		return nil, d.Errf("expected <header|query|cookie> <name>")
	}
	var out []module.ValueSource
	for i := 0; i < len(args); i += 2 {
		switch args[i] {
		case "header", "query", "cookie":
		default:
			return nil, d.Errf("unknown source %q (header, query or cookie)", args[i])
		}
		out = append(out, module.ValueSource{From: args[i], Name: args[i+1]})
	}
	return out, nil
}

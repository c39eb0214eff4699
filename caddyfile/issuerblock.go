package caddyfile

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/licensegate/licensegate/module"
)

// parseIssuer reads the issuer option in its two forms:
//
//	issuer <iss>...            # accepted issuers; flat key sources bind to the only one
//	issuer <iss> {             # key sources that speak for <iss> alone
//		jwks_url  <url>...
//		jwks_file <path>...
//		secret    <value>
//	}
func parseIssuer(d *caddyfile.Dispenser, g *module.Gate) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	nesting := d.Nesting()
	if !d.NextBlock(nesting) {
		if d.Val() == "}" {
			// NextBlock consumed "{ }": a block naming no key source.
			return d.Errf("the block of issuer %s is empty: name its key sources (jwks_url, jwks_file or secret)", args[0])
		}
		g.Issuers = append(g.Issuers, args...)
		return nil
	}
	if len(args) != 1 {
		return d.Errf("an issuer block binds keys to one issuer, not %d", len(args))
	}
	ik := module.IssuerKeys{Issuer: args[0]}
	for ok := true; ok; ok = d.NextBlock(nesting) {
		switch opt := d.Val(); opt {
		case "jwks_url":
			if err := appendArgs(d, &ik.JWKSURLs); err != nil {
				return err
			}
		case "jwks_file":
			n := len(ik.JWKSFiles)
			if err := appendArgs(d, &ik.JWKSFiles); err != nil {
				return err
			}
			warnMissingFiles(d, ik.JWKSFiles[n:])
		case "secret":
			if ik.Secret != "" {
				return d.Errf("issuer %s has two secrets; give it one", ik.Issuer)
			}
			if err := oneArg(d, &ik.Secret); err != nil {
				return err
			}
		default:
			return d.Errf("unknown option %q in the block of issuer %s (jwks_url, jwks_file or secret)%s",
				opt, ik.Issuer, didYouMean(opt, []string{"jwks_url", "jwks_file", "secret"}))
		}
	}
	g.IssuerKeys = append(g.IssuerKeys, ik)
	return nil
}

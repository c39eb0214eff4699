package module

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// IssuerKeys binds key sources to one issuer: their keys verify only
// tokens whose iss is Issuer. It is the JSON form of the Caddyfile block
// issuer <iss> { jwks_url … jwks_file … secret … }.
type IssuerKeys struct {
	// Issuer is the iss these keys speak for; it is accepted as iss.
	Issuer string `json:"issuer"`
	// JWKSURLs are key set URLs of this issuer, fetched and refreshed as
	// the gate's own jwks_urls are.
	JWKSURLs []string `json:"jwks_urls,omitempty"`
	// JWKSFiles are key set (or single JWK) files of this issuer, read at
	// provisioning.
	JWKSFiles []string `json:"jwks_files,omitempty"`
	// Secret is this issuer's HMAC key for HS* tokens; placeholders such
	// as {env.LICENSE_HMAC} are replaced at provisioning. Never logged.
	Secret string `json:"secret,omitempty"`
}

// ErrUnboundKeys is wrapped by the provisioning error of a config whose
// key sources cannot each be bound to one issuer.
var ErrUnboundKeys = errors.New("key sources are not bound to an issuer")

// issuerKeys are the keys that speak for one issuer (or, in a gate that
// names no issuer, for any).
type issuerKeys struct {
	sources []keySource
	secret  []byte // nil: this issuer has no HMAC key
}

// keyBindings is the result of binding a gate's key sources to issuers.
type keyBindings struct {
	// anyIssuer, when set, verifies every token whatever its iss: the
	// gate names no issuer at all.
	anyIssuer *issuerKeys
	// byIssuer holds each accepted issuer's keys.
	byIssuer map[string]*issuerKeys
}

// forIssuer returns the keys that may verify a token claiming iss, nil
// when the issuer is not accepted.
func (b *keyBindings) forIssuer(iss string) *issuerKeys {
	if b.anyIssuer != nil {
		return b.anyIssuer
	}
	return b.byIssuer[iss]
}

// version changes whenever a key source of any issuer may give other
// keys than before: the sum of the sources' versions, which only grow.
// Read before a signature check, it tells later whether the check would
// be made against the same keys.
func (b *keyBindings) version() uint64 {
	var v uint64
	add := func(k *issuerKeys) {
		for _, s := range k.sources {
			v += s.version()
		}
	}
	if b.anyIssuer != nil {
		add(b.anyIssuer)
	}
	for _, k := range b.byIssuer {
		add(k)
	}
	return v
}

// accepts reports whether a token claiming iss is accepted.
func (b *keyBindings) accepts(iss string) bool { return b.forIssuer(iss) != nil }

// hasSecret reports whether any issuer has an HMAC key.
func (b *keyBindings) hasSecret() bool {
	if b.anyIssuer != nil {
		return b.anyIssuer.secret != nil
	}
	for _, k := range b.byIssuer {
		if k.secret != nil {
			return true
		}
	}
	return false
}

// sourceSpec is one configured key source before it is opened.
type sourceSpec struct {
	kind string // jwks_url, jwks_file or oidc_issuer
	arg  string // URL or path, placeholders replaced
	raw  string // as configured, for error messages
}

// issuerSpec is what the config binds to one issuer.
type issuerSpec struct {
	sources []sourceSpec
	secret  string // placeholders replaced
}

// bindingPlan is the binding of key sources to issuers, decided from the
// config alone: flat sources (jwks_url, jwks_file, secret outside a
// block) bind to the one flat issuer, or to any issuer when the gate names
// none; oidc_issuer X binds what it discovers to X; a block binds its
// sources to its issuer.
type bindingPlan struct {
	anyIssuer *issuerSpec            // set when no issuer is named anywhere
	byIssuer  map[string]*issuerSpec // otherwise
	order     []string               // issuers in config order, for errors and opening
}

// planBindings binds the gate's key sources to issuers, or explains why
// they cannot be bound.
func (g *Gate) planBindings(repl *caddy.Replacer) (*bindingPlan, error) {
	replace := func(s string) string { return repl.ReplaceAll(s, "") }
	var flat issuerSpec
	for _, u := range g.JWKSURLs {
		flat.sources = append(flat.sources, sourceSpec{"jwks_url", replace(u), u})
	}
	for _, f := range g.JWKSFiles {
		flat.sources = append(flat.sources, sourceSpec{"jwks_file", replace(f), f})
	}
	if g.Secret != "" {
		if flat.secret = replace(g.Secret); flat.secret == "" {
			return nil, emptyAfterReplace("secret", g.Secret)
		}
	}
	flatIssuers := uniqueReplaced(g.Issuers, replace)
	hasFlat := len(flat.sources) > 0 || flat.secret != ""

	if len(g.OIDCIssuers) == 0 && len(g.IssuerKeys) == 0 && len(flatIssuers) == 0 {
		if !hasFlat {
			return nil, errors.New("no key source: set jwks_url, oidc_issuer, jwks_file, secret or an issuer block")
		}
		return &bindingPlan{anyIssuer: &flat}, nil
	}

	p := &bindingPlan{byIssuer: make(map[string]*issuerSpec)}
	spec := func(iss string) *issuerSpec {
		s := p.byIssuer[iss]
		if s == nil {
			s = &issuerSpec{}
			p.byIssuer[iss] = s
			p.order = append(p.order, iss)
		}
		return s
	}
	addSecret := func(iss, secret string) error {
		s := spec(iss)
		if s.secret != "" && s.secret != secret {
			return fmt.Errorf("issuer %q has two secrets; give it one", iss)
		}
		s.secret = secret
		return nil
	}
	for _, iss := range flatIssuers {
		spec(iss)
	}
	if hasFlat {
		switch len(flatIssuers) {
		case 1:
			s := spec(flatIssuers[0])
			s.sources = append(s.sources, flat.sources...)
			if flat.secret != "" {
				if err := addSecret(flatIssuers[0], flat.secret); err != nil {
					return nil, err
				}
			}
		case 0:
			return nil, fmt.Errorf("%w: %s outside an issuer block while the gate names issuers (%s); a key speaks only for its issuer, so name it: %s",
				ErrUnboundKeys, flatKinds(&flat), quoteList(configIssuers(g, replace)), blockExample(&flat, "<iss>"))
		default:
			return nil, fmt.Errorf("%w: %s outside an issuer block with several issuers (%s); a key speaks only for its issuer, so put each source in its issuer's block: %s",
				ErrUnboundKeys, flatKinds(&flat), quoteList(flatIssuers), blockExample(&flat, flatIssuers[0]))
		}
	}
	for _, raw := range g.OIDCIssuers {
		u := replace(raw)
		s := spec(u)
		s.sources = append(s.sources, sourceSpec{"oidc_issuer", u, raw})
	}
	for _, ik := range g.IssuerKeys {
		iss := replace(ik.Issuer)
		if iss == "" {
			return nil, errors.New("an issuer block needs the issuer it binds its keys to")
		}
		s := spec(iss)
		n := len(s.sources)
		for _, u := range ik.JWKSURLs {
			s.sources = append(s.sources, sourceSpec{"jwks_url", replace(u), u})
		}
		for _, f := range ik.JWKSFiles {
			s.sources = append(s.sources, sourceSpec{"jwks_file", replace(f), f})
		}
		if ik.Secret != "" {
			secret := replace(ik.Secret)
			if secret == "" {
				return nil, fmt.Errorf("issuer %q: %w", iss, emptyAfterReplace("secret", ik.Secret))
			}
			if err := addSecret(iss, secret); err != nil {
				return nil, err
			}
		} else if len(s.sources) == n {
			return nil, fmt.Errorf("issuer %q: the block names no key source (jwks_url, jwks_file or secret)", iss)
		}
	}
	for _, iss := range p.order {
		if s := p.byIssuer[iss]; len(s.sources) == 0 && s.secret == "" {
			return nil, fmt.Errorf("%w: issuer %q has no key source; bind one to it: issuer %s { jwks_url <url> }",
				ErrUnboundKeys, iss, iss)
		}
	}
	return p, nil
}

// uniqueReplaced returns the list with placeholders replaced, in order,
// without repeats.
func uniqueReplaced(list []string, replace func(string) string) []string {
	var out []string
	for _, s := range list {
		if s = replace(s); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// configIssuers lists every issuer the gate names.
func configIssuers(g *Gate, replace func(string) string) []string {
	all := slices.Concat(g.Issuers, g.OIDCIssuers)
	for _, ik := range g.IssuerKeys {
		all = append(all, ik.Issuer)
	}
	return uniqueReplaced(all, replace)
}

// flatKinds names the flat sources for an error: "jwks_url, secret".
func flatKinds(s *issuerSpec) string {
	var kinds []string
	for _, src := range s.sources {
		if !slices.Contains(kinds, src.kind) {
			kinds = append(kinds, src.kind)
		}
	}
	if s.secret != "" {
		kinds = append(kinds, "secret")
	}
	return strings.Join(kinds, ", ")
}

// blockExample shows the block form for the first flat source (a secret
// is shown by name, never by value).
func blockExample(s *issuerSpec, iss string) string {
	line := "secret <hmac key>"
	if len(s.sources) > 0 {
		line = s.sources[0].kind + " " + s.sources[0].raw
	}
	return fmt.Sprintf("issuer %s { %s }", iss, line)
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

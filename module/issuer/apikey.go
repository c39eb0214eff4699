package issuer

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/licensegate/licensegate/policy"
)

// HeaderAPIKey is the request header that carries the API key.
const HeaderAPIKey = "X-Api-Key"

// maxAPIKeyLen bounds the header read: a longer value is no key of ours.
const maxAPIKeyLen = 1024

// apiKey is a provisioned API key: the SHA-256 of its secret (the secret
// itself is not kept) and its grant.
type apiKey struct {
	name        string
	sum         [sha256.Size]byte
	products    map[string]bool // nil: any
	maxValidity time.Duration   // 0: no cap
	maxCredits  int64           // < 0: no cap
}

// provisionKeys replaces the secrets' placeholders and checks the grants.
func provisionKeys(cfg []APIKey, repl *caddy.Replacer, catalog map[string]bool) ([]*apiKey, error) {
	var out []*apiKey
	for i, c := range cfg {
		if c.Name == "" {
			return nil, fmt.Errorf("api_key #%d needs a name", i+1)
		}
		secret := repl.ReplaceAll(c.Secret, "")
		if len(secret) < MinSecretLength {
			// The message names the key, never the secret (nor its
			// placeholder's value).
			return nil, fmt.Errorf("api_key %s: the secret is empty or shorter than %d bytes after replacing placeholders", c.Name, MinSecretLength)
		}
		if len(secret) > maxAPIKeyLen {
			return nil, fmt.Errorf("api_key %s: the secret is longer than %d bytes", c.Name, maxAPIKeyLen)
		}
		k := &apiKey{name: c.Name, sum: sha256.Sum256([]byte(secret)), maxValidity: time.Duration(c.MaxValidity), maxCredits: -1}
		for _, o := range out {
			if o.name == k.name {
				return nil, fmt.Errorf("api_key %s is configured twice", c.Name)
			}
			if o.sum == k.sum {
				return nil, fmt.Errorf("api_keys %s and %s have the same secret", o.name, c.Name)
			}
		}
		if c.MaxValidity < 0 {
			return nil, fmt.Errorf("api_key %s: max_validity must not be negative", c.Name)
		}
		if c.MaxCredits != nil {
			if *c.MaxCredits < 0 || *c.MaxCredits > policy.MaxCredits {
				return nil, fmt.Errorf("api_key %s: max_credits must be 0..%d", c.Name, int64(policy.MaxCredits))
			}
			k.maxCredits = *c.MaxCredits
		}
		if len(c.Products) > 0 {
			k.products = make(map[string]bool, len(c.Products))
			for _, p := range c.Products {
				if err := checkItemName(p); err != nil {
					return nil, fmt.Errorf("api_key %s: %w", c.Name, err)
				}
				if catalog != nil && !catalog[p] {
					return nil, fmt.Errorf("api_key %s: product %q is not in products", c.Name, p)
				}
				k.products[p] = true
			}
		}
		out = append(out, k)
	}
	return out, nil
}

// authenticate returns the key whose secret is presented, or nil. It
// compares SHA-256 digests in constant time, and always against every key,
// so neither the secret nor which key matched leaks through timing.
func authenticate(keys []*apiKey, presented string) *apiKey {
	if presented == "" || len(presented) > maxAPIKeyLen {
		return nil
	}
	sum := sha256.Sum256([]byte(presented))
	var found *apiKey
	for _, k := range keys {
		if subtle.ConstantTimeCompare(sum[:], k.sum[:]) == 1 {
			found = k
		}
	}
	return found
}

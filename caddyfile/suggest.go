package caddyfile

// Options is every option of the license_gate block, for "did you mean"
// hints; a test keeps it in step with the parser's switch.
var Options = []string{
	"jwks_url", "oidc_issuer", "jwks_file", "refresh", "kid_refresh_interval", "jwks_timeout",
	"jwks_max_size", "issuer", "audience", "algorithms", "secret", "leeway", "max_token_size",
	"token_from", "cache_size", "require_item", "cost", "version_from", "hardware_from",
	"match_claim", "claims", "store", "on_store_error", "refund_on", "session_ttl", "status",
	"shadow", "pass_preflight", "errors",
}

// StoreOptions is every option of the store redis block.
var StoreOptions = []string{
	"addresses", "master_name", "username", "password", "db", "tls", "timeout", "pool_size", "prefix",
	"durability",
	"revocations",
	"blocks",
}

// suggestion is the known name closest to got, when it is close enough to
// be a likely misspelling (at most a third of its letters off, at least
// one), or "".
func suggestion(got string, known []string) string {
	best, bestDist := "", len(got)/3+1
	if bestDist < 2 {
		bestDist = 2
	}
	for _, k := range known {
		if d := levenshtein(got, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// didYouMean is the hint appended to an unknown-option error.
func didYouMean(got string, known []string) string {
	if s := suggestion(got, known); s != "" {
		return ` (did you mean "` + s + `"?)`
	}
	return ""
}

// levenshtein is the edit distance (insertions, deletions, substitutions)
// between a and b, byte-wise: option names are ASCII.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

package issuer

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Cache lifetimes of the published documents. A gate refreshes its keys
// on its own schedule and at once (rate-limited) for an unknown kid, so a
// short max-age only spares shared caches, never delays a rotation much.
const (
	jwksCacheControl      = "public, max-age=300"
	discoveryCacheControl = "public, max-age=3600"
)

// discoveryDocument is the OpenID provider metadata a gate's oidc_issuer
// reads: the issuer, exactly as configured (the gate compares it byte for
// byte), and the key set's URL.
func discoveryDocument(issuer string, algs []string) ([]byte, error) {
	base := strings.TrimSuffix(issuer, "/")
	doc, err := json.MarshalIndent(map[string]any{
		"issuer":                                issuer,
		"jwks_uri":                              base + PathJWKS,
		"id_token_signing_alg_values_supported": algs,
		"subject_types_supported":               []string{"public"},
		"response_types_supported":              []string{"token"},
		"claims_supported": []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "ibb", "ibe", "lic",
			"credits", "items", "product", "ver", "hw", "ip", "seats", "os"},
	}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(doc, '\n'), nil
}

// serveDiscovery answers GET /.well-known/openid-configuration.
func (h *Handler) serveDiscovery(w http.ResponseWriter, r *http.Request) error {
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", discoveryCacheControl)
	if r.Method != http.MethodHead {
		_, _ = w.Write(h.discovery)
	}
	return nil
}

// serveJWKS answers GET /.well-known/jwks.json with the public keys, and
// 304 when the client holds the current set (If-None-Match).
func (h *Handler) serveJWKS(w http.ResponseWriter, r *http.Request) error {
	hd := w.Header()
	hd.Set("Content-Type", "application/jwk-set+json")
	hd.Set("Cache-Control", jwksCacheControl)
	hd.Set("ETag", h.signer.etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, h.signer.etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	if r.Method != http.MethodHead {
		_, _ = w.Write(h.signer.jwks)
	}
	return nil
}

// etagMatches reads an If-None-Match list (weak comparison, RFC 9110).
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

package issuer

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Problem kinds: the "code" member of a problem body, for clients that
// branch on what went wrong.
const (
	KindInvalidField     = "invalid_field"     // 400: a field's value is refused
	KindMissingField     = "missing_field"     // 400: a required field is absent
	KindUnknownField     = "unknown_field"     // 400: the request class has no such field
	KindUnknownProduct   = "unknown_product"   // 400: a product outside the catalog
	KindMalformedBody    = "malformed_body"    // 400: not one JSON object
	KindBodyTooLarge     = "body_too_large"    // 413
	KindTokenTooLarge    = "token_too_large"   // 400: the token would exceed a gate's max_token_size
	KindUnsupportedMedia = "unsupported_media" // 415: not JSON
	KindUnauthorized     = "unauthorized"      // 401: missing or wrong API key
	KindBeyondGrant      = "beyond_grant"      // 403: more than the key may issue
	KindMethodNotAllowed = "method_not_allowed"
	KindInternal         = "internal" // 500: signing failed
)

// Problem is an RFC 9457 problem detail: every refusal of the issue
// endpoints is one, answered as application/problem+json.
type Problem struct {
	// Status is the HTTP status.
	Status int
	// Kind is one of the Kind* constants.
	Kind string
	// Field names the request field at fault, when there is one.
	Field string
	// Detail says what is wrong, in terms the client can act on. It never
	// holds an API key or key material.
	Detail string
}

// Error implements error.
func (p *Problem) Error() string {
	if p.Field != "" {
		return fmt.Sprintf("%d %s: %s: %s", p.Status, p.Kind, p.Field, p.Detail)
	}
	return fmt.Sprintf("%d %s: %s", p.Status, p.Kind, p.Detail)
}

// Is reports whether target is a Problem of the same kind.
func (p *Problem) Is(target error) bool {
	var t *Problem
	return errors.As(target, &t) && t.Kind == p.Kind
}

// fieldError is the 400 for a bad field.
func fieldError(field, format string, args ...any) *Problem {
	return &Problem{Status: http.StatusBadRequest, Kind: KindInvalidField, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// beyondGrant is the 403 for a request the key may not make.
func beyondGrant(field, format string, args ...any) *Problem {
	return &Problem{Status: http.StatusForbidden, Kind: KindBeyondGrant, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// problemBody is the JSON of a problem.
type problemBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
	Field  string `json:"field,omitempty"`
}

// writeProblem answers with the problem; it is the only place a problem
// becomes a response.
func writeProblem(w http.ResponseWriter, p *Problem) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if p.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `ApiKey header="x-api-key"`)
	}
	body, _ := json.MarshalIndent(problemBody{
		Type: "about:blank", Title: http.StatusText(p.Status), Status: p.Status,
		Detail: p.Detail, Code: p.Kind, Field: p.Field,
	}, "", "  ")
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(body, '\n'))
}

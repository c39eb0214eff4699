package module

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// ValueSource names where a value is read from in a request.
type ValueSource struct {
	// From is "header", "query" or "cookie".
	From string `json:"from"`
	// Name is the header, query parameter or cookie name.
	Name string `json:"name"`
}

// String renders the source as written in a Caddyfile.
func (s ValueSource) String() string { return s.From + " " + s.Name }

// validate checks the kind and canonicalizes a header name.
func (s *ValueSource) validate() error {
	if s.Name == "" {
		return fmt.Errorf("source %q needs a name", s.From)
	}
	switch s.From {
	case "header":
		s.Name = http.CanonicalHeaderKey(s.Name)
	case "query", "cookie":
	default:
		return fmt.Errorf("unknown source %q (header, query or cookie)", s.From)
	}
	return nil
}

// read returns the value and whether it was present.
func (s ValueSource) read(r *http.Request) (string, bool) {
	switch s.From {
	case "header":
		v := r.Header[s.Name]
		if len(v) == 0 {
			return "", false
		}
		return v[0], true
	case "query":
		return queryValue(r.URL.RawQuery, s.Name)
	case "cookie":
		c, err := r.Cookie(s.Name)
		if err != nil {
			return "", false
		}
		return c.Value, true
	}
	return "", false
}

// readFirst returns the first value found among the sources.
func readFirst(sources []ValueSource, r *http.Request) (string, bool) {
	for _, s := range sources {
		if v, ok := s.read(r); ok {
			return v, true
		}
	}
	return "", false
}

// queryValue finds one query parameter without building the whole map.
func queryValue(raw, name string) (string, bool) {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(pair, "=")
		if k != name {
			if uk, err := url.QueryUnescape(k); err != nil || uk != name {
				continue
			}
		}
		uv, err := url.QueryUnescape(v)
		if err != nil {
			return "", false
		}
		return uv, true
	}
	return "", false
}

// tokenFrom extracts the bearer token. From the Authorization header the
// Bearer scheme is required (case-insensitive); from other headers a
// Bearer prefix is optional. It reports why no token was found.
func tokenFrom(s ValueSource, r *http.Request) (string, string) {
	v, ok := s.read(r)
	if !ok || v == "" {
		return "", "no token in " + s.String()
	}
	if s.From == "header" {
		scheme, rest, found := strings.Cut(v, " ")
		if found && strings.EqualFold(scheme, "Bearer") {
			v = strings.TrimLeft(rest, " ")
		} else if s.Name == "Authorization" {
			return "", "the Authorization scheme is not Bearer"
		}
	}
	if v == "" {
		return "", "empty token in " + s.String()
	}
	return v, ""
}

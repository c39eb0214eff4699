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

// visit calls fn with every value of the source in the request, in the
// order sent, until fn returns false: each header line of that name, each
// query parameter whose name decodes to it, each cookie of that name. A
// query value that is not valid URL encoding is passed as "" with ok
// false. visit itself allocates nothing for headers and queries.
func (s ValueSource) visit(r *http.Request, fn func(v string, ok bool) bool) {
	switch s.From {
	case "header":
		for _, v := range r.Header[s.Name] {
			if !fn(v, true) {
				return
			}
		}
	case "query":
		raw := r.URL.RawQuery
		for raw != "" {
			var pair string
			pair, raw, _ = strings.Cut(raw, "&")
			k, v, _ := strings.Cut(pair, "=")
			if !queryNameIs(k, s.Name) {
				continue
			}
			uv, err := url.QueryUnescape(v)
			if !fn(uv, err == nil) {
				return
			}
		}
	case "cookie":
		for _, c := range r.CookiesNamed(s.Name) {
			if !fn(c.Value, true) {
				return
			}
		}
	}
}

// queryNameIs reports whether the raw (still escaped) parameter name k
// decodes to name.
func queryNameIs(k, name string) bool {
	if k == name {
		return true
	}
	if !strings.ContainsAny(k, "%+") {
		return false
	}
	uk, err := url.QueryUnescape(k)
	return err == nil && uk == name
}

// tokenFrom extracts the bearer token. From the Authorization header the
// Bearer scheme is required (case-insensitive); from other headers a
// Bearer prefix is optional. A token sent twice (two header lines, two
// query parameters, two cookies) must be sent alike: the gate would check
// one and an upstream might read the other. It reports why no token was
// found.
func tokenFrom(s ValueSource, r *http.Request) (string, string) {
	var v, why string
	found := false
	s.visit(r, func(x string, ok bool) bool {
		switch {
		case !ok:
			why = "the token in " + s.String() + " is not valid URL encoding"
		case !found:
			v, found = x, true
			return true
		case x != v:
			why = "two different tokens in " + s.String()
		default:
			return true
		}
		return false
	})
	if why != "" {
		return "", why
	}
	if !found || v == "" {
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

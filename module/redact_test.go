package module

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestDropParam(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, raw, want string
		dropped         bool
	}{
		{"the only parameter leaves an empty query", "t=SECRET", "", true},
		{"the others stay byte for byte, in order", "b=2&t=SECRET&a=%20x+y&a=1", "b=2&a=%20x+y&a=1", true},
		{"a first parameter is dropped", "t=SECRET&z=%7E", "z=%7E", true},
		{"a last parameter is dropped", "z=1&t=SECRET", "z=1", true},
		{"every occurrence is dropped", "t=A&x=1&t=B&t", "x=1", true},
		{"an escaped name is the name", "%74=SECRET&x=1", "x=1", true},
		{"a parameter without value is dropped", "x=1&t&y=2", "x=1&y=2", true},
		{"an empty pair of the others stays", "x=1&&t=S&y=2", "x=1&&y=2", true},
		{"a leading empty pair stays", "&t=S&a=1", "&a=1", true},
		{"a pair hiding the name after a semicolon is dropped", "a=1&x=1;t=S&b=2", "a=1&b=2", true},
		{"a semicolon pair without the name stays", "a=1;b=2&t=S", "a=1;b=2", true},
		{"a name that only starts with the name stays", "tt=1&t_x=2", "tt=1&t_x=2", false},
		{"a value equal to the name stays", "x=t", "x=t", false},
		{"an undecodable name of another parameter stays", "%zz=1&t=S", "%zz=1", true},
		{"an undecodable token value is dropped too", "t=S%zz&x=1", "x=1", true},
		{"no query stays empty", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, dropped := dropParam(tc.raw, "t")
			if got != tc.want || dropped != tc.dropped {
				t.Errorf("dropParam(%q) = %q, %v; want %q, %v", tc.raw, got, dropped, tc.want, tc.dropped)
			}
		})
	}
}

func TestWithoutTokenRemovesTheQueryParameterEverywhere(t *testing.T) {
	t.Parallel()
	g := &Gate{tokenFrom: ValueSource{From: "query", Name: "access_token"}}
	r := httptest.NewRequest(http.MethodGet, "/p/a?z=1&access_token=SECRET&y=%2F", nil)
	orig := *r.URL // Caddy's own copy of the URL
	ctx := context.WithValue(r.Context(), caddyhttp.OriginalRequestCtxKey, http.Request{RequestURI: r.RequestURI, URL: &orig})
	r = r.WithContext(ctx)
	r.Form = url.Values{"access_token": {"SECRET"}, "z": {"1"}}

	got := g.withoutToken(r)
	if got.RequestURI != "/p/a?z=1&y=%2F" || got.URL.RawQuery != "z=1&y=%2F" || got.URL.String() != "/p/a?z=1&y=%2F" {
		t.Errorf("request %q, URL %q", got.RequestURI, got.URL)
	}
	if got.Form.Has("access_token") || got.Form.Get("z") != "1" {
		t.Errorf("form %v", got.Form)
	}
	or := got.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request)
	if or.RequestURI != "/p/a?z=1&y=%2F" || or.URL.RawQuery != "z=1&y=%2F" {
		t.Errorf("original request %q, %q", or.RequestURI, or.URL.RawQuery)
	}
	// Caddy restores r's URL from its own copy before handle_errors: that
	// copy is clean too.
	if orig.RawQuery != "z=1&y=%2F" {
		t.Errorf("Caddy's copy of the URL %q", orig.RawQuery)
	}

	plain := httptest.NewRequest(http.MethodGet, "/p?z=1", nil)
	if g.withoutToken(plain) != plain || plain.RequestURI != "/p?z=1" {
		t.Error("a request without the parameter was changed")
	}
}

func TestWithoutTokenHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		src    ValueSource
		header string
		kept   bool
	}{
		{"a custom header is deleted", ValueSource{From: "header", Name: "X-License"}, "X-License", false},
		{"Authorization goes on (Caddy's logs redact it)", ValueSource{From: "header", Name: "Authorization"}, "Authorization", true},
		{"a cookie goes on (Caddy's logs redact it)", ValueSource{From: "cookie", Name: "lic"}, "Cookie", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := &Gate{tokenFrom: tc.src}
			r := httptest.NewRequest(http.MethodGet, "http://gate.test/p", nil)
			r.Header.Add(tc.header, "Bearer A")
			r.Header.Add(tc.header, "Bearer B")
			r.Header.Set("X-Other", "stays")
			got := g.withoutToken(r)
			if _, kept := got.Header[tc.header]; kept != tc.kept || got.Header.Get("X-Other") != "stays" {
				t.Errorf("headers after: %v", got.Header)
			}
		})
	}
}

// FuzzDropParam: whatever the query, what is left names no token (in a
// pair or a ";" part of one, however escaped), Go's own parser finds no
// token in it, and every other pair is kept, in order, as sent.
func FuzzDropParam(f *testing.F) {
	for _, seed := range []string{"", "t=S", "b=2&t=S&a=%20x+y", "%74=S&x", "x=1;t=S&y", "&&t&", "t=%zz&%zz=1", "a=1&t=S&t=T"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, name := range []string{"t", "access_token"} {
			out, dropped := dropParam(raw, name)
			var kept []string
			for _, pair := range strings.Split(raw, "&") {
				if !pairIs(pair, name) {
					kept = append(kept, pair)
				}
			}
			if !dropped {
				if out != raw || len(kept) != len(strings.Split(raw, "&")) {
					t.Fatalf("dropParam(%q, %q) kept a named pair or changed the query: %q", raw, name, out)
				}
				continue
			}
			if out != strings.Join(kept, "&") {
				t.Fatalf("dropParam(%q, %q) = %q; the other pairs are %q", raw, name, out, kept)
			}
			if q, _ := url.ParseQuery(out); q.Has(name) {
				t.Fatalf("dropParam(%q, %q) = %q still parses to %v", raw, name, out, q[name])
			}
			if _, again := dropParam(out, name); again {
				t.Fatalf("dropParam(%q, %q) = %q still holds the parameter", raw, name, out)
			}
		}
	})
}

package module

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestTokenFrom(t *testing.T) {
	t.Parallel()
	auth := ValueSource{From: "header", Name: "Authorization"}
	xlic := ValueSource{From: "header", Name: "X-License"}
	query := ValueSource{From: "query", Name: "access_token"}
	cookie := ValueSource{From: "cookie", Name: "lic"}
	tests := []struct {
		name   string
		src    ValueSource
		header [2]string
		query  string
		cookie string
		want   string
		why    string
	}{
		{"a Bearer token is read", auth, [2]string{"Authorization", "Bearer a.b.c"}, "", "", "a.b.c", ""},
		{"the scheme is case-insensitive (bearer)", auth, [2]string{"Authorization", "bearer a.b.c"}, "", "", "a.b.c", ""},
		{"the scheme is case-insensitive (BEARER)", auth, [2]string{"Authorization", "BEARER a.b.c"}, "", "", "a.b.c", ""},
		{"extra spaces after the scheme are skipped", auth, [2]string{"Authorization", "Bearer   a.b.c"}, "", "", "a.b.c", ""},
		{"another scheme is refused", auth, [2]string{"Authorization", "Basic YTpi"}, "", "", "", "not Bearer"},
		{"a bare token in Authorization is refused", auth, [2]string{"Authorization", "a.b.c"}, "", "", "", "not Bearer"},
		{"Bearer without a token is refused", auth, [2]string{"Authorization", "Bearer "}, "", "", "", "empty token"},
		{"no Authorization header is no token", auth, [2]string{}, "", "", "", "no token in header Authorization"},
		{"a custom header takes a bare token", xlic, [2]string{"X-License", "a.b.c"}, "", "", "a.b.c", ""},
		{"a custom header takes a Bearer token", xlic, [2]string{"X-License", "Bearer a.b.c"}, "", "", "a.b.c", ""},
		{"a query parameter is read", query, [2]string{}, "x=1&access_token=a.b.c", "", "a.b.c", ""},
		{"an escaped query name is read", query, [2]string{}, "%61ccess_token=a%2Eb.c", "", "a.b.c", ""},
		{"a query prefix of the name is not the name", query, [2]string{}, "access_token_x=1", "", "", "no token in query access_token"},
		{"an empty query value is no token", query, [2]string{}, "access_token=", "", "", "no token"},
		{"a cookie is read", cookie, [2]string{}, "", "a.b.c", "a.b.c", ""},
		{"a missing cookie is no token", cookie, [2]string{}, "", "", "", "no token in cookie lic"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "http://gate.test/api?"+tc.query, nil)
			if tc.header[0] != "" {
				r.Header.Set(tc.header[0], tc.header[1])
			}
			if tc.cookie != "" {
				r.AddCookie(&http.Cookie{Name: "lic", Value: tc.cookie})
			}
			src := tc.src
			if err := src.validate(); err != nil {
				t.Fatal(err)
			}
			got, why := tokenFrom(src, r)
			if got != tc.want || !strings.Contains(why, tc.why) || (tc.want != "" && why != "") {
				t.Errorf("got %q, %q; want %q, %q", got, why, tc.want, tc.why)
			}
		})
	}
}

func TestValueSourceValidate(t *testing.T) {
	t.Parallel()
	s := ValueSource{From: "header", Name: "x-client-version"}
	if err := s.validate(); err != nil || s.Name != "X-Client-Version" {
		t.Errorf("header name not canonical: %q %v", s.Name, err)
	}
	for _, bad := range []ValueSource{{From: "body", Name: "x"}, {From: "header"}, {From: "", Name: "x"}} {
		if err := bad.validate(); err == nil {
			t.Errorf("%+v validated", bad)
		}
	}
}

func TestTokenSentTwice(t *testing.T) {
	t.Parallel()
	auth := ValueSource{From: "header", Name: "Authorization"}
	query := ValueSource{From: "query", Name: "t"}
	cookie := ValueSource{From: "cookie", Name: "lic"}
	tests := []struct {
		name    string
		src     ValueSource
		headers []string // name, value pairs, added
		query   string
		want    string
		why     string
	}{
		{"the same Bearer token twice is that token", auth, []string{"Authorization", "Bearer a.b.c", "Authorization", "Bearer a.b.c"}, "", "a.b.c", ""},
		{"two different Authorization headers are refused", auth, []string{"Authorization", "Bearer a.b.c", "Authorization", "Bearer x.y.z"}, "", "", "two different tokens in header Authorization"},
		{"a Bearer and a Basic Authorization are refused", auth, []string{"Authorization", "Bearer a.b.c", "Authorization", "Basic YTpi"}, "", "", "two different tokens"},
		{"the same query token twice is that token", query, nil, "t=a.b.c&x=1&%74=a%2Eb.c", "a.b.c", ""},
		{"two different query tokens are refused", query, nil, "t=a.b.c&t=x.y.z", "", "two different tokens in query t"},
		{"a query token that is not URL encoding is refused", query, nil, "t=a.b.c%zz", "", "not valid URL encoding"},
		{"two different cookies are refused", cookie, []string{"Cookie", "lic=a.b.c", "Cookie", "lic=x.y.z"}, "", "", "two different tokens in cookie lic"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "http://gate.test/api?"+tc.query, nil)
			for i := 0; i+1 < len(tc.headers); i += 2 {
				r.Header.Add(tc.headers[i], tc.headers[i+1])
			}
			got, why := tokenFrom(tc.src, r)
			if got != tc.want || !strings.Contains(why, tc.why) || (tc.want != "" && why != "") {
				t.Errorf("got %q, %q; want %q, %q", got, why, tc.want, tc.why)
			}
		})
	}
}

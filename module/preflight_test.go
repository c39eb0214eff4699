package module

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestIsPreflight(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		method   string
		headers  []string
		body     string
		length   int64 // set when not -2
		chunked  bool
		expected bool
	}{
		{"OPTIONS with Origin and the request method, no body, is a preflight", "OPTIONS", []string{"Origin", "https://a", "Access-Control-Request-Method", "POST"}, "", -2, false, true},
		{"an explicit Content-Length 0 is no body", "OPTIONS", []string{"Origin", "https://a", "Access-Control-Request-Method", "POST"}, "", 0, false, true},
		{"a body with a length is not a preflight", "OPTIONS", []string{"Origin", "https://a", "Access-Control-Request-Method", "POST"}, "hello", -2, false, false},
		{"a chunked body is not a preflight", "OPTIONS", []string{"Origin", "https://a", "Access-Control-Request-Method", "POST"}, "hello", -1, true, false},
		{"a body of unknown length is not a preflight", "OPTIONS", []string{"Origin", "https://a", "Access-Control-Request-Method", "POST"}, "", -1, false, false},
		{"without Origin it is not a preflight", "OPTIONS", []string{"Access-Control-Request-Method", "POST"}, "", -2, false, false},
		{"without the request method it is not a preflight", "OPTIONS", []string{"Origin", "https://a"}, "", -2, false, false},
		{"a GET is not a preflight", "GET", []string{"Origin", "https://a", "Access-Control-Request-Method", "POST"}, "", -2, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "http://gate.test/p", strings.NewReader(tc.body))
			if tc.length != -2 {
				r.ContentLength = tc.length
			}
			if tc.chunked {
				r.TransferEncoding = []string{"chunked"}
			}
			for i := 0; i+1 < len(tc.headers); i += 2 {
				r.Header.Set(tc.headers[i], tc.headers[i+1])
			}
			if got := isPreflight(r); got != tc.expected {
				t.Errorf("isPreflight = %v", got)
			}
		})
	}
}

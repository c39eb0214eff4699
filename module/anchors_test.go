package module

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/licensegate/licensegate/policy"
)

func TestReadAnchor(t *testing.T) {
	t.Parallel()
	sources := []ValueSource{{From: "header", Name: "X-Hardware-Id"}, {From: "query", Name: "hw"}}
	long := strings.Repeat("h", policy.MaxAnchorSize)
	tests := []struct {
		name    string
		headers []string // X-Hardware-Id values, one line each
		query   string
		want    string
		sent    bool
		detail  string // BadArgument detail, when rejected
	}{
		{"nothing sent is not sent", nil, "", "", false, ""},
		{"a header is read", []string{"HW-1"}, "", "HW-1", true, ""},
		{"a query parameter is read", nil, "hw=HW-1", "HW-1", true, ""},
		{"the 10Duke name suffix is no part of the id", nil, "hw=HW-1;name=laptop", "HW-1", true, ""},
		{"the same id in a header and the query agrees", []string{"HW-1"}, "hw=HW-1", "HW-1", true, ""},
		{"the same id twice in one header agrees", []string{"HW-1", "HW-1"}, "", "HW-1", true, ""},
		{"ids differing only in the device name agree", []string{"HW-1;name=a"}, "hw=HW-1;name=b", "HW-1", true, ""},
		{"an empty value is not sent", []string{""}, "hw=HW-1", "HW-1", true, ""},
		{"256 bytes are accepted", []string{long}, "", long, true, ""},
		{"257 bytes are a BadArgument", []string{long + "h"}, "", "", false, "has 257 bytes, more than 256"},
		{"257 bytes in the query are a BadArgument", nil, "hw=" + long + "h", "", false, "in query hw has 257 bytes"},
		{"a long device name counts", nil, "hw=HW-1;name=" + long, "", false, "more than 256"},
		{"two header lines that differ are a BadArgument", []string{"HW-1", "HW-2"}, "", "", false, "two different hardware ids sent (header X-Hardware-Id, twice)"},
		{"two query parameters that differ are a BadArgument", nil, "hw=HW-1&hw=HW-2", "", false, "(query hw, twice)"},
		{"a header and a query that differ are a BadArgument", []string{"HW-1"}, "hw=HW-2", "", false, "(header X-Hardware-Id and query hw)"},
		{"a query value that is not URL encoding is a BadArgument", nil, "hw=%zz", "", false, "not valid URL encoding"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/p?"+tc.query, nil)
			for _, v := range tc.headers {
				r.Header.Add("X-Hardware-Id", v)
			}
			got, sent, rej := readAnchor("hardware id", sources, r, true)
			if tc.detail != "" {
				if rej == nil || rej.Code != policy.CodeBadArgument || rej.Status != http.StatusBadRequest || !strings.Contains(rej.Detail, tc.detail) {
					t.Fatalf("reject %+v, want BadArgument 400 with %q", rej, tc.detail)
				}
				return
			}
			if rej != nil || got != tc.want || sent != tc.sent {
				t.Errorf("got %q, %v, %v; want %q, %v", got, sent, rej, tc.want, tc.sent)
			}
		})
	}
	// A version is compared whole: ";name=" means nothing there.
	r := httptest.NewRequest(http.MethodGet, "/p?version=1.2.3;name=a", nil)
	r.Header.Set("X-Client-Version", "1.2.3;name=b")
	versions := []ValueSource{{From: "header", Name: "X-Client-Version"}, {From: "query", Name: "version"}}
	if _, _, rej := readAnchor("client version", versions, r, false); rej == nil || rej.Code != policy.CodeBadArgument {
		t.Errorf("two versions differing after ;name= agreed: %v", rej)
	}
}

func TestBadAnchorsChargeNothingAndTakeNoSeat(t *testing.T) {
	t.Parallel()
	clk := newClock()
	k := newKey(t, "k", "ES256")
	g, _ := provisioned(t, fileGate(t, k), clk)
	tok := k.sign(t, claimsAt(clk, "jti", "j-anchor", "credits", 1, "seats", 1, "ver", "1.*.*"), nil)
	long := strings.Repeat("h", policy.MaxAnchorSize+1)
	for _, tc := range []struct {
		name  string
		query string
		hdrs  []string
	}{
		{"a long hardware id", "version=1.0.0", []string{"X-Hardware-Id", long}},
		{"two hardware ids", "version=1.0.0&hw=HW-A", []string{"X-Hardware-Id", "HW-B"}},
		{"a long version", "hw=HW-A", []string{"X-Client-Version", "1." + long}},
		{"two versions", "hw=HW-A&version=1.0.0", []string{"X-Client-Version", "1.0.1"}},
	} {
		r := bearer(tok)
		r.URL.RawQuery = tc.query
		for i := 0; i+1 < len(tc.hdrs); i += 2 {
			r.Header.Add(tc.hdrs[i], tc.hdrs[i+1])
		}
		out := serve(t, g, r)
		if out.passed || out.rec.Code != http.StatusBadRequest || code(t, out.rec, "license") != "BadArgument" {
			t.Fatalf("%s: %d %s, want 400 BadArgument", tc.name, out.rec.Code, out.rec.Body.Bytes())
		}
	}
	// The one credit and the one seat are still there for another device.
	r := bearer(tok)
	r.URL.RawQuery = "hw=HW-C&version=1.0.0"
	out := serve(t, g, r)
	if !out.passed || out.rec.Header().Get(HeaderCreditsRemaining) != "0" {
		t.Fatalf("the good request: %d %s %v", out.rec.Code, out.rec.Body.Bytes(), out.rec.Header())
	}
}

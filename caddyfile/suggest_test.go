package caddyfile

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestMisspelledOptionsGetASuggestion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want string
	}{
		{"jwks_uri suggests jwks_url", "jwks_uri https://a", `unknown license_gate option "jwks_uri" (did you mean "jwks_url"?)`},
		{"leway suggests leeway", "leway 30s", `(did you mean "leeway"?)`},
		{"requre_item suggests require_item", "requre_item x", `(did you mean "require_item"?)`},
		{"audiences suggests audience", "audiences a", `(did you mean "audience"?)`},
		{"refundon suggests refund_on", "refundon 5xx", `(did you mean "refund_on"?)`},
		{"a store option adresses suggests addresses", "store redis {\n adresses 127.0.0.1:6379\n}", `unknown store option "adresses" (did you mean "addresses"?)`},
		{"an issuer block option jwks_fle suggests jwks_file", "issuer https://a {\n jwks_fle k.json\n}", `(did you mean "jwks_file"?)`},
		{"a store option pasword suggests password", "store redis {\n pasword x\n}", `(did you mean "password"?)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	for _, far := range []string{"colour red", "x 1", "frobnicate 1"} {
		if _, err := parse(far); err == nil || strings.Contains(err.Error(), "did you mean") {
			t.Errorf("%q: error %v suggests a name that is not close", far, err)
		}
	}
}

func TestLevenshtein(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "", 3}, {"", "ab", 2}, {"leeway", "leway", 1}, {"kitten", "sitting", 3}, {"jwks_uri", "jwks_url", 1}} {
		if got := levenshtein(tc.a, tc.b); got != tc.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// parserCases lists the option names of the `case "a", "b":` lines in
// file between the first occurrences of from and to.
func parserCases(t *testing.T, file, from, to string) []string {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)
	i, j := strings.Index(text, from), strings.Index(text, to)
	if i < 0 || j < i {
		t.Fatalf("cannot find %q..%q in %s", from, to, file)
	}
	var out []string
	for _, m := range regexp.MustCompile(`case ((?:"[a-z_]+",? ?)+):`).FindAllStringSubmatch(text[i:j], -1) {
		for _, name := range regexp.MustCompile(`"([a-z_]+)"`).FindAllStringSubmatch(m[1], -1) {
			out = append(out, name[1])
		}
	}
	return out
}

// TestOptionListsMatchTheParser keeps Options and StoreOptions in step
// with the cases of the parser's switches, both ways.
func TestOptionListsMatchTheParser(t *testing.T) {
	t.Parallel()
	cases := func(from, to string) []string { return parserCases(t, "caddyfile.go", from, to) }
	check := func(list, parsed []string, what string, ignore ...string) {
		for _, p := range parsed {
			if !slices.Contains(list, p) && !slices.Contains(ignore, p) {
				t.Errorf("%s: the parser knows %q but the list of options does not", what, p)
			}
		}
		for _, o := range list {
			if !slices.Contains(parsed, o) {
				t.Errorf("%s: the list names %q but the parser has no case for it", what, o)
			}
		}
	}
	check(Options, cases("func parseOption(", "func parseClaims("), "license_gate",
		// values of pass_preflight and errors, not options
		"on", "true", "off", "false", "header", "query", "cookie")
	check(StoreOptions, cases("switch opt := d.Val(); opt {", "func appendArgs("), "store", "address")
}

func TestDurationErrorsShowAUnit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ body, want string }{
		{"leeway 30", `leeway: bad duration "30": a number with a unit, e.g. 30s`},
		{"refresh soon", `refresh: bad duration "soon"`},
		{"store redis {\n timeout 100\n}", `timeout: bad duration "100": a number with a unit, e.g. 30s`},
	} {
		if _, err := parse(tc.body); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.body, err, tc.want)
		}
	}
}

func TestErrorsOption(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ body, want string }{
		{"errors handle", `{"errors":"handle"}`},
		{"errors respond", `{"errors":"respond"}`},
	} {
		g, err := parse(tc.body)
		if err != nil || asJSON(t, g) != tc.want {
			t.Errorf("%q: %v %s", tc.body, err, asJSON(t, g))
		}
	}
	for _, bad := range []string{"errors", "errors render", "errors handle respond"} {
		if _, err := parse(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}

package caddyfile

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestIssuerLeaseOptions(t *testing.T) {
	const head = "license_issuer {\n issuer https://license.test\n signing_key k.jwk.json\n"
	h, err := ParseIssuer(caddyfile.NewTestDispenser(head +
		" lease_ttl 10m\n trust_oidc_issuer https://sso.test/realms/a https://sso.test/realms/b\n trust_oidc_issuer https://idp.test\n}"))
	if err != nil {
		t.Fatal(err)
	}
	if h.LeaseTTL != caddy.Duration(10*time.Minute) {
		t.Errorf("LeaseTTL = %v", time.Duration(h.LeaseTTL))
	}
	want := []string{"https://sso.test/realms/a", "https://sso.test/realms/b", "https://idp.test"}
	if !reflect.DeepEqual(h.TrustedOIDCIssuers, want) {
		t.Errorf("TrustedOIDCIssuers = %q", h.TrustedOIDCIssuers)
	}

	bad := []struct{ name, opt, err string }{
		{"a lease_ttl of zero is refused", "lease_ttl 0s", "longer than zero"},
		{"a lease_ttl that is no duration is refused", "lease_ttl soon", "bad duration"},
		{"lease_ttl without a value is refused", "lease_ttl", "argument"},
		{"trust_oidc_issuer without a URL is refused", "trust_oidc_issuer", "argument"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseIssuer(caddyfile.NewTestDispenser(head + " " + tt.opt + "\n}"))
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), tt.err) {
				t.Fatalf("err = %v; want one saying %q", err, tt.err)
			}
		})
	}
}

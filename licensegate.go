// Package licensegate registers the license_gate and license_issuer Caddy
// modules (http.handlers.license_gate, http.handlers.license_issuer) and
// their Caddyfile directives. Import it for its side effects only:
//
//	xcaddy build --with github.com/licensegate/licensegate
package licensegate

import (
	// The license_gate and license_issuer Caddyfile directives.
	_ "github.com/licensegate/licensegate/caddyfile"
	// The http.handlers.license_gate module.
	_ "github.com/licensegate/licensegate/module"
	// The http.handlers.license_issuer module.
	_ "github.com/licensegate/licensegate/module/issuer"
)

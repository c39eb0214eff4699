// Package licensegate registers the license_gate Caddy module
// (http.handlers.license_gate) and its Caddyfile directive. Import it for
// its side effects only:
//
//	xcaddy build --with github.com/licensegate/licensegate
package licensegate

import (
	// The license_gate Caddyfile directive.
	_ "github.com/licensegate/licensegate/caddyfile"
	// The http.handlers.license_gate module.
	_ "github.com/licensegate/licensegate/module"
)

// Command licensegate is Caddy with its standard modules plus the licensegate
// modules, the license_gate and license_issuer directives and the license-*
// subcommands.
package main

import (
	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/licensegate/licensegate"
)

func main() {
	caddy.CustomBinaryName = "licensegate"
	caddycmd.Main()
}

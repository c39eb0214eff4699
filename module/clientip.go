package module

import (
	"net/http"
	"net/netip"
)

// ClientIP is the client address as Caddy determined it (honouring
// trusted_proxies), for handlers beside the gate that apply its ip rule;
// the zero Addr when Caddy recorded none.
func ClientIP(r *http.Request) netip.Addr { return clientIP(r) }

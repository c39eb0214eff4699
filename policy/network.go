package policy

import "net/netip"

// AllowedFrom reports whether addr lies in one of the networks. An invalid
// addr (the client address could not be read) is never allowed.
func AllowedFrom(nets []netip.Prefix, addr netip.Addr) bool {
	if !addr.IsValid() {
		return false
	}
	addr = addr.Unmap().WithZone("")
	for _, p := range nets {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

package policy

import "fmt"

// ClaimNames maps each claim role (README's Claims table) to the claim name a token
// uses for it, so that tokens of other issuers (Data8's "mc", axes4's
// "LockingData") can be read without rewriting them.
type ClaimNames struct {
	Credits    string // credits granted to the token
	CreditsKey string // the claim whose value keys the counters (default jti)
	Items      string // array of licensed items
	Product    string // axes4-style product (string or array)
	Version    string // allowed client version pattern(s)
	Hardware   string // hardware lock
	IP         string // allowed client addresses / CIDRs
	Seats      string // concurrent hardware ids
	ValidFrom  string // ibb
	ValidUntil string // ibe
	LicenseID  string // lic
}

// DefaultClaimNames returns the default names (README's Claims table).
func DefaultClaimNames() ClaimNames {
	return ClaimNames{
		Credits: "credits", CreditsKey: "jti", Items: "items", Product: "product",
		Version: "ver", Hardware: "hw", IP: "ip", Seats: "seats",
		ValidFrom: "ibb", ValidUntil: "ibe", LicenseID: "lic",
	}
}

// Roles lists the role names accepted by Set, as written in a Caddyfile
// "claims" block.
var Roles = []string{"credits", "credits_key", "items", "product", "ver", "hw", "ip", "seats", "ibb", "ibe", "lic"}

// Set renames the claim of a role. Unknown roles are an error.
func (n *ClaimNames) Set(role, claim string) error {
	if claim == "" {
		return fmt.Errorf("claim name for role %q is empty", role)
	}
	switch role {
	case "credits":
		n.Credits = claim
	case "credits_key":
		n.CreditsKey = claim
	case "items":
		n.Items = claim
	case "product":
		n.Product = claim
	case "ver", "version":
		n.Version = claim
	case "hw", "hardware":
		n.Hardware = claim
	case "ip":
		n.IP = claim
	case "seats":
		n.Seats = claim
	case "ibb":
		n.ValidFrom = claim
	case "ibe":
		n.ValidUntil = claim
	case "lic":
		n.LicenseID = claim
	default:
		return fmt.Errorf("unknown claim role %q (known: %v)", role, Roles)
	}
	return nil
}

// Fill sets every empty name to its default.
func (n *ClaimNames) Fill() {
	d := DefaultClaimNames()
	for _, p := range []struct {
		dst *string
		def string
	}{
		{&n.Credits, d.Credits}, {&n.CreditsKey, d.CreditsKey}, {&n.Items, d.Items},
		{&n.Product, d.Product}, {&n.Version, d.Version}, {&n.Hardware, d.Hardware},
		{&n.IP, d.IP}, {&n.Seats, d.Seats}, {&n.ValidFrom, d.ValidFrom},
		{&n.ValidUntil, d.ValidUntil}, {&n.LicenseID, d.LicenseID},
	} {
		if *p.dst == "" {
			*p.dst = p.def
		}
	}
}

package module

import (
	"slices"

	"github.com/licensegate/licensegate/policy"
)

// ValidCode reports whether code is one of the reject codes (policy.Codes),
// for the status option.
func ValidCode(code string) bool { return policy.Code(code).Valid() }

// ValidClaimRole reports whether role may be renamed in a claims block.
func ValidClaimRole(role string) bool {
	return slices.Contains(policy.Roles, role) || role == "version" || role == "hardware"
}

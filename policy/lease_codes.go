package policy

// The codes only license consumption (/authz/ leases) answers with,
// named as 10Duke's error codes. They are not in Codes: the gate never
// rejects with them. (A malformed /authz/ parameter is CodeBadArgument,
// which the gate shares.)
const (
	// CodeLicenseQuotaExceeded: every seat of the license is held by
	// another device's lease.
	CodeLicenseQuotaExceeded Code = "licenseQuotaExceeded"
	// CodeMissingArguments: a required parameter is absent (no item).
	CodeMissingArguments Code = "MissingArguments"
	// CodeLeaseIDNotMatching: a renewal's leaseId is not a live lease of
	// this device for this item.
	CodeLeaseIDNotMatching Code = "leaseIdNotMatching"
	// CodeNoConsumptionFoundByID: a release names no live lease.
	CodeNoConsumptionFoundByID Code = "noConsumptionFoundById"
)

// LeaseCodes lists the codes of LeaseOutcome and request errors that only
// license consumption answers with.
var LeaseCodes = []Code{
	CodeLicenseQuotaExceeded, CodeMissingArguments,
	CodeLeaseIDNotMatching, CodeNoConsumptionFoundByID,
}

// leaseMessage is Message for the lease codes.
func leaseMessage(c Code) (string, bool) {
	switch c {
	case CodeLicenseQuotaExceeded:
		return "All seats of the license are in use", true
	case CodeMissingArguments:
		return "A required request parameter is missing", true
	case CodeLeaseIDNotMatching:
		return "The lease id does not match a lease of this device", true
	case CodeNoConsumptionFoundByID:
		return "No consumption was found by that lease id", true
	}
	return "", false
}

package policy

import (
	"errors"
	"fmt"
	"time"
)

// Reject is the error every failed check returns: the code, the HTTP status
// that applies, and a technical detail for the body and the log. It never
// holds the token itself.
type Reject struct {
	// Code is the 10Duke-style error code.
	Code Code
	// Status is the HTTP status to answer with.
	Status int
	// Detail is the errorTechnical text: what failed, in terms an operator
	// can act on.
	Detail string
	// RetryAfter, when positive, is sent as the Retry-After header.
	RetryAfter time.Duration
}

// Error implements error.
func (r *Reject) Error() string {
	return string(r.Code) + ": " + r.Detail
}

// Is reports whether target is a Reject with the same code, so that
// errors.Is(err, policy.ErrExpired) works for every reject of that code.
func (r *Reject) Is(target error) bool {
	var t *Reject
	if errors.As(target, &t) {
		return t.Code == r.Code
	}
	return false
}

// Sentinels, one per code, for errors.Is.
var (
	ErrNotAuthorized          = &Reject{Code: CodeNotAuthorized}
	ErrLicenseExpired         = &Reject{Code: CodeLicenseExpired}
	ErrValidityNotStarted     = &Reject{Code: CodeValidityNotStarted}
	ErrNoLicenseFound         = &Reject{Code: CodeNoLicenseFound}
	ErrUnallowedClientVersion = &Reject{Code: CodeUnallowedClientVersion}
	ErrAnchorMissing          = &Reject{Code: CodeAnchorMissing}
	ErrBadArgument            = &Reject{Code: CodeBadArgument}
	ErrAnchorLocked           = &Reject{Code: CodeAnchorLocked}
	ErrClientIPBlocked        = &Reject{Code: CodeClientIPBlocked}
	ErrMaxUseCountExceed      = &Reject{Code: CodeMaxUseCountExceed}
	ErrMaxConcurrentSessions  = &Reject{Code: CodeMaxConcurrentSessions}
	ErrServiceUnavailable     = &Reject{Code: CodeServiceUnavailable}
)

// Rejectf builds a Reject with the code's usual status.
func Rejectf(code Code, format string, args ...any) *Reject {
	return &Reject{Code: code, Status: code.Status(), Detail: fmt.Sprintf(format, args...)}
}

// ClaimError is the reject for a claim of the wrong type or shape: 401
// notAuthorized, naming the claim.
func ClaimError(claim, format string, args ...any) *Reject {
	return &Reject{Code: CodeNotAuthorized, Status: CodeNotAuthorized.Status(),
		Detail: "claim " + claim + ": " + fmt.Sprintf(format, args...)}
}

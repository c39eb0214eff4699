// Package policy is licensegate's decision engine: the license claims model,
// the facts of a request, the constraint checks, version patterns, the
// 10Duke-style reject codes with their HTTP statuses, and the Counters
// interface with its in-memory implementation.
//
// It imports the standard library only and must never import Caddy, Redis,
// a logger or the other licensegate packages: the module package wires it,
// and anything else (an issuer, a CLI) can use it on its own. See the
// package examples for checking a license.
package policy

import "net/http"

// Code is a 10Duke-style license error code, as sent in the
// "<item>_errorCode" field of a reject body.
type Code string

// The reject codes, named as 10Duke's error codes.
const (
	// CodeNotAuthorized: no usable token, a bad signature, wrong issuer or
	// audience, a revoked license, a malformed claim or a failed claim rule.
	CodeNotAuthorized Code = "notAuthorized"
	// CodeLicenseExpired: exp or ibe has passed.
	CodeLicenseExpired Code = "licenseExpired"
	// CodeValidityNotStarted: nbf or ibb lies in the future.
	CodeValidityNotStarted Code = "licenseValidityNotStarted"
	// CodeNoLicenseFound: the route's required item is not licensed.
	CodeNoLicenseFound Code = "noLicenseFound"
	// CodeUnallowedClientVersion: the client's version is outside ver.
	CodeUnallowedClientVersion Code = "unallowedClientVersion"
	// CodeAnchorMissing: the token needs a version or hardware id that the
	// client did not send.
	CodeAnchorMissing Code = "licenseAnchorMissing"
	// CodeBadArgument: the client sent a version or hardware id that cannot
	// be used: longer than MaxAnchorSize, or sent twice with different
	// values (10Duke: "an unexpected value for a parameter").
	CodeBadArgument Code = "BadArgument"
	// CodeAnchorLocked: the hardware id differs from the token's hw.
	CodeAnchorLocked Code = "anchorLockedToAnotherLicense"
	// CodeClientIPBlocked: the client address is outside the token's ip.
	CodeClientIPBlocked Code = "clientIpAddressBlocked"
	// CodeMaxUseCountExceed: the token's credits are used up.
	CodeMaxUseCountExceed Code = "maxUseCountExceed"
	// CodeMaxConcurrentSessions: too many hardware ids hold a seat.
	CodeMaxConcurrentSessions Code = "maxConcurrentSessionsExceed"
	// CodeServiceUnavailable: the counter store or the key server cannot
	// be used, so no decision can be made.
	CodeServiceUnavailable Code = "serviceUnavailable"
)

// Codes lists every code, in the order of README's reject table.
var Codes = []Code{
	CodeNotAuthorized, CodeLicenseExpired, CodeValidityNotStarted,
	CodeNoLicenseFound, CodeUnallowedClientVersion, CodeAnchorMissing,
	CodeBadArgument, CodeAnchorLocked, CodeClientIPBlocked, CodeMaxUseCountExceed,
	CodeMaxConcurrentSessions, CodeServiceUnavailable,
}

// Valid reports whether c is one of Codes.
func (c Code) Valid() bool {
	for _, k := range Codes {
		if k == c {
			return true
		}
	}
	return false
}

// Message is the human-readable errorMessage for the code.
func (c Code) Message() string {
	switch c {
	case CodeNotAuthorized:
		return "The license token is missing or not valid"
	case CodeLicenseExpired:
		return "The license has expired"
	case CodeValidityNotStarted:
		return "The license is not valid yet"
	case CodeNoLicenseFound:
		return "No license found for the requested item"
	case CodeUnallowedClientVersion:
		return "The client version is not allowed by the license"
	case CodeAnchorMissing:
		return "The client did not send the version or hardware id the license requires"
	case CodeBadArgument:
		return "The client sent a version or hardware id that cannot be used"
	case CodeAnchorLocked:
		return "The license is locked to another device"
	case CodeClientIPBlocked:
		return "The license may not be used from this address"
	case CodeMaxUseCountExceed:
		return "The credits of this license are used up"
	case CodeMaxConcurrentSessions:
		return "Too many devices are using this license at once"
	case CodeServiceUnavailable:
		return "License checks are temporarily unavailable"
	}
	if m, ok := leaseMessage(c); ok {
		return m
	}
	return "The request was rejected"
}

// Status is the code's usual HTTP status. Some situations use another one
// (an expired ibe is 403, a failed claim rule is 403 notAuthorized); the
// Reject carries the status that applies.
func (c Code) Status() int {
	switch c {
	case CodeNotAuthorized, CodeLicenseExpired:
		return http.StatusUnauthorized
	case CodeAnchorMissing, CodeBadArgument:
		return http.StatusBadRequest
	case CodeMaxConcurrentSessions:
		return http.StatusTooManyRequests
	case CodeServiceUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusForbidden
}

// MaxAnchorSize is the most bytes a client-sent version or hardware id may
// have (as sent, a 10Duke ";name=" suffix included). Hardware ids are
// stored per seat, so the bound also bounds the store.
const MaxAnchorSize = 256

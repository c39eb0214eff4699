package issuer

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/licensegate/licensegate/policy"
)

// AuthzFormat is the response format an /authz/ request asks for with its
// path suffix.
type AuthzFormat int

// The /authz/ response formats.
const (
	// FormatText: no suffix or ".txt": "true" or "false" per item.
	FormatText AuthzFormat = iota
	// FormatJSON: ".json": the lease's claims unsigned, one object per item.
	FormatJSON
	// FormatJWT: ".jwt": one signed lease token per item.
	FormatJWT
)

// Limits on an /authz/ request; beyond them the request is a BadArgument.
const (
	// MaxAuthzQuery is the most bytes of a query string.
	MaxAuthzQuery = 8 << 10
	// MaxAuthzItems is the most items one request may name.
	MaxAuthzItems = 32
	// MaxAuthzValue is the most bytes of an item name, a hardware id, a
	// version or a lease id, as for the gate's anchors.
	MaxAuthzValue = 256
)

// ParseAuthzFormat reads the part of the path after "/authz/": empty,
// ".txt", ".json" or ".jwt". Anything else is no /authz/ request.
func ParseAuthzFormat(suffix string) (AuthzFormat, bool) {
	switch suffix {
	case "", ".txt":
		return FormatText, true
	case ".json":
		return FormatJSON, true
	case ".jwt":
		return FormatJWT, true
	}
	return 0, false
}

// AuthzItem is one licensed item a request asks a lease for.
type AuthzItem struct {
	// Name is the licensed item.
	Name string
	// LeaseID renews that lease (the item's own ";leaseId=" or, for a
	// request of one item, the request's leaseId).
	LeaseID string
}

// AuthzRequest is a parsed /authz/ query (10Duke's license consumption).
type AuthzRequest struct {
	// Items are the licensed items, in request order, without duplicates.
	Items []AuthzItem
	// Release, when set, is the lease id of "?release&<leaseId>"; the
	// request then names no items.
	Release string
	// Hardware is hw without its ";name=" part; HardwareName that name.
	Hardware, HardwareName string
	// HardwareSent tells whether hw was given.
	HardwareSent bool
	// Version is the client's version; VersionSent whether it was given.
	Version     string
	VersionSent bool
	// ConsumeCount is the credits asked for per item; 0 when not given.
	ConsumeCount int64
	// ConsumeDuration is the lease duration asked for; 0 when not given.
	ConsumeDuration time.Duration
	// CheckOnly is doConsume=false.
	CheckOnly bool
	// LicenseID is the licenseId asked for, if any: the license token must
	// be that license.
	LicenseID string
}

// Parameter names of an /authz/ query. Every other name is an item.
const (
	paramDoConsume       = "doConsume"
	paramConsumptionMode = "consumptionMode"
	paramConsumeDuration = "consumeDuration"
	paramConsumeCount    = "consumeCount"
	paramHardware        = "hw"
	paramProcess         = "process"
	paramVersion         = "version"
	paramLeaseID         = "leaseId"
	paramOwnerOrg        = "ownerOrganizationId"
	paramOwnerUser       = "ownerUserId"
	paramEntitlement     = "entitlementId"
	paramLicenseID       = "licenseId"
	paramRelease         = "release"
)

// leaseClaimNames are the claims of a lease token; an item may not be
// named like one, as "<item>: true" would overwrite it.
var leaseClaimNames = map[string]bool{
	"exp": true, "nbf": true, "iat": true, "iss": true, "aud": true, "sub": true, "jti": true,
	"ver": true, "lic": true, "ibb": true, "ibe": true, "rfr": true, "hw": true,
}

// badArg is the BadArgument reject naming what is wrong.
func badArg(format string, args ...any) *policy.Reject {
	return &policy.Reject{Code: policy.CodeBadArgument, Detail: fmt.Sprintf(format, args...)}
}

// ParseAuthz reads an /authz/ query string:
//
//	<item>[=;leaseId=<id>][&<item>…][&hw=<id>[;name=<device>]][&version=<v>]
//	[&consumeCount=<n>][&consumeDuration=<ms>][&leaseId=<id>][&doConsume=false]
//	[&consumptionMode=cache|checkout][&process=…][&licenseId=…]
//	release&<leaseId>
//
// Names and values are percent-decoded. On a reject (BadArgument or
// MissingArguments), the returned request still holds the items read so
// far, so that the answer can name them.
func ParseAuthz(rawQuery string) (*AuthzRequest, *policy.Reject) {
	req := &AuthzRequest{}
	if len(rawQuery) > MaxAuthzQuery {
		return req, badArg("the query has %d bytes, more than %d", len(rawQuery), MaxAuthzQuery)
	}
	var parts []string
	for p := range strings.SplitSeq(rawQuery, "&") {
		if p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) > 0 && parts[0] == paramRelease {
		return parseRelease(req, parts[1:])
	}
	seen := map[string]string{}
	var leaseID string
	for _, p := range parts {
		rawName, rawValue, hasValue := strings.Cut(p, "=")
		name, err1 := url.QueryUnescape(rawName)
		value, err2 := url.QueryUnescape(rawValue)
		if err1 != nil || err2 != nil {
			return req, badArg("parameter %q is not percent-encoded correctly", truncate(rawName))
		}
		if !isParam(name) {
			if rej := req.addItem(name, value, hasValue); rej != nil {
				return req, rej
			}
			continue
		}
		if prev, dup := seen[name]; dup {
			if prev != value {
				return req, badArg("%s is given twice with different values", name)
			}
			continue
		}
		seen[name] = value
		if len(value) > MaxAuthzValue {
			return req, badArg("%s has %d bytes, more than %d", name, len(value), MaxAuthzValue)
		}
		switch name {
		case paramDoConsume:
			switch value {
			case "true":
			case "false":
				req.CheckOnly = true
			default:
				return req, badArg("doConsume must be true or false")
			}
		case paramConsumptionMode:
			if value != "cache" && value != "checkout" {
				return req, badArg("consumptionMode must be cache or checkout")
			}
		case paramConsumeCount:
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 1 || n > policy.MaxCredits {
				return req, badArg("consumeCount must be a positive integer up to %d", policy.MaxCredits)
			}
			req.ConsumeCount = n
		case paramConsumeDuration:
			ms, err := strconv.ParseInt(value, 10, 64)
			if err != nil || ms < 1 || ms > int64(100*365*24*time.Hour/time.Millisecond) {
				return req, badArg("consumeDuration must be a positive number of milliseconds")
			}
			req.ConsumeDuration = time.Duration(ms) * time.Millisecond
		case paramHardware:
			id, devName, _ := strings.Cut(value, ";name=")
			if id == "" {
				return req, badArg("hw is empty")
			}
			req.Hardware, req.HardwareName, req.HardwareSent = id, devName, true
		case paramVersion:
			if value == "" {
				return req, badArg("version is empty")
			}
			req.Version, req.VersionSent = value, true
		case paramLeaseID:
			if value == "" {
				return req, badArg("leaseId is empty")
			}
			leaseID = value
		case paramLicenseID:
			req.LicenseID = value
		case paramRelease:
			return req, badArg("release must come first: ?release&<leaseId>")
		}
		// process, ownerOrganizationId, ownerUserId and entitlementId
		// choose among a user's licenses; the bearer token is the one
		// license here, so they change nothing.
	}
	if len(req.Items) == 0 {
		return req, &policy.Reject{Code: policy.CodeMissingArguments, Detail: "the request names no licensed item"}
	}
	if leaseID != "" {
		if len(req.Items) > 1 {
			return req, badArg("leaseId names one lease but the request names %d items; give each item its own =;leaseId=", len(req.Items))
		}
		if req.Items[0].LeaseID != "" && req.Items[0].LeaseID != leaseID {
			return req, badArg("leaseId differs from the item's own leaseId")
		}
		req.Items[0].LeaseID = leaseID
	}
	return req, nil
}

// parseRelease reads what follows "release": exactly one lease id.
func parseRelease(req *AuthzRequest, rest []string) (*AuthzRequest, *policy.Reject) {
	if len(rest) == 0 {
		return req, &policy.Reject{Code: policy.CodeMissingArguments, Detail: "release names no lease id: ?release&<leaseId>"}
	}
	if len(rest) > 1 {
		return req, badArg("release takes one lease id, not %d parameters", len(rest))
	}
	id, err := url.QueryUnescape(rest[0])
	if err != nil || id == "" || strings.Contains(rest[0], "=") {
		return req, badArg("release takes a lease id: ?release&<leaseId>")
	}
	if len(id) > MaxAuthzValue {
		return req, badArg("the lease id has %d bytes, more than %d", len(id), MaxAuthzValue)
	}
	req.Release = id
	return req, nil
}

// addItem adds the item name with its value ("", or ";leaseId=<id>" and
// license selectors).
func (req *AuthzRequest) addItem(name, value string, hasValue bool) *policy.Reject {
	if name == "" {
		return badArg("an item has an empty name")
	}
	if len(name) > MaxAuthzValue {
		return badArg("an item name has %d bytes, more than %d", len(name), MaxAuthzValue)
	}
	if leaseClaimNames[name] {
		return badArg("%q is a claim of the lease token, not an item", name)
	}
	if strings.HasSuffix(name, "_errorCode") || strings.HasSuffix(name, "_errorKey") ||
		strings.HasSuffix(name, "_errorMessage") || strings.HasSuffix(name, "_errorTechnical") {
		return badArg("%q ends like an error field", truncate(name))
	}
	for _, it := range req.Items {
		if it.Name == name {
			return badArg("item %q is named twice", truncate(name))
		}
	}
	if len(req.Items) == MaxAuthzItems {
		return badArg("more than %d items", MaxAuthzItems)
	}
	it := AuthzItem{Name: name}
	if hasValue && value != "" {
		if !strings.HasPrefix(value, ";") {
			return badArg("item %q has a value; write <item>=;leaseId=<id>", truncate(name))
		}
		for attr := range strings.SplitSeq(value[1:], ";") {
			k, v, _ := strings.Cut(attr, "=")
			switch k {
			case paramLeaseID:
				if v == "" || len(v) > MaxAuthzValue {
					return badArg("item %q has an empty or overlong leaseId", truncate(name))
				}
				it.LeaseID = v
			case paramOwnerOrg, paramOwnerUser, paramEntitlement, paramLicenseID:
				if k == paramLicenseID {
					if req.LicenseID != "" && req.LicenseID != v {
						return badArg("licenseId is given twice with different values")
					}
					req.LicenseID = v
				}
			default:
				return badArg("item %q has an unknown attribute %q", truncate(name), truncate(k))
			}
		}
	}
	req.Items = append(req.Items, it)
	return nil
}

// isParam reports whether name is a parameter rather than an item.
func isParam(name string) bool {
	switch name {
	case paramDoConsume, paramConsumptionMode, paramConsumeDuration, paramConsumeCount, paramHardware,
		paramProcess, paramVersion, paramLeaseID, paramOwnerOrg, paramOwnerUser, paramEntitlement,
		paramLicenseID, paramRelease:
		return true
	}
	return false
}

// truncate shortens a client-sent string for an error detail.
func truncate(s string) string {
	const most = 64
	if len(s) <= most {
		return s
	}
	return s[:most] + "…"
}

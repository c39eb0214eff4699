package issuer

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/licensegate/licensegate/policy"
)

// Limits of the text fields.
const (
	maxSubjectLen  = 1024
	maxVersionLen  = 128
	maxOSLen       = 64
	maxHardwareLen = 256 // the gate refuses longer client-sent anchors
)

// request is a decoded issue request: the claims the client asked for
// (iss, iat, jti and aud are the issuer's), the request field behind each
// claim (for problems), and the dates that need the grant's and the
// default validity's judgement.
type request struct {
	claims map[string]any
	fields map[string]string // claim -> request field
	start  time.Time         // the token's start (nbf, ibb); zero: now
	exp    time.Time         // zero: now (or start) + default validity
	// validity sets ibb and ibe from the start and exp (axes4's StartDate
	// and ExpireDate are the license's validity as well as the token's).
	validity bool
}

// field names the request field behind a claim.
func (r *request) field(claim string) string {
	if f, ok := r.fields[claim]; ok {
		return f
	}
	return claim
}

// unknownField is the 400 for a member the request class does not have.
func unknownField(class, name string, known []string) *Problem {
	return &Problem{Status: http.StatusBadRequest, Kind: KindUnknownField, Field: clip(name),
		Detail: class + " has no such field (fields: " + strings.Join(known, ", ") + ")"}
}

func missingField(field string) *Problem {
	return &Problem{Status: http.StatusBadRequest, Kind: KindMissingField, Field: field, Detail: "the field is required"}
}

// axes4Fields are IssueTokenRequest's properties, as its camelCase JSON
// names them; they match in any case.
var axes4Fields = []string{"customerIdentifier", "productEnum", "version", "startDate", "expireDate", "operatingSystemEnum", "lockingData"}

// axes4Claims names the request field behind each claim of an axes4 token.
var axes4Claims = map[string]string{
	"sub": "customerIdentifier", "product": "productEnum", "ver": "version",
	"nbf": "startDate", "ibb": "startDate", "exp": "expireDate", "ibe": "expireDate",
	"os": "operatingSystemEnum", "hw": "lockingData",
}

// readClass reads a closed request class: each member must name one of
// fields, in any ASCII case (System.Text.Json's case-insensitive reading);
// null is an unset property; set decodes every other member under its
// field's canonical name.
func readClass(body []byte, class string, fields []string, set func(field string, raw json.RawMessage) *Problem) *Problem {
	members, p := readObject(body, true)
	if p != nil {
		return p
	}
	for _, m := range members {
		i := slices.IndexFunc(fields, func(f string) bool { return asciiLower(f) == asciiLower(m.name) })
		if i < 0 {
			return unknownField(class, m.name, fields)
		}
		if isNull(m.raw) {
			continue
		}
		if p := set(fields[i], m.raw); p != nil {
			return p
		}
	}
	return nil
}

// decodeAxes4 reads an IssueTokenRequest. The class is closed: a property
// it does not have is refused. null is an unset property.
func decodeAxes4(body []byte) (*request, *Problem) {
	r := &request{claims: make(map[string]any), fields: axes4Claims, validity: true}
	p := readClass(body, "IssueTokenRequest", axes4Fields, func(f string, raw json.RawMessage) (err *Problem) {
		switch f {
		case "customerIdentifier":
			r.claims["sub"], err = textValue(f, raw, maxSubjectLen)
		case "productEnum":
			r.claims["product"], err = itemValue(f, raw)
		case "version":
			r.claims["ver"], err = versionValue(f, raw)
		case "startDate":
			r.start, err = dateField(f, raw, false)
		case "expireDate":
			r.exp, err = dateField(f, raw, false)
		case "operatingSystemEnum":
			r.claims["os"], err = textValue(f, raw, maxOSLen)
		case "lockingData":
			r.claims["hw"], err = textValue(f, raw, maxHardwareLen)
		}
		return err
	})
	if p != nil {
		return nil, p
	}
	for _, req := range [][2]string{{"sub", "customerIdentifier"}, {"product", "productEnum"}} {
		if _, ok := r.claims[req[0]]; !ok {
			return nil, missingField(req[1])
		}
	}
	return r, nil
}

// data8Fields are GetJWT's parameters; they match in any case.
var data8Fields = []string{"sub", "credits", "ip", "expires"}

var data8Claims = map[string]string{"exp": "expires"}

// decodeData8 reads a GetJWT request: {"sub", "credits", "ip", "expires"}.
// expires is an ISO 8601 date-time; one without offset is read as UTC
// (a .NET DateTime of unspecified kind).
func decodeData8(body []byte) (*request, *Problem) {
	r := &request{claims: make(map[string]any), fields: data8Claims}
	p := readClass(body, "GetJWT", data8Fields, func(f string, raw json.RawMessage) (err *Problem) {
		switch f {
		case "sub":
			r.claims["sub"], err = textValue(f, raw, maxSubjectLen)
		case "credits":
			r.claims["credits"], err = intField(f, raw, 0, policy.MaxCredits)
		case "ip":
			r.claims["ip"], err = networksValue(f, raw)
		case "expires":
			r.exp, err = dateField(f, raw, true)
		}
		return err
	})
	if p != nil {
		return nil, p
	}
	return r, nil
}

// issuerClaims are set by the issuer alone.
var issuerClaims = []string{"iss", "iat", "jti", "aud"}

// decodeNative reads the native endpoint's body: the claims themselves,
// by the gate's default names (README's Claims table), plus any extra
// claims. Dates are NumericDates (unix seconds).
func decodeNative(body []byte) (*request, *Problem) {
	members, p := readObject(body, false)
	if p != nil {
		return nil, p
	}
	r := &request{claims: make(map[string]any, len(members)+4)}
	var nbf, ibb time.Time
	for _, m := range members {
		name := m.name
		if name == "" || len(name) > maxNameLen {
			return nil, fieldError(clip(name), "a claim name has 1 to %d bytes", maxNameLen)
		}
		if slices.Contains(issuerClaims, name) {
			return nil, fieldError(name, "is set by the issuer")
		}
		if isNull(m.raw) {
			return nil, fieldError(name, "must not be null")
		}
		var err *Problem
		switch name {
		case "exp", "nbf", "ibb", "ibe":
			var t time.Time
			if t, err = numericDate(name, m.raw); err == nil {
				r.claims[name] = t.Unix()
				switch name {
				case "exp":
					r.exp = t
				case "nbf":
					nbf = t
				case "ibb":
					ibb = t
				}
			}
		case "sub":
			r.claims[name], err = textValue(name, m.raw, maxSubjectLen)
		case defaultNames.Hardware:
			r.claims[name], err = textValue(name, m.raw, maxHardwareLen)
		case defaultNames.Version:
			r.claims[name], err = versionsValue(name, m.raw)
		case defaultNames.IP:
			r.claims[name], err = networksValue(name, m.raw)
		case defaultNames.Items, defaultNames.Product:
			var items []string
			if items, err = stringListField(name, m.raw); err == nil {
				for _, it := range items {
					if e := checkItemName(it); e != nil {
						return nil, fieldError(name, "%v", e)
					}
				}
				if name == defaultNames.Items || len(items) > 1 {
					r.claims[name] = items
				} else {
					r.claims[name] = items[0]
				}
			}
		default:
			r.claims[name], err = anyValue(name, m.raw)
		}
		if err != nil {
			return nil, err
		}
	}
	r.start = nbf
	if ibb.After(r.start) {
		r.start = ibb
	}
	return r, nil
}

// textValue is textField as a claim value.
func textValue(field string, raw json.RawMessage, max int) (any, *Problem) {
	s, p := textField(field, raw, max)
	if p != nil {
		return nil, p
	}
	return s, nil
}

// itemValue reads a product name.
func itemValue(field string, raw json.RawMessage) (any, *Problem) {
	s, p := stringField(field, raw)
	if p != nil {
		return nil, p
	}
	if err := checkItemName(s); err != nil {
		return nil, fieldError(field, "%v", err)
	}
	return s, nil
}

// versionValue reads one version pattern the gate can enforce.
func versionValue(field string, raw json.RawMessage) (any, *Problem) {
	s, p := stringField(field, raw)
	if p == nil {
		p = checkVersion(field, s)
	}
	if p != nil {
		return nil, p
	}
	return s, nil
}

// checkVersion refuses a version pattern the gate would refuse.
func checkVersion(field, s string) *Problem {
	if p := checkText(field, s, maxVersionLen); p != nil {
		return p
	}
	if _, err := policy.ParseVersionPattern(s); err != nil {
		return fieldError(field, "%q is not a version pattern (such as 1.2.3, 1-3.4-6.7-9 or 1.*.*): %v", clip(s), err)
	}
	return nil
}

// checkNetwork refuses what is neither an address nor a CIDR.
func checkNetwork(field, s string) *Problem {
	if _, err := policy.ParseNetwork(s); err != nil {
		return fieldError(field, "%q is neither an IP address nor a CIDR", clip(s))
	}
	return nil
}

// versionsValue reads one pattern or an array of them.
func versionsValue(field string, raw json.RawMessage) (any, *Problem) {
	return listValue(field, raw, "names no version pattern", checkVersion)
}

// networksValue reads an address or CIDR, or an array of them, as the
// gate's ip claim.
func networksValue(field string, raw json.RawMessage) (any, *Problem) {
	return listValue(field, raw, "names no address", checkNetwork)
}

// listValue reads a string or a non-empty array of strings, each passing
// check; one is kept as a string, several as an array.
func listValue(field string, raw json.RawMessage, empty string, check func(field, s string) *Problem) (any, *Problem) {
	list, p := stringListField(field, raw)
	if p != nil {
		return nil, p
	}
	if len(list) == 0 {
		return nil, fieldError(field, "%s", empty)
	}
	for _, s := range list {
		if p := check(field, s); p != nil {
			return nil, p
		}
	}
	if len(list) == 1 {
		return list[0], nil
	}
	return list, nil
}

// anyValue decodes an extra claim's value, numbers kept exact.
func anyValue(field string, raw json.RawMessage) (any, *Problem) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fieldError(field, "is not a JSON value")
	}
	if p := checkValue(field, v, 2); p != nil {
		return nil, p
	}
	return v, nil
}

// maxClaimsDepth is the deepest nesting a gate reads in a token's claims,
// the claims object counting as one (license_gate's strict JSON check).
const maxClaimsDepth = 32

// checkValue refuses what a gate or a JWT library reading into doubles
// could not read: a number beyond a double's range, or nesting deeper than
// maxClaimsDepth. depth is the level of v (a claim's value is at 2).
func checkValue(field string, v any, depth int) *Problem {
	switch x := v.(type) {
	case json.Number:
		if _, err := strconv.ParseFloat(x.String(), 64); err != nil {
			return fieldError(field, "holds a number beyond the range of a double")
		}
	case []any:
		if depth > maxClaimsDepth {
			return fieldError(field, "is nested deeper than %d levels", maxClaimsDepth)
		}
		for _, e := range x {
			if p := checkValue(field, e, depth+1); p != nil {
				return p
			}
		}
	case map[string]any:
		if depth > maxClaimsDepth {
			return fieldError(field, "is nested deeper than %d levels", maxClaimsDepth)
		}
		for _, e := range x {
			if p := checkValue(field, e, depth+1); p != nil {
				return p
			}
		}
	}
	return nil
}

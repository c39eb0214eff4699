package issuer

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"
)

// member is one member of a request's JSON object, in order.
type member struct {
	name string
	raw  json.RawMessage
}

// readObject reads a body that must be exactly one JSON object, and returns
// its members. A member named twice is refused: exactly the same name when
// fold is false (JWT claims are case-sensitive), the same name in any ASCII
// case when fold is true (the request classes are read case-insensitively,
// so "Version" and "version" would be one property given twice).
func readObject(body []byte, fold bool) ([]member, *Problem) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, malformed("the body must be one JSON object")
	}
	var out []member
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, malformed("the body is not valid JSON")
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, malformed("the body is not valid JSON")
		}
		key := name
		if fold {
			key = asciiLower(name)
		}
		if seen[key] {
			return nil, &Problem{Status: http.StatusBadRequest, Kind: KindInvalidField, Field: clip(name),
				Detail: "the field is given twice"}
		}
		seen[key] = true
		out = append(out, member{name, raw})
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, malformed("the body is not valid JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, malformed("the body must hold one JSON object and nothing after it")
	}
	return out, nil
}

// asciiLower lowers ASCII letters only: a property name matches a field
// in any ASCII case, never through Unicode folding (the Kelvin sign is no k).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func malformed(detail string) *Problem {
	return &Problem{Status: http.StatusBadRequest, Kind: KindMalformedBody, Detail: detail}
}

// clip shortens client-sent text quoted back in a problem.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// isNull reports whether a member's value is JSON null, which the request
// classes' clients send for a property they leave unset.
func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// stringField reads a string member.
func stringField(field string, raw json.RawMessage) (string, *Problem) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fieldError(field, "must be a string")
	}
	return s, nil
}

// textField reads a non-empty string of at most max bytes without control
// characters: a value a gate can compare with a request header.
func textField(field string, raw json.RawMessage, max int) (string, *Problem) {
	s, p := stringField(field, raw)
	if p == nil {
		p = checkText(field, s, max)
	}
	if p != nil {
		return "", p
	}
	return s, nil
}

// checkText refuses an empty or too long text, or one with control
// characters or invalid UTF-8.
func checkText(field, s string, max int) *Problem {
	if s == "" || len(s) > max {
		return fieldError(field, "must have 1 to %d bytes", max)
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == '\uFFFD' {
			return fieldError(field, "must not hold control characters or invalid UTF-8")
		}
	}
	return nil
}

// intField reads an integer in lo..hi.
func intField(field string, raw json.RawMessage, lo, hi int64) (int64, *Problem) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, fieldError(field, "must be an integer")
	}
	v, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		return 0, fieldError(field, "must be an integer, not %s", clip(n.String()))
	}
	if v < lo || v > hi {
		return 0, fieldError(field, "must be %d..%d, not %d", lo, hi, v)
	}
	return v, nil
}

// stringListField reads a string or an array of strings.
func stringListField(field string, raw json.RawMessage) ([]string, *Problem) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil || list == nil {
		return nil, fieldError(field, "must be a string or an array of strings")
	}
	return list, nil
}

// Date bounds: a date must be a unix time the gate reads (policy refuses
// NumericDates beyond 2^40 seconds).
var (
	minDate = time.Unix(0, 0)
	maxDate = time.Unix(1<<40, 0)
)

// dateField reads an ISO 8601 date-time such as .NET writes a
// DateTimeOffset: "2025-12-01T00:00:00+00:00", "2025-12-01T00:00:00Z",
// fractions of a second allowed. Without an offset it is refused, unless
// localUTC is set (Data8's DateTime), when it is read as UTC.
func dateField(field string, raw json.RawMessage, localUTC bool) (time.Time, *Problem) {
	s, p := stringField(field, raw)
	if p != nil {
		return time.Time{}, fieldError(field, "must be an ISO 8601 date-time with offset, such as 2025-12-01T00:00:00+00:00")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil && localUTC {
		t, err = time.ParseInLocation("2006-01-02T15:04:05.999999999", s, time.UTC)
	}
	if err != nil {
		return time.Time{}, fieldError(field, "%q is not an ISO 8601 date-time with offset, such as 2025-12-01T00:00:00+00:00", clip(s))
	}
	if t.Before(minDate) || t.After(maxDate) {
		return time.Time{}, fieldError(field, "%q is outside 1970..%d", clip(s), maxDate.Year())
	}
	return t, nil
}

// numericDate reads a JWT NumericDate (unix seconds), as the native
// endpoint takes exp, nbf, ibb and ibe.
func numericDate(field string, raw json.RawMessage) (time.Time, *Problem) {
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || math.IsNaN(f) {
		return time.Time{}, fieldError(field, "must be a number of seconds since 1970")
	}
	if f < 0 || f > float64(maxDate.Unix()) || f != math.Trunc(f) {
		return time.Time{}, fieldError(field, "must be whole seconds in 0..%d", maxDate.Unix())
	}
	return time.Unix(int64(f), 0), nil
}

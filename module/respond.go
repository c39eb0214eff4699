package module

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/licensegate/licensegate/policy"
)

// rejectIssuer is the iss of reject bodies.
const rejectIssuer = "licensegate"

// statusFor is the status to answer a reject with, after the operator's
// overrides.
func (g *Gate) statusFor(rej *policy.Reject) int {
	if s, ok := g.statusOverride[rej.Code]; ok {
		return s
	}
	if rej.Status != 0 {
		return rej.Status
	}
	return rej.Code.Status()
}

// writeReject answers with the 10Duke-style body README's Rejections section shows. It is the
// only place a reject becomes a response. Under "errors handle" the reject
// is returned to Caddy as an HTTP error instead (see handleErrors).
func (g *Gate) writeReject(w http.ResponseWriter, rej *policy.Reject, status int, lic *policy.License, now time.Time) error {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer error="invalid_token", error_description=`+quoteHeader(rej.Detail))
	}
	if rej.RetryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(retryAfterSeconds(rej.RetryAfter), 10))
	}
	setRejectRateLimit(h, rej, lic)
	if g.handleErrors {
		return handledError(status, rej)
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(rejectBody(g.bodyPrefix, rej, now))
	return nil
}

// retryAfterSeconds rounds a wait up to whole seconds, as Retry-After and
// the t parameter of RateLimit carry it.
func retryAfterSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// rejectBody renders the body; prefix is the route's item or "license".
func rejectBody(prefix string, rej *policy.Reject, now time.Time) []byte {
	b := make([]byte, 0, 256)
	field := func(name, value string) {
		b = appendJSONString(b, prefix+name)
		b = append(b, ": "...)
		b = appendJSONString(b, value)
		b = append(b, ",\n  "...)
	}
	b = append(b, "{\n  "...)
	field("_errorCode", string(rej.Code))
	field("_errorKey", string(rej.Code))
	field("_errorMessage", rej.Code.Message())
	field("_errorTechnical", rej.Detail)
	b = append(b, `"iss": "`+rejectIssuer+`",`+"\n  "+`"iat": `...)
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, "\n}\n"...)
	return b
}

func appendJSONString(b []byte, s string) []byte {
	enc, err := json.Marshal(s)
	if err != nil {
		return append(b, `""`...)
	}
	return append(b, enc...)
}

// quoteHeader renders s as an RFC 7230 quoted-string with only visible
// ASCII, so a detail can never break the header.
func quoteHeader(s string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for i := 0; i < len(s) && i < 200; i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			sb.WriteByte(c)
		default:
			sb.WriteByte(' ')
		}
	}
	sb.WriteByte('"')
	return sb.String()
}

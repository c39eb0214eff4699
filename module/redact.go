package module

import (
	"context"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// withoutToken takes the token out of the request before the request goes
// on and before any handler after the gate (reverse_proxy and its debug
// log, placeholders, handle_errors, php_fastcgi) can see it:
//
//   - token_from query <name>: every parameter whose name decodes to
//     <name> is dropped from the URL, RequestURI, a parsed Form and the
//     original request Caddy keeps for {http.request.orig_uri*}; the other
//     parameters stay byte for byte as sent.
//   - token_from header <name>, other than Authorization: the header is
//     deleted. Authorization goes on (upstreams commonly read it) and
//     Caddy's logs print it as REDACTED, as they do Cookie.
//
// Caddy's access and error logs print the request as it arrived, copied
// before the first handler runs; README.md ("No token in any log line")
// shows the log filter that keeps the token out of them.
func (g *Gate) withoutToken(r *http.Request) *http.Request {
	switch g.tokenFrom.From {
	case "header":
		if g.tokenFrom.Name != "Authorization" {
			delete(r.Header, g.tokenFrom.Name)
		}
	case "query":
		return withoutParam(r, g.tokenFrom.Name)
	}
	return r
}

// withoutParam drops the query parameter name from r, everywhere Caddy
// keeps the request's URI. It returns r itself when the parameter is
// absent.
func withoutParam(r *http.Request, name string) *http.Request {
	query, inURL := dropParam(r.URL.RawQuery, name)
	uri, inURI := dropParamFromURI(r.RequestURI, name)
	if !inURL && !inURI {
		return r
	}
	r.URL.RawQuery, r.RequestURI = query, uri
	if r.Form != nil {
		r.Form.Del(name)
	}
	or, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request)
	if !ok {
		return r
	}
	// The URL is Caddy's own copy, shared with the server: it restores r's
	// URL from it before running handle_errors routes. The RequestURI is a
	// field of the stored value, so the value is replaced for the handlers
	// after the gate.
	if or.URL != nil {
		or.URL.RawQuery, _ = dropParam(or.URL.RawQuery, name)
	}
	or.RequestURI, _ = dropParamFromURI(or.RequestURI, name)
	return r.WithContext(context.WithValue(r.Context(), caddyhttp.OriginalRequestCtxKey, or))
}

// dropParamFromURI drops the parameter from the query of a request URI
// (everything after its first "?").
func dropParamFromURI(uri, name string) (string, bool) {
	path, query, found := strings.Cut(uri, "?")
	if !found {
		return uri, false
	}
	query, dropped := dropParam(query, name)
	if !dropped {
		return uri, false
	}
	if query == "" {
		return path, true
	}
	return path + "?" + query, true
}

// dropParam removes every parameter whose name decodes to name from a raw
// query, keeping the other parameters (their order, spelling and empty
// pairs) exactly as sent. A pair is also removed when one of its
// ";"-separated parts is named so ("x=1;access_token=..."): Go's query
// parser drops such pairs, but other frameworks split on ";" and would
// find the token there. It reports whether one was removed and allocates
// only then.
func dropParam(raw, name string) (string, bool) {
	if !hasParam(raw, name) {
		return raw, false
	}
	var b strings.Builder
	b.Grow(len(raw))
	first := true
	for pair := range strings.SplitSeq(raw, "&") {
		if pairIs(pair, name) {
			continue
		}
		if !first {
			b.WriteByte('&')
		}
		b.WriteString(pair)
		first = false
	}
	return b.String(), true
}

// hasParam reports whether the raw query has a pair dropParam removes.
func hasParam(raw, name string) bool {
	if raw == "" || (!strings.Contains(raw, name) && !strings.ContainsAny(raw, "%+")) {
		return false
	}
	for pair := range strings.SplitSeq(raw, "&") {
		if pairIs(pair, name) {
			return true
		}
	}
	return false
}

// pairIs reports whether the query pair, or one of its ";"-separated
// parts, is named name.
func pairIs(pair, name string) bool {
	for part := range strings.SplitSeq(pair, ";") {
		k, _, _ := strings.Cut(part, "=")
		if queryNameIs(k, name) {
			return true
		}
	}
	return false
}

// warnTokenInLogs tells the operator, once per provisioning, that Caddy's
// own access and error logs print the request as it arrived, and how to
// keep the token out of them.
func (g *Gate) warnTokenInLogs() {
	var field string
	switch {
	case g.tokenFrom.From == "query":
		field = "request>uri query { delete " + g.tokenFrom.Name + " }"
	case g.tokenFrom.From == "header" && g.tokenFrom.Name != "Authorization":
		field = "request>headers>" + g.tokenFrom.Name + " delete"
	default:
		return
	}
	g.logger.Warn("the gate removes the token from the request it passes on, but Caddy's access and error logs "+
		"print the request as it arrived; keep the token out of them with a filter in each log's format",
		zap.String("token_from", g.tokenFrom.String()), zap.String("format", "filter { "+field+" }"))
}

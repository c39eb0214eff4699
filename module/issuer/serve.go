package issuer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/licensegate/licensegate/module"
)

// Endpoint names: the endpoint label of licensegate_issued_total and the
// endpoint field of the log.
const (
	EndpointAxes4  = "axes4"
	EndpointData8  = "data8"
	EndpointNative = "native"
)

// Paths under the issuer URL's path.
const (
	PathDiscovery = "/.well-known/openid-configuration"
	PathJWKS      = "/.well-known/jwks.json"
	PathAxes4     = "/jwtTokenIssuer/v1/token"
	PathData8     = "/GetJWT"
	PathNative    = "/tokens"
)

// route is one entry of the route table: a path under the issuer URL's
// path (or, with prefix, every path that starts with it), the methods it
// answers, and what answers them.
type route struct {
	path    string
	prefix  bool
	methods []string
	serve   func(w http.ResponseWriter, r *http.Request) error
}

// routeTable lists the handler's endpoints.
func (h *Handler) routeTable() []route {
	return []route{
		{path: PathDiscovery, methods: []string{http.MethodGet, http.MethodHead}, serve: h.serveDiscovery},
		{path: PathJWKS, methods: []string{http.MethodGet, http.MethodHead}, serve: h.serveJWKS},
		{path: PathAxes4, methods: []string{http.MethodPost}, serve: h.issueHandler(EndpointAxes4, decodeAxes4, axes4Response)},
		{path: PathData8, methods: []string{http.MethodPost}, serve: h.issueHandler(EndpointData8, decodeData8, data8Response)},
		{path: PathNative, methods: []string{http.MethodPost}, serve: h.issueHandler(EndpointNative, decodeNative, nativeResponse)},
		{path: PathAuthz, prefix: true, methods: []string{http.MethodGet}, serve: h.serveAuthz},
	}
}

// ServeHTTP implements caddyhttp.MiddlewareHandler: it answers the
// endpoints of the route table and passes every other request on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	rest, ok := strings.CutPrefix(r.URL.Path, h.basePath)
	if !ok {
		return next.ServeHTTP(w, r)
	}
	for i := range h.routes {
		rt := &h.routes[i]
		if rest != rt.path && !(rt.prefix && strings.HasPrefix(rest, rt.path)) {
			continue
		}
		for _, m := range rt.methods {
			if r.Method == m {
				return rt.serve(w, r)
			}
		}
		w.Header().Set("Allow", strings.Join(rt.methods, ", "))
		writeProblem(w, &Problem{Status: http.StatusMethodNotAllowed, Kind: KindMethodNotAllowed,
			Detail: r.Method + " is not allowed here (allowed: " + strings.Join(rt.methods, ", ") + ")"})
		return nil
	}
	return next.ServeHTTP(w, r)
}

// decoder reads an endpoint's request body.
type decoder func(body []byte) (*request, *Problem)

// responder renders an endpoint's answer.
type responder func(token string, t *issued) any

// issueHandler serves one issue endpoint: API key, body, claims, grant,
// signature, answer, one log line, one metric.
func (h *Handler) issueHandler(endpoint string, decode decoder, respond responder) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		key, t, p := h.issue(w, r, decode)
		if p != nil {
			issuedTotal.WithLabelValues(endpoint, resultFor(p.Status)).Inc()
			logRefusal(h.logger, endpoint, key, p)
			writeProblem(w, p)
			return nil
		}
		tok, err := h.signer.sign(t.claims)
		if err != nil {
			issuedTotal.WithLabelValues(endpoint, "error").Inc()
			h.logger.Error("signing a license failed", zap.String("endpoint", endpoint), zap.String("key", key.name), zap.Error(err))
			writeProblem(w, &Problem{Status: http.StatusInternalServerError, Kind: KindInternal, Detail: "the token could not be signed"})
			return nil
		}
		if len(tok) > module.DefaultMaxTokenSize {
			// A gate refuses it unread (max_token_size): issuing it would
			// hand out a token nobody can use.
			p := &Problem{Status: http.StatusBadRequest, Kind: KindTokenTooLarge,
				Detail: fmt.Sprintf("the token would be %d bytes; gates accept at most %d by default", len(tok), module.DefaultMaxTokenSize)}
			issuedTotal.WithLabelValues(endpoint, resultFor(p.Status)).Inc()
			logRefusal(h.logger, endpoint, key, p)
			writeProblem(w, p)
			return nil
		}
		issuedTotal.WithLabelValues(endpoint, "issued").Inc()
		sub, _ := t.claims["sub"].(string)
		h.logger.Info("license issued",
			zap.String("endpoint", endpoint), zap.String("key", key.name), zap.String("sub", sub),
			zap.String("jti", t.jti), zap.String("product", t.product), zap.Int64("exp", t.exp.Unix()),
			zap.String("kid", h.signer.kid()))
		body, _ := json.Marshal(respond(tok, t))
		hd := w.Header()
		hd.Set("Content-Type", "application/json")
		hd.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(append(body, '\n'))
		return nil
	}
}

// issue authenticates the request and decodes and checks what it asks.
// The key is returned (nil when unknown) for the log.
func (h *Handler) issue(w http.ResponseWriter, r *http.Request, decode decoder) (*apiKey, *issued, *Problem) {
	presented := r.Header.Get(HeaderAPIKey)
	// The key goes no further down the handler chain. (Caddy's access
	// log holds a copy of the headers made before any handler ran: a
	// site's log filter keeps it out there, see README.md.)
	r.Header.Del(HeaderAPIKey)
	key := authenticate(h.keys, presented)
	if key == nil {
		detail := "the x-api-key header is missing"
		if presented != "" {
			detail = "the x-api-key header holds no known key"
		}
		return nil, nil, &Problem{Status: http.StatusUnauthorized, Kind: KindUnauthorized, Detail: detail}
	}
	if p := checkMediaType(r.Header.Get("Content-Type")); p != nil {
		return key, nil, p
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return key, nil, &Problem{Status: http.StatusRequestEntityTooLarge, Kind: KindBodyTooLarge,
				Detail: "the body is larger than " + formatSize(h.maxBody)}
		}
		return key, nil, malformed("the body could not be read")
	}
	req, p := decode(body)
	if p != nil {
		return key, nil, p
	}
	t, p := h.complete(key, req, h.now())
	return key, t, p
}

// checkMediaType accepts JSON bodies (application/json, any +json type)
// and bodies of no declared type.
func checkMediaType(ct string) *Problem {
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return &Problem{Status: http.StatusUnsupportedMediaType, Kind: KindUnsupportedMedia,
		Detail: "the body must be JSON (Content-Type: application/json)"}
}

// logRefusal writes a refused request at DEBUG: never the key's secret nor
// the body.
func logRefusal(logger *zap.Logger, endpoint string, key *apiKey, p *Problem) {
	if ce := logger.Check(zap.DebugLevel, "license refused"); ce != nil {
		name := ""
		if key != nil {
			name = key.name
		}
		ce.Write(zap.String("endpoint", endpoint), zap.String("key", name), zap.Int("status", p.Status),
			zap.String("code", p.Kind), zap.String("field", p.Field), zap.String("detail", p.Detail))
	}
}

func resultFor(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusInternalServerError:
		return "error"
	}
	return "invalid"
}

func formatSize(n int64) string {
	if n%(1<<10) == 0 {
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// axes4Response is IssueTokenResponse.
func axes4Response(tok string, _ *issued) any {
	return struct {
		Token string `json:"token"`
	}{tok}
}

// data8Response is Data8's JwtToken: Token, CreditsRemaining (the
// credits granted; absent for a token without credits) and Expires.
func data8Response(tok string, t *issued) any {
	var credits *int64
	if t.lic.HasCredits {
		credits = &t.lic.Credits
	}
	return struct {
		Token            string `json:"Token"`
		CreditsRemaining *int64 `json:"CreditsRemaining,omitempty"`
		Expires          string `json:"Expires"`
	}{tok, credits, t.exp.UTC().Format(time.RFC3339)}
}

// nativeResponse is {"token", "jti", "exp"}.
func nativeResponse(tok string, t *issued) any {
	return struct {
		Token string `json:"token"`
		JTI   string `json:"jti"`
		Exp   int64  `json:"exp"`
	}{tok, t.jti, t.exp.Unix()}
}

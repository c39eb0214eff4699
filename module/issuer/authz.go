package issuer

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/licensegate/licensegate/module"
	"github.com/licensegate/licensegate/policy"
)

// PathAuthz is the license consumption endpoint (10Duke's /authz/); the
// response format follows it: "", ".txt", ".json" or ".jwt".
const PathAuthz = "/authz/"

// EndpointAuthz is the endpoint label of /authz/ answers.
const EndpointAuthz = "authz"

// KindNotFound is the problem kind of a path under /authz/ that names no
// response format (404).
const KindNotFound = "not_found"

// Bounds of /authz/.
const (
	// maxLicenseToken caps the bearer token, checked before decoding.
	maxLicenseToken = 16 << 10
	// authzLeeway is the clock skew allowed on the license's times.
	authzLeeway = 30 * time.Second
	// releasedRevocationSlack keeps a released lease's token revoked past
	// its exp, beyond any gate's leeway.
	releasedRevocationSlack = 10 * time.Minute
	// storeRetryAfter is the Retry-After of an answer the store could not
	// give.
	storeRetryAfter = 2 * time.Second
)

// authz is the state of the /authz/ endpoint: the lease store (the gates'
// counter store), the keys license tokens are verified with, the limits.
type authz struct {
	store   module.LeaseStore
	release func()
	limits  LeaseLimits
	keys    map[string]crypto.PublicKey // kid -> public key of a signing key
	parser  *jwt.Parser
	// trusted verifies licenses of the trusted OpenID issuers; nil when
	// none is configured.
	trusted *module.Gate
}

// provisionAuthz loads the lease store and the verification keys.
func (h *Handler) provisionAuthz() error {
	if h.LeaseTTL < 0 {
		return errors.New("lease_ttl must not be negative")
	}
	a := &authz{limits: LeaseLimits{TTL: time.Duration(h.LeaseTTL), Leeway: authzLeeway}, keys: map[string]crypto.PublicKey{}}
	if a.limits.TTL == 0 {
		a.limits.TTL = DefaultLeaseTTL
	}
	var algs []string
	for _, k := range h.signer.keys {
		a.keys[k.kid] = k.key.Public()
		algs = append(algs, k.alg)
	}
	a.parser = jwt.NewParser(jwt.WithValidMethods(algs), jwt.WithIssuer(h.issuer), jwt.WithJSONNumber(),
		jwt.WithExpirationRequired(), jwt.WithLeeway(authzLeeway))
	if len(h.TrustedOIDCIssuers) > 0 {
		if h.ctx.Context == nil {
			return errors.New("trust_oidc_issuer needs a running Caddy")
		}
		// A gate without constraints of its own: it verifies as every gate
		// with these oidc_issuer lines does, and shares the lease store.
		g := &module.Gate{OIDCIssuers: h.TrustedOIDCIssuers, Store: h.Store}
		if err := g.Provision(h.ctx); err != nil {
			return fmt.Errorf("trust_oidc_issuer: %w", err)
		}
		a.trusted = g
	}
	store, release, err := module.LoadLeaseStore(h.Store)
	if err != nil {
		if a.trusted != nil {
			_ = a.trusted.Cleanup()
		}
		return err
	}
	a.store, a.release = store, release
	h.authz = a
	return nil
}

// Cleanup gives the lease store back to the pool; it implements
// caddy.CleanerUpper.
func (h *Handler) Cleanup() error {
	if h.authz == nil {
		return nil
	}
	if h.authz.release != nil {
		h.authz.release()
		h.authz.release = nil
	}
	if h.authz.trusted != nil {
		_ = h.authz.trusted.Cleanup()
		h.authz.trusted = nil
	}
	return nil
}

// serveAuthz answers /authz/: a lease per item, a renewal, a check or a
// release, as 10Duke's license consumption does. Every answer the client
// can act on is HTTP 200 (errors as "<item>_errorCode" fields); a store
// that cannot answer is 503.
func (h *Handler) serveAuthz(w http.ResponseWriter, r *http.Request) error {
	now := h.now()
	rest, _ := strings.CutPrefix(r.URL.Path, h.basePath+PathAuthz)
	format, ok := ParseAuthzFormat(rest)
	if !ok {
		writeProblem(w, &Problem{Status: http.StatusNotFound, Kind: KindNotFound,
			Detail: "unknown /authz/ format; use /authz/, /authz/.txt, /authz/.json or /authz/.jwt"})
		return nil
	}
	a := h.authz
	req, rej := ParseAuthz(r.URL.RawQuery)
	if rej != nil {
		return h.answerAuthz(w, format, RejectAll(req, rej, h.issuer, now), rej, http.StatusOK)
	}
	lic, rej := a.license(r.Context(), r)
	if rej != nil {
		return h.answerAuthz(w, format, RejectAll(req, rej, h.issuer, now), rej, http.StatusOK)
	}
	key := policy.LicenseKey{Issuer: lic.Issuer, Key: lic.CountKey}
	if req.Release != "" {
		return h.releaseLease(w, r, format, req, key, now)
	}
	plan := PlanLeases(lic, key, req, policy.Request{Now: now, ClientIP: module.ClientIP(r)}, a.limits, newJTI)
	var results []policy.LeaseResult
	if plan.Store != nil {
		var err error
		if results, err = h.takeLeases(r.Context(), plan.Store); err != nil {
			h.logger.Error("lease store failed", zap.Error(err), zap.String("lic", key.Key))
			rej := &policy.Reject{Code: policy.CodeServiceUnavailable, Detail: "the lease store is unavailable", RetryAfter: storeRetryAfter}
			return h.answerAuthz(w, format, RejectAll(req, rej, h.issuer, now), rej, http.StatusServiceUnavailable)
		}
	}
	terms := &LeaseTerms{Issuer: h.issuer, Audience: h.Audiences, Subject: lic.Subject, License: key.Key,
		ValidFrom: lic.ValidFrom, ValidUntil: lic.ValidTill, Version: req.Version, Now: now}
	answers := plan.Answers(req, results, terms)
	var first *policy.Reject
	for i, an := range answers {
		if an.Reject != nil {
			if first == nil {
				first = an.Reject
			}
			continue
		}
		if !req.CheckOnly {
			h.logLease("lease granted", zapcore.DebugLevel, req.Items[i].Name, an.Claims["jti"], key, req, nil)
		}
	}
	if first != nil {
		for i, an := range answers {
			if an.Reject != nil {
				h.logLease("lease refused", zapcore.InfoLevel, req.Items[i].Name, req.Items[i].LeaseID, key, req, an.Reject)
			}
		}
	}
	return h.answerAuthz(w, format, answers, first, http.StatusOK)
}

// takeLeases runs r in the store, exactly once under faults: a take
// that consumes carries a request id, and when the store does not answer
// (a timeout, a broken connection, too few replicas for durability) the
// take is voided in the background, so the request, answered 503, holds
// no lease, seat or credits (see policy.LeaseUndo). A new lease that
// replaced one of the device's leases gets that lease's token revoked,
// as a release does; a revocation the store does not answer voids the
// take as well, so the old lease stays whole.
func (h *Handler) takeLeases(ctx context.Context, r *policy.LeaseRequest) ([]policy.LeaseResult, error) {
	a, issuer := h.authz, h.issuer
	r.Issuer = issuer
	if !r.CheckOnly {
		r.Request = a.store.LeaseRequestID()
	}
	void := func(why string) {
		if r.Request != "" {
			a.store.VoidLeases(policy.LeaseUndo{License: r.License, Request: r.Request, Now: h.now()}, why)
		}
	}
	results, err := a.store.TakeLeases(ctx, r)
	if err != nil {
		if !errors.Is(err, policy.ErrNotSent) {
			void("lease take not answered")
		}
		return nil, err
	}
	for _, res := range results {
		old := res.Replaced
		if res.Outcome != policy.LeaseGranted || old.ID == "" {
			continue
		}
		if err := a.store.Revoke(context.WithoutCancel(ctx), policy.LicenseKey{Issuer: issuer, Key: old.ID},
			old.Until.Add(releasedRevocationSlack)); err != nil {
			void("replaced lease not revoked")
			return nil, err
		}
	}
	return results, nil
}

// releaseLease answers ?release&<leaseId>: the seat is free at once, and
// the lease's token is revoked so that a gate refuses it from now on.
func (h *Handler) releaseLease(w http.ResponseWriter, r *http.Request, format AuthzFormat, req *AuthzRequest,
	key policy.LicenseKey, now time.Time) error {
	a := h.authz
	l, found, err := a.store.ReleaseLease(r.Context(), key, req.Release, now)
	if err == nil && found {
		err = a.store.Revoke(context.WithoutCancel(r.Context()), policy.LicenseKey{Issuer: h.issuer, Key: l.ID},
			l.Until.Add(releasedRevocationSlack))
	}
	if err != nil {
		h.logger.Error("lease store failed", zap.Error(err), zap.String("lic", key.Key))
		rej := &policy.Reject{Code: policy.CodeServiceUnavailable, Detail: "the lease store is unavailable", RetryAfter: storeRetryAfter}
		return h.answerAuthz(w, format, RejectAll(req, rej, h.issuer, now), rej, http.StatusServiceUnavailable)
	}
	if !found {
		rej := policy.Rejectf(policy.CodeNoConsumptionFoundByID, "no live lease of this license has id %.64q", req.Release)
		h.logLease("lease refused", zapcore.InfoLevel, "", req.Release, key, req, rej)
		return h.answerAuthz(w, format, RejectAll(req, rej, h.issuer, now), rej, http.StatusOK)
	}
	h.logLease("lease released", zapcore.DebugLevel, l.Item, l.ID, key, req, nil)
	return h.answerAuthz(w, format, []AuthzAnswer{{Claims: ReleaseClaims(l.ID, h.issuer, now)}}, nil, http.StatusOK)
}

// answerAuthz writes the answers. rej, when set, is the first refusal,
// for the metric and Retry-After.
func (h *Handler) answerAuthz(w http.ResponseWriter, format AuthzFormat, answers []AuthzAnswer, rej *policy.Reject, status int) error {
	ct, body, err := FormatAuthz(format, answers, h.signer.sign)
	if err != nil {
		issuedTotal.WithLabelValues(EndpointAuthz, "error").Inc()
		h.logger.Error("signing a lease failed", zap.Error(err))
		writeProblem(w, &Problem{Status: http.StatusInternalServerError, Kind: KindInternal, Detail: "the lease could not be signed"})
		return nil
	}
	result := "issued"
	switch {
	case status >= 500:
		result = "error"
	case rej != nil:
		result = "refused"
	}
	issuedTotal.WithLabelValues(EndpointAuthz, result).Inc()
	hd := w.Header()
	hd.Set("Content-Type", ct)
	hd.Set("Cache-Control", "no-store")
	if rej != nil && rej.RetryAfter > 0 {
		hd.Set("Retry-After", strconv.FormatInt(int64((rej.RetryAfter+time.Second-1)/time.Second), 10))
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return nil
}

// logLease writes one line about a lease; never a token.
func (h *Handler) logLease(msg string, level zapcore.Level, item string, lease any, key policy.LicenseKey, req *AuthzRequest, rej *policy.Reject) {
	ce := h.logger.Check(level, msg)
	if ce == nil {
		return
	}
	fields := []zap.Field{zap.String("item", item), zap.Any("lease_id", lease), zap.String("lic", key.Key),
		zap.String("license_iss", key.Issuer), zap.String("hw", req.Hardware)}
	if rej != nil {
		fields = append(fields, zap.String("code", string(rej.Code)), zap.String("detail", rej.Detail))
	}
	ce.Write(fields...)
}

// license verifies the bearer token as a license this issuer signed, or
// else as one of a trusted OpenID issuer, and decodes its claims as the
// gate does.
func (a *authz) license(ctx context.Context, r *http.Request) (*policy.License, *policy.Reject) {
	h := r.Header.Get("Authorization")
	ok := len(h) > 7 && strings.EqualFold(h[:7], "bearer ")
	tok := ""
	if ok {
		tok = strings.TrimSpace(h[7:])
	}
	if tok == "" {
		return nil, policy.Rejectf(policy.CodeNotAuthorized, "no license token: send it as Authorization: Bearer <token>")
	}
	if len(tok) > maxLicenseToken {
		return nil, policy.Rejectf(policy.CodeNotAuthorized, "the license token has %d bytes, more than %d", len(tok), maxLicenseToken)
	}
	var claims jwt.MapClaims
	_, err := a.parser.ParseWithClaims(tok, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if k, ok := a.keys[kid]; ok {
			return k, nil
		}
		return nil, errors.New("unknown kid")
	})
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, policy.Rejectf(policy.CodeLicenseExpired, "the license token has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return nil, policy.Rejectf(policy.CodeValidityNotStarted, "the license token is not valid yet")
	case err != nil && a.trusted != nil && !errors.Is(err, jwt.ErrTokenMalformed):
		return a.trusted.VerifyLicense(ctx, tok)
	case err != nil:
		return nil, policy.Rejectf(policy.CodeNotAuthorized, "the license token is not one this issuer signed")
	}
	if _, lease := claims["rfr"]; lease {
		// A lease is no license: leasing on a lease would take seats and
		// credits the license never granted.
		return nil, policy.Rejectf(policy.CodeNotAuthorized, "a lease token is no license; send the license token")
	}
	lic, err := policy.Decode(map[string]any(claims), &defaultNames)
	if err != nil {
		var rej *policy.Reject
		if errors.As(err, &rej) {
			return nil, rej
		}
		return nil, policy.Rejectf(policy.CodeNotAuthorized, "the license token's claims cannot be read")
	}
	return lic, nil
}

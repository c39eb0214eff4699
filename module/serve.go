package module

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/licensegate/licensegate/policy"
)

// EventRejected is the Caddy event emitted for every reject (and every
// would-be reject in shadow mode), with the fields of the log line.
const EventRejected = "license_rejected"

// Response headers set on allowed requests of tokens with credits.
const (
	HeaderCreditsRemaining = "X-License-Credits-Remaining"
	HeaderCreditsLimit     = "X-License-Credits-Limit"
)

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if g.passPreflight && isPreflight(r) {
		return next.ServeHTTP(w, g.withoutToken(r))
	}
	now := g.now()
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	tok, why := tokenFrom(g.tokenFrom, r)
	r = g.withoutToken(r)
	if tok == "" {
		return g.deny(w, r, next, repl, verified{}, policy.Rejectf(policy.CodeNotAuthorized, "%s", why), now)
	}
	if len(tok) > g.maxTokenSize {
		return g.deny(w, r, next, repl, verified{}, policy.Rejectf(policy.CodeNotAuthorized,
			"token of %d bytes exceeds max_token_size %d", len(tok), g.maxTokenSize), now)
	}
	ent, rej := g.verifier.verify(r.Context(), tok, now)
	if rej != nil {
		return g.deny(w, r, next, repl, ent, rej, now)
	}
	lic := ent.lic
	q := policy.Request{Now: now}
	if rej := g.facts(r, lic, repl, &q); rej != nil {
		return g.deny(w, r, next, repl, ent, rej, now)
	}
	if rej := g.rules.Check(lic, &q); rej != nil {
		return g.deny(w, r, next, repl, ent, rej, now)
	}

	info := &licenseInfo{lic: lic, token: ent.token, allowed: true}
	var refund chargeRefund
	if lic.HasCredits || lic.Seats > 0 || lic.CountKey != "" {
		var rej *policy.Reject
		var failedOpen bool
		refund, failedOpen, rej = g.charge(r, ent, q.Hardware, now, info)
		if rej != nil {
			return g.deny(w, r, next, repl, ent, rej, now)
		}
		if failedOpen {
			passedTotal.Inc()
			info.errorCode = string(policy.CodeServiceUnavailable)
			g.setPlaceholders(repl, info)
			return next.ServeHTTP(w, r)
		}
		if info.hasCredits {
			setCreditHeaders(w.Header(), info.remaining, info.limit)
		}
	}
	g.setPlaceholders(repl, info)
	allowedTotal.Inc()
	if ce := g.logger.Check(zapcore.DebugLevel, "license allowed"); ce != nil {
		ce.Write(zap.String("sub", lic.Subject), zap.String("jti", lic.ID), zap.String("lic", lic.LicenseID),
			zap.String("kid", ent.kid), zap.String("item", g.RequireItem))
	}
	if refund.Cost == 0 || len(g.refund) == 0 {
		return next.ServeHTTP(w, r)
	}
	return g.serveWithRefund(w, r, next, refund)
}

// charge runs the request's counting in the store: revocation, seat and
// credits in one round trip. It returns what would refund the charge (its
// Cost is the credits charged, 0 for none), whether the store failed and
// the request passes anyway (fail_open), or the reject. On success it
// fills info's credits fields. A license that counts nothing is answered
// from the store's in-process revocations when it can (revokedInProcess),
// with no round trip; so is, with credit blocks on, a request served from
// this gateway's block of the license's credits, its device's seat (if
// any) confirmed lately (see chargeFromBlock).
//
// The charge carries a request id. When the store does not answer (a
// timeout, a broken connection), the charge may still run later: the gate
// voids the id in the background, so the request, answered 503 or passed
// by fail_open, is never charged (see policy.Undo); a block it asked for
// is given back with it.
func (g *Gate) charge(r *http.Request, ent verified, hardware string, now time.Time, info *licenseInfo) (chargeRefund, bool, *policy.Reject) {
	lic := ent.lic
	if lic.CountKey == "" {
		return chargeRefund{}, false, policy.Rejectf(policy.CodeNotAuthorized,
			"the token limits credits or seats but has no %s claim to count them by", g.verifier.names.CreditsKey)
	}
	if rej, done := g.revokedInProcess(lic, now); done {
		return chargeRefund{}, false, rej
	}
	key, limit := licenseKey(lic), int64(-1)
	if lic.HasCredits {
		limit = lic.Credits
	}
	ask := chargeAsk{key: key, hash: ent.keyHash, cost: g.cost, limit: limit, seats: lic.Seats, hw: hardware, fresh: g.seatFresh, now: now}
	var plan blockPlan
	if g.blocks != nil {
		var served bool
		if plan, served = g.chargeFromBlock(&ask); served {
			return g.servedFromBlock(lic, key, plan, info), false, nil
		}
	}
	// Built only now: the store's Charge takes it by pointer, which puts
	// it on the heap, and a request served from a block needs none.
	c := policy.Charge{Key: key, KeyHash: ask.hash, Cost: g.cost, Limit: limit, Seats: lic.Seats, Hardware: hardware,
		SessionTTL: g.sessionTTL, Expires: lic.Expires.Add(g.rules.Leeway), Now: now,
		Block: plan.ask, EndBlock: plan.end}
	if !g.storeInProcess {
		// Only a store across a network can lose a reply; the in-process
		// store answers every call, so its charges need no id to void.
		c.Request = newRequestID()
	}
	// The undo carries the charge's time: the store may keep the
	// charge's record under it (see policy.Undo.Charged).
	undo := policy.Undo{Key: c.Key, Request: c.Request, Charged: c.Now, Hardware: hardware}
	if lic.HasCredits {
		undo.Cost = c.Cost
	}
	start := time.Now()
	res, err := g.store.Charge(r.Context(), &c)
	storeSeconds.Observe(time.Since(start).Seconds())
	if err == nil && res.Outcome == policy.Duplicate {
		// Only a void that overtook this very charge can do this; it
		// counted nothing.
		err = fmt.Errorf("%w: request id %s already undone", policy.ErrStore, c.Request)
	}
	used := res.Used
	if g.blocks != nil {
		used = g.blocks.finish(&ask, plan, res, err, !errors.Is(err, policy.ErrNotSent))
	}
	if err != nil {
		if !errors.Is(err, policy.ErrNotSent) {
			void := undo
			void.Seat, void.Block, void.Now = true, c.Block, g.now()
			g.voids.push(void, "charge not answered")
		}
		g.logger.Error("counter store failed", zap.Error(err), zap.Bool("fail_open", g.failOpen),
			zap.String("jti", lic.ID), zap.String("lic", lic.LicenseID))
		if g.failOpen {
			return chargeRefund{}, true, nil
		}
		return chargeRefund{}, false, &policy.Reject{Code: policy.CodeServiceUnavailable, Status: http.StatusServiceUnavailable,
			Detail: "the counter store is unavailable", RetryAfter: storeRetryAfter}
	}
	switch res.Outcome {
	case policy.Revoked:
		return chargeRefund{}, false, policy.Rejectf(policy.CodeNotAuthorized, "the license has been revoked")
	case policy.CreditsExhausted:
		return chargeRefund{}, false, policy.Rejectf(policy.CodeMaxUseCountExceed,
			"used %d of %d credits, request costs %d", res.Used, c.Limit, c.Cost)
	case policy.SeatsFull:
		return chargeRefund{}, false, &policy.Reject{Code: policy.CodeMaxConcurrentSessions, Status: http.StatusTooManyRequests,
			RetryAfter: max(res.RetryAfter, time.Second), Detail: fmt.Sprintf("all %d seats are held by other devices", lic.Seats)}
	}
	if !lic.HasCredits {
		return chargeRefund{}, false, nil
	}
	setCreditsInfo(info, lic, used)
	return chargeRefund{Undo: undo}, false, nil
}

// chargeFromBlock asks the gateway's credit blocks about a request whose
// license the pushed revocations know to be unrevoked: served is true
// when the request needs no store round trip (its credits come from the
// block, its seat is fresh). Otherwise plan says what the store charge
// carries (a block to ask, a block to end).
func (g *Gate) chargeFromBlock(a *chargeAsk) (plan blockPlan, served bool) {
	revoked, known := g.revocationView.IsRevoked(a.key, a.now)
	if !known {
		return blockPlan{}, false
	}
	if revoked {
		// The store refuses the request; the block goes back.
		g.blocks.dropAsync(a.key)
		return blockPlan{}, false
	}
	plan = g.blocks.begin(a)
	return plan, plan.served
}

// servedFromBlock fills info for a request served from the license's
// block, and returns what would refund it: to the block while it lives,
// else to the store.
func (g *Gate) servedFromBlock(lic *policy.License, key policy.LicenseKey, plan blockPlan, info *licenseInfo) chargeRefund {
	if !lic.HasCredits {
		return chargeRefund{}
	}
	setCreditsInfo(info, lic, plan.used)
	return chargeRefund{Undo: policy.Undo{Key: key, Cost: g.cost}, gen: plan.gen}
}

// setCreditsInfo fills info's credits fields from the credits used.
func setCreditsInfo(info *licenseInfo, lic *policy.License, used int64) {
	info.hasCredits = true
	info.remaining = policy.Remaining(lic.Credits, used)
	// A top up through the admin API can leave more than the token's own
	// credits; the limit then shows what was granted.
	info.limit = max(lic.Credits, info.remaining)
}

// chargeRefund is what gives a request's credits back: the store's Undo
// of its charge, or, for a request served from a credit block, the
// block's generation (never 0; 0 for a charge in the store).
type chargeRefund struct {
	policy.Undo
	gen uint64
}

// licenseKey addresses lic's counters: its issuer and counting key, so
// two issuers' tokens with the same counting key never share a budget.
func licenseKey(lic *policy.License) policy.LicenseKey {
	return policy.LicenseKey{Issuer: lic.Issuer, Key: lic.CountKey}
}

// serveWithRefund passes the request on and gives the credits back, once,
// when the upstream (or a later handler) answers with a refund_on status
// or fails. A client that hung up before any answer (Caddy's 499) is no
// upstream failure: it is refunded only when refund_on names 499 itself.
// A refund the store does not answer is retried in the background; the
// request id makes it count once. refund comes by value: taking its
// address in ServeHTTP would put it on the heap for every request.
func (g *Gate) serveWithRefund(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, refund chargeRefund) error {
	rec := &statusRecorder{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	err := next.ServeHTTP(rec, r)
	status := rec.status
	if err != nil && status == 0 {
		status = http.StatusInternalServerError
		var he caddyhttp.HandlerError
		if errors.As(err, &he) && he.StatusCode != 0 {
			status = he.StatusCode
		}
	}
	if status == 0 {
		status = http.StatusOK
	}
	refunds := g.refundFor(status)
	if status == statusClientClosed && r.Context().Err() != nil {
		// reverse_proxy records 499 for a client that went away; an
		// upstream's own 499 comes with the client still there.
		refunds = g.refundsClientGone()
	}
	if refunds {
		g.refundCharge(r.Context(), &refund, status)
	}
	return err
}

// refundCharge gives a request's credits back, once: to the credit block
// it was served from while that block lives, else to the store, by an
// Undo that ran (a request served from a block has no charge of its own
// in the store: a fresh id makes the undo count once however often it is
// sent).
func (g *Gate) refundCharge(ctx context.Context, refund *chargeRefund, status int) {
	if refund.gen != 0 {
		if g.blocks.refund(refund.Key, refund.gen, refund.Cost) {
			return
		}
		refund.Request = newRequestID()
	}
	u := &refund.Undo
	u.Now, u.Ran = g.now(), true
	if rerr := g.store.Undo(context.WithoutCancel(ctx), u); rerr != nil {
		g.logger.Error("refund failed, retrying in the background", zap.Error(rerr), zap.Int("status", status))
		g.voids.push(*u, "refund not answered")
	}
}

// statusClientClosed is the status Caddy records for a client that closed
// the connection before the answer (nginx's 499).
const statusClientClosed = 499

// statusRecorder notes the final status written by the next handler.
type statusRecorder struct {
	*caddyhttp.ResponseWriterWrapper
	status int
}

// WriteHeader records the first final status.
func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriterWrapper.WriteHeader(code)
}

// Write records an implicit 200.
func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriterWrapper.Write(b)
}

// deny logs and answers a reject, or, in shadow mode, logs it and passes
// the request on.
func (g *Gate) deny(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer,
	ent verified, rej *policy.Reject, now time.Time) error {
	status := g.statusFor(rej)
	lic, kid := ent.lic, ent.kid
	result := "rejected"
	if g.Shadow {
		result = "shadow"
	}
	requestsTotal.WithLabelValues(result, string(rej.Code)).Inc()
	g.report(r, rej, status, lic, kid)
	info := &licenseInfo{lic: lic, token: ent.token, errorCode: string(rej.Code)}
	g.setPlaceholders(repl, info)
	if g.Shadow {
		return next.ServeHTTP(w, r)
	}
	return g.writeReject(w, rej, status, lic, now)
}

// report writes the one "license rejected" line and emits the
// license_rejected event, with the same fields; never the token.
func (g *Gate) report(r *http.Request, rej *policy.Reject, status int, lic *policy.License, kid string) {
	level := zapcore.InfoLevel
	if rej.Code == policy.CodeServiceUnavailable {
		level = zapcore.ErrorLevel
	}
	ce := g.logger.Check(level, "license rejected")
	emit := g.events != nil && g.events.ShouldEmit(EventRejected)
	if ce == nil && !emit {
		return
	}
	var sub, jti, licID, iss string
	if lic != nil {
		sub, jti, licID, iss = lic.Subject, lic.ID, lic.LicenseID, lic.Issuer
	}
	ip, uri := clientIP(r).String(), r.RequestURI
	if emit {
		g.events.Emit(g.ctx, EventRejected, map[string]any{
			// Caddy may name a sibling handler as the event's origin (its
			// provisioning context shares ancestry): say who emits it.
			"module": "http.handlers.license_gate",
			"code":   string(rej.Code), "status": status, "item": g.RequireItem, "sub": sub, "jti": jti,
			"lic": licID, "kid": kid, "iss": iss, "client_ip": ip, "method": r.Method,
			"uri": uri, "detail": rej.Detail, "shadow": g.Shadow,
		})
	}
	if ce == nil {
		return
	}
	ce.Write(
		zap.String("code", string(rej.Code)),
		zap.Int("status", status),
		zap.String("item", g.RequireItem),
		zap.String("sub", sub),
		zap.String("jti", jti),
		zap.String("lic", licID),
		zap.String("kid", kid),
		zap.String("iss", iss),
		zap.String("client_ip", ip),
		zap.String("method", r.Method),
		zap.String("uri", uri),
		zap.String("detail", rej.Detail),
		zap.Bool("shadow", g.Shadow),
	)
}

// licenseInfo backs the {http.license.*} placeholders of one request.
// The replacer holds a copy of it (the request's one allocation for
// placeholders).
type licenseInfo struct {
	lic        *policy.License
	token      string          // the verified token, for claims lic did not keep
	repl       *caddy.Replacer // the request's replacer, where claims lic did not keep are put once decoded
	allowed    bool            // the gate passed the request: only then is sub the user
	hasCredits bool
	remaining  int64
	limit      int64
	errorCode  string
}

const claimPlaceholderPrefix = "http.license.claim."

// setPlaceholders registers the {http.license.*} placeholders and, as
// Caddy's caddyauth does, {http.auth.user.id} for a request the gate
// allowed or {http.auth.candidate.id} for one it rejected (or would have,
// in shadow mode), evaluated lazily.
func (g *Gate) setPlaceholders(repl *caddy.Replacer, info *licenseInfo) {
	if repl == nil {
		return
	}
	p := *info
	p.repl = repl
	repl.Map(p.replace)
}

// replace resolves one placeholder.
func (p licenseInfo) replace(key string) (any, bool) {
	if !strings.HasPrefix(key, "http.") {
		return nil, false
	}
	l := p.lic
	switch key {
	case "http.license.error_code":
		return p.errorCode, true
	case "http.auth.user.id":
		// Known and empty unless allowed: a shadow-mode request passes on,
		// and header_up would otherwise send the placeholder's own text.
		if p.allowed && l != nil {
			return l.Subject, true
		}
		return "", true
	case "http.auth.candidate.id":
		// The sub of a token whose signature held but which was rejected;
		// never a user.
		if !p.allowed && l != nil {
			return l.Subject, true
		}
		return "", true
	}
	if l == nil {
		// Known placeholders of a request without a license are empty.
		if strings.HasPrefix(key, "http.license.") {
			return "", true
		}
		return nil, false
	}
	switch key {
	case "http.license.sub":
		return l.Subject, true
	case "http.license.jti":
		return l.ID, true
	case "http.license.iss":
		return l.Issuer, true
	case "http.license.lic":
		return l.LicenseID, true
	case "http.license.credits_remaining":
		if p.hasCredits {
			return strconv.FormatInt(p.remaining, 10), true
		}
		return "", true
	case "http.license.credits_limit":
		if p.hasCredits {
			return strconv.FormatInt(p.limit, 10), true
		}
		if l.HasCredits {
			return strconv.FormatInt(l.Credits, 10), true
		}
		return "", true
	}
	if name, ok := strings.CutPrefix(key, claimPlaceholderPrefix); ok {
		v, kept := l.Claim(name)
		if !kept {
			return p.unkeptClaim(name), true
		}
		s, _ := policy.ClaimString(v)
		return s, true
	}
	return nil, false
}

// unkeptClaim reads a claim the license did not keep from the request's
// token. The token is decoded once: its claims (and name, when absent)
// become static values of the replacer, which Caddy looks up before this
// provider.
func (p *licenseInfo) unkeptClaim(name string) string {
	claims := payloadClaims(p.token)
	for n, v := range claims {
		s, _ := policy.ClaimString(v)
		p.repl.Set(claimPlaceholderPrefix+n, s)
	}
	if _, ok := claims[name]; !ok {
		p.repl.Set(claimPlaceholderPrefix+name, "")
	}
	s, _ := policy.ClaimString(claims[name])
	return s
}

// payloadClaims decodes the claims of a token that has been verified, for
// placeholders naming claims the cached license did not keep. It never
// fails: an unreadable payload gives no claims.
func payloadClaims(token string) map[string]any {
	claims := map[string]any{}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return claims
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return claims
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	_ = dec.Decode(&claims)
	return claims
}

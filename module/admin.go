package module

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/licensegate/licensegate/policy"
)

func init() {
	caddy.RegisterModule(Admin{})
}

// Admin is the admin API module admin.api.license_gate: it lets an
// operator inspect a license's counters, revoke and unrevoke it, and top
// up or reset its credits, in the counter stores the running config uses.
//
//	GET    /license-gate/licenses/<key>
//	POST   /license-gate/licenses/<key>/credits   {"add": 10} or {"reset": true}
//	GET    /license-gate/licenses/<key>/leases
//	DELETE /license-gate/licenses/<key>/leases/<leaseId>
//	POST   /license-gate/revocations              {"jti": "...", "until": <unix>}
//	DELETE /license-gate/revocations/<key>
//
// <key> is the counting key (the token's jti unless claims { credits_key }
// names another claim), URL-escaped in the path, so it may hold any
// character, "/" included. A license is its issuer and its key: the
// issuer is the iss query parameter (or body field), and may be left out
// while the running config names at most one issuer. With several stores
// (say memory on one route, Redis on another) answers list each store by
// name; the store query parameter picks one. See README.md, "Admin API".
type Admin struct{}

// CaddyModule returns the Caddy module information.
func (Admin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.license_gate",
		New: func() caddy.Module { return new(Admin) },
	}
}

// Routes implements caddy.AdminRouter.
func (a Admin) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminPrefix, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

const (
	adminPrefix        = "/license-gate/"
	defaultRevocation  = 365 * 24 * time.Hour
	defaultTopUpExpiry = 30 * 24 * time.Hour
	maxAdminBody       = 64 << 10
	// maxKeyLen matches the largest token the gate accepts by default:
	// no counting key of a token it counts is longer.
	maxKeyLen = DefaultMaxTokenSize
)

func apiErr(status int, format string, args ...any) error {
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf(format, args...)}
}

// liveStores lists the counter stores of the running config by name, each
// name once (pooled stores of one name, such as two Redis clients with
// different timeouts, hold the same counters), sorted by name.
func liveStores() []namedStore {
	byName := map[string]namedStore{}
	storePool.Range(func(_, v any) bool {
		if s, ok := v.(namedStore); ok {
			if _, seen := byName[s.storeName()]; !seen {
				byName[s.storeName()] = s
			}
		}
		return true
	})
	out := make([]namedStore, 0, len(byName))
	for _, s := range byName {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].storeName() < out[j].storeName() })
	return out
}

// adminRequest is what every endpoint needs: the stores it acts on, all
// of the running config's, and the license's issuer when the query gives it.
type adminRequest struct {
	stores    []namedStore
	all       int
	iss       string
	issGiven  bool
	storeName string
}

func (a Admin) serve(w http.ResponseWriter, r *http.Request) error {
	all := liveStores()
	if len(all) == 0 {
		return apiErr(http.StatusServiceUnavailable, "no license_gate is configured")
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return apiErr(http.StatusBadRequest, "bad query: %v", err)
	}
	req := adminRequest{stores: all, all: len(all), iss: q.Get("iss"), issGiven: q.Has("iss")}
	if q.Has("store") {
		req.storeName = q.Get("store")
		i := sliceIndex(all, req.storeName)
		if i < 0 {
			return apiErr(http.StatusNotFound, "no store named %q (stores: %s)", req.storeName, storeNames(all))
		}
		req.stores = all[i : i+1]
	}
	// The escaped path keeps a "/" inside a key (%2F) apart from the
	// separators.
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), adminPrefix)
	if !ok {
		return apiErr(http.StatusNotFound, "unknown license-gate endpoint %q", r.URL.Path)
	}
	seg := strings.Split(rest, "/")
	switch {
	case len(seg) == 1 && seg[0] == "revocations":
		if r.Method != http.MethodPost {
			return apiErr(http.StatusMethodNotAllowed, "use POST")
		}
		return a.revoke(w, r, req)
	case len(seg) == 2 && seg[0] == "revocations":
		if r.Method != http.MethodDelete {
			return apiErr(http.StatusMethodNotAllowed, "use DELETE")
		}
		key, err := req.pathLicense(seg[1])
		if err != nil {
			return err
		}
		for _, s := range req.stores {
			if err := s.Unrevoke(r.Context(), key); err != nil {
				return storeErr(s, err)
			}
		}
		return a.report(w, r, req, key)
	case len(seg) == 2 && seg[0] == "licenses":
		if r.Method != http.MethodGet {
			return apiErr(http.StatusMethodNotAllowed, "use GET")
		}
		key, err := req.pathLicense(seg[1])
		if err != nil {
			return err
		}
		return a.report(w, r, req, key)
	case (len(seg) == 3 || len(seg) == 4) && seg[0] == "licenses" && seg[2] == "leases":
		return a.leases(w, r, req, seg[1], seg[3:])
	case len(seg) == 3 && seg[0] == "licenses" && seg[2] == "credits":
		if r.Method != http.MethodPost {
			return apiErr(http.StatusMethodNotAllowed, "use POST")
		}
		return a.credits(w, r, req, seg[1])
	}
	return apiErr(http.StatusNotFound, "unknown license-gate endpoint %q (escape a \"/\" in a key as %%2F)", r.URL.Path)
}

func sliceIndex(stores []namedStore, name string) int {
	for i, s := range stores {
		if s.storeName() == name {
			return i
		}
	}
	return -1
}

func storeNames(stores []namedStore) string {
	names := make([]string, len(stores))
	for i, s := range stores {
		names[i] = fmt.Sprintf("%q", s.storeName())
	}
	return strings.Join(names, ", ")
}

// pathLicense is the license an escaped path segment names, with the
// issuer of the query (or the running config's only one).
func (q adminRequest) pathLicense(escaped string) (policy.LicenseKey, error) {
	key, err := url.PathUnescape(escaped)
	if err != nil {
		return policy.LicenseKey{}, apiErr(http.StatusBadRequest, "the license key in the path is not URL-escaped properly: %v", err)
	}
	return q.license(key, nil)
}

// license checks key and settles the issuer: bodyIss (a body's "iss"),
// else the query's, else the running config's only issuer.
func (q adminRequest) license(key string, bodyIss *string) (policy.LicenseKey, error) {
	if key == "" || len(key) > maxKeyLen {
		return policy.LicenseKey{}, apiErr(http.StatusBadRequest, "the license key must be a non-empty string of at most %d bytes", maxKeyLen)
	}
	switch {
	case bodyIss != nil:
		if q.issGiven && q.iss != *bodyIss {
			return policy.LicenseKey{}, apiErr(http.StatusBadRequest, `the "iss" of the body and of the query differ`)
		}
		return policy.LicenseKey{Issuer: *bodyIss, Key: key}, nil
	case q.issGiven:
		return policy.LicenseKey{Issuer: q.iss, Key: key}, nil
	}
	iss := configuredIssuers()
	switch len(iss) {
	case 0:
		// No gate names an issuer, so any iss is counted as it comes:
		// without iss, the license of tokens that carry none.
		return policy.LicenseKey{Key: key}, nil
	case 1:
		return policy.LicenseKey{Issuer: iss[0], Key: key}, nil
	}
	return policy.LicenseKey{}, apiErr(http.StatusBadRequest,
		"the running config accepts several issuers (%s): name the license's with iss", strings.Join(quoteAll(iss), ", "))
}

func quoteAll(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// storeErr is a store's failure: 503 naming the store, or 400 for input
// the store refused as out of range (it changed nothing).
func storeErr(s namedStore, err error) error {
	if errors.Is(err, policy.ErrOutOfRange) {
		return apiErr(http.StatusBadRequest, "store %q: %v", s.storeName(), err)
	}
	return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: fmt.Errorf("store %q: %w", s.storeName(), err)}
}

// decodeBody reads a small JSON object, refusing unknown fields.
func decodeBody(r *http.Request, dst any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return apiErr(http.StatusBadRequest, "bad JSON body: %v", err)
	}
	if dec.More() {
		return apiErr(http.StatusBadRequest, "bad JSON body: trailing data")
	}
	return nil
}

// unixTime reads a unix time in seconds that a store can keep: after now
// and no later than the end of year 9999.
func unixTime(field string, v int64, now time.Time) (time.Time, error) {
	if v <= now.Unix() || v > policy.MaxTime.Unix() {
		return time.Time{}, apiErr(http.StatusBadRequest, "%q must be a unix time in the future, at most %d (the end of year 9999)", field, policy.MaxTime.Unix())
	}
	return time.Unix(v, 0), nil
}

// revoke revokes a license in every store (or the one named): a revoked
// license should be refused on every route.
func (a Admin) revoke(w http.ResponseWriter, r *http.Request, req adminRequest) error {
	var body struct {
		Issuer *string `json:"iss"`
		JTI    string  `json:"jti"`
		Key    string  `json:"key"`
		Until  *int64  `json:"until"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	k := body.JTI
	if k == "" {
		k = body.Key
	}
	if k == "" {
		return apiErr(http.StatusBadRequest, `"jti" (or "key") is required`)
	}
	key, err := req.license(k, body.Issuer)
	if err != nil {
		return err
	}
	now := time.Now()
	until := now.Add(defaultRevocation)
	if body.Until != nil {
		if until, err = unixTime("until", *body.Until, now); err != nil {
			return err
		}
	}
	for _, s := range req.stores {
		if err := s.Revoke(r.Context(), key, until); err != nil {
			return storeErr(s, err)
		}
		// This gateway's block goes back at once; the others' as their
		// revocation views learn of it.
		dropBlock(r.Context(), s, key)
	}
	return a.report(w, r, req, key)
}

// credits tops up or resets a license's credits in one store: with
// several, a top up applied to each would grant it several times over, so
// the store must be named.
func (a Admin) credits(w http.ResponseWriter, r *http.Request, req adminRequest, escapedKey string) error {
	var body struct {
		Issuer  *string `json:"iss"`
		Add     *int64  `json:"add"`
		Reset   bool    `json:"reset"`
		Expires *int64  `json:"expires"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	k, err := url.PathUnescape(escapedKey)
	if err != nil {
		return apiErr(http.StatusBadRequest, "the license key in the path is not URL-escaped properly: %v", err)
	}
	key, err := req.license(k, body.Issuer)
	if err != nil {
		return err
	}
	if body.Add == nil && !body.Reset {
		return apiErr(http.StatusBadRequest, `give "add" (credits to top up) and/or "reset": true`)
	}
	var add int64
	if body.Add != nil {
		add = *body.Add
		if add < -policy.MaxCredits || add > policy.MaxCredits {
			return apiErr(http.StatusBadRequest, `"add" is out of range (at most %d either way)`, int64(policy.MaxCredits))
		}
	}
	now := time.Now()
	expires := now.Add(defaultTopUpExpiry)
	if body.Expires != nil {
		if expires, err = unixTime("expires", *body.Expires, now); err != nil {
			return err
		}
	}
	if len(req.stores) > 1 {
		return apiErr(http.StatusBadRequest, "the running config has several stores (%s): name one with ?store=", storeNames(req.stores))
	}
	s := req.stores[0]
	// This gateway's block goes back first, so the change applies to
	// credits it no longer holds; the other gateways drop theirs when the
	// store tells them of the change (policy.Blocks.WatchCredits).
	dropBlock(r.Context(), s, key)
	if _, err := s.AdjustCredits(r.Context(), key, add, body.Reset, expires); err != nil {
		return storeErr(s, err)
	}
	return a.report(w, r, req, key)
}

// report answers with what the stores hold for key: one store's view as
// a flat object (naming the store when the config has several), or, for
// several stores, each store's view under "stores".
func (a Admin) report(w http.ResponseWriter, r *http.Request, req adminRequest, key policy.LicenseKey) error {
	views := make([]usageJSON, len(req.stores))
	for i, s := range req.stores {
		u, err := s.Usage(r.Context(), key, time.Now())
		if err != nil {
			return storeErr(s, err)
		}
		views[i] = usageJSON{Issuer: u.Issuer, Key: u.Key, Used: u.Used, Leased: u.Leased, Revoked: u.Revoked,
			RevokedUntil: u.RevokedUntil, Seats: u.Seats}
		if u.HasLimit {
			views[i].Limit, views[i].Left = &u.Limit, &u.Left
		}
		if req.all > 1 {
			views[i].Store = s.storeName()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if len(views) == 1 {
		return json.NewEncoder(w).Encode(views[0])
	}
	return json.NewEncoder(w).Encode(storesJSON{Issuer: key.Issuer, Key: key.Key, Stores: views})
}

// usageJSON is the admin API's view of a license in one store:
// credits_limit and credits_left appear once a charge under the key has
// been seen. credits_used excludes the credits leased in gateways' credit
// blocks (credits_leased), some of which may have been served already;
// credits_left excludes both.
type usageJSON struct {
	Store        string `json:"store,omitempty"`
	Issuer       string `json:"iss,omitempty"`
	Key          string `json:"key"`
	Used         int64  `json:"credits_used"`
	Leased       int64  `json:"credits_leased"`
	Limit        *int64 `json:"credits_limit,omitempty"`
	Left         *int64 `json:"credits_left,omitempty"`
	Seats        int64  `json:"seats_in_use"`
	Revoked      bool   `json:"revoked"`
	RevokedUntil int64  `json:"revoked_until,omitempty"`
}

// storesJSON is the view of a license across several stores.
type storesJSON struct {
	Issuer string      `json:"iss,omitempty"`
	Key    string      `json:"key"`
	Stores []usageJSON `json:"stores"`
}

// blockDropper is a store whose gateway holds credit blocks.
type blockDropper interface {
	dropBlock(ctx context.Context, key policy.LicenseKey)
}

// dropBlock returns this gateway's block of key in s, if it holds one.
func dropBlock(ctx context.Context, s namedStore, key policy.LicenseKey) {
	if d, ok := s.(blockDropper); ok {
		d.dropBlock(ctx, key)
	}
}

// Interface guard.
var _ caddy.AdminRouter = Admin{}

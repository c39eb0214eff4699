package module

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
// up or reset its credits, on every counter store the running config uses.
//
//	GET    /license-gate/licenses/<key>
//	POST   /license-gate/licenses/<key>/credits   {"add": 10} or {"reset": true}
//	POST   /license-gate/revocations              {"jti": "...", "until": <unix>}
//	DELETE /license-gate/revocations/<key>
//
// <key> is the counting key: the token's jti unless claims { credits_key }
// names another claim.
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
	maxKeyLen          = 512
)

func apiErr(status int, format string, args ...any) error {
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf(format, args...)}
}

// liveStores lists the counter stores of the running config, in a stable
// order.
func liveStores() []policy.Counters {
	type entry struct {
		key string
		c   policy.Counters
	}
	var list []entry
	storePool.Range(func(k, v any) bool {
		if c, ok := v.(policy.Counters); ok {
			list = append(list, entry{k.(string), c})
		}
		return true
	})
	sort.Slice(list, func(i, j int) bool { return list[i].key < list[j].key })
	out := make([]policy.Counters, len(list))
	for i, e := range list {
		out[i] = e.c
	}
	return out
}

func (a Admin) serve(w http.ResponseWriter, r *http.Request) error {
	stores := liveStores()
	if len(stores) == 0 {
		return apiErr(http.StatusServiceUnavailable, "no license_gate is configured")
	}
	rest := strings.TrimPrefix(r.URL.Path, adminPrefix)
	switch {
	case rest == "revocations":
		if r.Method != http.MethodPost {
			return apiErr(http.StatusMethodNotAllowed, "use POST")
		}
		return a.revoke(w, r, stores)
	case strings.HasPrefix(rest, "revocations/"):
		if r.Method != http.MethodDelete {
			return apiErr(http.StatusMethodNotAllowed, "use DELETE")
		}
		key, err := pathKey(r, strings.TrimPrefix(rest, "revocations/"))
		if err != nil {
			return err
		}
		for _, s := range stores {
			if err := s.Unrevoke(r.Context(), key); err != nil {
				return storeErr(err)
			}
		}
		return a.report(w, r, stores[0], key)
	case strings.HasPrefix(rest, "licenses/"):
		rest = strings.TrimPrefix(rest, "licenses/")
		if k, ok := strings.CutSuffix(rest, "/credits"); ok {
			if r.Method != http.MethodPost {
				return apiErr(http.StatusMethodNotAllowed, "use POST")
			}
			key, err := pathKey(r, k)
			if err != nil {
				return err
			}
			return a.credits(w, r, stores, key)
		}
		if r.Method != http.MethodGet {
			return apiErr(http.StatusMethodNotAllowed, "use GET")
		}
		key, err := pathKey(r, rest)
		if err != nil {
			return err
		}
		return a.report(w, r, stores[0], key)
	}
	return apiErr(http.StatusNotFound, "unknown license-gate endpoint %q", r.URL.Path)
}

// pathKey is the license a path addresses: the counting key in the path
// and the issuer in the iss query parameter (empty when not given).
func pathKey(r *http.Request, s string) (policy.LicenseKey, error) {
	if s == "" || strings.Contains(s, "/") || len(s) > maxKeyLen {
		return policy.LicenseKey{}, apiErr(http.StatusBadRequest, "the license key in the path must be a non-empty single segment of at most %d bytes", maxKeyLen)
	}
	return policy.LicenseKey{Issuer: r.URL.Query().Get("iss"), Key: s}, nil
}

func storeErr(err error) error {
	return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
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

func (a Admin) revoke(w http.ResponseWriter, r *http.Request, stores []policy.Counters) error {
	var body struct {
		Issuer string `json:"iss,omitempty"`
		JTI    string `json:"jti"`
		Key    string `json:"key"`
		Until  *int64 `json:"until"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	key := policy.LicenseKey{Issuer: body.Issuer, Key: body.JTI}
	if key.Key == "" {
		key.Key = body.Key
	}
	if key.Key == "" || len(key.Key) > maxKeyLen {
		return apiErr(http.StatusBadRequest, `"jti" is required (a string of at most %d bytes)`, maxKeyLen)
	}
	now := time.Now()
	until := now.Add(defaultRevocation)
	if body.Until != nil {
		until = time.Unix(*body.Until, 0)
		if !until.After(now) {
			return apiErr(http.StatusBadRequest, `"until" must be a unix time in the future`)
		}
	}
	for _, s := range stores {
		if err := s.Revoke(r.Context(), key, until); err != nil {
			return storeErr(err)
		}
	}
	return a.report(w, r, stores[0], key)
}

func (a Admin) credits(w http.ResponseWriter, r *http.Request, stores []policy.Counters, key policy.LicenseKey) error {
	var body struct {
		Add     *int64 `json:"add"`
		Reset   bool   `json:"reset"`
		Expires *int64 `json:"expires"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if body.Add == nil && !body.Reset {
		return apiErr(http.StatusBadRequest, `give "add" (credits to top up) and/or "reset": true`)
	}
	var add int64
	if body.Add != nil {
		add = *body.Add
		if add < -policy.MaxCredits || add > policy.MaxCredits {
			return apiErr(http.StatusBadRequest, `"add" is out of range`)
		}
	}
	expires := time.Now().Add(defaultTopUpExpiry)
	if body.Expires != nil {
		expires = time.Unix(*body.Expires, 0)
	}
	for _, s := range stores {
		if _, err := s.AdjustCredits(r.Context(), key, add, body.Reset, expires); err != nil {
			return storeErr(err)
		}
	}
	return a.report(w, r, stores[0], key)
}

func (a Admin) report(w http.ResponseWriter, r *http.Request, s policy.Counters, key policy.LicenseKey) error {
	u, err := s.Usage(r.Context(), key, time.Now())
	if err != nil {
		if errors.Is(err, policy.ErrStore) {
			return storeErr(err)
		}
		return err
	}
	out := usageJSON{Issuer: u.Issuer, Key: u.Key, Used: u.Used, Revoked: u.Revoked, RevokedUntil: u.RevokedUntil, Seats: u.Seats}
	if u.HasLimit {
		out.Limit, out.Left = &u.Limit, &u.Left
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(out)
}

// usageJSON is the admin API's view of a license: credits_limit and
// credits_left appear once a charge under the key has been seen.
type usageJSON struct {
	Issuer       string `json:"iss,omitempty"`
	Key          string `json:"key"`
	Used         int64  `json:"credits_used"`
	Limit        *int64 `json:"credits_limit,omitempty"`
	Left         *int64 `json:"credits_left,omitempty"`
	Seats        int64  `json:"seats_in_use"`
	Revoked      bool   `json:"revoked"`
	RevokedUntil int64  `json:"revoked_until,omitempty"`
}

// Interface guard.
var _ caddy.AdminRouter = Admin{}

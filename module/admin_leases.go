package module

import (
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/licensegate/licensegate/policy"
)

// Lease endpoints of the admin API (see Admin):
//
//	GET    /license-gate/licenses/<key>/leases            the live leases
//	DELETE /license-gate/licenses/<key>/leases/<leaseId>  release one
//
// The issuer and the store are chosen as for the other license paths.

// releasedRevocationSlack keeps a released lease's token revoked past its
// end, beyond any gate's leeway.
const releasedRevocationSlack = 10 * time.Minute

// leaseJSON is the admin API's view of a lease.
type leaseJSON struct {
	ID       string `json:"lease_id"`
	Item     string `json:"item"`
	Hardware string `json:"hw"`
	Until    int64  `json:"until"`
}

func toLeaseJSON(l policy.Lease) leaseJSON {
	return leaseJSON{ID: l.ID, Item: l.Item, Hardware: l.Hardware, Until: l.Until.Unix()}
}

// leases serves the lease endpoints of the license in the escaped path
// segment k; rest is empty for the list, or the escaped lease id.
func (a Admin) leases(w http.ResponseWriter, r *http.Request, req adminRequest, k string, rest []string) error {
	key, err := req.pathLicense(k)
	if err != nil {
		return err
	}
	now := time.Now()
	if len(rest) == 0 {
		if r.Method != http.MethodGet {
			return apiErr(http.StatusMethodNotAllowed, "use GET")
		}
		out := []leaseJSON{}
		for _, s := range req.stores {
			ls, ok := s.(policy.Leases)
			if !ok {
				continue
			}
			live, err := ls.LiveLeases(r.Context(), key, now)
			if err != nil {
				return storeErr(s, err)
			}
			for _, l := range live {
				out = append(out, toLeaseJSON(l))
			}
		}
		return writeAdminJSON(w, map[string]any{"iss": key.Issuer, "key": key.Key, "leases": out})
	}
	if r.Method != http.MethodDelete {
		return apiErr(http.StatusMethodNotAllowed, "use DELETE")
	}
	id, err := url.PathUnescape(rest[0])
	if err != nil || id == "" || len(id) > maxLeaseIDLen {
		return apiErr(http.StatusBadRequest, "the lease id must be a URL-escaped string of 1 to %d bytes", maxLeaseIDLen)
	}
	var released *policy.Lease
	for _, s := range req.stores {
		ls, ok := s.(policy.Leases)
		if !ok {
			continue
		}
		l, found, err := ls.ReleaseLease(r.Context(), key, id, now)
		if err != nil {
			return storeErr(s, err)
		}
		if found {
			released = &l
			if err := s.Revoke(r.Context(), policy.LicenseKey{Issuer: leaseIssuer(l, key), Key: l.ID},
				l.Until.Add(releasedRevocationSlack)); err != nil {
				return storeErr(s, err)
			}
		}
	}
	if released == nil {
		return apiErr(http.StatusNotFound, "no live lease %q of license %q", id, key.Key)
	}
	return writeAdminJSON(w, map[string]any{"released": toLeaseJSON(*released)})
}

// leaseIssuer is the iss of lease l's token, under which a gate looks its
// revocation up: the issuer that leased it, which for a license of a
// trusted OpenID issuer is not the license's. A lease recorded without
// its issuer was leased by the license's own issuer.
func leaseIssuer(l policy.Lease, license policy.LicenseKey) string {
	if l.Issuer != "" {
		return l.Issuer
	}
	return license.Issuer
}

// maxLeaseIDLen bounds a lease id in a path.
const maxLeaseIDLen = 512

func writeAdminJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

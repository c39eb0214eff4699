package issuer

import (
	"fmt"
	"time"

	"github.com/licensegate/licensegate/policy"
)

// DefaultLeaseTTL is the longest lease when lease_ttl is not configured.
const DefaultLeaseTTL = time.Hour

// LeasePlan is an /authz/ request checked against its license: the items
// the license refuses outright, and the store request for the others.
type LeasePlan struct {
	// Refused holds, per request item, the reject found before the store
	// (nil for items that go to the store).
	Refused []*policy.Reject
	// Store is the lease request for the items not refused; nil when none
	// is left. Its Items are in request order.
	Store *policy.LeaseRequest
	// index maps Store.Items back to request items.
	index []int
}

// LeaseLimits are the issuer's settings that bound a lease.
type LeaseLimits struct {
	// TTL is the longest lease (lease_ttl); 0 means DefaultLeaseTTL.
	TTL time.Duration
	// Leeway is the clock skew allowed on the license's times.
	Leeway time.Duration
}

// PlanLeases applies the gate's rules per item (validity, item, version,
// hardware, source IP) to the license and builds the store request: one
// seat keyed by the request's hardware id, each item's consumeCount
// (default 1 for a new lease of a license with credits, 0 for a renewal)
// charged to the license's credits, leases ending at the earliest of now
// plus consumeDuration, now plus lease_ttl, and the license's end. q
// carries the request time and client address; newID makes lease ids.
func PlanLeases(lic *policy.License, key policy.LicenseKey, req *AuthzRequest, q policy.Request,
	limits LeaseLimits, newID func() string) *LeasePlan {
	p := &LeasePlan{Refused: make([]*policy.Reject, len(req.Items))}
	q.Version, q.VersionSent = req.Version, req.VersionSent
	q.Hardware, q.HardwareSent = req.Hardware, req.HardwareSent
	ttl := limits.TTL
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	if req.ConsumeDuration > 0 && req.ConsumeDuration < ttl {
		ttl = req.ConsumeDuration
	}
	until := q.Now.Add(ttl)
	end := lic.Expires
	if !lic.ValidTill.IsZero() && lic.ValidTill.Before(end) {
		end = lic.ValidTill
	}
	if end.Before(until) {
		until = end
	}
	var common *policy.Reject
	switch {
	case key.Key == "":
		common = policy.Rejectf(policy.CodeNotAuthorized, "the license has no key to count leases by")
	case req.LicenseID != "" && req.LicenseID != lic.LicenseID && req.LicenseID != key.Key:
		common = policy.Rejectf(policy.CodeNoLicenseFound, "the token is not license %.64q", req.LicenseID)
	case !until.After(q.Now):
		common = policy.Rejectf(policy.CodeLicenseExpired, "the license ends at %d", end.Unix())
	}
	limit := int64(-1)
	if lic.HasCredits {
		limit = lic.Credits
	}
	for i, it := range req.Items {
		if common != nil {
			p.Refused[i] = common
			continue
		}
		rules := policy.Rules{RequireItem: it.Name, Leeway: limits.Leeway}
		if rej := rules.Check(lic, &q); rej != nil {
			p.Refused[i] = rej
			continue
		}
		if p.Store == nil {
			p.Store = &policy.LeaseRequest{License: key, Hardware: req.Hardware, Seats: lic.Seats, Limit: limit,
				Until: until, Expires: lic.Expires.Add(limits.Leeway), Now: q.Now, CheckOnly: req.CheckOnly}
		}
		cost := req.ConsumeCount
		if cost == 0 && it.LeaseID == "" && lic.HasCredits {
			cost = 1
		}
		li := policy.LeaseItem{Item: it.Name, LeaseID: it.LeaseID, Cost: cost}
		if it.LeaseID == "" {
			li.NewID = newID()
		}
		p.Store.Items = append(p.Store.Items, li)
		p.index = append(p.index, i)
	}
	return p
}

// Answers turns the plan's refusals and the store's results (one per
// Store item, nil when there was no store request) into one answer per
// request item, in order.
func (p *LeasePlan) Answers(req *AuthzRequest, results []policy.LeaseResult, terms *LeaseTerms) []AuthzAnswer {
	out := make([]AuthzAnswer, len(req.Items))
	for i, rej := range p.Refused {
		if rej != nil {
			out[i] = AuthzAnswer{Reject: rej, Error: ErrorClaims(req.Items[i].Name, rej, terms.Issuer, terms.Now)}
		}
	}
	for j, res := range results {
		i := p.index[j]
		name := req.Items[i].Name
		if rej := leaseReject(&res, p.Store, j); rej != nil {
			out[i] = AuthzAnswer{Reject: rej, Error: ErrorClaims(name, rej, terms.Issuer, terms.Now)}
			continue
		}
		c := LeaseClaims(name, res.Lease, terms)
		if p.Store.CheckOnly {
			// A check takes no lease: its answer has no lease id and no
			// exp, so no gate accepts it as a lease (exp is required).
			delete(c, "jti")
			delete(c, "exp")
			delete(c, "rfr")
		}
		out[i] = AuthzAnswer{Claims: c}
	}
	return out
}

// leaseReject is the reject for a store outcome, nil when granted.
func leaseReject(res *policy.LeaseResult, r *policy.LeaseRequest, j int) *policy.Reject {
	switch res.Outcome {
	case policy.LeaseGranted:
		return nil
	case policy.LeaseRevoked:
		return policy.Rejectf(policy.CodeNotAuthorized, "the license has been revoked")
	case policy.LeaseCreditsExhausted:
		return policy.Rejectf(policy.CodeMaxUseCountExceed, "used %d of %d credits, the item costs %d",
			res.Used, r.Limit, r.Items[j].Cost)
	case policy.LeaseSeatsFull:
		return &policy.Reject{Code: policy.CodeLicenseQuotaExceeded, RetryAfter: res.RetryAfter,
			Detail: fmt.Sprintf("all %d seats are held by other devices' leases", r.Seats)}
	case policy.LeaseNotMatching:
		return policy.Rejectf(policy.CodeLeaseIDNotMatching, "lease %.64q is not a live lease of this device for %.64q",
			r.Items[j].LeaseID, r.Items[j].Item)
	}
	return policy.Rejectf(policy.CodeServiceUnavailable, "unknown lease outcome %d", res.Outcome)
}

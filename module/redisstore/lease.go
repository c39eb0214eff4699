package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/licensegate/licensegate/policy"
)

// leaseKeys returns the keys the lease scripts take (see lease_scripts.go):
// the license's used, limit and revoked keys, which the gate's charge
// uses too, and its leases, lease_devices, lease_items, lease_req and
// lease_undo keys, all under the license's hash tag.
func (s *Store) leaseKeys(license policy.LicenseKey) []string {
	k, base := s.keys(license), s.base(license)
	return []string{k[0], k[4], k[2], base + "leases", base + "lease_devices", base + "lease_items",
		base + "lease_req", base + "lease_undo"}
}

// leaseRow is the number of values takeLeasesLua returns per item.
const leaseRow = 6

// TakeLeases implements policy.Leases in one round trip (see
// takeLeasesLua).
func (s *Store) TakeLeases(ctx context.Context, r *policy.LeaseRequest) ([]policy.LeaseResult, error) {
	check := "0"
	if r.CheckOnly {
		check = "1"
	}
	args := make([]any, 0, 11+4*len(r.Items))
	args = append(args, r.Now.UnixMilli(), r.Hardware, r.Seats, r.Limit, expiresMs(r.Until), expiresMs(r.Expires), check,
		r.Issuer, r.Request, r.Now.Add(-policy.UndoWindow).UnixMilli(), r.Now.Add(policy.UndoWindow).UnixMilli())
	for _, it := range r.Items {
		args = append(args, it.Item, it.LeaseID, it.NewID, it.Cost)
	}
	v, err := s.runOnce(ctx, takeLeasesScript, s.leaseKeys(r.License), args...)
	if err != nil {
		return nil, storeErr("take leases", err)
	}
	rows, ok := v.([]any)
	if ok && len(rows) == 1 && rows[0] == int64(-1) {
		// Only an undo that overtook this very take can do this; it
		// counted nothing.
		return nil, storeErr("take leases", fmt.Errorf("%w: request id %s", ErrUndone, r.Request))
	}
	if !ok || len(rows) != leaseRow*len(r.Items) {
		return nil, storeErr("take leases", fmt.Errorf("unexpected reply %v", v))
	}
	out := make([]policy.LeaseResult, len(r.Items))
	for i := range out {
		row := rows[leaseRow*i : leaseRow*i+leaseRow]
		code, ok1 := row[0].(int64)
		id, ok2 := row[1].(string)
		used, err := parseCount(row[2])
		retry, ok3 := row[3].(int64)
		replaced, ok4 := row[4].(string)
		replacedUntil, ok5 := row[5].(int64)
		if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || err != nil || code < 0 || code > int64(policy.LeaseNotMatching) {
			return nil, storeErr("take leases", fmt.Errorf("unexpected reply %v", v))
		}
		res := policy.LeaseResult{Outcome: policy.LeaseOutcome(code), Used: used}
		switch res.Outcome {
		case policy.LeaseGranted:
			res.Lease = policy.Lease{ID: id, Item: r.Items[i].Item, Hardware: r.Hardware, Until: r.Until, Issuer: r.Issuer}
			if replaced != "" {
				res.Replaced = policy.Lease{ID: replaced, Item: r.Items[i].Item, Hardware: r.Hardware,
					Until: time.UnixMilli(replacedUntil), Issuer: r.Issuer}
			}
		case policy.LeaseSeatsFull:
			res.RetryAfter = time.Duration(retry) * time.Millisecond
		}
		out[i] = res
	}
	return out, nil
}

// ErrUndone is the error (beside policy.ErrStore) of a TakeLeases whose
// request id was undone before it ran: it counted nothing.
var ErrUndone = errors.New("request undone before it ran")

// UndoLeases implements policy.LeaseUndoer in one round trip (see
// undoLeasesLua). It is idempotent, so a caller may send it again until it
// is answered.
func (s *Store) UndoLeases(ctx context.Context, u *policy.LeaseUndo) error {
	_, err := s.runOnce(ctx, undoLeasesScript, s.leaseKeys(u.License), u.Now.UnixMilli(), u.Request,
		u.Now.Add(-policy.UndoWindow).UnixMilli(), u.Now.Add(policy.UndoWindow).UnixMilli())
	if err != nil {
		return storeErr("undo leases", err)
	}
	return nil
}

// ReleaseLease implements policy.Leases.
func (s *Store) ReleaseLease(ctx context.Context, license policy.LicenseKey, id string, now time.Time) (policy.Lease, bool, error) {
	v, err := s.runOnce(ctx, releaseLeaseScript, s.leaseKeys(license), now.UnixMilli(), id)
	if err != nil {
		return policy.Lease{}, false, storeErr("release lease", err)
	}
	row, ok := v.([]any)
	if !ok || (len(row) != 0 && len(row) != 3 && len(row) != 4) {
		return policy.Lease{}, false, storeErr("release lease", fmt.Errorf("unexpected reply %v", v))
	}
	if len(row) == 0 {
		return policy.Lease{}, false, nil
	}
	l, err := leaseFrom(id, row)
	if err != nil {
		return policy.Lease{}, false, storeErr("release lease", err)
	}
	return l, true, nil
}

// LiveLeases implements policy.Leases.
func (s *Store) LiveLeases(ctx context.Context, license policy.LicenseKey, now time.Time) ([]policy.Lease, error) {
	// Read only, so go-redis's retries are harmless.
	v, err := liveLeasesScript.Run(ctx, s.client, s.leaseKeys(license), now.UnixMilli()).Result()
	if err != nil {
		return nil, storeErr("live leases", err)
	}
	rows, ok := v.([]any)
	if !ok || len(rows)%5 != 0 {
		return nil, storeErr("live leases", fmt.Errorf("unexpected reply %v", v))
	}
	out := make([]policy.Lease, 0, len(rows)/5)
	for i := 0; i < len(rows); i += 5 {
		id, _ := rows[i].(string)
		l, err := leaseFrom(id, rows[i+1:i+5])
		if err != nil {
			return nil, storeErr("live leases", err)
		}
		out = append(out, l)
	}
	policy.SortLeases(out)
	return out, nil
}

// leaseFrom reads a lease record, {until ms, item, hw[, issuer]} (a lease
// recorded before issuers were kept has none).
func leaseFrom(id string, row []any) (policy.Lease, error) {
	until, ok1 := row[0].(string)
	item, ok2 := row[1].(string)
	hw, ok3 := row[2].(string)
	ms, err := strconv.ParseInt(until, 10, 64)
	if !ok1 || !ok2 || !ok3 || err != nil {
		return policy.Lease{}, fmt.Errorf("unexpected lease record %v", row)
	}
	l := policy.Lease{ID: id, Item: item, Hardware: hw, Until: time.UnixMilli(ms)}
	if len(row) > 3 {
		l.Issuer, _ = row[3].(string)
	}
	return l, nil
}

var (
	_ policy.Leases      = (*Store)(nil)
	_ policy.LeaseUndoer = (*Store)(nil)
)

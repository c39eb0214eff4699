package module

import (
	"fmt"

	"github.com/licensegate/licensegate/policy"
)

// LoadStore returns the counter store sc configures (nil: the in-memory
// store) from the pool the gates use, so a handler in the same Caddy that
// names the same store (license_issuer's leases) counts in the very
// counters the gates read: one credits budget, one revocation list. Call
// release once in the handler's Cleanup.
func LoadStore(sc *StoreConfig) (store policy.Counters, release func(), err error) {
	g := &Gate{Store: sc}
	if err := g.provisionStore(); err != nil {
		return nil, nil, err
	}
	key := g.storeKey
	return g.store, func() { _, _ = storePool.Delete(key) }, nil
}

// LoadLeaseStore is LoadStore for a store that also holds leases; every
// store licensegate provides does.
func LoadLeaseStore(sc *StoreConfig) (store LeaseStore, release func(), err error) {
	c, release, err := LoadStore(sc)
	if err != nil {
		return nil, nil, err
	}
	s, ok := c.(LeaseStore)
	if !ok {
		release()
		return nil, nil, fmt.Errorf("store: %T holds no leases", c)
	}
	return s, release, nil
}

// LeaseStore counts credits and holds leases in the same counters.
type LeaseStore interface {
	policy.Counters
	policy.Leases
	// LeaseRequestID is a fresh request id for a TakeLeases, so that
	// VoidLeases can take it back; "" for the in-process store, which
	// answers every call and so never leaves a take in doubt.
	LeaseRequestID() string
	// VoidLeases takes back, in the background and exactly once, a
	// TakeLeases whose reply was given up on (see policy.LeaseUndo): it
	// joins the store's queue of voids, retried until the store answers.
	VoidLeases(u policy.LeaseUndo, why string)
}

// LeaseRequestID implements LeaseStore: none, see there.
func (m *memoryStore) LeaseRequestID() string { return "" }

// VoidLeases implements LeaseStore.
func (m *memoryStore) VoidLeases(u policy.LeaseUndo, why string) { m.voids.pushLease(u, why) }

// LeaseRequestID implements LeaseStore.
func (r redisCounters) LeaseRequestID() string { return newRequestID() }

// VoidLeases implements LeaseStore.
func (r redisCounters) VoidLeases(u policy.LeaseUndo, why string) { r.voids.pushLease(u, why) }

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
}

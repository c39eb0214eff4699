package module

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/licensegate/licensegate/policy"
)

// StoreConfig selects and configures the counter store.
type StoreConfig struct {
	// Type is "memory" (the default: a single node) or "redis".
	Type string `json:"type,omitempty"`
	// Addresses of Redis: one is a single node, several a Cluster, or the
	// Sentinels when MasterName is set. Default 127.0.0.1:6379.
	Addresses []string `json:"addresses,omitempty"`
	// MasterName selects Sentinel.
	MasterName string `json:"master_name,omitempty"`
	// Username for Redis ACLs; placeholders are replaced.
	Username string `json:"username,omitempty"`
	// Password for Redis; placeholders ({env.REDIS_PASSWORD},
	// {file./run/secrets/redis}) are replaced. Never logged.
	Password string `json:"password,omitempty"`
	// DB is the database number (single node and Sentinel).
	DB int `json:"db,omitempty"`
	// TLS connects with TLS.
	TLS bool `json:"tls,omitempty"`
	// Timeout bounds each store operation. Default 100ms.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// PoolSize is the connection pool size per node.
	PoolSize int `json:"pool_size,omitempty"`
	// Prefix starts every key. Default "lg:". It may not contain { or }.
	Prefix string `json:"prefix,omitempty"`
	// DurabilityReplicas, when above 0, makes a charge count only once
	// that many replicas acknowledged it (WAIT); otherwise the request
	// fails per on_store_error and the charge is voided.
	DurabilityReplicas int `json:"durability_replicas,omitempty"`
	// DurabilityTimeout bounds the wait for the replicas. Default: Timeout.
	DurabilityTimeout caddy.Duration `json:"durability_timeout,omitempty"`
	// Revocations is "pushed" (the default: each gateway keeps the
	// revocations in process, and a token with neither credits nor seats
	// costs no round trip) or "per_request" (every counting request asks
	// the store).
	Revocations string `json:"revocations,omitempty"`
	// Blocks is "on" (the default) or "off". On, a busy license's
	// requests are served from blocks of credits this gateway reserves
	// in the store, with no round trip per request, and a device holding
	// its seat refreshes it at most once a second (see README.md, "Credit
	// blocks"); off, every counting request makes one round trip. Blocks
	// need revocations pushed: with per_request they are off (and "on"
	// is refused).
	Blocks string `json:"blocks,omitempty"`
}

// storePool shares stores across config reloads and between gates, so a
// reload keeps the counts and reuses connections.
var storePool = caddy.NewUsagePool()

// memoryStore is the pooled in-memory store with its sweeper.
type memoryStore struct {
	*policy.Memory
	voids *voidQueue
	stop  chan struct{}
	done  chan struct{}
}

func newMemoryStore() *memoryStore {
	m := &memoryStore{Memory: policy.NewMemory(), stop: make(chan struct{}), done: make(chan struct{})}
	// The memory store always answers; the queue is there for the same
	// code path as Redis.
	m.voids = newVoidQueue(m.Memory, "memory", DefaultVoidQueue, time.Second)
	go func() {
		defer close(m.done)
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case now := <-t.C:
				m.Sweep(now)
			}
		}
	}()
	return m
}

// storeName implements namedStore.
func (m *memoryStore) storeName() string { return "memory" }

// voidQueue implements namedStore.
func (m *memoryStore) voidQueue() *voidQueue { return m.voids }

// namedStore is a pooled counter store with the name the admin API shows
// it under ("memory", or "redis <addresses> <prefix>") and its queue of
// undos to retry.
type namedStore interface {
	policy.Counters
	storeName() string
	voidQueue() *voidQueue
}

// Destruct stops the sweeper; it implements caddy.Destructor.
func (m *memoryStore) Destruct() error {
	m.voids.close()
	close(m.stop)
	<-m.done
	return nil
}

func (g *Gate) provisionStore() error {
	sc := g.Store
	if sc == nil || sc.Type == "" || sc.Type == "memory" {
		g.storeKey = "memory"
		val, _, err := storePool.LoadOrNew(g.storeKey, func() (caddy.Destructor, error) {
			return newMemoryStore(), nil
		})
		if err != nil {
			return err
		}
		g.store = val.(*memoryStore)
		g.storeInProcess = true
		g.voids = g.store.(*memoryStore).voids
		return nil
	}
	if sc.Type != "redis" {
		return fmt.Errorf("store: unknown type %q (memory or redis)", sc.Type)
	}
	return g.provisionRedis(sc)
}

// Package redisstore is the Redis implementation of policy.Counters, shared
// by every gateway instance that points at the same Redis (single node,
// Sentinel or Cluster).
//
// Each request costs one round trip: a Lua script checks the revocation,
// takes the seat and charges the credits atomically. All keys of one
// license share a hash tag derived from its issuer and counting key (see
// Tag), `<prefix>{<tag>}:used`, `…:seats`, `…:revoked`, `…:seats_ttl`,
// `…:limit`, `…:req:<bucket>` (request ids, per 100 ms of charges' time:
// see reqBucket) and, while a credit block is out (blocks.go),
// `…:leased`, so they live in one Cluster slot whatever the key string.
// Counters expire with their token (PEXPIREAT at Charge.Expires); a req
// bucket expires a policy.UndoWindow after its end. (The bare `…:req`,
// a sorted set of every id of the last minute, is what earlier versions
// kept: it is no longer read, and expires as they set it.)
//
// The scripts use PEXPIRETIME, so Redis 7.0 or later (or Valkey) is needed.
package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/policy"
)

// Defaults for Options.
const (
	DefaultTimeout = 100 * time.Millisecond
	DefaultPrefix  = "lg:"
	DefaultAddress = "127.0.0.1:6379"
)

// Options configure the connection to Redis.
type Options struct {
	// Addresses are host:port pairs: one for a single node, several for
	// the seed nodes of a Cluster, or the Sentinels when MasterName is set.
	// Empty means DefaultAddress.
	Addresses []string
	// MasterName selects Sentinel: the name of the monitored master.
	MasterName string
	// Username and Password authenticate to Redis (ACL or requirepass).
	Username, Password string
	// DB is the database number; it must be 0 on a Cluster.
	DB int
	// TLS, when not nil, makes every connection use TLS.
	TLS *tls.Config
	// Timeout bounds dialing, reading and writing each command.
	// 0 means DefaultTimeout.
	Timeout time.Duration
	// PoolSize is the most connections per node; 0 means go-redis's
	// default (10 per GOMAXPROCS).
	PoolSize int
	// Prefix starts every key; empty means DefaultPrefix. It may not hold
	// a brace ({ or }), which would take the place of the license's hash
	// tag.
	Prefix string
	// NoPipelining sends each charge on its own instead of batching the
	// charges of concurrent requests into pipelines.
	NoPipelining bool
	// Replicas, when above 0, makes a charge (and an undo) done only once
	// that many replicas acknowledged it: WAIT follows the script on its
	// connection, and fewer acknowledgements within ReplicaTimeout fail
	// with ErrNotReplicated (the charge ran on the master; the caller
	// voids it). Such charges are not batched with others.
	Replicas int
	// ReplicaTimeout bounds the WAIT; 0 means Timeout. Replies are then
	// awaited for Timeout + ReplicaTimeout.
	ReplicaTimeout time.Duration
}

// ErrNotReplicated is the error (beside policy.ErrStore) of a charge or
// undo that ran on the master but was not acknowledged by
// Options.Replicas replicas in time: a failover could lose it.
var ErrNotReplicated = errors.New("not acknowledged by enough replicas")

// Store is a policy.Counters backed by Redis. It is safe for concurrent
// use; one Store (one connection pool) serves a whole gateway.
type Store struct {
	client redis.UniversalClient
	// ap batches the charge scripts of concurrent requests into pipelines
	// (one write and one read for many requests), on Cluster per node.
	// Nil when Options.NoPipelining is set.
	ap     *redis.AutoPipeliner
	prefix string
	// replicas and replicaTimeout: see Options.Replicas.
	replicas       int
	replicaTimeout time.Duration
	// watch keeps the revocations in process (see WatchRevocations).
	watch *revocationWatch
	// credits are the running WatchCredits.
	credits creditWatches
}

// New returns a Store for o. It does not connect: the first command does,
// and the client reconnects by itself after Redis restarts.
func New(o Options) (*Store, error) {
	if o.Timeout < 0 {
		return nil, fmt.Errorf("redisstore: negative timeout %v", o.Timeout)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.PoolSize < 0 {
		return nil, fmt.Errorf("redisstore: negative pool size %d", o.PoolSize)
	}
	if o.DB < 0 {
		return nil, fmt.Errorf("redisstore: negative db %d", o.DB)
	}
	if o.Replicas < 0 || o.ReplicaTimeout < 0 {
		return nil, fmt.Errorf("redisstore: negative replicas %d or replica timeout %v", o.Replicas, o.ReplicaTimeout)
	}
	readTimeout := o.Timeout
	if o.Replicas > 0 {
		if o.ReplicaTimeout == 0 {
			o.ReplicaTimeout = o.Timeout
		}
		readTimeout += o.ReplicaTimeout
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if !validPrefix(o.Prefix) {
		return nil, fmt.Errorf("%w: %q", ErrPrefixBrace, o.Prefix)
	}
	addrs := append([]string(nil), o.Addresses...)
	for _, a := range addrs {
		if a == "" {
			return nil, errors.New("redisstore: empty address")
		}
	}
	if len(addrs) == 0 && o.MasterName == "" {
		addrs = []string{DefaultAddress}
	}
	if o.MasterName == "" && len(addrs) > 1 && o.DB != 0 {
		return nil, fmt.Errorf("redisstore: db %d given for a Cluster (%d addresses); a Cluster has only db 0", o.DB, len(addrs))
	}

	// NewUniversalClient picks Sentinel when MasterName is set, a Cluster
	// when there are several addresses, and a single node otherwise.
	client := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:      addrs,
		MasterName: o.MasterName,
		Username:   o.Username,
		Password:   o.Password,
		DB:         o.DB,
		TLSConfig:  o.TLS,
		PoolSize:   o.PoolSize,

		DialTimeout:           o.Timeout,
		ReadTimeout:           readTimeout,
		WriteTimeout:          o.Timeout,
		ContextTimeoutEnabled: true,
		// One dial attempt per command: while Redis is down a request
		// fails after Timeout rather than after five attempts and their
		// back-off. The pool keeps probing and recovers by itself.
		DialerRetries: 1,
	})
	st := &Store{client: client, prefix: o.Prefix, replicas: o.Replicas, replicaTimeout: o.ReplicaTimeout}
	if !o.NoPipelining {
		// go-redis's defaults: one ordered stream of batches per node,
		// each flushed as soon as the previous one is answered. Running
		// two batches side by side measured no better here.
		ap, err := client.AutoPipeline()
		if err != nil {
			_ = client.Close()
			return nil, fmt.Errorf("redisstore: auto-pipelining: %w", err)
		}
		st.ap = ap
	}
	return st, nil
}

// ErrPrefixBrace is returned by New for a prefix holding { or }: Redis
// Cluster would take the braces as the hash tag, scattering a license's
// keys over several slots.
var ErrPrefixBrace = errors.New("redisstore: the key prefix may not contain { or }")

// Close closes the connections.
func (s *Store) Close() error {
	s.watch.stopWatching()
	s.credits.stopAll()
	return s.client.Close()
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return storeErr("ping", err)
	}
	return nil
}

// storeErr wraps err so that errors.Is(err, policy.ErrStore) holds, while
// the cause (a net.Error, context.DeadlineExceeded, a Redis reply) stays
// reachable with errors.Is and errors.As. An error that shows the command
// never left (no connection could be had) also wraps policy.ErrNotSent.
func storeErr(op string, err error) error {
	if notSent(err) {
		return fmt.Errorf("%w: %w: redis %s: %w", policy.ErrStore, policy.ErrNotSent, op, err)
	}
	return fmt.Errorf("%w: redis %s: %w", policy.ErrStore, op, err)
}

// notSent tells errors raised before a command was written: a failed dial,
// no free connection in the pool, a context already done. Anything else
// (a read timeout, a broken connection) may come after Redis ran it.
func notSent(err error) bool {
	if errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, errContextDone) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

var _ policy.Counters = (*Store)(nil)

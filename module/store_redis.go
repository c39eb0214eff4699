package module

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/licensegate/licensegate/module/redisstore"
	"github.com/licensegate/licensegate/policy"
)

// redisCounters is the pooled Redis store.
type redisCounters struct {
	*redisstore.Store
	name  string
	voids *voidQueue
	// blocks is the gateway's credit blocks (nil when revocations are per
	// request or the store grants none); it starts with the first request
	// that asks it.
	blocks *blockTable
}

// storeName implements namedStore.
func (r redisCounters) storeName() string { return r.name }

// voidQueue implements namedStore.
func (r redisCounters) voidQueue() *voidQueue { return r.voids }

// redisStoreName names a Redis store for the admin API by where its
// counters are: "redis 10.0.0.5:6379 lg:", with "/<db>" after the
// addresses for a database other than 0 and "<master>@" before the
// Sentinels' addresses. Stores of one name share their counters.
func redisStoreName(o redisstore.Options) string {
	where := strings.Join(o.Addresses, ",")
	if o.MasterName != "" {
		where = o.MasterName + "@" + where
	}
	if o.DB != 0 {
		where += "/" + strconv.Itoa(o.DB)
	}
	return "redis " + where + " " + o.Prefix
}

// dropBlock implements blockDropper.
func (r redisCounters) dropBlock(ctx context.Context, key policy.LicenseKey) {
	if r.blocks != nil {
		r.blocks.drop(ctx, key)
	}
}

// Destruct closes the client; it implements caddy.Destructor.
func (r redisCounters) Destruct() error {
	if r.blocks != nil {
		r.blocks.close(blockCloseTimeout)
	}
	r.voids.close()
	return r.Close()
}

func (g *Gate) provisionRedis(sc *StoreConfig) error {
	pushed, err := sc.pushedRevocations()
	if err != nil {
		return err
	}
	blocks, defaultedOff, err := sc.blocksOn()
	if err != nil {
		return err
	}
	if defaultedOff && g.logger != nil {
		g.logger.Info("credit blocks off: they need revocations pushed, and revocations are per_request; every counting request makes one store round trip")
	}
	redisLogOnce.Do(func() {
		redis.SetLogger(redisLogger{caddy.Log().Named("http.handlers.license_gate.redis")})
	})
	repl := caddy.NewReplacer()
	o := redisstore.Options{
		Addresses:  slices.Clone(sc.Addresses),
		MasterName: sc.MasterName,
		Username:   repl.ReplaceAll(sc.Username, ""),
		Password:   repl.ReplaceAll(sc.Password, ""),
		DB:         sc.DB,
		Timeout:    durationOr(sc.Timeout, 100*time.Millisecond),
		PoolSize:   sc.PoolSize,
		Prefix:     sc.Prefix,

		Replicas:       sc.DurabilityReplicas,
		ReplicaTimeout: time.Duration(sc.DurabilityTimeout),
	}
	if len(o.Addresses) == 0 {
		o.Addresses = []string{"127.0.0.1:6379"}
	}
	for i, a := range o.Addresses {
		o.Addresses[i] = repl.ReplaceAll(a, "")
	}
	if o.Prefix == "" {
		o.Prefix = "lg:"
	}
	if sc.TLS {
		o.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	ident, _ := json.Marshal([]any{o.Addresses, o.MasterName, o.Username, o.Password, o.DB, sc.TLS, o.Timeout, o.PoolSize, o.Prefix,
		o.Replicas, o.ReplicaTimeout, pushed})
	sum := sha256.Sum256(ident)
	g.storeKey = "redis|" + hex.EncodeToString(sum[:])
	val, _, err := storePool.LoadOrNew(g.storeKey, func() (caddy.Destructor, error) {
		s, err := redisstore.New(o)
		if err != nil {
			return nil, err
		}
		if pushed {
			s.WatchRevocations(redisstore.DefaultRevocationSync,
				revocationSyncLogger(caddy.Log().Named("http.handlers.license_gate.revocations")))
		}
		name := redisStoreName(o)
		rc := redisCounters{Store: s, name: name, voids: newVoidQueue(s, name, DefaultVoidQueue, o.Timeout)}
		if pushed {
			rc.blocks = newBlockTable(s, s, o.Timeout)
		}
		return rc, nil
	})
	if err != nil {
		g.storeKey = ""
		return fmt.Errorf("store: %w", err)
	}
	rc := val.(redisCounters)
	g.store = rc
	g.voids = rc.voids
	if blocks && rc.blocks != nil {
		g.blocks = rc.blocks
	}
	g.checkStoreAtStart(val.(redisCounters), o.Addresses, 3*o.Timeout)
	return nil
}

// redisLogOnce routes go-redis's own (global) logger into Caddy's log at
// DEBUG: store failures are already logged once per request at ERROR.
var redisLogOnce sync.Once

type redisLogger struct{ l *zap.Logger }

// Printf implements go-redis's logging interface.
func (r redisLogger) Printf(_ context.Context, format string, v ...any) {
	if ce := r.l.Check(zap.DebugLevel, "redis client"); ce != nil {
		ce.Write(zap.String("detail", fmt.Sprintf(format, v...)))
	}
}

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
)

// redisCounters is the pooled Redis store.
type redisCounters struct {
	*redisstore.Store
	name  string
	voids *voidQueue
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

// Destruct closes the client; it implements caddy.Destructor.
func (r redisCounters) Destruct() error {
	r.voids.close()
	return r.Close()
}

func (g *Gate) provisionRedis(sc *StoreConfig) error {
	pushed, err := sc.pushedRevocations()
	if err != nil {
		return err
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
		return redisCounters{s, name, newVoidQueue(s, name, DefaultVoidQueue, o.Timeout)}, nil
	})
	if err != nil {
		g.storeKey = ""
		return fmt.Errorf("store: %w", err)
	}
	g.store = val.(redisCounters)
	g.voids = val.(redisCounters).voids
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

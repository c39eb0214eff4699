package module

import (
	"context"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/policy"
)

func TestLoadStoreSharesTheGatesCounters(t *testing.T) {
	srv := testredis.Start(t)
	for _, sc := range []*StoreConfig{nil, {Type: "redis", Addresses: []string{srv.Addr()}, Timeout: caddy.Duration(5 * time.Second)}} {
		g := &Gate{Store: sc}
		if err := g.provisionStore(); err != nil {
			t.Fatal(err)
		}
		s, release, err := LoadLeaseStore(sc)
		if err != nil {
			t.Fatal(err)
		}
		lic := policy.LicenseKey{Issuer: "https://license.test", Key: "shared-" + t.Name()}
		now := time.Now()
		if _, err := s.TakeLeases(context.Background(), &policy.LeaseRequest{License: lic, Hardware: "a", Limit: 10,
			Items: []policy.LeaseItem{{Item: "word", NewID: "l1", Cost: 3}}, Until: now.Add(time.Hour), Expires: now.Add(time.Hour), Now: now}); err != nil {
			t.Fatal(err)
		}
		if u, err := g.store.Usage(context.Background(), lic, now); err != nil || u.Used != 3 {
			t.Fatalf("store %+v: the gate's store sees %+v, %v; want the lease's 3 credits", sc, u, err)
		}
		release()
		_ = g.Cleanup()
	}
}

func TestLoadStoreRefusesAnUnknownType(t *testing.T) {
	if _, _, err := LoadLeaseStore(&StoreConfig{Type: "etcd"}); err == nil {
		t.Fatal("an unknown store type was accepted")
	}
}

package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/policy"
)

// BenchmarkCharge measures one Charge: one round trip to a local Redis.
func BenchmarkCharge(b *testing.B) {
	srv := testredis.Start(b)
	for _, mode := range []struct {
		name string
		off  bool
	}{{"pipelined", false}, {"unpipelined", true}} {
		b.Run(mode.name, func(b *testing.B) {
			benchCharge(b, newStore(b, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second, NoPipelining: mode.off}))
		})
	}
}

func benchCharge(b *testing.B, s *Store) {
	now := time.Now()
	charges := map[string]policy.Charge{
		"credits":       {Key: lk("bench-credits"), Cost: 1, Limit: policy.MaxCredits},
		"credits+seats": {Key: lk("bench-seats"), Cost: 1, Limit: policy.MaxCredits, Seats: 5, Hardware: "hw-1", SessionTTL: 15 * time.Minute},
	}
	for _, name := range []string{"credits", "credits+seats"} {
		c := charges[name]
		c.Now, c.Expires = now, now.Add(time.Hour)
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if r, err := s.Charge(ctx, &c); err != nil || r.Outcome != policy.Allowed {
					b.Fatalf("Charge = %+v, %v", r, err)
				}
			}
		})
		b.Run(name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(32) // as many requests in flight as a loaded gateway has
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				c := c
				for pb.Next() {
					if r, err := s.Charge(ctx, &c); err != nil || r.Outcome != policy.Allowed {
						b.Errorf("Charge = %+v, %v", r, err)
						return
					}
				}
			})
		})
	}
}

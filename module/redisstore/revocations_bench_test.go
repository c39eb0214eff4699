package redisstore

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
)

// BenchmarkIsRevoked measures the in-process answer a license without
// credits or seats gets instead of a round trip, with no revocation and
// with a thousand.
func BenchmarkIsRevoked(b *testing.B) {
	srv := testredis.Start(b)
	s := newStore(b, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second})
	s.WatchRevocations(time.Hour, nil)
	for {
		if _, known := s.IsRevoked(lk("x"), time.Now()); known {
			break
		}
		time.Sleep(time.Millisecond)
	}
	now := time.Now()
	b.Run("none revoked", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.IsRevoked(lk("bench"), now)
		}
	})
	for i := range 1000 {
		if err := s.Revoke(context.Background(), lk("r-"+strconv.Itoa(i)), now.Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("a thousand revoked", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.IsRevoked(lk("bench"), now)
		}
	})
}

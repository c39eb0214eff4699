package module

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/licensegate/licensegate/internal/testredis"
)

// BenchmarkServeHTTPNoCredits is BenchmarkServeHTTP for a token with a jti
// but neither credits nor seats: its only question to the store is whether
// it is revoked, which "redis, pushed" answers in process and
// "redis, per_request" asks Redis (one script round trip).
func BenchmarkServeHTTPNoCredits(b *testing.B) {
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	})
	for _, st := range []struct {
		name  string
		store func(b *testing.B) *StoreConfig
	}{
		{"memory", func(*testing.B) *StoreConfig { return nil }},
		{"redis, pushed", func(b *testing.B) *StoreConfig {
			return &StoreConfig{Type: "redis", Addresses: []string{testredis.Start(b).Addr()}}
		}},
		{"redis, per_request", func(b *testing.B) *StoreConfig {
			return &StoreConfig{Type: "redis", Addresses: []string{testredis.Start(b).Addr()}, Revocations: RevocationsPerRequest}
		}},
	} {
		b.Run(st.name, func(b *testing.B) {
			f := newBenchFixtureStore(b, st.store(b))
			now := time.Now()
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
				"iss": "bench", "sub": "alice", "jti": fmt.Sprintf("bench-plain-%d", now.UnixNano()),
				"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "items": []string{benchItemName},
			})
			tok.Header["kid"] = "bench"
			s, err := tok.SignedString(f.key)
			if err != nil {
				b.Fatal(err)
			}
			c := newBenchChain(b, s)
			// Until the pooled store has read its revocations once, the gate
			// asks Redis; the loop measures the steady state.
			time.Sleep(200 * time.Millisecond)
			if err := f.gate.ServeHTTP(c.w, c.request(), next); err != nil || c.w.status != http.StatusOK {
				b.Fatalf("first request: status %d, err %v", c.w.status, err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := f.gate.ServeHTTP(c.w, c.request(), next); err != nil || c.w.status != http.StatusOK {
					b.Fatalf("status %d, err %v", c.w.status, err)
				}
			}
		})
	}
}

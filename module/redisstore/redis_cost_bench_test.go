package redisstore

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/policy"
)

// BenchmarkChargeRedisCPU reports, beside the round trip, what a charge
// costs Redis itself: the usec_per_call of EVALSHA in INFO commandstats,
// over the benchmark's charges alone (the stats are reset first).
func BenchmarkChargeRedisCPU(b *testing.B) {
	srv := testredis.Start(b)
	s := newStore(b, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second, NoPipelining: true})
	ctx := context.Background()
	now := time.Now()
	for _, mode := range []struct {
		id, block bool
	}{{false, false}, {true, false}, {true, true}} {
		withID := mode.id
		name := "credits"
		if withID {
			name += "+request id"
		}
		if mode.block {
			// Each charge ends the previous block and is granted another:
			// what a gateway's store round trip costs once per block.
			name += "+block"
		}
		b.Run(name, func(b *testing.B) {
			c := policy.Charge{Key: lk("bench-cpu-" + name + strconv.FormatInt(time.Now().UnixNano(), 10)), Cost: 1, Limit: policy.MaxCredits, Now: now, Expires: now.Add(time.Hour)}
			if _, err := s.Charge(ctx, &c); err != nil { // loads the script
				b.Fatal(err)
			}
			if _, err := srv.Do("config", "resetstat"); err != nil {
				b.Fatal(err)
			}
			i := 0
			for b.Loop() {
				if withID {
					i++
					c.Request = strconv.Itoa(i)
				}
				if mode.block {
					c.EndBlock, c.Block = c.Block, 100
				}
				if r, err := s.Charge(ctx, &c); err != nil || r.Outcome != policy.Allowed {
					b.Fatalf("Charge = %+v, %v", r, err)
				}
			}
			b.ReportMetric(evalshaUsecPerCall(b, srv), "redis-µs/charge")
		})
	}
}

// evalshaUsecPerCall reads cmdstat_evalsha's usec_per_call.
func evalshaUsecPerCall(b *testing.B, srv *testredis.Server) float64 {
	b.Helper()
	for field := range strings.SplitSeq(infoField(b, srv, "commandstats", "cmdstat_evalsha"), ",") {
		if v, ok := strings.CutPrefix(field, "usec_per_call="); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			return f
		}
	}
	b.Fatal("no usec_per_call for EVALSHA")
	return 0
}

// infoField is the value of name in INFO section.
func infoField(b *testing.B, srv *testredis.Server, section, name string) string {
	b.Helper()
	info, err := srv.Do("info", section)
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	b.Fatalf("no %s in %q", name, info)
	return ""
}

// BenchmarkLicenseMemory reports the Redis memory a license takes (the
// growth of INFO used_memory over b.N licenses, each charged once with a
// request id), without and with a credit block granted, and the sum of
// MEMORY USAGE over one license's keys.
func BenchmarkLicenseMemory(b *testing.B) {
	srv := testredis.Start(b)
	s := newStore(b, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second})
	ctx := context.Background()
	now := time.Now()
	for _, want := range []int64{0, 100} {
		b.Run("block "+strconv.FormatInt(want, 10), func(b *testing.B) {
			run := strconv.FormatInt(time.Now().UnixNano(), 10)
			before := usedMemory(b, srv)
			i := 0
			for b.Loop() {
				i++
				c := policy.Charge{Key: lk(run + "-" + strconv.Itoa(i)), Cost: 1, Limit: 1 << 20, Block: want,
					Request: "r1", Now: now, Expires: now.Add(time.Hour)}
				if r, err := s.Charge(ctx, &c); err != nil || r.Block != want {
					b.Fatalf("Charge = %+v, %v", r, err)
				}
			}
			b.ReportMetric(float64(usedMemory(b, srv)-before)/float64(i), "bytes/license")
			// MEMORY USAGE of the last license's keys, summed.
			var keys int64
			for _, k := range s.keys(lk(run + "-" + strconv.Itoa(i))) {
				if v, err := srv.Do("memory", "usage", k); err == nil && v != "" {
					n, _ := strconv.ParseInt(v, 10, 64)
					keys += n
				}
			}
			b.ReportMetric(float64(keys), "key-bytes/license")
		})
	}
}

// usedMemory reads INFO memory's used_memory.
func usedMemory(b *testing.B, srv *testredis.Server) int64 {
	b.Helper()
	n, err := strconv.ParseInt(infoField(b, srv, "memory", "used_memory"), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

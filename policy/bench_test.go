package policy_test

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
)

// BenchmarkCheck runs every constraint of a realistic license on the
// allowed path; it must not allocate.
func BenchmarkCheck(b *testing.B) {
	l, r, q := realistic(b)
	b.ReportAllocs()
	for b.Loop() {
		if r.Check(l, q) != nil {
			b.Fatal("rejected")
		}
	}
}

// BenchmarkCheckReject is the cost of the rejecting path, for comparison.
func BenchmarkCheckReject(b *testing.B) {
	l, r, q := realistic(b)
	qq := *q
	qq.Version = "4.0.0"
	b.ReportAllocs()
	for b.Loop() {
		if r.Check(l, &qq) == nil {
			b.Fatal("allowed")
		}
	}
}

func BenchmarkVersionMatch(b *testing.B) {
	for _, bc := range []struct{ pattern, version string }{
		{"1.6.14", "1.6.14"},
		{"1-3.*.0-9", "2.77.9"},
		{"25.*.*", "25.4.17.2042"},
		{"1.2.3", "1.2.3.0.0.0.0.0.0.0.0.0.0.0.0.1"},
	} {
		p, err := policy.ParseVersionPattern(bc.pattern)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.pattern+"~"+bc.version, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Match(bc.version)
			}
		})
	}
}

func BenchmarkMemoryCharge(b *testing.B) {
	now := time.Now()
	b.Run("one hot key", func(b *testing.B) {
		m := policy.NewMemory()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ch := &policy.Charge{Key: lk("hot"), Cost: 1, Limit: policy.MaxCredits, Now: now, Expires: now.Add(time.Hour)}
			for pb.Next() {
				if res, _ := m.Charge(ctx, ch); res.Outcome != policy.Allowed {
					b.Fatal(res)
				}
			}
		})
	})
	b.Run("a key per goroutine", func(b *testing.B) {
		m := policy.NewMemory()
		var id atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ch := &policy.Charge{Key: lk("k" + strconv.FormatInt(id.Add(1), 10)), Cost: 1, Limit: policy.MaxCredits,
				Now: now, Expires: now.Add(time.Hour)}
			for pb.Next() {
				if res, _ := m.Charge(ctx, ch); res.Outcome != policy.Allowed {
					b.Fatal(res)
				}
			}
		})
	})
	b.Run("with seats", func(b *testing.B) {
		m := policy.NewMemory()
		var id atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ch := &policy.Charge{Key: lk("seats"), Cost: 1, Limit: policy.MaxCredits, Seats: 1 << 20,
				Hardware: "hw-" + strconv.FormatInt(id.Add(1), 10), SessionTTL: time.Minute,
				Now: now, Expires: now.Add(time.Hour)}
			for pb.Next() {
				if res, _ := m.Charge(ctx, ch); res.Outcome != policy.Allowed {
					b.Fatal(res)
				}
			}
		})
	})
}

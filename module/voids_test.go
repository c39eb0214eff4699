package module

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/licensegate/licensegate/policy"
)

// metricNow reads a gauge's or counter's value.
func metricNow(c prometheus.Collector) float64 {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) == 0 || len(mfs[0].GetMetric()) == 0 {
		return -1
	}
	m := mfs[0].GetMetric()[0]
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return m.GetCounter().GetValue()
}

// flakyStore is a memory store whose Undo fails until its door opens, as
// a store that does not answer would.
type flakyStore struct {
	*policy.Memory
	open     atomic.Bool
	attempts atomic.Int64

	mu         sync.Mutex
	leaseUndos []string // the lease undos applied, by request id
}

func (f *flakyStore) Undo(ctx context.Context, u *policy.Undo) error {
	f.attempts.Add(1)
	if !f.open.Load() {
		return policy.ErrStore
	}
	return f.Memory.Undo(ctx, u)
}

// UndoLeases fails until the door opens, then records the undo.
func (f *flakyStore) UndoLeases(_ context.Context, u *policy.LeaseUndo) error {
	f.attempts.Add(1)
	if !f.open.Load() {
		return policy.ErrStore
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leaseUndos = append(f.leaseUndos, u.Request)
	return nil
}

func TestVoidQueue(t *testing.T) {
	key := policy.LicenseKey{Issuer: "https://idp.example", Key: "lic-1"}
	now := time.Now()
	charge := func(m *policy.Memory, id string) {
		t.Helper()
		if r, err := m.Charge(context.Background(), &policy.Charge{Key: key, Cost: 1, Limit: 10, Now: now, Request: id}); err != nil || r.Outcome != policy.Allowed {
			t.Fatalf("Charge = %+v, %v", r, err)
		}
	}
	used := func(m *policy.Memory) int64 {
		u, _ := m.Usage(context.Background(), key, now)
		return u.Used
	}

	t.Run("a void is retried until the store answers, then applied once", func(t *testing.T) {
		f := &flakyStore{Memory: policy.NewMemory()}
		q := newVoidQueue(f, "flaky", 4, time.Second)
		q.backoff = func(int) time.Duration { return time.Millisecond }
		defer q.close()
		charge(f.Memory, "r1")
		q.push(policy.Undo{Key: key, Request: "r1", Cost: 1, Now: now}, "test")
		for f.attempts.Load() < 3 {
			time.Sleep(time.Millisecond)
		}
		if used(f.Memory) != 1 {
			t.Fatal("applied while the store failed")
		}
		f.open.Store(true)
		for metricNow(voidsPending) != 0 {
			time.Sleep(time.Millisecond)
		}
		if u := used(f.Memory); u != 0 {
			t.Fatalf("used = %d after the void, want 0", u)
		}
	})

	t.Run("a lease take's undo is retried in the same queue until the store answers", func(t *testing.T) {
		f := &flakyStore{Memory: policy.NewMemory()}
		q := newVoidQueue(f, "flaky", 4, time.Second)
		q.backoff = func(int) time.Duration { return time.Millisecond }
		defer q.close()
		q.pushLease(policy.LeaseUndo{License: key, Request: "take-1", Now: now}, "test")
		q.push(policy.Undo{Key: key, Request: "r1", Now: now}, "test")
		for f.attempts.Load() < 3 {
			time.Sleep(time.Millisecond)
		}
		f.open.Store(true)
		for metricNow(voidsPending) != 0 {
			time.Sleep(time.Millisecond)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.leaseUndos) != 1 || f.leaseUndos[0] != "take-1" {
			t.Fatalf("lease undos applied: %v, want take-1 once", f.leaseUndos)
		}
	})

	t.Run("a void that does not fit is dropped and counted", func(t *testing.T) {
		f := &flakyStore{Memory: policy.NewMemory()}
		q := newVoidQueue(f, "flaky", 1, time.Second)
		var wait sync.WaitGroup
		wait.Add(1)
		q.backoff = func(int) time.Duration { wait.Wait(); return time.Millisecond }
		dropped := metricNow(voidsDropped)
		// The worker holds the first, the queue the second, the third is dropped.
		q.push(policy.Undo{Key: key, Request: "a", Now: now}, "test")
		for f.attempts.Load() < 1 {
			time.Sleep(time.Millisecond)
		}
		q.push(policy.Undo{Key: key, Request: "b", Now: now}, "test")
		q.push(policy.Undo{Key: key, Request: "c", Now: now}, "test")
		if d := metricNow(voidsDropped) - dropped; d != 1 {
			t.Fatalf("%v voids dropped, want 1", d)
		}
		f.open.Store(true)
		wait.Done()
		for metricNow(voidsPending) != 0 {
			time.Sleep(time.Millisecond)
		}
		q.close()
	})
}

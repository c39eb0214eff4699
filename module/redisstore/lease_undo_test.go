package redisstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/policy"
)

// TestLeaseUndo: an undo of a lease take (by its request id) gives back
// what the take did, exactly once, whichever reaches Redis first.
func TestLeaseUndo(t *testing.T) {
	srv := testredis.Start(t)
	s := newStore(t, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second})
	base := time.Now().Truncate(time.Second)
	tests := []struct {
		name string
		run  func(f *leaseFixture, undo func(at time.Duration, req string))
	}{
		{"an undo after a new lease gives back its credits and its seat", func(f *leaseFixture, undo func(time.Duration, string)) {
			r := f.req(0, "a", 1, 10, time.Hour, "word")
			r.Request = "req-1"
			f.take(r, granted)
			undo(time.Second, "req-1")
			if got, used := f.live(2*time.Second), f.used(2*time.Second); got != "" || used != 0 {
				f.t.Fatalf("after the undo: live %q, used %d; want none, 0", got, used)
			}
			f.grant(3*time.Second, "b", 1, time.Hour, "word")
		}},
		{"an undo before the take leaves a tombstone: the take then counts nothing", func(f *leaseFixture, undo func(time.Duration, string)) {
			undo(0, "req-1")
			r := f.req(time.Second, "a", 1, 10, time.Hour, "word")
			r.Request = "req-1"
			_, err := f.s.TakeLeases(context.Background(), r)
			if !errors.Is(err, ErrUndone) || !errors.Is(err, policy.ErrStore) {
				f.t.Fatalf("TakeLeases after its undo = %v, want ErrUndone and ErrStore", err)
			}
			if got, used := f.live(2*time.Second), f.used(2*time.Second); got != "" || used != 0 {
				f.t.Fatalf("live %q, used %d; want none, 0", got, used)
			}
		}},
		{"a second undo gives nothing back twice", func(f *leaseFixture, undo func(time.Duration, string)) {
			f.take(f.req(0, "a", 0, 10, time.Hour, "word"), granted)
			r := f.req(0, "b", 0, 10, time.Hour, "word")
			r.Request = "req-1"
			f.take(r, granted)
			undo(time.Second, "req-1")
			undo(2*time.Second, "req-1")
			if got := f.used(3 * time.Second); got != 1 {
				f.t.Fatalf("used %d after two undos of one take; want 1", got)
			}
		}},
		{"an undo of a charging renewal puts back its credits and its earlier end", func(f *leaseFixture, undo func(time.Duration, string)) {
			id := f.take(f.req(0, "a", 1, 10, 10*time.Minute, "word"), granted)[0].Lease.ID
			r := f.req(5*time.Minute, "a", 1, 10, time.Hour, "word="+id)
			r.Items[0].Cost, r.Request = 3, "req-1"
			f.take(r, granted)
			undo(6*time.Minute, "req-1")
			if used := f.used(6 * time.Minute); used != 1 {
				f.t.Fatalf("used %d; want 1 (the renewal's 3 given back)", used)
			}
			if got := f.live(11 * time.Minute); got != "" {
				f.t.Fatalf("live at +11m = %q; want none (the lease ends at +10m again)", got)
			}
		}},
		{"an undo of a replacing lease puts the replaced lease back", func(f *leaseFixture, undo func(time.Duration, string)) {
			old := f.grant(0, "a", 1, time.Hour, "word")
			r := f.req(time.Minute, "a", 1, -1, time.Hour, "word")
			r.Request = "req-1"
			f.take(r, granted)
			undo(2*time.Minute, "req-1")
			if got := f.live(3 * time.Minute); got != "a/word/"+old {
				f.t.Fatalf("live = %q; want the replaced lease %s back", got, old)
			}
			f.take(f.req(3*time.Minute, "a", 1, -1, time.Hour, "word="+old), granted)
		}},
		{"an undo leaves a lease a later request renewed", func(f *leaseFixture, undo func(time.Duration, string)) {
			r := f.req(0, "a", 1, -1, time.Hour, "word")
			r.Request = "req-1"
			id := f.take(r, granted)[0].Lease.ID
			f.take(f.req(time.Minute, "a", 1, -1, time.Hour, "word="+id), granted)
			undo(2*time.Minute, "req-1")
			if got := f.live(3 * time.Minute); got != "a/word/"+id {
				f.t.Fatalf("live = %q; want the renewed lease kept", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &leaseFixture{t: t, s: s, base: base, lic: policy.LicenseKey{Issuer: "https://issuer.test", Key: t.Name()}}
			tt.run(f, func(at time.Duration, req string) {
				t.Helper()
				if err := s.UndoLeases(context.Background(), &policy.LeaseUndo{License: f.lic, Request: req, Now: base.Add(at)}); err != nil {
					t.Fatalf("UndoLeases: %v", err)
				}
			})
		})
	}
}

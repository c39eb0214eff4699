package redisstore

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/policy"
)

// The request record: the Redis store keeps each charge's request id in
// the 100 ms bucket of the charge's time (req:<bucket>), and an Undo
// finds it there by Undo.Charged. These cases put charges and voids on
// both sides of a bucket's edge and of policy.UndoWindow, against the
// memory store (the reference), one redis-server and a Cluster.

// reqStores are the stores the request record's cases run against.
func reqStores(t *testing.T) []struct {
	name string
	s    policy.Counters
} {
	stores := conformanceStores(t)
	cs := newStore(t, Options{Addresses: testredis.StartCluster(t, 3), Timeout: 5 * time.Second})
	return append(stores, struct {
		name string
		s    policy.Counters
	}{"cluster", cs})
}

// reqBase is a case's base time: the start of a second, and so of a
// bucket (reqBucketMs divides 1000).
func reqBase() time.Time { return time.Now().Truncate(time.Second) }

func TestAVoidFindsItsChargeAcrossTheBucketEdge(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name      string
		chargedAt time.Duration // the charge's time, from the base
		voidAt    time.Duration // the void's time
		first     bool          // the void reaches the store before the charge
	}{
		{"a void in the same bucket gives the charge back", 10 * ms, 20 * ms, false},
		{"a void in the next bucket gives back a charge of the bucket's last ms", 99 * ms, 100 * ms, false},
		{"a void seconds later gives back a charge of the bucket's last ms", 99 * ms, 3 * time.Second, false},
		{"a void of the bucket's first ms gives back its charge", 100 * ms, 101 * ms, false},
		{"a charge of the bucket's last ms after its void from the next counts nothing", 99 * ms, 100 * ms, true},
		{"a charge after its void half a window later counts nothing", 99 * ms, 30 * time.Second, true},
		{"a charge of the bucket's first ms after its void counts nothing", 100 * ms, 199 * ms, true},
	}
	for _, store := range reqStores(t) {
		t.Run(store.name, func(t *testing.T) {
			base := reqBase()
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					f := &fixture{t: t, s: store.s, key: lk(t.Name()), base: base, expires: base.Add(time.Hour)}
					seat := policy.Charge{Cost: 2, Limit: 5, Seats: 1, Hardware: "a", SessionTTL: ttl}
					void := policy.Undo{Request: "r1", Charged: base.Add(tc.chargedAt), Cost: 2, Hardware: "a", Seat: true}
					if tc.first {
						f.undo(tc.voidAt, void)
						f.want(tc.chargedAt, req("r1", seat), policy.Duplicate, 0)
					} else {
						f.want(tc.chargedAt, req("r1", seat), policy.Allowed, 2)
						f.undo(tc.voidAt, void)
						f.undo(tc.voidAt, void) // a second void does nothing
					}
					if u := f.usage(tc.voidAt); u.Used != 0 || u.Seats != 0 {
						t.Fatalf("Usage = %+v, want nothing used and no seat", u)
					}
					// The seat is free for another device.
					other := seat
					other.Hardware = "b"
					f.want(tc.voidAt, req("r2", other), policy.Allowed, 2)
				})
			}
		})
	}
}

func TestRequestRecordsAreForgottenAfterUndoWindow(t *testing.T) {
	w := policy.UndoWindow
	cases := []struct {
		name     string
		undoAt   time.Duration
		ran      bool
		wantUsed int64 // after the charge of 2 and the undo sent twice
	}{
		{"a void within the window gives the charge back", w - time.Millisecond, false, 0},
		{"a void after the window gives nothing back", w + reqBucketMs*time.Millisecond, false, 2},
		{"a void long after the window gives nothing back", w + time.Hour, false, 2},
		{"a refund within the window gives the credits back once", w - time.Millisecond, true, 0},
		{"a refund after the window gives the credits back once", w + reqBucketMs*time.Millisecond, true, 0},
		{"a refund long after the window gives the credits back once", w + time.Hour, true, 0},
	}
	for _, store := range reqStores(t) {
		t.Run(store.name, func(t *testing.T) {
			base := reqBase()
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					f := &fixture{t: t, s: store.s, key: lk(t.Name()), base: base, expires: base.Add(24 * time.Hour)}
					f.want(0, req("r1", credits(2, 5)), policy.Allowed, 2)
					for range 2 {
						f.undo(tc.undoAt, policy.Undo{Request: "r1", Cost: 2, Ran: tc.ran})
					}
					if u := f.usage(tc.undoAt); u.Used != tc.wantUsed {
						t.Fatalf("Usage.Used = %d, want %d", u.Used, tc.wantUsed)
					}
				})
			}
		})
	}
}

func TestARequestBucketExpiresOnceAtItsEndPlusUndoWindow(t *testing.T) {
	srv := testredis.Start(t)
	s := newStore(t, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second})
	ctx := context.Background()
	// Far ahead of Redis's clock, so that nothing expires by it.
	base := time.Now().Add(time.Hour).Truncate(time.Second)
	key := lk("expiry")
	bucket := reqBucket(base.UnixMilli())
	want := (bucket+1)*reqBucketMs + policy.UndoWindow.Milliseconds()
	for i, at := range []time.Duration{0, 50 * time.Millisecond, 99 * time.Millisecond} {
		c := policy.Charge{Key: key, Cost: 1, Limit: 10, Request: "r" + string(rune('a'+i)), Now: base.Add(at)}
		if r, err := s.Charge(ctx, &c); err != nil || r.Outcome != policy.Allowed {
			t.Fatalf("Charge = %+v, %v", r, err)
		}
		at, err := srv.Do("PEXPIRETIME", s.keysAt(key, bucket)[reqIndex])
		if err != nil || at != itoa(want) {
			t.Fatalf("after charge %d the bucket expires at %s (%v), want %d", i, at, err, want)
		}
	}
	if n, _ := srv.Do("HLEN", s.keysAt(key, bucket)[reqIndex]); n != "3" {
		t.Fatalf("the bucket holds %s ids, want 3", n)
	}
	// The bare req key, earlier versions' sorted set, is never written.
	if n, _ := srv.Do("EXISTS", s.keys(key)[reqIndex]); n != "0" {
		t.Fatalf("EXISTS %s = %s, want 0", s.keys(key)[reqIndex], n)
	}
	// A void past the window leaves a tombstone that lives a window from
	// the void's time.
	late := base.Add(2 * policy.UndoWindow)
	if err := s.Undo(ctx, &policy.Undo{Key: key, Request: "rz", Charged: base, Now: late}); err != nil {
		t.Fatal(err)
	}
	if at, _ := srv.Do("PEXPIRETIME", s.keysAt(key, bucket)[reqIndex]); at != itoa(late.Add(policy.UndoWindow).UnixMilli()) {
		t.Fatalf("after a late tombstone the bucket expires at %s, want %d", at, late.Add(policy.UndoWindow).UnixMilli())
	}
}

func TestRequestBucketsOfALicenseShareItsClusterSlot(t *testing.T) {
	addrs := testredis.StartCluster(t, 3)
	s := newStore(t, Options{Addresses: addrs, Timeout: 5 * time.Second})
	cc := s.client.(*redis.ClusterClient)
	ctx := context.Background()
	base := reqBase()
	for _, key := range hostileKeys {
		k := policy.LicenseKey{Issuer: t.Name(), Key: key}
		want, err := cc.ClusterKeySlot(ctx, s.keys(k)[0]).Result()
		if err != nil {
			t.Fatal(err)
		}
		// Ids charged across several buckets (each charge's script
		// takes the used key and one bucket: a CROSSSLOT would fail it).
		for i := range 5 {
			now := base.Add(time.Duration(i) * 70 * time.Millisecond)
			c := policy.Charge{Key: k, Cost: 1, Limit: 100, Request: "id" + itoa(int64(i)), Now: now}
			if r, err := s.Charge(ctx, &c); err != nil || r.Outcome != policy.Allowed {
				t.Fatalf("Charge at %v = %+v, %v", now, r, err)
			}
			bk := s.keysAt(k, reqBucket(now.UnixMilli()))[reqIndex]
			slot, err := cc.ClusterKeySlot(ctx, bk).Result()
			if err != nil || slot != want {
				t.Fatalf("bucket key %q is in slot %d (%v), want the license's %d", bk, slot, err, want)
			}
			if n, err := cc.Exists(ctx, bk).Result(); err != nil || n != 1 {
				t.Fatalf("bucket key %q not written (%d, %v)", bk, n, err)
			}
		}
	}
}

// itoa is n in decimal.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }

package redisstore

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/internal/testredis"
)

// watching opens a Store that watches its revocations every 50 ms and
// waits until it has read them once.
func watching(t *testing.T, addrs []string) (*Store, *errorLog) {
	t.Helper()
	return watchingWith(t, Options{Addresses: addrs, Timeout: 2 * time.Second})
}

func watchingWith(t *testing.T, o Options) (*Store, *errorLog) {
	t.Helper()
	s := newStore(t, o)
	errs := &errorLog{}
	s.WatchRevocations(50*time.Millisecond, errs.add)
	waitUntil(t, "the store to read its revocations", func() bool {
		_, known := s.IsRevoked(lk("any"), time.Now())
		return known
	})
	return s, errs
}

// errorLog records what WatchRevocations reports.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (e *errorLog) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs = append(e.errs, err)
}

func (e *errorLog) list() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]error(nil), e.errs...)
}

// waitUntil polls cond for up to 10 s (a bound for a busy machine, not a
// measure).
func waitUntil(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func isRevokedNow(s *Store, key string) bool {
	r, known := s.IsRevoked(lk(key), time.Now())
	return r && known
}

func TestAStoreThatDoesNotWatchDoesNotKnow(t *testing.T) {
	srv := testredis.Start(t)
	s := newStore(t, Options{Addresses: []string{srv.Addr()}})
	if err := s.Revoke(context.Background(), lk("lic"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r, known := s.IsRevoked(lk("lic"), time.Now()); r || known {
		t.Fatalf("IsRevoked = %v, %v; want false, false (the gate asks the store)", r, known)
	}
}

func TestRevocationsReachEveryWatchingStore(t *testing.T) {
	for _, tc := range []struct {
		name    string
		options func(t *testing.T) Options
	}{
		{"on a single node", func(t *testing.T) Options {
			return Options{Addresses: []string{testredis.Start(t).Addr()}, Timeout: 2 * time.Second}
		}},
		{"on a cluster", func(t *testing.T) Options {
			return Options{Addresses: testredis.StartCluster(t, 3), Timeout: 2 * time.Second}
		}},
		{"through a sentinel", func(t *testing.T) Options {
			sentinel := testredis.StartSentinel(t, testredis.Start(t), "mymaster")
			return Options{Addresses: []string{sentinel.Addr()}, MasterName: "mymaster", Timeout: 2 * time.Second}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.options(t)
			a, _ := watchingWith(t, o)
			b, _ := watchingWith(t, o)
			ctx := context.Background()
			if err := a.Revoke(ctx, lk("lic"), time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if !isRevokedNow(a, "lic") {
				t.Fatal("the revoking store does not know at once")
			}
			d := waitUntil(t, "the other store to learn the revocation", func() bool { return isRevokedNow(b, "lic") })
			t.Logf("revocation reached the other store after %v", d)
			if isRevokedNow(b, "other") {
				t.Fatal("another license is revoked too")
			}
			if err := b.Unrevoke(ctx, lk("lic")); err != nil {
				t.Fatal(err)
			}
			if isRevokedNow(b, "lic") {
				t.Fatal("the unrevoking store does not know at once")
			}
			d = waitUntil(t, "the other store to learn the unrevocation", func() bool { return !isRevokedNow(a, "lic") })
			t.Logf("unrevocation reached the other store after %v", d)
			// The license's own key (the charge script's) agrees.
			u, err := a.Usage(ctx, lk("lic"), time.Now())
			if err != nil || u.Revoked {
				t.Fatalf("Usage = %+v, %v; want not revoked", u, err)
			}
		})
	}
}

func TestARevocationEndsByTheCallersClock(t *testing.T) {
	srv := testredis.Start(t)
	s, _ := watching(t, []string{srv.Addr()})
	until := time.Now().Add(time.Hour)
	if err := s.Revoke(context.Background(), lk("lic"), until); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		now  time.Time
		want bool
	}{
		{"a millisecond before the end it is revoked", until.Add(-time.Millisecond), true},
		{"at the end it is not", until, false},
		{"after the end it is not", until.Add(time.Minute), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r, known := s.IsRevoked(lk("lic"), tc.now); r != tc.want || !known {
				t.Fatalf("IsRevoked = %v, %v; want %v, true", r, known, tc.want)
			}
		})
	}
}

func TestTheIndexHoldsTheTagAndTheEndAndForgetsEndedOnes(t *testing.T) {
	srv := testredis.Start(t)
	s := newStore(t, Options{Addresses: []string{srv.Addr()}})
	ctx := context.Background()
	until := time.Now().Add(time.Hour).UnixMilli()
	if err := s.Revoke(ctx, lk("lic"), time.UnixMilli(until)); err != nil {
		t.Fatal(err)
	}
	raw := rawClient(t, srv.Addr())
	score, err := raw.ZScore(ctx, "lg:revocations", Tag(lk("lic"))).Result()
	if err != nil || int64(score) != until {
		t.Fatalf("index score %v, %v; want %d", score, err, until)
	}
	// An ended entry (written as an older gateway or a past revocation
	// would leave it) is dropped by the next change.
	raw.ZAdd(ctx, "lg:revocations", redisZ(1, strings.Repeat("0", TagLen)))
	if err := s.Unrevoke(ctx, lk("lic")); err != nil {
		t.Fatal(err)
	}
	if n, err := raw.ZCard(ctx, "lg:revocations").Result(); err != nil || n != 0 {
		t.Fatalf("index holds %d entries, %v; want none", n, err)
	}
}

func TestALostMessageIsCoveredByReadingTheIndex(t *testing.T) {
	srv := testredis.Start(t)
	s, _ := watching(t, []string{srv.Addr()})
	raw := rawClient(t, srv.Addr())
	ctx := context.Background()

	t.Run("an entry written without a message is read within the interval", func(t *testing.T) {
		until := time.Now().Add(time.Hour).UnixMilli()
		raw.ZAdd(ctx, "lg:revocations", redisZ(until, Tag(lk("silent"))))
		d := waitUntil(t, "the index to be read again", func() bool { return isRevokedNow(s, "silent") })
		t.Logf("a revocation without a message was seen after %v (interval 50ms)", d)
	})
	t.Run("messages sent while the subscriber was cut off are read after it resubscribes", func(t *testing.T) {
		other := newStore(t, Options{Addresses: []string{srv.Addr()}})
		if n, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil || n == "0" {
			t.Fatalf("CLIENT KILL TYPE pubsub: %q, %v", n, err)
		}
		if err := other.Revoke(ctx, lk("while-cut"), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		d := waitUntil(t, "the revocation to arrive", func() bool { return isRevokedNow(s, "while-cut") })
		t.Logf("a revocation made while the subscriber was cut off was seen after %v", d)
	})
	t.Run("malformed messages are ignored", func(t *testing.T) {
		// No read of the index in the meantime: only messages change it.
		quiet := newStore(t, Options{Addresses: []string{srv.Addr()}, Timeout: 2 * time.Second})
		quiet.WatchRevocations(time.Hour, nil)
		waitUntil(t, "a first read", func() bool { _, known := quiet.IsRevoked(lk("x"), time.Now()); return known })
		waitUntil(t, "the subscription", func() bool {
			n, err := srv.Do("PUBSUB", "NUMSUB", "lg:revocations")
			return err == nil && strings.HasSuffix(n, "\n2")
		})
		until := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
		for _, m := range []string{"", "x", "1 nothex", "-5 " + Tag(lk("m")), until + " " + strings.ToUpper(Tag(lk("m"))),
			until + " " + strings.Repeat("z", TagLen), until + " " + Tag(lk("m")) + "0"} {
			if err := raw.Publish(ctx, "lg:revocations", m).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := raw.Publish(ctx, "lg:revocations", until+" "+Tag(lk("pushed"))).Err(); err != nil {
			t.Fatal(err)
		}
		// The well-formed message after them still applies; none of them did.
		waitUntil(t, "the message after the malformed ones", func() bool { return isRevokedNow(quiet, "pushed") })
		if isRevokedNow(quiet, "m") {
			t.Fatal("a malformed message revoked a license")
		}
	})
}

func TestWhileRedisIsDownTheLastSetReadStays(t *testing.T) {
	srv := testredis.Start(t)
	s, errs := watching(t, []string{srv.Addr()})
	if err := s.Revoke(context.Background(), lk("lic"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	waitUntil(t, "the failing read to be reported", func() bool { return len(errs.list()) > 0 })
	if r, known := s.IsRevoked(lk("lic"), time.Now()); !r || !known {
		t.Fatalf("IsRevoked = %v, %v while Redis is down; want the last known true, true", r, known)
	}
	if r, known := s.IsRevoked(lk("other"), time.Now()); r || !known {
		t.Fatalf("IsRevoked(other) = %v, %v; want false, true", r, known)
	}
	srv.Restart()
	// Redis came back empty (no persistence): the next read says so.
	waitUntil(t, "the index to be read again", func() bool { return !isRevokedNow(s, "lic") })
	got := errs.list()
	if len(got) < 2 || got[0] == nil || got[len(got)-1] != nil {
		t.Fatalf("reported %v; want an error, then nil when reads succeed again", got)
	}
}

func TestCloseStopsTheWatch(t *testing.T) {
	srv := testredis.Start(t)
	settle := func() int {
		runtime.GC()
		time.Sleep(50 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	before := settle()
	for range 3 {
		s, err := New(Options{Addresses: []string{srv.Addr()}})
		if err != nil {
			t.Fatal(err)
		}
		s.WatchRevocations(20*time.Millisecond, nil)
		waitUntil(t, "a first read", func() bool { _, known := s.IsRevoked(lk("x"), time.Now()); return known })
		if watchGoroutines() == "" {
			t.Fatal("no watch goroutine found while watching: the check below would prove nothing")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var after int
	waitUntil(t, "the goroutines to end", func() bool { after = settle(); return after <= before })
	// Closing a store whose Redis is gone returns too.
	s, err := New(Options{Addresses: []string{"127.0.0.1:" + strconv.Itoa(testredis.FreePort(t))}})
	if err != nil {
		t.Fatal(err)
	}
	s.WatchRevocations(20*time.Millisecond, nil)
	time.Sleep(100 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the goroutines to end", func() bool { after = settle(); return after <= before })
	if g := watchGoroutines(); g != "" {
		t.Fatalf("a watch goroutine outlived Close:\n%s", g)
	}
}

// watchGoroutines is the stacks of running goroutines of a revocation
// watch, or "".
func watchGoroutines() string {
	buf := make([]byte, 1<<20)
	var found []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "receiveRevocations") || strings.Contains(g, "syncRevocations") {
			found = append(found, g)
		}
	}
	return strings.Join(found, "\n\n")
}

func redisZ(score int64, member string) redis.Z {
	return redis.Z{Score: float64(score), Member: member}
}

func TestAUserWithoutTheChannelStillRevokesThroughTheIndex(t *testing.T) {
	srv := testredis.Start(t)
	// A Redis ACL user with every key and command but no pub/sub channel
	// (Redis 7's default for new users).
	if _, err := srv.Do("ACL", "SETUSER", "gate", "on", ">secret", "~*", "+@all", "resetchannels"); err != nil {
		t.Fatal(err)
	}
	o := Options{Addresses: []string{srv.Addr()}, Username: "gate", Password: "secret", Timeout: 2 * time.Second}
	a := newStore(t, o)
	b := newStore(t, o)
	b.WatchRevocations(50*time.Millisecond, nil)
	waitUntil(t, "a first read", func() bool { _, known := b.IsRevoked(lk("x"), time.Now()); return known })
	if err := a.Revoke(context.Background(), lk("lic"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Revoke without the channel: %v", err)
	}
	d := waitUntil(t, "the revocation to be read from the index", func() bool { return isRevokedNow(b, "lic") })
	t.Logf("seen after %v without pub/sub", d)
}

func TestAStoreStartedWhileRedisIsDownAsksRedisUntilItHasReadTheIndex(t *testing.T) {
	srv := testredis.Start(t)
	srv.Kill()
	s := newStore(t, Options{Addresses: []string{srv.Addr()}, Timeout: 2 * time.Second})
	s.WatchRevocations(50*time.Millisecond, nil)
	time.Sleep(150 * time.Millisecond)
	if r, known := s.IsRevoked(lk("lic"), time.Now()); r || known {
		t.Fatalf("IsRevoked = %v, %v before any read; want false, false (the gate asks the store)", r, known)
	}
	srv.Restart()
	waitUntil(t, "a first read once Redis is up", func() bool { _, known := s.IsRevoked(lk("lic"), time.Now()); return known })
	other := newStore(t, Options{Addresses: []string{srv.Addr()}})
	// It subscribed too, once Redis came up.
	waitUntil(t, "the subscription", func() bool {
		n, err := srv.Do("PUBSUB", "NUMSUB", "lg:revocations")
		return err == nil && strings.HasSuffix(n, "\n1")
	})
	if err := other.Revoke(context.Background(), lk("lic"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the revocation", func() bool { return isRevokedNow(s, "lic") })
}

func TestAReadOfTheIndexDoesNotUndoAChangeMadeWhileItRan(t *testing.T) {
	srv := testredis.Start(t)
	s := newStore(t, Options{Addresses: []string{srv.Addr()}, Timeout: 2 * time.Second})
	// Reads back to back: most changes land while one is under way.
	s.WatchRevocations(time.Millisecond, nil)
	waitUntil(t, "a first read", func() bool { _, known := s.IsRevoked(lk("x"), time.Now()); return known })
	ctx := context.Background()
	for i := range 50 {
		key := "lic-" + strconv.Itoa(i)
		if err := s.Revoke(ctx, lk(key), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(5 * time.Millisecond); time.Now().Before(end); {
			if !isRevokedNow(s, key) {
				t.Fatalf("revocation %d was undone by a read that started before it", i)
			}
		}
		if err := s.Unrevoke(ctx, lk(key)); err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(5 * time.Millisecond); time.Now().Before(end); {
			if isRevokedNow(s, key) {
				t.Fatalf("lifting %d was undone by a read that started before it", i)
			}
		}
	}
}

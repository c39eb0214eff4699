package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/policy"
)

// rawClient is a plain go-redis client for looking at what the store wrote.
func rawClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestKeysCarryThePrefixAndOneHashTag(t *testing.T) {
	srv := testredis.Start(t)
	s := newStore(t, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second})
	ctx := context.Background()
	now := time.Now()
	_, err := s.Charge(ctx, &policy.Charge{Key: lk("lic-1"), Cost: 1, Limit: 5, Seats: 2, Hardware: "hw",
		SessionTTL: time.Minute, Expires: now.Add(time.Hour), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, lk("lic-1"), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	keys, err := rawClient(t, srv.Addr()).Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	tag := Tag(lk("lic-1"))
	want := map[string]bool{}
	for _, suffix := range []string{"used", "seats", "revoked", "seats_ttl", "limit"} {
		want["lg:{"+tag+"}:"+suffix] = true
	}
	want["lg:revocations"] = true // the revocation index (revocations.go)
	if len(keys) != len(want) {
		t.Fatalf("keys = %q, want %d keys", keys, len(want))
	}
	for _, k := range keys {
		if !want[k] {
			t.Fatalf("unexpected key %q (all keys: %q)", k, keys)
		}
	}

	custom := newStore(t, Options{Addresses: []string{srv.Addr()}, Prefix: "gate7:", Timeout: 5 * time.Second})
	if _, err := custom.AdjustCredits(ctx, lk("x"), 1, false, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if n, _ := rawClient(t, srv.Addr()).Exists(ctx, "gate7:{"+Tag(lk("x"))+"}:used").Result(); n != 1 {
		t.Fatal("prefix not used")
	}
}

func TestTagIsFixedLengthHexOfIssuerAndKey(t *testing.T) {
	hostile := []string{"", "}x", "{}", "a}b{c", "lic-1", strings.Repeat("ü€😀", 1000)}
	seen := map[string]policy.LicenseKey{}
	for _, iss := range []string{"", "https://a.example", "https://b.example"} {
		for _, key := range hostile {
			k := policy.LicenseKey{Issuer: iss, Key: key}
			tag := Tag(k)
			if len(tag) != TagLen || strings.Trim(tag, "0123456789abcdef") != "" {
				t.Fatalf("Tag(%q, %.20q) = %q: not %d hex digits", iss, key, tag, TagLen)
			}
			if prev, dup := seen[tag]; dup {
				t.Fatalf("Tag of %+v equals Tag of %+v", k, prev)
			}
			seen[tag] = k
		}
	}
	// The NUL separates issuer and key: moving bytes across it changes the tag.
	if Tag(policy.LicenseKey{Issuer: "ab", Key: "c"}) == Tag(policy.LicenseKey{Issuer: "a", Key: "bc"}) {
		t.Fatal("issuer and key run together")
	}
}

func TestAPrefixWithABraceIsRefused(t *testing.T) {
	for _, p := range []string{"lg{", "}lg:", "a{b}:"} {
		_, err := New(Options{Prefix: p})
		if !errors.Is(err, ErrPrefixBrace) {
			t.Errorf("New(prefix %q) = %v, want ErrPrefixBrace", p, err)
		}
	}
}

func TestKeysExpireWhenTheTokenDoes(t *testing.T) {
	srv := testredis.Start(t)
	s := newStore(t, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second})
	raw := rawClient(t, srv.Addr())
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)

	expireTime := func(k string) time.Time {
		t.Helper()
		ms, err := raw.Do(ctx, "pexpiretime", k).Int64()
		if err != nil {
			t.Fatal(err)
		}
		if ms < 0 {
			t.Fatalf("PEXPIRETIME %s = %d: no expiry", k, ms)
		}
		return time.UnixMilli(ms)
	}
	charge := func(expires time.Time) {
		t.Helper()
		_, err := s.Charge(ctx, &policy.Charge{Key: lk("k"), Cost: 1, Limit: 10, Seats: 1, Hardware: "hw",
			SessionTTL: time.Minute, Expires: expires, Now: now})
		if err != nil {
			t.Fatal(err)
		}
	}

	exp := now.Add(time.Hour)
	charge(exp)
	for _, k := range []string{"lg:{" + Tag(lk("k")) + "}:used", "lg:{" + Tag(lk("k")) + "}:seats", "lg:{" + Tag(lk("k")) + "}:seats_ttl"} {
		if got := expireTime(k); !got.Equal(exp) {
			t.Fatalf("%s expires at %v, want Charge.Expires %v", k, got, exp)
		}
	}
	charge(now.Add(30 * time.Minute))
	if got := expireTime("lg:{" + Tag(lk("k")) + "}:used"); !got.Equal(exp) {
		t.Fatalf("an earlier Expires moved the expiry to %v", got)
	}
	later := now.Add(2 * time.Hour)
	charge(later)
	if got := expireTime("lg:{" + Tag(lk("k")) + "}:used"); !got.Equal(later) {
		t.Fatalf("a later Expires did not extend: %v, want %v", got, later)
	}

	until := now.Add(45 * time.Minute)
	if err := s.Revoke(ctx, lk("k"), until); err != nil {
		t.Fatal(err)
	}
	if got := expireTime("lg:{" + Tag(lk("k")) + "}:revoked"); !got.Equal(until) {
		t.Fatalf("revocation expires at %v, want %v", got, until)
	}

	if _, err := s.AdjustCredits(ctx, lk("fresh"), 5, false, exp); err != nil {
		t.Fatal(err)
	}
	if got := expireTime("lg:{" + Tag(lk("fresh")) + "}:used"); !got.Equal(exp) {
		t.Fatalf("AdjustCredits on a new key: expires at %v, want %v", got, exp)
	}
	if _, err := s.AdjustCredits(ctx, lk("fresh"), 0, true, later); err != nil {
		t.Fatal(err)
	}
	if got := expireTime("lg:{" + Tag(lk("fresh")) + "}:used"); !got.Equal(later) {
		t.Fatalf("AdjustCredits reset with a later expiry: %v, want %v", got, later)
	}

	// A refund keeps the expiry.
	if err := s.Refund(ctx, lk("k"), 1); err != nil {
		t.Fatal(err)
	}
	if got := expireTime("lg:{" + Tag(lk("k")) + "}:used"); !got.Equal(later) {
		t.Fatalf("Refund changed the expiry to %v", got)
	}
}

func TestRefundOfAnExpiredCounterDoesNotRecreateIt(t *testing.T) {
	srv := testredis.Start(t)
	s := newStore(t, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second})
	ctx := context.Background()
	if err := s.Refund(ctx, lk("gone"), 3); err != nil {
		t.Fatal(err)
	}
	if n, _ := rawClient(t, srv.Addr()).Exists(ctx, "lg:{"+Tag(lk("gone"))+"}:used").Result(); n != 0 {
		t.Fatal("Refund created a counter")
	}
}

// chargeConcurrently spends calls charges of cost 1 on key, spread over the
// stores, all at once. It returns how many were allowed and refused.
func chargeConcurrently(t *testing.T, stores []*Store, key string, limit int64, calls int) (allowed, refused int64) {
	t.Helper()
	now := time.Now()
	start := make(chan struct{})
	var wg sync.WaitGroup
	var a, r atomic.Int64
	errs := make(chan error, calls)
	for i := range calls {
		wg.Go(func() {
			<-start
			res, err := stores[i%len(stores)].Charge(context.Background(), &policy.Charge{
				Key: lk(key), Cost: 1, Limit: limit, Expires: now.Add(time.Hour), Now: now,
			})
			switch {
			case err != nil:
				errs <- err
			case res.Outcome == policy.Allowed:
				a.Add(1)
			case res.Outcome == policy.CreditsExhausted:
				r.Add(1)
			default:
				errs <- fmt.Errorf("outcome %s", outcomeName(res.Outcome))
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Charge: %v", err)
	}
	return a.Load(), r.Load()
}

func TestExactAcrossGateways(t *testing.T) {
	srv := testredis.Start(t)
	// Three Stores are three gateways: three clients, three pools.
	var stores []*Store
	for range 3 {
		stores = append(stores, newStore(t, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second}))
	}
	allowed, refused := chargeConcurrently(t, stores, "shared", 500, 800)
	if allowed != 500 || refused != 300 {
		t.Fatalf("allowed %d, refused %d; want exactly 500 and 300", allowed, refused)
	}
	u, err := stores[1].Usage(context.Background(), lk("shared"), time.Now())
	if err != nil || u.Used != 500 {
		t.Fatalf("Usage = %+v, %v; want 500 used", u, err)
	}
}

func TestExactOnCluster(t *testing.T) {
	addrs := testredis.StartCluster(t, 3)
	var stores []*Store
	for range 3 {
		stores = append(stores, newStore(t, Options{Addresses: addrs, Timeout: 5 * time.Second}))
	}
	if _, ok := stores[0].client.(*redis.ClusterClient); !ok {
		t.Fatalf("several addresses gave a %T, want *redis.ClusterClient", stores[0].client)
	}
	ctx := context.Background()
	// Keys spread over the masters; each license's keys share one slot.
	masters := map[string]bool{}
	cc := stores[0].client.(*redis.ClusterClient)
	for i := range 6 {
		key := "lic-" + strconv.Itoa(i)
		slots := map[int64]bool{}
		for _, k := range stores[0].keys(lk(key)) {
			slot, err := cc.ClusterKeySlot(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			slots[slot] = true
		}
		if len(slots) != 1 {
			t.Fatalf("keys of %s span slots %v", key, slots)
		}
		node, err := cc.MasterForKey(ctx, stores[0].keys(lk(key))[0])
		if err != nil {
			t.Fatal(err)
		}
		masters[node.Options().Addr] = true

		allowed, refused := chargeConcurrently(t, stores, key, 500, 800)
		if allowed != 500 || refused != 300 {
			t.Fatalf("%s: allowed %d, refused %d; want exactly 500 and 300", key, allowed, refused)
		}
		now := time.Now()
		r, err := stores[2].Charge(ctx, &policy.Charge{Key: lk(key), Cost: 0, Limit: 500, Seats: 1, Hardware: "a",
			SessionTTL: time.Minute, Expires: now.Add(time.Hour), Now: now})
		if err != nil || r.Outcome != policy.Allowed || r.Used != 500 {
			t.Fatalf("seat charge on the cluster = %+v, %v", r, err)
		}
		if err := stores[1].Revoke(ctx, lk(key), now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		u, err := stores[0].Usage(ctx, lk(key), now)
		if err != nil || u.Used != 500 || u.Seats != 1 || !u.Revoked {
			t.Fatalf("Usage = %+v, %v", u, err)
		}
	}
	if len(masters) < 2 {
		t.Fatalf("all keys on %v; want them spread over the masters", masters)
	}
}

func TestRedisDownIsErrStoreAndTheSameStoreRecovers(t *testing.T) {
	srv := testredis.Start(t)
	s := newStore(t, Options{Addresses: []string{srv.Addr()}})
	ctx := context.Background()
	charge := func(key string) (policy.Result, error) {
		now := time.Now()
		return s.Charge(ctx, &policy.Charge{Key: lk(key), Cost: 1, Limit: 1 << 40, Seats: 2, Hardware: "hw",
			SessionTTL: time.Minute, Expires: now.Add(time.Hour), Now: now})
	}

	// Load, then the server dies under it.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	var bad atomic.Value
	for i := range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := charge("load-" + strconv.Itoa(i))
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, policy.ErrStore):
					failed.Add(1)
				default:
					bad.Store(err)
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	srv.Kill()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err := bad.Load(); err != nil {
		t.Fatalf("an error not wrapping policy.ErrStore: %v", err)
	}
	if ok.Load() == 0 || failed.Load() == 0 {
		t.Fatalf("%d charges succeeded and %d failed; want both", ok.Load(), failed.Load())
	}
	t.Logf("before and during the outage: %d charges succeeded, %d failed with ErrStore", ok.Load(), failed.Load())

	// Every operation fails the same way while Redis is down, quickly.
	start := time.Now()
	_, err := charge("down")
	if !errors.Is(err, policy.ErrStore) {
		t.Fatalf("Charge while down: %v, want ErrStore", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Charge while down took %v", d)
	}
	checks := map[string]error{
		"Refund":        s.Refund(ctx, lk("down"), 1),
		"Revoke":        s.Revoke(ctx, lk("down"), time.Now().Add(time.Hour)),
		"Unrevoke":      s.Unrevoke(ctx, lk("down")),
		"Ping":          s.Ping(ctx),
		"AdjustCredits": func() error { _, err := s.AdjustCredits(ctx, lk("down"), 1, false, time.Time{}); return err }(),
		"Usage":         func() error { _, err := s.Usage(ctx, lk("down"), time.Now()); return err }(),
	}
	for op, err := range checks {
		if !errors.Is(err, policy.ErrStore) {
			t.Errorf("%s while down: %v, want ErrStore", op, err)
		}
	}

	srv.Restart()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r, err := charge("after")
		if err == nil {
			if r.Outcome != policy.Allowed || r.Used != 1 {
				t.Fatalf("first charge after the restart = %+v", r)
			}
			break
		}
		if !errors.Is(err, policy.ErrStore) {
			t.Fatalf("after restart: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store did not recover within 15s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The restarted server lost its script cache: EVALSHA's NOSCRIPT fell
	// back to EVAL. The rest works too.
	if r, err := charge("after"); err != nil || r.Used != 2 {
		t.Fatalf("second charge after the restart = %+v, %v", r, err)
	}
	if u, err := s.Usage(ctx, lk("after"), time.Now()); err != nil || u.Used != 2 || u.Seats != 1 {
		t.Fatalf("Usage after the restart = %+v, %v", u, err)
	}
}

func TestUnreachableRedisIsErrStore(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	s := newStore(t, Options{Addresses: []string{addr}})
	now := time.Now()
	_, err = s.Charge(context.Background(), &policy.Charge{Key: lk("k"), Cost: 1, Limit: 1, Expires: now.Add(time.Hour), Now: now})
	if !errors.Is(err, policy.ErrStore) {
		t.Fatalf("Charge = %v, want ErrStore", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Fatalf("the cause is lost: %v", err)
	}
}

func TestCanceledContextIsErrStore(t *testing.T) {
	srv := testredis.Start(t)
	s := newStore(t, Options{Addresses: []string{srv.Addr()}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	now := time.Now()
	_, err := s.Charge(ctx, &policy.Charge{Key: lk("k"), Cost: 1, Limit: 1, Expires: now.Add(time.Hour), Now: now})
	if !errors.Is(err, policy.ErrStore) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Charge = %v, want ErrStore wrapping context.Canceled", err)
	}
}

func TestScriptFlushFallsBackToEval(t *testing.T) {
	srv := testredis.Start(t)
	s := newStore(t, Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second})
	ctx := context.Background()
	now := time.Now()
	c := &policy.Charge{Key: lk("k"), Cost: 1, Limit: 5, Expires: now.Add(time.Hour), Now: now}
	for i := int64(1); i <= 3; i++ {
		if err := rawClient(t, srv.Addr()).ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		r, err := s.Charge(ctx, c)
		if err != nil || r.Used != i {
			t.Fatalf("Charge after SCRIPT FLUSH = %+v, %v", r, err)
		}
		if _, err := s.AdjustCredits(ctx, lk("k"), 0, false, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
}

// slowProxy forwards TCP to target. When armed, it holds back the next
// reply (on whichever connection) by delay: one slow hop, after which a
// retry on a fresh connection would be quick.
type slowProxy struct {
	ln     net.Listener
	target string
	delay  time.Duration
	armed  atomic.Bool
}

func startSlowProxy(t *testing.T, target string, delay time.Duration) *slowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{ln: ln, target: target, delay: delay}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { p.pipe(c) })
		}
	})
	return p
}

func (p *slowProxy) pipe(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	go func() {
		_, _ = io.Copy(server, client)
		server.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			if p.armed.CompareAndSwap(true, false) {
				time.Sleep(p.delay)
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// A reply that times out does not mean the script did not run: go-redis
// would send it again on a new connection (for a Cluster, on the same node
// and then another), charging one request several times.
func TestTimedOutChargeIsNotSentAgain(t *testing.T) {
	srv := testredis.Start(t)
	proxy := startSlowProxy(t, srv.Addr(), 300*time.Millisecond)
	s := newStore(t, Options{Addresses: []string{proxy.ln.Addr().String()}, Timeout: 50 * time.Millisecond})
	raw := rawClient(t, srv.Addr())
	ctx := context.Background()
	if err := raw.ScriptLoad(ctx, chargeLua).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil { // connect while replies are quick
		t.Fatal(err)
	}
	// The pipelined path has its own connections: open one too.
	warm := time.Now()
	if _, err := s.Charge(ctx, &policy.Charge{Key: lk("warm"), Cost: 1, Limit: 100, Expires: warm.Add(time.Hour), Now: warm}); err != nil {
		t.Fatal(err)
	}

	proxy.armed.Store(true)
	now := time.Now()
	_, err := s.Charge(ctx, &policy.Charge{Key: lk("slow"), Cost: 1, Limit: 100, Expires: now.Add(time.Hour), Now: now})
	if !errors.Is(err, policy.ErrStore) {
		t.Fatalf("Charge through a slow link = %v, want ErrStore", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Charge error %v is not a timeout", err)
	}
	used, err := raw.Get(ctx, "lg:{"+Tag(lk("slow"))+"}:used").Int64()
	if err != nil || used != 1 {
		t.Fatalf("used = %d, %v; want the script run exactly once", used, err)
	}
	// The store goes on working.
	r, err := s.Charge(ctx, &policy.Charge{Key: lk("slow"), Cost: 1, Limit: 100, Expires: now.Add(time.Hour), Now: now})
	if err != nil || r.Used != 2 {
		t.Fatalf("next Charge = %+v, %v", r, err)
	}
}

func TestNewPicksTheClientAndChecksOptions(t *testing.T) {
	tests := []struct {
		name    string
		o       Options
		want    string // client type, or "" for an error
		wantErr string
	}{
		{name: "no address is the local default", o: Options{}, want: "*redis.Client"},
		{name: "one address is a single node", o: Options{Addresses: []string{"10.0.0.1:6379"}, DB: 3}, want: "*redis.Client"},
		{name: "several addresses are a Cluster", o: Options{Addresses: []string{"a:1", "b:2"}}, want: "*redis.ClusterClient"},
		{name: "a master name is Sentinel", o: Options{Addresses: []string{"a:26379", "b:26379"}, MasterName: "mymaster", DB: 2}, want: "*redis.Client"},
		{name: "a db on a Cluster is an error", o: Options{Addresses: []string{"a:1", "b:2"}, DB: 1}, wantErr: "only db 0"},
		{name: "a negative timeout is an error", o: Options{Timeout: -time.Second}, wantErr: "negative timeout"},
		{name: "a negative pool size is an error", o: Options{PoolSize: -1}, wantErr: "negative pool size"},
		{name: "a negative db is an error", o: Options{DB: -1}, wantErr: "negative db"},
		{name: "an empty address is an error", o: Options{Addresses: []string{"a:1", ""}}, wantErr: "empty address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New = %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := fmt.Sprintf("%T", s.client); got != tc.want {
				t.Fatalf("client %s, want %s", got, tc.want)
			}
		})
	}
}

func TestNewAppliesDefaults(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := s.client.(*redis.Client)
	o := c.Options()
	if o.Addr != DefaultAddress || o.ReadTimeout != DefaultTimeout || o.WriteTimeout != DefaultTimeout || o.DialTimeout != DefaultTimeout {
		t.Fatalf("options %s, read %v, write %v, dial %v", o.Addr, o.ReadTimeout, o.WriteTimeout, o.DialTimeout)
	}
	if s.prefix != DefaultPrefix {
		t.Fatalf("prefix %q", s.prefix)
	}
	s2, err := New(Options{Timeout: 250 * time.Millisecond, PoolSize: 7, Prefix: "x:"})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	o = s2.client.(*redis.Client).Options()
	if o.ReadTimeout != 250*time.Millisecond || o.PoolSize != 7 || s2.prefix != "x:" {
		t.Fatalf("read %v, pool %d, prefix %q", o.ReadTimeout, o.PoolSize, s2.prefix)
	}
}

// TestDurabilityWaitsForReplicas: with Replicas 1, a charge returns once
// the replica has it; without the replica it fails with ErrNotReplicated
// (it ran on the master and is to be voided), and the void goes through
// once the replica is back.
func TestDurabilityWaitsForReplicas(t *testing.T) {
	master := testredis.Start(t)
	replica := testredis.StartReplica(t, master)
	s := newStore(t, Options{Addresses: []string{master.Addr()}, Timeout: 5 * time.Second,
		Replicas: 1, ReplicaTimeout: time.Second})
	ctx := context.Background()
	now := time.Now()
	charge := func(id string) (policy.Result, error) {
		return s.Charge(ctx, &policy.Charge{Key: lk("durable"), Cost: 1, Limit: 10, Expires: now.Add(time.Hour), Now: now, Request: id})
	}
	usedOn := func(srv *testredis.Server) string {
		t.Helper()
		v, err := srv.Do("GET", "lg:{"+Tag(lk("durable"))+"}:used")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if r, err := charge("r1"); err != nil || r.Outcome != policy.Allowed {
		t.Fatalf("Charge with the replica up = %+v, %v", r, err)
	}
	// Acknowledged means the replica has it, now.
	if v := usedOn(replica); v != "1" {
		t.Fatalf("the replica holds used = %q right after the charge, want 1", v)
	}

	replica.Kill()
	_, err := charge("r2")
	if !errors.Is(err, ErrNotReplicated) || !errors.Is(err, policy.ErrStore) || errors.Is(err, policy.ErrNotSent) {
		t.Fatalf("Charge without the replica = %v, want ErrNotReplicated and ErrStore", err)
	}
	if v := usedOn(master); v != "2" {
		t.Fatalf("the master holds used = %q, want 2 (the charge ran there)", v)
	}
	undo := &policy.Undo{Key: lk("durable"), Request: "r2", Cost: 1, Seat: true, Now: now}
	if err := s.Undo(ctx, undo); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("Undo without the replica = %v, want ErrNotReplicated", err)
	}
	replica.Restart()
	// Sent again until acknowledged: it gives back nothing twice.
	undoUntilAcknowledged(t, s, undo)
	if v := usedOn(replica); v != "1" {
		t.Fatalf("the replica holds used = %q after the void, want 1", v)
	}
}

// undoUntilAcknowledged sends undo again (as the gate's void queue does)
// until the store acknowledges it, for up to 20 s (a bound for a busy
// machine, not a measure).
func undoUntilAcknowledged(t *testing.T, s *Store, undo *policy.Undo) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for err := s.Undo(context.Background(), undo); err != nil; err = s.Undo(context.Background(), undo) {
		if time.Now().After(deadline) {
			t.Fatalf("Undo once the replica is back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

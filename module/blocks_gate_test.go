package module

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/module/redisstore"
	"github.com/licensegate/licensegate/policy"
)

// blockGate is a gate whose store is s, with credit blocks on, refunding
// 5xx.
func blockGate(t *testing.T, s *blockStore, clk *testClock) *Gate {
	t.Helper()
	g, _ := provisioned(t, &Gate{Secret: "block-secret-block-secret-block-secret", RefundOn: []string{"5xx"}}, clk)
	g.store, g.revocationView, g.storeInProcess = s, s, false
	g.voids = newVoidQueue(s, "blocks", 16, time.Second)
	g.blocks = newTestTable(t, s)
	t.Cleanup(func() {
		g.blocks.close(time.Second)
		g.voids.close()
	})
	return g
}

// serveStatus runs r through g in front of a handler answering status.
func serveStatus(t *testing.T, g *Gate, r *http.Request, status int) *httptest.ResponseRecorder {
	t.Helper()
	return serveNext(t, g, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		w.WriteHeader(status)
		return nil
	}))
}

// serveNext runs r through g in front of next.
func serveNext(t *testing.T, g *Gate, r *http.Request, next caddyhttp.Handler) *httptest.ResponseRecorder {
	t.Helper()
	repl := caddy.NewReplacer()
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: "192.0.2.7"})
	rec := httptest.NewRecorder()
	if err := g.ServeHTTP(rec, r.WithContext(ctx), next); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	return rec
}

// warm sends requests until the license holds a block; it returns how
// many were served.
func warm(t *testing.T, g *Gate, tok string) int64 {
	t.Helper()
	for n := int64(1); n < 1000; n++ {
		if rec := serveStatus(t, g, bearer(tok), http.StatusOK); rec.Code != http.StatusOK {
			t.Fatalf("warm-up: %d %s", rec.Code, rec.Body)
		}
		if blockUnused.Load() > 0 {
			return n
		}
	}
	t.Fatal("no block after 1000 requests")
	return 0
}

func TestTheGateServesFromItsBlock(t *testing.T) {
	clk := newClock()
	s := newBlockStore()
	g := blockGate(t, s, clk)
	const credits = 1_000_000
	tok := hsToken(t, g.Secret, claimsAt(clk, "credits", credits))
	key := policy.LicenseKey{Key: "jti-1"}
	served := warm(t, g, tok)
	charges := s.charges.Load()

	t.Run("with no round trip and the credits left in the header", func(t *testing.T) {
		rec := serveStatus(t, g, bearer(tok), http.StatusOK)
		served++
		if rec.Code != http.StatusOK || s.charges.Load() != charges {
			t.Fatalf("status %d, %d store charges (want none)", rec.Code, s.charges.Load()-charges)
		}
		if got := rec.Header().Get(HeaderCreditsRemaining); got != strconv.FormatInt(credits-served, 10) {
			t.Errorf("%s = %s, want %d", HeaderCreditsRemaining, got, credits-served)
		}
	})

	t.Run("a refund goes back to the block", func(t *testing.T) {
		before := blockUnused.Load()
		if rec := serveStatus(t, g, bearer(tok), http.StatusBadGateway); rec.Code != http.StatusBadGateway {
			t.Fatalf("status %d", rec.Code)
		}
		if got := blockUnused.Load(); got != before || len(s.undos) != 0 {
			t.Errorf("block credits %d → %d, store undos %v: want the credit back in the block", before, got, s.undos)
		}
	})

	t.Run("a refund after the block went back goes to the store once", func(t *testing.T) {
		// A request served from the block, its upstream slow: the block
		// idles out meanwhile.
		slow := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
			g.blocks.sweep(clk.Now().Add(blockIdle))
			w.WriteHeader(http.StatusServiceUnavailable)
			return nil
		})
		serveNext(t, g, bearer(tok), slow)
		s.mu.Lock()
		undos := append([]policy.Undo(nil), s.undos...)
		s.mu.Unlock()
		if len(undos) != 1 || !undos[0].Ran || undos[0].Cost != 1 || undos[0].Request == "" || undos[0].Block != 0 {
			t.Fatalf("store undos %+v, want one refund with an id of its own", undos)
		}
		used, leased := s.counts(key)
		if used != served || leased != 0 {
			t.Errorf("store used %d, leased %d; served %d", used, leased, served)
		}
	})
}

func TestAChargeAskingABlockThatTimesOutIsVoidedWithItsBlock(t *testing.T) {
	clk := newClock()
	s := newBlockStore()
	g := blockGate(t, s, clk)
	tok := hsToken(t, g.Secret, claimsAt(clk, "credits", 1_000_000))
	warm(t, g, tok)
	// Serve the block out, then the store stops answering.
	for blockUnused.Load() > 0 {
		serveStatus(t, g, bearer(tok), http.StatusOK)
	}
	s.mu.Lock()
	s.fail = policy.ErrStore
	s.mu.Unlock()
	rec := serveStatus(t, g, bearer(tok), http.StatusOK)
	if rec.Code != http.StatusServiceUnavailable || code(t, rec, "license") != string(policy.CodeServiceUnavailable) {
		t.Fatalf("status %d %s, want 503 serviceUnavailable", rec.Code, rec.Body)
	}
	var void policy.Undo
	for void.Request == "" {
		s.mu.Lock()
		if len(s.undos) > 0 {
			void = s.undos[0]
		}
		s.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	if void.Ran || !void.Seat || void.Block == 0 || void.Cost != 1 {
		t.Errorf("void %+v, want the charge's cost, seat and block", void)
	}
}

func TestARevokedLicenseIsNotServedFromItsBlock(t *testing.T) {
	clk := newClock()
	s := newBlockStore()
	g := blockGate(t, s, clk)
	tok := hsToken(t, g.Secret, claimsAt(clk, "credits", 1_000_000))
	warm(t, g, tok)
	if err := s.Revoke(context.Background(), policy.LicenseKey{Key: "jti-1"}, clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	rec := serveStatus(t, g, bearer(tok), http.StatusOK)
	if rec.Code != http.StatusUnauthorized || code(t, rec, "license") != string(policy.CodeNotAuthorized) {
		t.Fatalf("status %d %s, want 401 notAuthorized", rec.Code, rec.Body)
	}
	g.blocks.pending.Wait()
	if _, leased := s.counts(policy.LicenseKey{Key: "jti-1"}); leased != 0 || blockUnused.Load() != 0 {
		t.Errorf("leased %d, unused %d after the revocation; want the block returned", leased, blockUnused.Load())
	}
}

func TestTheRedisStoreServesFromBlocksOnlyWithPushedRevocations(t *testing.T) {
	srv := testredis.Start(t)
	for _, tc := range []struct {
		name, blocks, revocations string
		on                        bool
		log, errPart              string
	}{
		{"by default", "", "", true, "", ""},
		{"off when asked", BlocksOff, "", false, "", ""},
		{"off with revocations per request, saying so", "", RevocationsPerRequest, false, "credit blocks off: they need revocations pushed", ""},
		{"refused on with revocations per request", BlocksOn, RevocationsPerRequest, false, "", "blocks on needs revocations pushed"},
		{"refused for an unknown value", "sometimes", "", false, "", `blocks must be on or off, not "sometimes"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			g := &Gate{JWKSFiles: fileGate(t, newKey(t, "k", "ES256")).JWKSFiles,
				Store: &StoreConfig{Type: "redis", Addresses: []string{srv.Addr()}, Prefix: "blocksopt:",
					Blocks: tc.blocks, Revocations: tc.revocations}}
			g.logger = zap.New(core)
			err := g.provisionGate()
			t.Cleanup(func() { _ = g.Cleanup() })
			if tc.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("provision error %v, want one containing %q", err, tc.errPart)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if on := g.blocks != nil; on != tc.on {
				t.Errorf("blocks on = %v, want %v", on, tc.on)
			}
			if tc.log != "" && logs.FilterMessageSnippet(tc.log).Len() != 1 {
				t.Errorf("no line %q: %v", tc.log, logs.All())
			}
		})
	}
}

func TestBlocksOnRedisNeverServeMoreThanTheCredits(t *testing.T) {
	srv := testredis.Start(t)
	const credits, clients, each = 20000, 24, 1200
	key := policy.LicenseKey{Issuer: "https://iss", Key: "redis-exact"}
	// Three gateways: three stores on one Redis, each with its table.
	var tables []*blockTable
	var stores []*redisstore.Store
	for range 3 {
		s, err := redisstore.New(redisstore.Options{Addresses: []string{srv.Addr()}, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		b, ok := any(s).(policy.Blocks)
		if !ok {
			t.Fatal("the Redis store grants no blocks")
		}
		stores, tables = append(stores, s), append(tables, newBlockTable(b, s, 5*time.Second))
	}
	now := time.Now()
	takenBefore := metricNow(blocksTaken)
	var served atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tb, s := tables[c%3], stores[c%3]
			for range each {
				a := chargeAsk{key: key, cost: 1, limit: credits, now: now}
				plan := tb.begin(&a)
				if plan.served {
					served.Add(1)
					continue
				}
				ch := policy.Charge{Key: key, Cost: 1, Limit: credits, Now: now, Expires: now.Add(time.Hour),
					Block: plan.ask, EndBlock: plan.end}
				res, err := s.Charge(context.Background(), &ch)
				tb.finish(&a, plan, res, err, true)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Outcome == policy.Allowed {
					served.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	taken := metricNow(blocksTaken)
	for _, tb := range tables {
		tb.close(5 * time.Second)
	}
	u, err := stores[0].Usage(context.Background(), key, now)
	if err != nil {
		t.Fatal(err)
	}
	if u.Used+u.Leased != served.Load() || u.Leased != 0 || served.Load() > credits {
		t.Errorf("served %d of %d; the store holds used %d, leased %d", served.Load(), credits, u.Used, u.Leased)
	}
	if taken == takenBefore {
		t.Error("no block was taken")
	}
	// What the blocks held came back: the rest is there to the last
	// credit, one charge at a time.
	for {
		res, err := stores[0].Charge(context.Background(), &policy.Charge{Key: key, Cost: 1, Limit: credits, Now: now, Expires: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if res.Outcome != policy.Allowed {
			break
		}
		served.Add(1)
	}
	if served.Load() != credits {
		t.Errorf("served %d in all, want %d", served.Load(), credits)
	}
}

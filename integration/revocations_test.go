package integration

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/module/redisstore"
	"github.com/licensegate/licensegate/policy"
)

// TestRevocationsArePushedToEveryGateway runs three gateways (separate
// Caddy processes) on one Redis, a single node and a Cluster: a license
// with neither credits nor seats costs no charge script; a revocation and
// its lifting through one gateway's admin API reach the others, also when
// the message is lost. The delays are logged: they are what README.md
// states, measured, not asserted (the bound is 10 s for a busy machine).
func TestRevocationsArePushedToEveryGateway(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		addrs func(t *testing.T) []string
	}{
		{"single node", func(t *testing.T) []string { return []string{testredis.Start(t).Addr()} }},
		{"cluster", func(t *testing.T) []string { return testredis.StartCluster(t, 3) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addrs := tc.addrs(t)
			key, site := storeSite(t, "store redis {\n\t\t\taddresses "+strings.Join(addrs, " ")+"\n\t\t\ttimeout 5s\n\t\t}")
			gates := []*Caddy{StartCaddy(t, site), StartCaddy(t, site), StartCaddy(t, site)}
			raw := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs})
			t.Cleanup(func() { raw.Close() })

			t.Run("a license that counts nothing costs no charge script, one with credits at most one per request", func(t *testing.T) {
				plain, credits := key.Sign(t, Std()), key.Sign(t, Std("credits", 1000))
				for _, c := range gates {
					for _, tok := range []string{credits, plain} {
						if resp, body := c.Get(t, "/", tok); resp.StatusCode != 200 {
							t.Fatalf("warm-up: %d %s", resp.StatusCode, body)
						}
					}
				}
				// A gateway asks the store until it has read the revocations
				// once, just after it starts.
				readRevocations(t, addrs, plain, gates...)
				const n = 60
				before := scriptCalls(t, addrs)
				for i := range n {
					if resp, body := gates[i%3].Get(t, "/", plain); resp.StatusCode != 200 {
						t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
					}
				}
				if d := scriptCalls(t, addrs) - before; d != 0 {
					t.Fatalf("%d requests of a token without credits or seats ran %d scripts; want 0", n, d)
				}
				before = scriptCalls(t, addrs)
				for i := range n {
					if resp, body := gates[i%3].Get(t, "/", credits); resp.StatusCode != 200 {
						t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
					}
				}
				// At most one each: with credit blocks on (the default) a
				// busy license's requests are served from blocks.
				if d := scriptCalls(t, addrs) - before; d < 1 || d > n {
					t.Fatalf("%d requests of a token with credits ran %d scripts; want 1 to %d", n, d, n)
				}
			})

			t.Run("a revocation and its lifting reach every gateway", func(t *testing.T) {
				claims := Std()
				tok, jti := key.Sign(t, claims), claims["jti"].(string)
				for _, c := range gates {
					if resp, body := c.Get(t, "/", tok); resp.StatusCode != 200 {
						t.Fatalf("before: %d %s", resp.StatusCode, body)
					}
				}
				start := time.Now()
				adminDo(t, gates[0], http.MethodPost, "/license-gate/revocations", `{"jti":"`+jti+`"}`, 200)
				// The gateway that revoked knows at once.
				resp, body := gates[0].Get(t, "/", tok)
				if rb := AssertReject(t, resp, body, http.StatusUnauthorized, "notAuthorized", ""); !strings.Contains(rb.Technical, "revoked") {
					t.Errorf("technical %q", rb.Technical)
				}
				for i, c := range gates[1:] {
					d := untilStatus(t, c, tok, http.StatusUnauthorized, start)
					t.Logf("revocation through gateway 1 refused on gateway %d after %v", i+2, d)
				}
				resp, body = gates[2].Get(t, "/", tok)
				AssertReject(t, resp, body, http.StatusUnauthorized, "notAuthorized", "")
				if out := adminDo(t, gates[2], http.MethodGet, "/license-gate/licenses/"+jti, "", 200); !strings.Contains(out, `"revoked":true`) {
					t.Fatalf("GET on gateway 3: %s", out)
				}

				start = time.Now()
				adminDo(t, gates[0], http.MethodDelete, "/license-gate/revocations/"+jti, "", 200)
				if resp, body := gates[0].Get(t, "/", tok); resp.StatusCode != 200 {
					t.Fatalf("after unrevoke on the same gateway: %d %s", resp.StatusCode, body)
				}
				for i, c := range gates[1:] {
					d := untilStatus(t, c, tok, http.StatusOK, start)
					t.Logf("unrevocation through gateway 1 served on gateway %d after %v", i+2, d)
				}
				if out := adminDo(t, gates[1], http.MethodGet, "/license-gate/licenses/"+jti, "", 200); !strings.Contains(out, `"revoked":false`) {
					t.Fatalf("GET on gateway 2: %s", out)
				}
			})

			t.Run("a revocation whose message is lost reaches every gateway by reconciliation", func(t *testing.T) {
				ctx := context.Background()
				// Cut every subscriber off, then revoke: the message may
				// reach nobody; the resubscription reads the index again.
				claims := Std()
				tok, jti := key.Sign(t, claims), claims["jti"].(string)
				for _, a := range addrs {
					if _, err := testredis.Command(a, "CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
						t.Fatal(err)
					}
				}
				start := time.Now()
				adminDo(t, gates[0], http.MethodPost, "/license-gate/revocations", `{"jti":"`+jti+`"}`, 200)
				for i, c := range gates[1:] {
					d := untilStatus(t, c, tok, http.StatusUnauthorized, start)
					t.Logf("revocation made while subscribers were cut off refused on gateway %d after %v", i+2, d)
				}

				// A revocation written without any message (as when the
				// PUBLISH is lost): only the periodic read finds it.
				claims = Std()
				tok = key.Sign(t, claims)
				lk := policy.LicenseKey{Key: claims["jti"].(string)}
				until := time.Now().Add(time.Hour).UnixMilli()
				for _, c := range gates {
					if resp, body := c.Get(t, "/", tok); resp.StatusCode != 200 {
						t.Fatalf("before: %d %s", resp.StatusCode, body)
					}
				}
				start = time.Now()
				if err := raw.Set(ctx, "lg:{"+redisstore.Tag(lk)+"}:revoked", until, 0).Err(); err != nil {
					t.Fatal(err)
				}
				if err := raw.ZAdd(ctx, "lg:revocations", redis.Z{Score: float64(until), Member: redisstore.Tag(lk)}).Err(); err != nil {
					t.Fatal(err)
				}
				for i, c := range gates {
					d := untilStatus(t, c, tok, http.StatusUnauthorized, start)
					t.Logf("revocation without a message refused on gateway %d after %v (reconciliation every %v)", i+1, d, redisstore.DefaultRevocationSync)
				}
			})
		})
	}
}

// untilStatus polls the gateway with tok until it answers want, for at
// most 10 s, and returns the time since start.
func untilStatus(t *testing.T, c *Caddy, tok string, want int, start time.Time) time.Duration {
	t.Helper()
	for {
		resp, _ := c.Get(t, "/", tok)
		if resp.StatusCode == want {
			return time.Since(start)
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("still %d after 10 s, want %d", resp.StatusCode, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readRevocations waits until each gateway answers a token without credits
// or seats from its revocation set, with no script run: it has read the
// revocations once (blocks are served only after that).
func readRevocations(t *testing.T, addrs []string, plain string, gates ...*Caddy) {
	t.Helper()
	for _, c := range gates {
		WaitFor(t, 10*time.Second, "the gateway to read the revocations", func() bool {
			before := scriptCalls(t, addrs)
			c.Get(t, "/", plain)
			return scriptCalls(t, addrs) == before
		})
	}
}

// scriptCalls is the number of EVALSHA and EVAL calls all nodes have run.
func scriptCalls(t *testing.T, addrs []string) int {
	t.Helper()
	total := 0
	for _, a := range addrs {
		info, err := testredis.Command(a, "INFO", "commandstats")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
			if !ok || (name != "cmdstat_evalsha" && name != "cmdstat_eval") {
				continue
			}
			n, err := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			if err != nil {
				t.Fatalf("INFO commandstats line %q: %v", line, err)
			}
			total += n
		}
	}
	return total
}

// TestARevokedLicenseThatCountsNothingIsRefusedOnBothStores: a token with
// neither credits nor seats, answered from the store's in-process
// revocations, is refused 401 notAuthorized the moment the admin API
// revokes it and served again once the revocation is lifted.
func TestARevokedLicenseThatCountsNothingIsRefusedOnBothStores(t *testing.T) {
	t.Parallel()
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			key, site := storeSite(t, sc.store(t))
			c := StartCaddy(t, site)
			claims := Std()
			tok, jti := key.Sign(t, claims), claims["jti"].(string)
			if resp, body := c.Get(t, "/", tok); resp.StatusCode != 200 {
				t.Fatalf("before: %d %s", resp.StatusCode, body)
			}
			adminDo(t, c, http.MethodPost, "/license-gate/revocations", `{"jti":"`+jti+`"}`, 200)
			resp, body := c.Get(t, "/", tok)
			if rb := AssertReject(t, resp, body, http.StatusUnauthorized, "notAuthorized", ""); rb.Technical != "the license has been revoked" {
				t.Errorf("technical %q", rb.Technical)
			}
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			adminDo(t, c, http.MethodDelete, "/license-gate/revocations/"+jti, "", 200)
			if resp, body := c.Get(t, "/", tok); resp.StatusCode != 200 {
				t.Fatalf("after unrevoke: %d %s", resp.StatusCode, body)
			}
		})
	}
}

// TestRevocationsPerRequestAskTheStoreEveryTime: with `revocations
// per_request` a token with neither credits nor seats runs the charge
// script on every request, as before revocations were pushed.
func TestRevocationsPerRequestAskTheStoreEveryTime(t *testing.T) {
	t.Parallel()
	r := testredis.Start(t)
	key, site := storeSite(t, "store redis {\n\t\t\taddresses "+r.Addr()+"\n\t\t\ttimeout 5s\n\t\t\trevocations per_request\n\t\t}")
	c := StartCaddy(t, site)
	plain := key.Sign(t, Std())
	if resp, body := c.Get(t, "/", plain); resp.StatusCode != 200 {
		t.Fatalf("warm-up: %d %s", resp.StatusCode, body)
	}
	const n = 20
	before := scriptCalls(t, []string{r.Addr()})
	for i := range n {
		if resp, body := c.Get(t, "/", plain); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
	}
	if d := scriptCalls(t, []string{r.Addr()}) - before; d != n {
		t.Fatalf("%d requests ran %d scripts; want %d", n, d, n)
	}
}

// storeSite is a site whose license_gate (keys served by a key server of
// its own, with the returned key) uses the given store lines in front of an
// upstream answering 200.
func storeSite(t *testing.T, store string) (*Key, string) {
	key := NewRSAKey(t, "k1", "RS256")
	ks := NewKeyServer(t, JWKS(t, key))
	up := Upstream(t, http.StatusOK)
	return key, `
	license_gate {
		jwks_url ` + ks.JWKSURL() + `
		` + store + `
	}
	reverse_proxy ` + hostPort(up.URL)
}

package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/internal/testredis"
	"github.com/licensegate/licensegate/module/redisstore"
	"github.com/licensegate/licensegate/policy"
)

// The fault suite: real Caddy, real redis-server processes, concurrent
// load bounded by counts, one fault each. Each case counts the requests
// served (200: an acknowledged charge), refused 503, and the credits the
// store holds once the fault is over, and asserts what the contract
// promises. `go test ./integration -run TestFaults -count=1 -update`
// writes the figures to FAULTS.md.

// faultRow is one line of FAULTS.md.
type faultRow struct {
	name, setup, fault string
	served, refused    int64
	charged            int64
	note               string
}

// load hammers a gate with a token from several workers until stopped.
type load struct {
	t       testing.TB
	served  atomic.Int64
	refused atomic.Int64 // 503
	other   atomic.Int64
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startLoad(t testing.TB, c *Caddy, tok string, workers int) *load {
	l := &load{t: t, stop: make(chan struct{})}
	for range workers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, c.URL+"/", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := httpClient.Do(req)
				switch {
				case err != nil:
					l.other.Add(1)
				case resp.StatusCode == http.StatusOK:
					l.served.Add(1)
				case resp.StatusCode == http.StatusServiceUnavailable:
					l.refused.Add(1)
					// A client backs off a little (the answer says Retry-After),
					// and the machine stays free for the failover itself.
					time.Sleep(10 * time.Millisecond)
				default:
					l.other.Add(1)
				}
				if err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	return l
}

// until waits for cond on the load's counts.
func (l *load) until(what string, cond func(served, refused int64) bool) {
	l.t.Helper()
	WaitFor(l.t, 60*time.Second, what, func() bool { return cond(l.served.Load(), l.refused.Load()) })
}

// more waits until n more requests were served than when called.
func (l *load) more(n int64) {
	l.t.Helper()
	from := l.served.Load()
	l.until(fmt.Sprintf("%d more requests served", n), func(s, _ int64) bool { return s >= from+n })
}

func (l *load) end() {
	close(l.stop)
	l.wg.Wait()
	if o := l.other.Load(); o > 0 {
		l.t.Errorf("%d requests answered neither 200 nor 503", o)
	}
}

// faultGate starts a gate whose store block is store, metrics on.
func faultGate(t testing.TB, store string) (*Caddy, string, string) {
	key := NewRSAKey(t, "k1", "RS256")
	ks := NewKeyServer(t, JWKS(t, key))
	c := StartCaddy(t, `
	license_gate {
		jwks_url `+ks.JWKSURL()+`
		`+store+`
	}
	respond "ok" 200`, CaddyOptions{Globals: "metrics"})
	claims := Std("credits", 1_000_000)
	return c, key.Sign(t, claims), claims["jti"].(string)
}

// settle waits until no void is pending and returns the credits charged.
func settle(t testing.TB, c *Caddy, jti string) int64 {
	t.Helper()
	WaitFor(t, 60*time.Second, "the voids to be answered", func() bool {
		v, ok := c.metric(t, "licensegate_store_voids_pending")
		return ok && v == 0
	})
	// With credit blocks (the default) the gateway's blocks go back once
	// idle; the credits charged are all the store counts, what sits in
	// blocks included (a block whose return failed stays counted).
	var v licenseView
	deadline := time.Now().Add(30 * time.Second)
	WaitFor(t, 30*time.Second, "the store to answer the admin API", func() bool {
		req, _ := http.NewRequest(http.MethodGet, c.AdminURL+"/license-gate/licenses/"+escapeKey(jti), nil)
		resp, body := Do(t, req)
		if resp.StatusCode != 200 {
			return false
		}
		v = decodeView[licenseView](t, string(body))
		return v.Leased == 0 || time.Now().After(deadline.Add(-20*time.Second))
	})
	return v.Used + v.Leased
}

// durabilities are the replication settings the failover cases run with:
// a name and the store option.
var durabilities = []struct{ name, opt string }{
	{"async replication", ""},
	{"durability replicas 1", "\n\t\t\tdurability replicas 1 timeout 200ms"},
}

func TestFaults(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var rows []faultRow
	// record keeps a row and checks what holds under every fault: no
	// request refused with 503 is charged.
	record := func(t *testing.T, r faultRow) {
		if r.charged > r.served {
			t.Errorf("charged %d > served %d: a refused request was charged", r.charged, r.served)
		}
		t.Logf("%s, %s, %s: served %d, 503 %d, charged %d %s", r.name, r.setup, r.fault, r.served, r.refused, r.charged, r.note)
		mu.Lock()
		rows = append(rows, r)
		mu.Unlock()
	}
	const workers = 8

	t.Run("single node stall", func(t *testing.T) {
		r := testredis.Start(t)
		c, tok, jti := faultGate(t, "store redis {\n\t\t\taddresses "+r.Addr()+"\n\t\t\ttimeout 100ms\n\t\t}")
		l := startLoad(t, c, tok, workers)
		l.more(200)
		for range 3 {
			if _, err := r.Do("EVAL", busyLua, "0", "500"); err != nil {
				t.Fatal(err)
			}
			l.more(100)
		}
		l.end()
		charged := settle(t, c, jti)
		row := faultRow{name: "single node stall", setup: "timeout 100ms", fault: "3 × a 0.5 s busy script",
			served: l.served.Load(), refused: l.refused.Load(), charged: charged}
		record(t, row)
		if charged != row.served {
			t.Errorf("served %d, refused %d, charged %d: every 200 and only they must be charged", row.served, row.refused, charged)
		}
		if row.refused == 0 {
			t.Errorf("no 503 during the stalls: the fault did not bite")
		}
	})

	for _, p := range []struct {
		name    string
		options []string
		exact   bool
	}{
		{"no persistence", nil, false},
		{"appendonly yes, appendfsync everysec", []string{"--appendonly", "yes", "--appendfsync", "everysec"}, false},
		{"appendonly yes, appendfsync always", []string{"--appendonly", "yes", "--appendfsync", "always"}, true},
	} {
		t.Run("single node SIGKILL, "+p.name, func(t *testing.T) {
			r := testredis.StartWith(t, p.options...)
			c, tok, jti := faultGate(t, "store redis {\n\t\t\taddresses "+r.Addr()+"\n\t\t\ttimeout 100ms\n\t\t}")
			l := startLoad(t, c, tok, workers)
			l.more(300)
			r.Kill()
			before := l.served.Load()
			l.until("503s while Redis is down", func(_, refused int64) bool { return refused >= 20 })
			r.Restart()
			l.more(200)
			l.end()
			charged := settle(t, c, jti)
			row := faultRow{name: "single node SIGKILL + restart", setup: p.name,
				fault:  "kill -9 under load, restart on the same files",
				served: l.served.Load(), refused: l.refused.Load(), charged: charged,
				note: fmt.Sprintf("%d served before the kill", before)}
			record(t, row)
			if p.exact && charged != row.served {
				t.Errorf("appendfsync always: charged %d, served %d; every acknowledged charge must survive", charged, row.served)
			}
			if !p.exact && p.options == nil && charged >= before {
				t.Errorf("without persistence %d charges survived a kill -9; expected the count to restart", charged)
			}
		})
	}

	t.Run("Sentinel failover", func(t *testing.T) {
		for _, d := range durabilities {
			hows := []string{sentinelFailover, masterKilled}
			if d.opt != "" {
				hows = append(hows, backEmpty, backRejoined)
			}
			for _, how := range hows {
				t.Run(d.name+", "+how, func(t *testing.T) {
					master := testredis.Start(t)
					replica := testredis.StartReplica(t, master)
					sentinel := testredis.StartSentinel(t, master, "mymaster")
					// down-after-milliseconds 1000 is harsher than production
					// (see rejoin): a freshly promoted master is at times
					// judged down about a second after the switch.
					for _, kv := range [][2]string{{"down-after-milliseconds", "1000"}, {"failover-timeout", "5000"}} {
						if _, err := sentinel.Do("SENTINEL", "SET", "mymaster", kv[0], kv[1]); err != nil {
							t.Fatal(err)
						}
					}
					WaitFor(t, 30*time.Second, "the sentinel to know the replica", func() bool {
						out, err := sentinel.Do("SENTINEL", "REPLICAS", "mymaster")
						return err == nil && strings.Contains(out, fmt.Sprint(replica.Port()))
					})
					c, tok, jti := faultGate(t, "store redis {\n\t\t\taddresses "+sentinel.Addr()+
						"\n\t\t\tmaster_name mymaster\n\t\t\ttimeout 100ms"+d.opt+"\n\t\t}")
					l := startLoad(t, c, tok, workers)
					tl := recordTimeline(t, sentinel, "mymaster", []timelineNode{{"old master", master}, {"replica", replica}},
						"lg:{"+redisstore.Tag(policy.LicenseKey{Key: jti})+"}:used", l.served.Load)
					l.more(300)
					tl.add("fault: %s", how)
					if how == sentinelFailover {
						failover(t, sentinel, "mymaster", replica)
						demoted(t, sentinel, "mymaster", master, tl)
					} else {
						master.Kill()
						WaitFor(t, 60*time.Second, "the replica to be promoted", func() bool {
							out, err := sentinel.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
							return err == nil && strings.Contains(out, fmt.Sprint(replica.Port()))
						})
					}
					var before int64
					switch how {
					case masterKilled, backRejoined:
						// The old master comes back, without its data (no
						// persistence), the way README's Operations section
						// tells operators to bring back such a node.
						rejoin(t, sentinel, "mymaster", master, tl)
					case backEmpty:
						// The old master comes back empty as a plain master,
						// and is promoted before the Sentinel converts it.
						failoverEnded(t, sentinel, "mymaster", master)
						tl.add("restarting the old master as a plain master")
						master.Restart()
						WaitFor(t, 30*time.Second, "the sentinel to see the old master back", func() bool {
							return sentinelReplicaFlags(sentinel, "mymaster", master) == "slave"
						})
					}
					if how == backEmpty || how == backRejoined {
						before = l.served.Load()
						tl.add("second failover, to the old master")
						failover(t, sentinel, "mymaster", master)
						demoted(t, sentinel, "mymaster", replica, tl)
					}
					// The gate recovers by itself, without a reload.
					l.more(300)
					l.end()
					charged := settle(t, c, jti)
					row := faultRow{name: "Sentinel failover", setup: strings.TrimSpace(d.name), fault: how,
						served: l.served.Load(), refused: l.refused.Load(), charged: charged}
					if before > 0 {
						row.note = fmt.Sprintf("%d served before the second failover", before)
					}
					record(t, row)
					tl.end()
					if testing.Verbose() {
						t.Logf("timeline:\n%s", tl)
					}
					switch {
					case how == backEmpty && charged >= row.served:
						t.Errorf("charged %d, served %d: the empty node's promotion was expected to lose what was charged before; timeline:\n%s", charged, row.served, tl)
					case how != backEmpty && d.opt != "" && charged != row.served:
						t.Errorf("durability: charged %d, served %d; no acknowledged charge may be lost; timeline:\n%s", charged, row.served, tl)
					}
				})
			}
		}
	})

	t.Run("Cluster master killed", func(t *testing.T) {
		for _, d := range durabilities {
			t.Run(d.name, func(t *testing.T) {
				nodes := testredis.StartClusterNodes(t, 3, 1, 1000)
				addrs := make([]string, len(nodes))
				for i, n := range nodes {
					addrs[i] = n.Addr()
				}
				c, tok, jti := faultGate(t, "store redis {\n\t\t\taddresses "+strings.Join(addrs, " ")+
					"\n\t\t\ttimeout 100ms"+d.opt+"\n\t\t}")
				// The master holding the license's slot.
				cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
				defer cc.Close()
				m, err := cc.MasterForKey(context.Background(), "lg:{"+redisstore.Tag(policy.LicenseKey{Key: jti})+"}:used")
				if err != nil {
					t.Fatal(err)
				}
				var victim *testredis.Server
				for _, n := range nodes {
					if n.Addr() == m.Options().Addr {
						victim = n
					}
				}
				if victim == nil {
					t.Fatalf("no node at %s", m.Options().Addr)
				}
				var heir *testredis.Server // the victim's replica
				for _, n := range nodes {
					if role, err := n.Do("ROLE"); err == nil && strings.HasPrefix(role, "slave\n127.0.0.1\n"+fmt.Sprint(victim.Port())+"\n") {
						heir = n
					}
				}
				if heir == nil {
					t.Fatalf("no replica of %s", victim.Addr())
				}
				l := startLoad(t, c, tok, workers)
				l.more(300)
				victim.Kill()
				WaitFor(t, 60*time.Second, "the replica to be promoted", func() bool {
					role, err := heir.Do("ROLE")
					return err == nil && strings.HasPrefix(role, "master\n")
				})
				// Back as a replica of the promoted one (durability needs one).
				before := l.served.Load()
				victim.Restart()
				WaitFor(t, 60*time.Second, "the old master to be the heir's replica", func() bool {
					info, err := heir.Do("INFO", "replication")
					return err == nil && strings.Contains(info, "state=online")
				})
				l.more(300)
				l.end()
				charged := settle(t, c, jti)
				row := faultRow{name: "Cluster master killed", setup: "3 masters + 3 replicas, " + d.name,
					fault:  "kill -9 of the license's master under load, replica promoted",
					served: l.served.Load(), refused: l.refused.Load(), charged: charged,
					note: fmt.Sprintf("%d served before the restart", before)}
				record(t, row)
				if d.opt != "" && charged != row.served {
					t.Errorf("durability: charged %d, served %d; no acknowledged charge may be lost", charged, row.served)
				}
			})
		}
	})

	t.Cleanup(func() {
		if !updating() || t.Failed() {
			return
		}
		writeFaults(t, rows)
	})
}

// The Sentinel cases' faults.
const (
	sentinelFailover = "SENTINEL FAILOVER under load"
	masterKilled     = "master killed under load, back as a replica"
	backEmpty        = "master killed, back empty as a master, promoted"
	backRejoined     = "master killed, back as a replica, synced, promoted"
)

// failover has the Sentinel fail over (SENTINEL FAILOVER, repeated until
// accepted) and waits until it names to as the master.
func failover(t *testing.T, sentinel *testredis.Server, name string, to *testredis.Server) {
	t.Helper()
	WaitFor(t, 30*time.Second, "SENTINEL FAILOVER to be accepted", func() bool {
		_, err := sentinel.Do("SENTINEL", "FAILOVER", name)
		return err == nil
	})
	WaitFor(t, 60*time.Second, fmt.Sprintf("the node on port %d to be promoted", to.Port()), func() bool {
		out, err := sentinel.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
		return err == nil && strings.HasSuffix(out, "\n"+fmt.Sprint(to.Port()))
	})
}

// failoverEnded waits until the Sentinel's failover of name has ended
// with a master other than old, and returns that master's host and port.
func failoverEnded(t *testing.T, sentinel *testredis.Server, name string, old *testredis.Server) (host, port string) {
	t.Helper()
	WaitFor(t, 60*time.Second, "the failover to end", func() bool {
		out, err := sentinel.Do("SENTINEL", "MASTER", name)
		if err != nil {
			return false
		}
		m := pairs(strings.Split(out, "\n"))
		host, port = m["ip"], m["port"]
		return m["flags"] == "master" && port != fmt.Sprint(old.Port())
	})
	return host, port
}

// demoted waits until the Sentinel's failover away from old (still
// running) has ended and old replicates from the new master, its first
// sync done: only then has old dropped what it acknowledged after the
// promotion, and the count is final. The Sentinel converts a live old
// master some 10 s after the switch.
func demoted(t *testing.T, sentinel *testredis.Server, name string, old *testredis.Server, tl *timeline) {
	t.Helper()
	_, port := failoverEnded(t, sentinel, name, old)
	WaitFor(t, 60*time.Second, "the old master to replicate from the new one", func() bool {
		info, err := old.Do("INFO", "replication")
		return err == nil && testredis.InfoField(info, "role") == "slave" &&
			testredis.InfoField(info, "master_port") == port && testredis.InfoField(info, "master_link_status") == "up"
	})
	tl.add("the old master on port %d replicates from the new one", old.Port())
}

// sentinelReplicaFlags is what the Sentinel's SENTINEL REPLICAS says of
// node: its flags ("slave" for one it could promote), "" when unlisted.
func sentinelReplicaFlags(sentinel *testredis.Server, name string, node *testredis.Server) string {
	out, err := sentinel.Do("SENTINEL", "REPLICAS", name)
	if err != nil {
		return ""
	}
	// The replicas' field lists come flattened, each starting with "name".
	port := fmt.Sprint(node.Port())
	var replicas []map[string]string
	f := strings.Split(out, "\n")
	for i := 0; i+1 < len(f); i += 2 {
		if f[i] == "name" || len(replicas) == 0 {
			replicas = append(replicas, map[string]string{})
		}
		replicas[len(replicas)-1][f[i]] = f[i+1]
	}
	for _, r := range replicas {
		if r["port"] == port {
			return r["flags"]
		}
	}
	return ""
}

// pairs reads a flat field, value, field, value ... list.
func pairs(f []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(f); i += 2 {
		m[f[i]] = f[i+1]
	}
	return m
}

// rejoin brings a killed Sentinel master that lost its data back as an
// operator must: once the failover has ended, as a replica of the master
// the Sentinel names, with replica-priority 0 (never promoted) until its
// first sync is done, then with the default priority again.
//
// Restarted as a plain master instead, the empty node is a candidate for
// the next promotion until the Sentinel converts it (about 10 s later; the
// backEmpty case). The suite saw that unprovoked in about one run in five
// to nine: the Sentinel judged the new master down about a second after
// the switch (its first PING to a new master goes out a second after the
// switch, and down-after-milliseconds is 1000 here), promoted the empty
// node and had the new master resync from it — every charge acknowledged
// before the kill was lost, durability or not.
func rejoin(t *testing.T, sentinel *testredis.Server, name string, node *testredis.Server, tl *timeline) {
	t.Helper()
	host, port := failoverEnded(t, sentinel, name, node)
	tl.add("failover ended, master %s:%s; restarting the old master as its replica, replica-priority 0", host, port)
	node.RestartWith("--replicaof", host, port, "--replica-priority", "0")
	WaitFor(t, 60*time.Second, "the old master's first sync", func() bool {
		info, err := node.Do("INFO", "replication")
		return err == nil && testredis.InfoField(info, "master_link_status") == "up"
	})
	if _, err := node.Do("CONFIG", "SET", "replica-priority", "100"); err != nil {
		t.Fatal(err)
	}
	tl.add("old master in sync, replica-priority 100")
}

// faultNotes follow the table in FAULTS.md: what the figures mean.
const faultNotes = `
Reading the figures:

- *lost* is what a fault costs without ` + "`durability`" + `: with ` + "`SENTINEL FAILOVER`" + ` the old master
  keeps taking writes after its replica was promoted, until the Sentinel announces the new
  master and the gate switches (about a second here); demoted some 10 s later, it drops
  them — every charge it acknowledged in between is granted again (each count is read once
  the old master replicates from the new one). A killed master loses only what it had not
  yet sent to its replica (nothing on loopback here; more over a slow link). ` + "`durability replicas 1`" + ` loses nothing, at the cost of
  503s while no replica acknowledges (until a replica is back after a failover).
- A killed master restarted without persistence is empty. Back as a plain master, it is a
  candidate for the next promotion until the Sentinel demotes it (about 10 s); promoted
  (*back empty as a master, promoted*), it has the other node resync from it, and every
  charge acknowledged before is lost, ` + "`durability`" + ` or not. The *master killed* rows bring it
  back as an operator should: once the failover has ended, as a replica of the new master
  with ` + "`replica-priority 0`" + ` until its first sync is done — promoted after that, nothing is lost.
- ` + "`appendfsync everysec`" + ` kept everything here because a killed process loses nothing the
  kernel already has; its window (about one second of charges) is lost on a machine crash
  or power loss, which this suite does not cause. ` + "`appendfsync always`" + ` keeps every
  acknowledged charge through both. Without persistence a restart forgets every count.
- *charged 503s* is 0 everywhere: a request answered 503 is voided by its request id.
`

// writeFaults writes FAULTS.md from the rows.
func writeFaults(t testing.TB, rows []faultRow) {
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].name < rows[j].name })
	var b strings.Builder
	b.WriteString("# Fault suite figures\n\n")
	b.WriteString("Written by `go test ./integration -run TestFaults -count=1 -update` (integration/faults_test.go):\n")
	b.WriteString("real Caddy, real redis-server processes, 8 concurrent clients with one token, one fault per\n")
	b.WriteString("row. *served* is 200s (acknowledged charges), *503* the requests refused while the store\n")
	b.WriteString("failed, *charged* the credits the store holds once the fault is over and every void was\n")
	b.WriteString("answered. *lost* = served − charged: acknowledged charges the store forgot, granted again;\n")
	b.WriteString("*charged 503s* = charged − served when positive (never, by the request-id voids).\n\n")
	fmt.Fprintf(&b, "Run on %s/%s, %d CPUs, %s.\n\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), time.Now().UTC().Format("2006-01-02"))
	b.WriteString("| scenario | setup | fault | served | 503 | charged | lost | charged 503s | note |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		lost, over := max(r.served-r.charged, 0), max(r.charged-r.served, 0)
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %d | %d | %s |\n",
			r.name, r.setup, r.fault, r.served, r.refused, r.charged, lost, over, r.note)
	}
	b.WriteString(faultNotes)
	if err := os.WriteFile("FAULTS.md", []byte(b.String()), 0o644); err != nil {
		t.Error(err)
	}
}

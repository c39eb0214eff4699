package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
)

// redisSet is the Redis a gate scenario counts in: one node, or the
// masters of a Redis Cluster.
type redisSet struct {
	name  string // "single node" or "Cluster, 3 masters"
	nodes []*redisNode
}

// redisNode is one redis-server process of the harness.
type redisNode struct {
	addr    string
	version string
	p       *proc
}

// addrs lists the nodes' addresses, as the gate's `addresses` option.
func (rs *redisSet) addrs() []string {
	out := make([]string, len(rs.nodes))
	for i, n := range rs.nodes {
		out[i] = n.addr
	}
	return out
}

// cpu is the CPU time (user + system, all threads) the nodes have used
// so far, from INFO cpu: microsecond resolution, and it needs no process
// id (the cluster's nodes are started by internal/testredis).
func (rs *redisSet) cpu() time.Duration {
	var d time.Duration
	for _, n := range rs.nodes {
		out, err := testredis.Command(n.addr, "INFO", "cpu")
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(out, "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
			if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					d += time.Duration(f * float64(time.Second))
				}
			}
		}
	}
	return d
}

// info sums an integer field of INFO over the nodes.
func (rs *redisSet) info(section, field string) (int64, error) {
	var sum int64
	for _, n := range rs.nodes {
		out, err := testredis.Command(n.addr, "INFO", section)
		if err != nil {
			return 0, err
		}
		found := false
		for line := range strings.SplitSeq(out, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
				x, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return 0, fmt.Errorf("INFO %s: %s:%s", section, field, v)
				}
				sum, found = sum+x, true
			}
		}
		if !found {
			return 0, fmt.Errorf("INFO %s has no %s", section, field)
		}
	}
	return sum, nil
}

// dropRecordsLua unlinks, on the node that runs it, every key matching
// ARGV[1] and returns how many. A Cluster node holds keys of many slots,
// hence the flag.
const dropRecordsLua = `#!lua flags=allow-cross-slot-keys
local n, cursor = 0, '0'
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do
    redis.call('UNLINK', k)
    n = n + 1
  end
until cursor == '0'
return n
`

// recordKeys matches the stores' request records (the ids of the last
// minute's charges, kept for voids and refunds), whatever their layout
// under the license's hash tag.
const recordKeys = "*}:req*"

// dropRecords deletes the request records on every node, so that what
// remains is the licenses' own state, and returns how many keys went.
func (rs *redisSet) dropRecords() (int64, error) {
	var sum int64
	for _, n := range rs.nodes {
		out, err := testredis.Command(n.addr, "EVAL", dropRecordsLua, "0", recordKeys)
		if err != nil {
			return 0, fmt.Errorf("dropping request records: %w", err)
		}
		x, err := strconv.ParseInt(out, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("dropping request records: %q", out)
		}
		sum += x
	}
	return sum, nil
}

// keys is the number of keys over the nodes (DBSIZE).
func (rs *redisSet) keys() (int64, error) {
	var sum int64
	for _, n := range rs.nodes {
		out, err := testredis.Command(n.addr, "DBSIZE")
		if err != nil {
			return 0, err
		}
		x, err := strconv.ParseInt(out, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("DBSIZE: %q", out)
		}
		sum += x
	}
	return sum, nil
}

// startRedis starts one redis-server on a free loopback port, persistence
// off, with extra arguments, and waits until it answers PING.
func startRedis(ps *procSet, pin *pinning, bin, dir, name string, extra ...string) (*redisNode, error) {
	rdir := filepath.Join(dir, name)
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		return nil, err
	}
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", rdir, "--daemonize", "no"}, extra...)
		cmd := pin.command(roleOther, bin, args...)
		cmd.Dir = rdir
		p, err := ps.start(name, cmd, filepath.Join(dir, name+".log"))
		if err != nil {
			return nil, err
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			if p.exited() {
				lastErr = fmt.Errorf("%s exited at start:\n%s", name, p.tail())
				break
			}
			if reply, err := testredis.Command(addr, "PING"); err == nil && reply == "PONG" {
				n := &redisNode{addr: addr, p: p}
				if info, err := testredis.Command(addr, "INFO", "server"); err == nil {
					for line := range strings.SplitSeq(info, "\n") {
						if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
							n.version = v
						}
					}
				}
				return n, nil
			}
			if time.Now().After(deadline) {
				lastErr = fmt.Errorf("%s did not answer PING:\n%s", name, p.tail())
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		p.stop()
		ps.remove(p)
	}
	return nil, lastErr
}

// startSingle starts the single-node Redis of scenario C.
func startSingle(ps *procSet, pin *pinning, bin, dir string) (*redisSet, error) {
	n, err := startRedis(ps, pin, bin, dir, "redis")
	if err != nil {
		return nil, err
	}
	return &redisSet{name: "single node", nodes: []*redisNode{n}}, nil
}

// startCluster starts a Redis Cluster of masters nodes with
// internal/testredis (the tests' starter), through a testing.TB of the
// harness's own: its failures return an error, its temporary directories
// live under dir, and stop ends the nodes. The nodes are not pinned.
func startCluster(dir string, masters int) (rs *redisSet, stop func(), err error) {
	tb := &harnessTB{dir: dir}
	stop = tb.cleanup
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(harnessFatal)
			if !ok {
				panic(r)
			}
			tb.cleanup()
			rs, stop, err = nil, func() {}, errors.New(string(f))
		}
	}()
	addrs := testredis.StartCluster(tb, masters)
	rs = &redisSet{name: fmt.Sprintf("Cluster, %d masters", masters)}
	for _, a := range addrs {
		rs.nodes = append(rs.nodes, &redisNode{addr: a})
	}
	return rs, stop, nil
}

// harnessTB is the part of testing.TB that internal/testredis uses, for a
// program that is not a test. Any other method panics (the embedded
// interface is nil).
type harnessTB struct {
	testing.TB
	dir      string
	n        int
	mu       sync.Mutex
	cleanups []func()
}

// harnessFatal is what Fatalf panics with; startCluster recovers it.
type harnessFatal string

func (t *harnessTB) Helper() {}

func (t *harnessTB) Fatalf(format string, args ...any) {
	panic(harnessFatal(fmt.Sprintf(format, args...)))
}

func (t *harnessTB) Fatal(args ...any) { panic(harnessFatal(fmt.Sprint(args...))) }

func (t *harnessTB) Logf(format string, args ...any) { logf(format, args...) }

func (t *harnessTB) TempDir() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n++
	d := filepath.Join(t.dir, fmt.Sprintf("cluster-%d", t.n))
	if err := os.MkdirAll(d, 0o755); err != nil {
		panic(harnessFatal(err.Error()))
	}
	return d
}

func (t *harnessTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

// cleanup runs the registered functions, last first, once.
func (t *harnessTB) cleanup() {
	t.mu.Lock()
	fs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

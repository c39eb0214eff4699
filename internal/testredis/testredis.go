// Package testredis starts real redis-server processes for tests: a single
// node on a free loopback port, or a Redis Cluster of several masters.
//
// Tests that need Redis never skip: when redis-server (or, for a cluster,
// redis-cli) is not installed, they fail with a message saying how to
// install it.
//
// It runs the real server on purpose: an in-process fake such as miniredis
// does not reproduce what the counting relies on and what breaks in
// production: Cluster slots and CROSSSLOT errors, MOVED redirects,
// Sentinel failover, PEXPIRETIME, script timeouts and a stalled or killed
// process.
package testredis

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// How long a server may take to answer PING, and a cluster to report
// cluster_state:ok.
const (
	startTimeout   = 15 * time.Second
	clusterTimeout = 30 * time.Second
	startAttempts  = 5
)

// Server is one redis-server process owned by a test.
type Server struct {
	t     testing.TB
	bin   string
	dir   string
	port  int
	extra []string
	conf  string // a Sentinel's configuration file; "" for a plain server

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  string
}

// Start starts a redis-server on a free 127.0.0.1 port with persistence
// off, in a directory of t.TempDir(), waits until it answers PING, and
// kills it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := lookPath(t, "redis-server", "apt-get install -y redis-server")
	return start(t, bin, nil)
}

// StartWith starts a redis-server as Start does, with extra command-line
// options after the defaults (later options win: "--appendonly", "yes"
// turns persistence on, in the server's own directory, which Restart
// keeps).
func StartWith(t testing.TB, options ...string) *Server {
	t.Helper()
	bin := lookPath(t, "redis-server", "apt-get install -y redis-server")
	return start(t, bin, func(string) []string { return options })
}

// StartReplica starts a redis-server replicating master, and waits until
// the master counts it as an online replica and the replica has applied
// the master's stream up to a write made after that.
//
// The second wait matters: "online" at the master only says the first
// sync is done, and a replica can still be without the writes that
// followed it for a while (the fault suite saw a master killed some 60 ms
// after its replica was online lose every write of those 60 ms).
func StartReplica(t testing.TB, master *Server, options ...string) *Server {
	t.Helper()
	bin := lookPath(t, "redis-server", "apt-get install -y redis-server")
	r := start(t, bin, func(string) []string {
		return append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(master.Port())}, options...)
	})
	deadline := time.Now().Add(startTimeout)
	var err error
	var info string
	for {
		info, err = master.Do("INFO", "replication")
		if err == nil && strings.Contains(info, "port="+strconv.Itoa(r.Port())+",state=online") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("testredis: replica on port %d not online at master %s: %v\n%s", r.Port(), master.Addr(), err, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// PUBLISH is replicated and leaves no key behind.
	if _, err := master.Do("PUBLISH", "testredis:replica-sync", strconv.Itoa(r.Port())); err != nil {
		t.Fatalf("testredis: master %s: %v", master.Addr(), err)
	}
	if info, err = master.Do("INFO", "replication"); err != nil {
		t.Fatalf("testredis: master %s: %v", master.Addr(), err)
	}
	want, _ := strconv.ParseInt(InfoField(info, "master_repl_offset"), 10, 64)
	for {
		info, err = r.Do("INFO", "replication")
		if got, _ := strconv.ParseInt(InfoField(info, "master_repl_offset"), 10, 64); err == nil && got >= want {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("testredis: replica on port %d not at the master's offset %d: %v\n%s", r.Port(), want, err, info)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// InfoField is the value of field name in an INFO reply, "" when absent.
func InfoField(info, name string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// start picks a free port and starts a server there, trying again on a
// new port when the chosen one was taken in the meantime.
func start(t testing.TB, bin string, extra func(dir string) []string) *Server {
	t.Helper()
	var lastErr error
	for range startAttempts {
		s := &Server{t: t, bin: bin, dir: t.TempDir(), port: freePort(t)}
		if extra != nil {
			s.extra = extra(s.dir)
		}
		if lastErr = s.launch(); lastErr == nil {
			t.Cleanup(s.stop)
			return s
		}
	}
	t.Fatalf("testredis: %v", lastErr)
	return nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Port is the server's TCP port.
func (s *Server) Port() int { return s.port }

// Kill stops the server at once with SIGKILL, as a crash would, and
// waits until the process is gone. The data is lost (persistence is off).
func (s *Server) Kill() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kill()
}

// Restart starts the server again on the same port (killing it first if it
// is still running) and waits until it answers PING.
func (s *Server) Restart() {
	s.t.Helper()
	s.RestartWith()
}

// RestartWith restarts the server as Restart does, with extra command-line
// options for this start only (after the server's own, so they win): for
// instance "--replicaof", host, port, "--replica-priority", "0" to bring
// back a node that lost its data as a replica no Sentinel promotes.
func (s *Server) RestartWith(options ...string) {
	s.t.Helper()
	s.mu.Lock()
	s.kill()
	s.mu.Unlock()
	var err error
	deadline := time.Now().Add(startTimeout)
	for {
		// The port may briefly still be held by the dying process.
		if err = s.launch(options...); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("testredis: restart on port %d: %v", s.port, err)
	}
}

// Do sends one command to the server on a fresh connection and returns the
// reply: simple strings, bulk strings and integers as text, arrays as
// their elements joined by newlines. A Redis error reply is an error.
func (s *Server) Do(args ...string) (string, error) {
	return do(s.Addr(), args...)
}

func (s *Server) args(options []string) []string {
	var a []string
	if s.conf != "" {
		// Sentinel mode takes its (writable) configuration file first.
		a = []string{s.conf, "--sentinel"}
	}
	a = append(a, []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
	}...)
	a = append(a, s.extra...)
	return append(a, options...)
}

// StartSentinel starts a Redis Sentinel on a free loopback port that
// monitors master under name (quorum 1), waits until it knows the
// master, and kills it when the test ends.
func StartSentinel(t testing.TB, master *Server, name string) *Server {
	t.Helper()
	bin := lookPath(t, "redis-server", "apt-get install -y redis-server")
	var lastErr error
	for range startAttempts {
		s := &Server{t: t, bin: bin, dir: t.TempDir(), port: freePort(t)}
		s.conf = filepath.Join(s.dir, "sentinel.conf")
		conf := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\n", name, master.Port())
		if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if lastErr = s.launch(); lastErr != nil {
			continue
		}
		t.Cleanup(s.stop)
		deadline := time.Now().Add(startTimeout)
		for {
			reply, err := s.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
			if err == nil && strings.Contains(reply, strconv.Itoa(master.Port())) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("testredis: sentinel on port %d does not know master %s: %q, %v", s.port, name, reply, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Fatalf("testredis: %v", lastErr)
	return nil
}

// launch starts the process, with options after its usual arguments, and
// waits for PING. It returns an error (and leaves no process behind) when
// the server exits or does not answer.
func (s *Server) launch(options ...string) error {
	logPath := filepath.Join(s.dir, "redis.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, s.args(options)...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(done)
	}()

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited at start:\n%s", s.port, tail(logPath))
		default:
		}
		if reply, err := do(s.Addr(), "PING"); err == nil && reply == "PONG" {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server on port %d did not answer PING within %v:\n%s", s.port, startTimeout, tail(logPath))
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.mu.Lock()
	s.cmd, s.done, s.log = cmd, done, logPath
	s.mu.Unlock()
	return nil
}

// kill sends SIGKILL and waits for the exit. s.mu must be held.
func (s *Server) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kill()
}

// StartCluster starts masters (at least 3) cluster-enabled redis-server
// nodes on free loopback ports, joins them with
// `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`,
// waits until every node reports cluster_state:ok, and returns the
// nodes' addresses. The nodes are killed when the test ends.
func StartCluster(t testing.TB, masters int) []string {
	t.Helper()
	nodes := StartClusterNodes(t, masters, 0, 5000)
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// StartClusterNodes starts a Redis Cluster of masters (at least 3) with
// replicas replicas each, whose nodes consider a peer down after
// nodeTimeoutMs (a replica is promoted soon after), waits until every node
// reports cluster_state:ok, and returns the nodes (masters first, as
// redis-cli --cluster create assigns them). The nodes are killed when the
// test ends; a killed node restarted with Restart rejoins the cluster.
func StartClusterNodes(t testing.TB, masters, replicas, nodeTimeoutMs int) []*Server {
	t.Helper()
	if masters < 3 {
		t.Fatalf("testredis: a Redis Cluster needs at least 3 masters, not %d", masters)
	}
	bin := lookPath(t, "redis-server", "apt-get install -y redis-server")
	cli := lookPath(t, "redis-cli", "apt-get install -y redis-tools")

	total := masters * (1 + replicas)
	nodes := make([]*Server, total)
	addrs := make([]string, total)
	for i := range nodes {
		nodes[i] = start(t, bin, func(string) []string {
			return []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", strconv.Itoa(nodeTimeoutMs),
				// A replica may take over however long its master has been
				// gone: tests kill masters on purpose.
				"--cluster-replica-validity-factor", "0",
				// The bus port defaults to port+10000, which may be taken or
				// out of range; pick a free one.
				"--cluster-port", strconv.Itoa(freePort(t)),
			}
		})
		addrs[i] = nodes[i].Addr()
	}

	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("testredis: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	deadline := time.Now().Add(clusterTimeout)
	for _, n := range nodes {
		for {
			info, err := n.Do("CLUSTER", "INFO")
			if err == nil && clusterReady(info, total) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("testredis: cluster node %s not ready within %v: %v\n%s", n.Addr(), clusterTimeout, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// A replica counts once its first sync is done.
		for {
			info, err := n.Do("INFO", "replication")
			if err == nil && (strings.Contains(info, "role:master") || strings.Contains(info, "master_link_status:up")) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("testredis: replica %s not in sync within %v: %v\n%s", n.Addr(), clusterTimeout, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nodes
}

// clusterReady reports whether CLUSTER INFO shows a healthy cluster that
// knows all its nodes and has every slot assigned.
func clusterReady(info string, nodes int) bool {
	want := map[string]string{
		"cluster_state":          "ok",
		"cluster_slots_ok":       "16384",
		"cluster_known_nodes":    strconv.Itoa(nodes),
		"cluster_slots_assigned": "16384",
	}
	for line := range strings.SplitSeq(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && want[k] == v {
			delete(want, k)
		}
	}
	return len(want) == 0
}

// lookPath finds a Redis program on PATH or in the usual Debian places,
// and fails the test (never skips it) when it is missing.
func lookPath(t testing.TB, name, install string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/bin", "/usr/sbin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatalf("%s not found: %s", name, install)
	return ""
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int { return FreePort(t) }

// handedOut are the ports FreePort has returned in this process: a port
// is never handed out twice, so two servers of parallel tests cannot be
// given the same one between its release and their binding it.
var handedOut sync.Map

// FreePort returns a loopback TCP port that was free a moment ago and that
// no other caller in this process has been given.
func FreePort(t testing.TB) int {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testredis: free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if _, taken := handedOut.LoadOrStore(port, true); !taken {
			return port
		}
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}

// do is Command, for the harness itself.
func do(addr string, args ...string) (string, error) { return Command(addr, args...) }

// Command sends one command to addr on a fresh connection and returns the
// reply as text (arrays joined by newlines, nil as ""). It speaks just
// enough RESP for test and benchmark harnesses.
func Command(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))

	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write(b.Bytes()); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(conn))
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("testredis: empty reply line")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis: %s", line[1:])
	case '$', '=', '!':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", err
		}
		parts := make([]string, n)
		for i := range parts {
			if parts[i], err = readReply(r); err != nil {
				return "", err
			}
		}
		return strings.Join(parts, "\n"), nil
	default:
		return "", fmt.Errorf("testredis: unexpected reply %q", line)
	}
}

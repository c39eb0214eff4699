package testredis

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// fatalTB records Fatalf instead of failing the real test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fatalTB) Skipf(string, ...any) { panic("testredis must never skip") }
func (f *fatalTB) Skip(...any)          { panic("testredis must never skip") }
func (f *fatalTB) SkipNow()             { panic("testredis must never skip") }

func TestMissingProgramFailsWithInstallHint(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		lookPath(f, "redis-server-that-does-not-exist", "apt-get install -y redis-server")
	}()
	<-done
	want := "redis-server-that-does-not-exist not found: apt-get install -y redis-server"
	if f.msg != want {
		t.Fatalf("Fatalf(%q), want %q", f.msg, want)
	}
}

func TestStartAnswersPing(t *testing.T) {
	s := Start(t)
	if got, err := s.Do("PING"); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v; want PONG", got, err)
	}
	if got, err := s.Do("CONFIG", "GET", "save"); err != nil || got != "save\n" {
		t.Fatalf("CONFIG GET save = %q, %v; want persistence off", got, err)
	}
}

func TestKillStopsAndRestartComesBackOnTheSamePort(t *testing.T) {
	s := Start(t)
	addr := s.Addr()
	if _, err := s.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}
	s.Restart()
	if s.Addr() != addr {
		t.Fatalf("Restart moved the server from %s to %s", addr, s.Addr())
	}
	if got, err := s.Do("PING"); err != nil || got != "PONG" {
		t.Fatalf("PING after Restart = %q, %v", got, err)
	}
	if got, err := s.Do("EXISTS", "k"); err != nil || got != "0" {
		t.Fatalf("EXISTS k after Restart = %q, %v; want the data gone", got, err)
	}
}

func TestTwoServersGetDifferentPorts(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("both servers on %s", a.Addr())
	}
}

func TestStartClusterJoinsAllMasters(t *testing.T) {
	addrs := StartCluster(t, 3)
	if len(addrs) != 3 {
		t.Fatalf("got %d addresses, want 3", len(addrs))
	}
	for _, addr := range addrs {
		info, err := do(addr, "CLUSTER", "INFO")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			t.Fatalf("%s: %s", addr, info)
		}
		nodes, err := do(addr, "CLUSTER", "NODES")
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(nodes, "master"); n != 3 {
			t.Fatalf("%s knows %d masters, want 3:\n%s", addr, n, nodes)
		}
	}
}

func TestClusterReadyNeedsEveryField(t *testing.T) {
	ok := "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\ncluster_known_nodes:3\r\n"
	if !clusterReady(ok, 3) {
		t.Fatal("healthy cluster info not ready")
	}
	if clusterReady(strings.Replace(ok, "state:ok", "state:fail", 1), 3) {
		t.Fatal("failed cluster reported ready")
	}
	if clusterReady(ok, 4) {
		t.Fatal("cluster missing a node reported ready")
	}
}

package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// clusterReadmeBlocks returns the start and stop scripts of
// examples/redis-cluster/README.md's "Start a local cluster" section.
func clusterReadmeBlocks(t *testing.T) (start, stop string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(examplesDir, "redis-cluster", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## Start a local cluster\n")
	if !ok {
		t.Fatal(`README has no "## Start a local cluster" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var blocks []string
	for rest := section; ; {
		_, after, found := strings.Cut(rest, "```sh\n")
		if !found {
			break
		}
		body, tail, _ := strings.Cut(after, "```")
		blocks, rest = append(blocks, body), tail
	}
	if len(blocks) != 2 {
		t.Fatalf("the section has %d sh blocks, want 2 (start, stop)", len(blocks))
	}
	return blocks[0], blocks[1]
}

// TestRedisClusterReadmeStartsOrSaysWhy runs the README's start commands
// on free ports: they make a working cluster, and when a node's cluster bus
// port is taken they say which node died and show its log instead of going
// on to a "connection refused".
func TestRedisClusterReadmeStartsOrSaysWhy(t *testing.T) {
	t.Parallel()
	start, stop := clusterReadmeBlocks(t)
	if !strings.Contains(start, "--cluster-port $((port + 20000))") {
		t.Fatalf("the start commands no longer pass --cluster-port $((port + 20000)); update this test:\n%s", start)
	}
	run := func(t *testing.T, takeBus bool) string {
		dir := t.TempDir()
		var ports, buses [3]int
		bus := "declare -A bus\n"
		for i := range ports {
			ports[i], buses[i] = freePort(t), freePort(t)
			bus += fmt.Sprintf("bus[%d]=%d\n", ports[i], buses[i])
		}
		if takeBus {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(buses[1]))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
		}
		rewrite := func(s string) string {
			for i, orig := range []string{"7001", "7002", "7003"} {
				s = strings.ReplaceAll(s, orig, strconv.Itoa(ports[i]))
			}
			s = strings.ReplaceAll(s, "$((port + 20000))", "${bus[$port]}")
			return strings.ReplaceAll(s, "/tmp/lg-cluster", dir)
		}
		t.Cleanup(func() {
			_ = exec.Command("bash", "-c", rewrite(stop)).Run()
		})
		out, _ := exec.Command("bash", "-c", bus+rewrite(start)).CombinedOutput()
		return string(out)
	}

	t.Run("on free ports the cluster comes up", func(t *testing.T) {
		if out := run(t, false); !strings.Contains(out, "cluster_state:ok") || strings.Contains(out, "not running") {
			t.Errorf("start commands:\n%s", out)
		}
	})
	t.Run("a taken cluster bus port names the node and shows its log", func(t *testing.T) {
		out := run(t, true)
		if !strings.Contains(out, "is not running; its log ends:") || !strings.Contains(out, "Address already in use") {
			t.Errorf("start commands with a taken bus port:\n%s", out)
		}
		if strings.Contains(out, "cluster_state") || strings.Contains(out, ">>> Performing hash slots allocation") {
			t.Errorf("went on to create the cluster:\n%s", out)
		}
	})
}

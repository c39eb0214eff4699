package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/licensegate/licensegate/internal/testredis"
)

func TestStartClusterTurnsTestredisFailuresIntoErrors(t *testing.T) {
	rs, stop, err := startCluster(t.TempDir(), 2)
	defer stop()
	if err == nil || rs != nil || !strings.Contains(err.Error(), "at least 3 masters") {
		t.Errorf("startCluster with 2 masters: %v, %v", rs, err)
	}
}

func TestHarnessTBRunsCleanupsLastFirstAndOnce(t *testing.T) {
	tb := &harnessTB{dir: t.TempDir()}
	var order []int
	tb.Cleanup(func() { order = append(order, 1) })
	tb.Cleanup(func() { order = append(order, 2) })
	tb.cleanup()
	tb.cleanup()
	if len(order) != 2 || order[0] != 2 || order[1] != 1 {
		t.Errorf("cleanups ran as %v, want [2 1]", order)
	}
	if a, b := tb.TempDir(), tb.TempDir(); a == b || !strings.HasPrefix(a, tb.dir) {
		t.Errorf("temporary directories %q and %q", a, b)
	}
}

func TestDropRecordsLeavesOnlyTheLicensesState(t *testing.T) {
	single := &redisSet{nodes: []*redisNode{{addr: testredis.Start(t).Addr()}}}
	cluster := &redisSet{}
	for _, addr := range testredis.StartCluster(t, 3) {
		cluster.nodes = append(cluster.nodes, &redisNode{addr: addr})
	}
	for _, rs := range []*redisSet{single, cluster} {
		var state, records []string
		for i := range 30 {
			tag := fmt.Sprintf("lg:{%032x}:", i)
			state = append(state, tag+"used", tag+"limit")
			records = append(records, tag+"req", tag+"req:17649")
		}
		for _, k := range append(append([]string{}, state...), records...) {
			if _, err := testredis.Command(nodeFor(t, rs, k), "SET", k, "1"); err != nil {
				t.Fatal(err)
			}
		}
		n, err := rs.dropRecords()
		if err != nil || n != int64(len(records)) {
			t.Fatalf("%d nodes: dropped %d keys (%v), want %d", len(rs.nodes), n, err, len(records))
		}
		if keys, err := rs.keys(); err != nil || keys != int64(len(state)) {
			t.Errorf("%d nodes: %d keys left (%v), want the %d of the state", len(rs.nodes), keys, err, len(state))
		}
	}
}

// nodeFor is the node of rs that holds key: the one that does not answer
// MOVED (a single node holds everything).
func nodeFor(t *testing.T, rs *redisSet, key string) string {
	t.Helper()
	for _, n := range rs.nodes {
		if _, err := testredis.Command(n.addr, "EXISTS", key); err == nil {
			return n.addr
		}
	}
	t.Fatalf("no node serves %q", key)
	return ""
}

package main

import (
	"strings"
	"testing"
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

package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/internal/testredis"
)

// timeline records what a failover did, for the log of a case that went
// wrong: the Sentinel's events (+sdown, +switch-master, +convert-to-slave
// ...), and every change of a node's role as it reports it, with the
// credits each node holds for the license, its replication offset and the
// requests served so far, each at the time since the recording started.
type timeline struct {
	start time.Time
	mu    sync.Mutex
	lines []string
	stop  chan struct{}
	wg    sync.WaitGroup
}

// timelineNode is a node the timeline watches, under a short name.
type timelineNode struct {
	name string
	s    *testredis.Server
}

// recordTimeline starts recording the events of the Sentinel watching
// master name, the master it names and the nodes' states (the license's
// credits under usedKey) every 20 ms, until stopped.
func recordTimeline(t testing.TB, sentinel *testredis.Server, name string, nodes []timelineNode, usedKey string, served func() int64) *timeline {
	tl := &timeline{start: time.Now(), stop: make(chan struct{})}
	sub := redis.NewClient(&redis.Options{Addr: sentinel.Addr()})
	ps := sub.PSubscribe(context.Background(), "*")
	tl.wg.Go(func() {
		for msg := range ps.Channel() {
			tl.add("sentinel %s %s (served %d)", msg.Channel, msg.Payload, served())
		}
	})
	tl.wg.Go(func() {
		last := map[string]string{}
		lastMaster := ""
		for {
			select {
			case <-tl.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if out, err := sentinel.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name); err == nil && out != lastMaster {
				lastMaster = out
				tl.add("sentinel says master is %s", strings.ReplaceAll(out, "\n", ":"))
			}
			for _, n := range nodes {
				state := nodeState(n.s, usedKey)
				if state.role != last[n.name] {
					last[n.name] = state.role
					tl.add("%s (%d) is %s, used %s, offset %s, run %s (served %d)",
						n.name, n.s.Port(), state.role, state.used, state.offset, state.run, served())
				}
			}
		}
	})
	t.Cleanup(func() {
		tl.end()
		_ = ps.Close()
		_ = sub.Close()
		tl.wg.Wait()
	})
	return tl
}

// nodeStateOf is what one node reports.
type nodeStateOf struct{ role, used, offset, run string }

// nodeState asks a node for its role (with its master and link for a
// replica), the credits under usedKey, its replication offset and run id;
// "down" when it does not answer.
func nodeState(s *testredis.Server, usedKey string) nodeStateOf {
	role, err := s.Do("ROLE")
	if err != nil {
		return nodeStateOf{role: "down"}
	}
	f := strings.Split(role, "\n")
	st := nodeStateOf{role: f[0]}
	if f[0] == "slave" && len(f) >= 4 {
		st.role = "replica of " + f[2] + " (" + f[3] + ")"
	}
	st.used, _ = s.Do("GET", usedKey)
	if info, err := s.Do("INFO", "replication"); err == nil {
		st.offset = testredis.InfoField(info, "master_repl_offset")
	}
	if info, err := s.Do("INFO", "server"); err == nil {
		st.run = testredis.InfoField(info, "run_id")
		if len(st.run) > 8 {
			st.run = st.run[:8]
		}
	}
	return st
}

// add records an event at the time since the start.
func (tl *timeline) add(format string, a ...any) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.lines = append(tl.lines, fmt.Sprintf("%7.3fs %s", time.Since(tl.start).Seconds(), fmt.Sprintf(format, a...)))
}

// end stops the recording (once).
func (tl *timeline) end() {
	select {
	case <-tl.stop:
	default:
		close(tl.stop)
	}
}

// String is the timeline, a line per event.
func (tl *timeline) String() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return strings.Join(tl.lines, "\n")
}

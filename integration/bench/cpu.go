package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// cpuUse is the CPU time (user + system) the processes of one run spent.
type cpuUse struct {
	wrk, caddy, upstream, redis time.Duration
}

func (c cpuUse) total() time.Duration { return c.wrk + c.caddy + c.upstream + c.redis }

// perRequest divides d by n requests.
func perRequest(d time.Duration, n int64) time.Duration {
	if n <= 0 {
		return 0
	}
	return d / time.Duration(n)
}

// clockTick is the unit of /proc/<pid>/stat's utime and stime.
var clockTick = func() time.Duration {
	if out, err := exec.Command("getconf", "CLK_TCK").Output(); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return time.Second / time.Duration(n)
		}
	}
	return 10 * time.Millisecond
}()

// procCPU reads a process's CPU time so far from /proc (Linux); 0 elsewhere.
func procCPU(p *proc) time.Duration {
	if p == nil || p.cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; count from the ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * clockTick
}

// cpuSnapshot reads the CPU time so far of the server processes a run
// of the instance uses: its Caddy, the upstream and, for a Redis store,
// the Redis nodes.
func (b *bench) cpuSnapshot(in *instance) cpuUse {
	u := cpuUse{caddy: procCPU(in.p), upstream: procCPU(b.upstreamProc)}
	if in.redis != nil {
		u.redis = in.redis.cpu()
	}
	return u
}

func (c cpuUse) sub(d cpuUse) cpuUse {
	return cpuUse{wrk: c.wrk - d.wrk, caddy: c.caddy - d.caddy, upstream: c.upstream - d.upstream, redis: c.redis - d.redis}
}

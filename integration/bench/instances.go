package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// instance is one Caddy configuration under test, started once and kept
// running for the whole measurement (only the one under load works).
type instance struct {
	name      string // A, B, C, B+, C+, C3
	title     string
	gate      bool
	store     string // "memory" or "redis" when gate
	redis     *redisSet
	cacheSize int // 0: the gate's default cache_size
	maxPool   int // the largest token pool it is measured with

	url, admin string
	p          *proc
}

// cacheLabel is the instance's cache_size as the tables show it.
func (in *instance) cacheLabel(def int) string {
	if !in.gate {
		return "—"
	}
	if in.cacheSize == 0 {
		return fmt.Sprintf("default (%d)", def)
	}
	return strconv.Itoa(in.cacheSize)
}

// startCaddy writes the instance's Caddyfile on fresh ports, starts the
// binary and waits until it listens.
func (b *bench) startCaddy(in *instance) error {
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return err
		}
		admin, err := freePort()
		if err != nil {
			return err
		}
		cdir := filepath.Join(b.dir, "caddy-"+strings.ReplaceAll(in.name, "+", "fit"))
		if err := os.MkdirAll(cdir, 0o755); err != nil {
			return err
		}
		cfgPath := filepath.Join(cdir, "Caddyfile")
		if err := os.WriteFile(cfgPath, []byte(b.caddyfile(in, port, admin)), 0o644); err != nil {
			return err
		}
		cmd := b.pin.command(roleCaddy, b.bin, "run", "--config", cfgPath, "--adapter", "caddyfile")
		cmd.Dir = cdir
		cmd.Env = append(os.Environ(), "HOME="+cdir, "XDG_DATA_HOME="+cdir, "XDG_CONFIG_HOME="+cdir)
		p, err := b.procs.start("caddy "+in.name, cmd, filepath.Join(cdir, "caddy.log"))
		if err != nil {
			return err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = waitListening(p, addr, 30*time.Second); lastErr == nil {
			in.url, in.admin, in.p = "http://"+addr+"/", "http://127.0.0.1:"+strconv.Itoa(admin), p
			return nil
		}
		p.stop()
		b.procs.remove(p)
	}
	return lastErr
}

// caddyfile is the configuration of an instance: identical for all but
// for the license_gate block.
func (b *bench) caddyfile(in *instance, port, admin int) string {
	gate := ""
	if in.gate {
		var opts strings.Builder
		if in.cacheSize > 0 {
			fmt.Fprintf(&opts, "\n\t\tcache_size %d", in.cacheSize)
		}
		if in.store == "redis" {
			fmt.Fprintf(&opts, "\n\t\tstore redis {\n\t\t\taddresses %s\n\t\t}", strings.Join(in.redis.addrs(), " "))
		}
		gate = fmt.Sprintf(`	license_gate {
		jwks_file %s
		algorithms RS256
		require_item %s%s
	}
`, b.toks.jwksPath, benchItem, opts.String())
	}
	idle := 2 * b.o.connections
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	http_port %d
	auto_https off
	persist_config off
}

http://127.0.0.1:%d {
%s	reverse_proxy %s {
		transport http {
			keepalive 2m
			keepalive_idle_conns %d
			keepalive_idle_conns_per_host %d
		}
	}
}
`, admin, port, port, gate, b.upstream, idle, idle)
}

// metrics reads the instance's Prometheus metrics (Caddy's admin
// endpoint) and sums every series of each metric name.
func (in *instance) metrics(c *http.Client) (map[string]float64, error) {
	resp, err := c.Get(in.admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: status %d", resp.StatusCode)
	}
	return parseMetrics(string(body)), nil
}

// parseMetrics sums the samples of the Prometheus text format by metric
// name (labels dropped).
func parseMetrics(text string) map[string]float64 {
	out := map[string]float64{}
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if strings.HasPrefix(rest, "{") {
			j := strings.LastIndexByte(rest, '}')
			if j < 0 {
				continue
			}
			rest = rest[j+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out[name] += v
	}
	return out
}

// memory is an instance's memory after a forced garbage collection.
type memory struct {
	heap int64 // live heap (go_memstats_heap_alloc_bytes), -1 when unknown
	rss  int64 // resident set size, -1 when unknown
}

// memory forces a GC in the instance (the heap profile endpoint does one
// before it answers) and reads its live heap and resident set.
func (in *instance) memory(c *http.Client) memory {
	m := memory{heap: -1, rss: -1}
	if resp, err := c.Get(in.admin + "/debug/pprof/heap?gc=1"); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if ms, err := in.metrics(c); err == nil {
		if v, ok := ms["go_memstats_heap_alloc_bytes"]; ok {
			m.heap = int64(v)
		}
	}
	m.rss = procRSS(in.p)
	return m
}

// procRSS reads VmRSS from /proc/<pid>/status (Linux); -1 elsewhere.
func procRSS(p *proc) int64 {
	if p == nil || p.cmd.Process == nil {
		return -1
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return -1
}

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// profiles captures a CPU profile of A, B and C's Caddy while wrk runs
// with the headline pool; these runs are not part of the results.
func (b *bench) profiles(ctx context.Context) error {
	if err := os.MkdirAll(b.o.cpuprofile, 0o755); err != nil {
		return err
	}
	head := b.plan.groups[1]
	for _, name := range []string{"A", "B", "C"} {
		in := b.plan.instance(name)
		secs := max(1, int(b.o.profileTime/time.Second))
		var prof []byte
		var perr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			cl := &http.Client{Timeout: time.Duration(secs+30) * time.Second}
			resp, err := cl.Get(in.admin + "/debug/pprof/profile?seconds=" + strconv.Itoa(secs))
			if err != nil {
				perr = err
				return
			}
			defer resp.Body.Close()
			prof, perr = io.ReadAll(resp.Body)
			if perr == nil && resp.StatusCode != http.StatusOK {
				perr = fmt.Errorf("status %d: %s", resp.StatusCode, prof)
			}
		}()
		_, err := b.wrkRun(ctx, in, head.w, time.Duration(secs+2)*time.Second)
		<-done
		if err != nil {
			return fmt.Errorf("profiling %s: %w", name, err)
		}
		if perr != nil {
			return fmt.Errorf("profiling %s: fetching the profile: %w", name, perr)
		}
		path := filepath.Join(b.o.cpuprofile, "caddy-"+name+".pprof")
		if err := os.WriteFile(path, prof, 0o644); err != nil {
			return err
		}
		logf("CPU profile of %s: %s (go tool pprof -top %s)", name, path, path)
	}
	return nil
}

func newClient(conns int) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, DisableCompression: true}}
}

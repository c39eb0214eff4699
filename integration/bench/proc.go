package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// proc is a child process of the harness.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // path of its combined output
	done chan struct{}
	err  error // exit status, once done is closed
}

// procSet stops every child the harness started, also on error paths.
type procSet struct {
	mu    sync.Mutex
	procs []*proc
}

func (ps *procSet) start(name string, cmd *exec.Cmd, logPath string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.procs = append(ps.procs, p)
	ps.mu.Unlock()
	return p, nil
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop interrupts the process, and kills it when it has not ended after a
// grace period.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the end of the process's output.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (ps *procSet) stopAll() {
	ps.mu.Lock()
	list := ps.procs
	ps.procs = nil
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop()
	}
}

func (ps *procSet) remove(p *proc) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for i, q := range ps.procs {
		if q == p {
			ps.procs = append(ps.procs[:i], ps.procs[i+1:]...)
			return
		}
	}
}

// moduleRoot is the directory of the go.mod the go command uses here.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the licensegate module: run from the repository root")
	}
	return filepath.Dir(gomod), nil
}

// ensureTool finds a program, installing its Debian package when missing.
func ensureTool(name, pkg string) (string, error) {
	if p, err := lookTool(name); err == nil {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%s not found: install it with `apt-get install -y %s` (as root)", name, pkg)
	}
	logf("%s not found: apt-get install -y %s", name, pkg)
	install := func() error {
		cmd := exec.Command("apt-get", "install", "-y", "--no-install-recommends", pkg)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd.Run()
	}
	if err := install(); err != nil {
		update := exec.Command("apt-get", "update")
		update.Stdout, update.Stderr = os.Stderr, os.Stderr
		if uerr := update.Run(); uerr != nil {
			return "", fmt.Errorf("apt-get update: %w", uerr)
		}
		if err := install(); err != nil {
			return "", fmt.Errorf("apt-get install -y %s: %w", pkg, err)
		}
	}
	p, err := lookTool(name)
	if err != nil {
		return "", fmt.Errorf("%s still not found after installing %s", name, pkg)
	}
	return p, nil
}

func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/bin", "/usr/sbin", "/usr/local/bin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

func buildBinary(root, out string) error {
	cmd := exec.Command("go", "build", "-o", out, "./cmd/licensegate")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/licensegate: %w", err)
	}
	return nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitListening polls addr until it accepts a connection.
func waitListening(p *proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited at start (%v):\n%s", p.name, p.err, p.tail())
		}
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not listen on %s within %v:\n%s", p.name, addr, timeout, p.tail())
}

// startUpstream re-executes the harness as the upstream process.
func startUpstream(ps *procSet, pin *pinning, dir string) (string, *proc, error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return "", nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cmd := pin.command(roleOther, self)
		cmd.Env = append(os.Environ(), upstreamEnv+"="+addr)
		p, err := ps.start("upstream", cmd, filepath.Join(dir, "upstream.log"))
		if err != nil {
			return "", nil, err
		}
		if lastErr = waitListening(p, addr, 10*time.Second); lastErr == nil {
			return addr, p, nil
		}
		p.stop()
	}
	return "", nil, lastErr
}

// Roles of the processes for -pin.
const (
	roleCaddy = iota // the Caddy under test
	roleOther        // wrk, the upstream, Redis
)

// pinning places Caddy on one CPU and everything else on the others
// (taskset), so the load generator does not preempt the server it
// measures. nil pins nothing.
type pinning struct {
	taskset      string
	caddy, other string // CPU lists
}

// newPinning pins Caddy to CPU 0 and the rest to CPUs 1..n-1.
func newPinning(cpus int) (*pinning, error) {
	if cpus < 2 {
		return nil, fmt.Errorf("-pin needs at least 2 CPUs, have %d", cpus)
	}
	ts, err := ensureTool("taskset", "util-linux")
	if err != nil {
		return nil, err
	}
	other := "1"
	if cpus > 2 {
		other = fmt.Sprintf("1-%d", cpus-1)
	}
	return &pinning{taskset: ts, caddy: "0", other: other}, nil
}

// command is exec.Command, run under taskset when pinning. taskset execs
// the program, so the process id stays the program's.
func (p *pinning) command(role int, name string, args ...string) *exec.Cmd {
	return p.commandContext(context.Background(), role, name, args...)
}

func (p *pinning) commandContext(ctx context.Context, role int, name string, args ...string) *exec.Cmd {
	if p == nil {
		return exec.CommandContext(ctx, name, args...)
	}
	cpus := p.other
	if role == roleCaddy {
		cpus = p.caddy
	}
	return exec.CommandContext(ctx, p.taskset, append([]string{"-c", cpus, name}, args...)...)
}

// describe says how processes are placed, for the report.
func (p *pinning) describe() string {
	if p == nil {
		return "not pinned: the scheduler places every process"
	}
	d := fmt.Sprintf("pinned with taskset: Caddy on CPU %s; wrk, the upstream and the single Redis on CPU %s", p.caddy, p.other)
	if p.other == "1" {
		d += " (with 2 cores Redis shares the load generator's core, and Caddy has one core to itself)"
	}
	return d
}

// commandOutput runs a command and returns its trimmed output, or "?".
func commandOutput(name string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil && s == "" {
		return "?"
	}
	return s
}

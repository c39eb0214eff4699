package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// goBench is one sub-benchmark of BenchmarkServeHTTP or
// BenchmarkServeHTTPUncounted (module/bench_test.go) over its -count
// repetitions.
type goBench struct {
	name        string // bare, memory, redis; uncounted/hot/bare, uncounted/hot/gate
	nsPerOp     []float64
	cpuNsPerOp  []float64 // the process's CPU time per request
	minIters    int       // the fewest iterations of a repetition
	bytesPerOp  float64
	allocsPerOp float64
}

// minCPUIters is the fewest iterations whose CPU time per request is
// shown: over a short run, the process's other work (a garbage
// collection, a background goroutine waking) outweighs the requests'.
const minCPUIters = 10000

// bareName is the benchmark b is compared with: its sibling named bare.
func (b *goBench) bareName() string {
	if i := strings.LastIndexByte(b.name, '/'); i >= 0 {
		return b.name[:i+1] + "bare"
	}
	return "bare"
}

// goBenchPattern selects the handler-chain benchmarks: the counted chains
// and the uncounted one with the hot token (not its 100,000-token pool,
// which the first run would mint for a minute or more).
const goBenchPattern = "^BenchmarkServeHTTP(Uncounted)?$/^(bare|memory|redis|hot)$"

// runGoBench runs the handler-chain benchmark in the module package and
// parses its results.
func runGoBench(root, benchtime string, count int) ([]*goBench, string, error) {
	args := []string{"test", "-run", "^$", "-bench", goBenchPattern, "-benchmem",
		"-benchtime", benchtime, "-count", strconv.Itoa(count), "./module/"}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	bs, err := parseGoBench(out.String())
	shown := strings.Join(args, " ")
	shown = strings.ReplaceAll(strings.ReplaceAll(shown, "^$ ", "'^$' "), goBenchPattern, "'"+goBenchPattern+"'")
	return bs, "go " + shown, err
}

// parseGoBench reads `go test -bench -benchmem` output lines such as
//
//	BenchmarkServeHTTP/memory-2   300000   4219 ns/op   2890 cpu-ns/op   920 B/op   15 allocs/op
//
// grouping the repetitions of each sub-benchmark, in first-seen order.
func parseGoBench(out string) ([]*goBench, error) {
	var list []*goBench
	byName := map[string]*goBench{}
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		var name string
		if rest, ok := strings.CutPrefix(f[0], "BenchmarkServeHTTP/"); ok {
			name = rest
		} else if rest, ok := strings.CutPrefix(f[0], "BenchmarkServeHTTPUncounted/"); ok {
			name = "uncounted/" + rest
		} else {
			continue
		}
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		b := byName[name]
		if b == nil {
			b = &goBench{name: name}
			byName[name] = b
			list = append(list, b)
		}
		if n, err := strconv.Atoi(f[1]); err == nil && (b.minIters == 0 || n < b.minIters) {
			b.minIters = n
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark line %q: %w", line, err)
			}
			switch f[i+1] {
			case "ns/op":
				b.nsPerOp = append(b.nsPerOp, v)
			case "cpu-ns/op":
				b.cpuNsPerOp = append(b.cpuNsPerOp, v)
			case "B/op":
				b.bytesPerOp = v
			case "allocs/op":
				b.allocsPerOp = v
			}
		}
	}
	if byName["bare"] == nil {
		return nil, fmt.Errorf("no BenchmarkServeHTTP/bare result in:\n%s", out)
	}
	return list, nil
}

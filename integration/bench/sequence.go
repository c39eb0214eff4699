package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
)

// Token choice of a pool workload.
const (
	distUniform = "uniform"
	distZipf    = "zipf"
)

// zipfS is the exponent of the skewed workload: a few licenses make most
// requests, as popular customers or busy devices do.
const zipfS = 1.1

// sequenceLen is how many token indices a workload's sequence holds; each
// wrk run starts at a place drawn for it, each thread of the run a share
// of the sequence further on, and wraps around.
const sequenceLen = 1 << 18

// indexSequence draws n token indices in [0, pool): uniformly, or with
// Zipf's law (index i, the (i+1)-th most popular, drawn with probability
// ∝ (i+1)^-zipfS). The seed makes it reproducible.
func indexSequence(dist string, pool, n int, seed uint64) ([]int, error) {
	if pool < 1 || n < 1 {
		return nil, fmt.Errorf("indexSequence: pool %d, length %d", pool, n)
	}
	r := rand.New(rand.NewPCG(seed, uint64(pool)))
	out := make([]int, n)
	switch dist {
	case distUniform:
		for i := range out {
			out[i] = r.IntN(pool)
		}
	case distZipf:
		if pool == 1 {
			return out, nil
		}
		z := rand.NewZipf(r, zipfS, 1, uint64(pool-1))
		for i := range out {
			out[i] = int(z.Uint64())
		}
	default:
		return nil, fmt.Errorf("unknown token distribution %q (uniform or zipf)", dist)
	}
	return out, nil
}

// distinct counts the different values of seq.
func distinct(seq []int) int {
	seen := make(map[int]struct{}, len(seq))
	for _, v := range seq {
		seen[v] = struct{}{}
	}
	return len(seen)
}

// writeSequence writes the indices 1-based (Lua's), one a line.
func writeSequence(path string, seq []int) error {
	var b strings.Builder
	b.Grow(len(seq) * 7)
	for _, v := range seq {
		b.WriteString(strconv.Itoa(v + 1))
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

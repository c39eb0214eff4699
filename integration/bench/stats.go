package main

import (
	"math"
	"slices"
)

// interval is a median and a distribution-free confidence interval for it,
// from n paired observations (ratios of one round's runs).
type interval struct {
	n        int
	median   float64
	lo, hi   float64
	coverage float64 // the interval's exact confidence level
	// full is false when n is too small for the asked level: lo and hi
	// are then the smallest and largest observation.
	full bool
}

// ok reports whether there was at least one observation.
func (iv interval) ok() bool { return iv.n > 0 }

// halfWidth is half the interval's width.
func (iv interval) halfWidth() float64 { return (iv.hi - iv.lo) / 2 }

// median of v (v is not modified); 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// medianInterval is the median of v and the order-statistics confidence
// interval of the median at level conf (e.g. 0.95): the k-th smallest and
// the k-th largest observation, k as large as keeps the coverage
// 1 − 2·P(Binomial(n, ½) < k) at or above conf. It assumes only that the
// observations are independent draws of one distribution, which paired
// ratios of interleaved rounds are meant to be. For n = 20 it is the 6th
// and the 15th observation (95.9 %); below n = 6 no 95 % interval exists
// and the range of the observations is returned with its coverage.
func medianInterval(v []float64, conf float64) interval {
	n := len(v)
	if n == 0 {
		return interval{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	iv := interval{n: n, median: median(s), lo: s[0], hi: s[n-1], coverage: 1 - 2*binomHalfCDF(n, 0)}
	for k := 1; 2*k <= n+1; k++ {
		// Coverage of [x(k), x(n-k+1)] (1-based order statistics).
		c := 1 - 2*binomHalfCDF(n, k-1)
		if c < conf {
			break
		}
		iv.lo, iv.hi, iv.coverage, iv.full = s[k-1], s[n-k], c, true
	}
	return iv
}

// binomHalfCDF is P(X ≤ j) for X ~ Binomial(n, ½).
func binomHalfCDF(n, j int) float64 {
	if j < 0 {
		return 0
	}
	if j >= n {
		return 1
	}
	// Terms C(n,i)/2^n in log space, so large n neither overflows nor
	// underflows.
	sum := 0.0
	for i := 0; i <= j; i++ {
		lg := lgamma(n+1) - lgamma(i+1) - lgamma(n-i+1) - float64(n)*math.Ln2
		sum += math.Exp(lg)
	}
	return math.Min(sum, 1)
}

func lgamma(x int) float64 {
	v, _ := math.Lgamma(float64(x))
	return v
}

// pairedRatios divides num[i] by den[i] for every i present in both with
// a positive denominator: the per-round ratios of two scenarios, keyed by
// round.
func pairedRatios(num, den map[int]float64) []float64 {
	rounds := make([]int, 0, len(num))
	for r := range num {
		rounds = append(rounds, r)
	}
	slices.Sort(rounds)
	var out []float64
	for _, r := range rounds {
		if d, ok := den[r]; ok && d > 0 {
			out = append(out, num[r]/d)
		}
	}
	return out
}

package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"time"
)

// workload is what wrk sends: the hot token with every request (pool 0),
// or tokens of a pool of distinct licenses in a uniform or Zipf-skewed
// sequence.
type workload struct {
	key     string // "hot", "10000-uniform"
	label   string // "hot token", "10k uniform"
	pool    int
	dist    string
	tokPath string
	seqPath string
}

func hotWorkload() *workload { return &workload{key: "hot", label: "hot token"} }

func poolWorkload(pool int, dist string) *workload {
	return &workload{key: fmt.Sprintf("%d-%s", pool, dist), label: countLabel(float64(pool)) + " " + dist,
		pool: pool, dist: dist}
}

// group is a workload measured on several instances, interleaved: in each
// round every instance runs once, back to back, the order rotated by one
// per round so no instance always runs first or last.
type group struct {
	w        *workload
	insts    []*instance
	rounds   int
	headline bool
	// extras are instances (also in insts) measured only in the first
	// extraRounds rounds: the curve's configurations that join a headline
	// group, which need no more rounds than the rest of the curve.
	extras      []*instance
	extraRounds int
}

// order is the instances' order in round r (1-based).
func (g *group) order(r int) []*instance {
	var set []*instance
	for _, in := range g.insts {
		if r <= g.extraRounds || !slices.Contains(g.extras, in) {
			set = append(set, in)
		}
	}
	n := len(set)
	out := make([]*instance, n)
	for i := range out {
		out[i] = set[(i+r-1)%n]
	}
	return out
}

// plan is everything a run measures.
type plan struct {
	insts  []*instance
	groups []*group
	pools  []int // distinct pool sizes, increasing
	// fitsSize is the cache_size of the B+ and C+ instances (0: none).
	fitsSize int
}

// newPlan lays out the instances and groups. The headline is the hot
// token and the headline pool (uniform) on A, B and C, over o.rounds; the
// curve adds every pool size and distribution over o.curveRounds, with
// B+ and C+ (a cache_size that fits the largest pool) where the default
// does not, and C3 (Redis Cluster) at o.clusterPool. defaultCache is the
// gate's default cache_size.
func newPlan(o *options, defaultCache int) *plan {
	p := &plan{}
	a := &instance{name: "A", title: "reverse_proxy"}
	bm := &instance{name: "B", title: "license_gate (memory) + reverse_proxy", gate: true, store: "memory"}
	cr := &instance{name: "C", title: "license_gate (Redis) + reverse_proxy", gate: true, store: "redis"}
	p.insts = []*instance{a, bm, cr}

	type point struct {
		pool int
		dist string
	}
	curve := []point{}
	if o.curve {
		for _, n := range o.pools {
			for _, d := range o.dists {
				curve = append(curve, point{n, d})
			}
		}
	}
	maxPool := o.pool
	for _, pt := range curve {
		maxPool = max(maxPool, pt.pool)
	}
	// A cache shard evicts when it is full, so "fits" leaves room for the
	// uneven spread of tokens over shards.
	var bFit, cFit *instance
	if maxPool*5/4 > defaultCache {
		p.fitsSize = 2 * maxPool
		bFit = &instance{name: "B+", title: "license_gate (memory, cache fits) + reverse_proxy", gate: true,
			store: "memory", cacheSize: p.fitsSize}
		cFit = &instance{name: "C+", title: "license_gate (Redis, cache fits) + reverse_proxy", gate: true,
			store: "redis", cacheSize: p.fitsSize}
		p.insts = append(p.insts, bFit, cFit)
	}
	var c3 *instance
	if o.curve && o.clusterPool > 0 {
		c3 = &instance{name: "C3", title: "license_gate (Redis Cluster, 3 masters) + reverse_proxy", gate: true,
			store: "redis"}
		p.insts = append(p.insts, c3)
	}

	serve := func(in *instance, pool int) { in.maxPool = max(in.maxPool, pool) }
	withExtras := func(pool int) []*instance {
		out := []*instance{a, bm, cr}
		if bFit != nil && pool*5/4 > defaultCache {
			out = append(out, bFit, cFit)
		}
		if c3 != nil && pool == o.clusterPool {
			out = append(out, c3)
		}
		return out
	}
	add := func(g *group) {
		for _, in := range g.insts {
			serve(in, g.w.pool)
		}
		if g.w.pool > 0 && !slices.Contains(p.pools, g.w.pool) {
			p.pools = append(p.pools, g.w.pool)
		}
		p.groups = append(p.groups, g)
	}
	add(&group{w: hotWorkload(), insts: []*instance{a, bm, cr}, rounds: o.rounds, headline: true})
	head := &group{w: poolWorkload(o.pool, distUniform), insts: []*instance{a, bm, cr}, rounds: o.rounds, headline: true}
	for _, pt := range curve {
		if pt.pool == o.pool && pt.dist == distUniform {
			// The headline pool is also a point of the curve: the extras
			// join its group (and its rounds) instead of a group of their own.
			head.insts = withExtras(pt.pool)
			head.extras, head.extraRounds = head.insts[3:], min(o.curveRounds, o.rounds)
		}
	}
	add(head)
	for _, pt := range curve {
		if pt.pool == o.pool && pt.dist == distUniform {
			continue
		}
		add(&group{w: poolWorkload(pt.pool, pt.dist), insts: withExtras(pt.pool), rounds: o.curveRounds})
	}
	slices.Sort(p.pools)
	return p
}

// files names the workloads' token and sequence files in dir.
func (p *plan) files(dir string) {
	for _, g := range p.groups {
		if g.w.pool > 0 {
			g.w.tokPath = filepath.Join(dir, fmt.Sprintf("pool-%d.txt", g.w.pool))
			g.w.seqPath = filepath.Join(dir, "seq-"+g.w.key+".txt")
		}
	}
}

// maxRounds is the most rounds any group has.
func (p *plan) maxRounds() int {
	n := 0
	for _, g := range p.groups {
		n = max(n, g.rounds)
	}
	return n
}

// instance finds an instance by name.
func (p *plan) instance(name string) *instance {
	for _, in := range p.insts {
		if in.name == name {
			return in
		}
	}
	return nil
}

// measureTime is how long the measured, warm-up and lead-in runs take, without
// the start-up (building, minting, sending every token once).
func (p *plan) measureTime(o *options) time.Duration {
	var d time.Duration
	for _, g := range p.groups {
		run := o.duration
		if !g.headline {
			run = o.curveDur
		}
		d += time.Duration(len(g.insts)) * o.warmup
		for r := 1; r <= g.rounds; r++ {
			for _, in := range g.order(r) {
				d += run + o.leadFor(in, g.w)
			}
		}
	}
	return d
}

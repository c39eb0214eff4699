package main

import (
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"no value has median zero", nil, 0},
		{"one value is its own median", []float64{3}, 3},
		{"an odd count takes the middle value", []float64{5, 1, 3}, 3},
		{"an even count averages the two middle values", []float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.in...)
			if got := median(in); got != tt.want {
				t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
			}
			for i := range in {
				if in[i] != tt.in[i] {
					t.Fatalf("median reordered its input: %v", in)
				}
			}
		})
	}
}

func TestBinomHalfCDF(t *testing.T) {
	tests := []struct {
		n, j int
		want float64
	}{
		{1, 0, 0.5},
		{4, 1, 5.0 / 16},
		{20, 5, 21700.0 / 1048576}, // 1+20+190+1140+4845+15504
		{10, 10, 1},
		{10, -1, 0},
	}
	for _, tt := range tests {
		if got := binomHalfCDF(tt.n, tt.j); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("P(Bin(%d,½) ≤ %d) = %v, want %v", tt.n, tt.j, got, tt.want)
		}
	}
}

func TestMedianIntervalTakesTheOrderStatistics(t *testing.T) {
	seq := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = float64(n - i) // descending, so sorting matters
		}
		return v
	}
	tests := []struct {
		name            string
		n               int
		lo, hi          float64
		full            bool
		coverageAtLeast float64
	}{
		{"twenty rounds give the 6th and the 15th value", 20, 6, 15, true, 0.95},
		{"six rounds are the fewest with a 95% interval", 6, 1, 6, true, 0.96},
		{"five rounds fall back to the range", 5, 1, 5, false, 0.93},
		{"one round is a point", 1, 1, 1, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iv := medianInterval(seq(tt.n), 0.95)
			if iv.lo != tt.lo || iv.hi != tt.hi || iv.full != tt.full || iv.n != tt.n {
				t.Errorf("interval %+v, want [%v, %v] full=%v", iv, tt.lo, tt.hi, tt.full)
			}
			if iv.coverage < tt.coverageAtLeast {
				t.Errorf("coverage %v, want ≥ %v", iv.coverage, tt.coverageAtLeast)
			}
		})
	}
	if iv := medianInterval(seq(20), 0.95); math.Abs(iv.coverage-0.9586) > 0.0001 || iv.median != 10.5 {
		t.Errorf("n=20: coverage %v median %v, want 0.9586 and 10.5", iv.coverage, iv.median)
	}
	if iv := medianInterval(nil, 0.95); iv.ok() {
		t.Errorf("no values gave %+v", iv)
	}
}

func TestPairedRatiosPairByRound(t *testing.T) {
	num := map[int]float64{1: 90, 2: 180, 3: 50, 4: 10}
	den := map[int]float64{1: 100, 2: 200, 4: 0} // round 3 has no A, round 4 a zero A
	got := pairedRatios(num, den)
	if len(got) != 2 || got[0] != 0.9 || got[1] != 0.9 {
		t.Errorf("paired ratios %v, want [0.9 0.9]", got)
	}
}

func TestIndexSequence(t *testing.T) {
	const n = 200000
	t.Run("uniform covers the pool evenly", func(t *testing.T) {
		seq, err := indexSequence(distUniform, 1000, n, 1)
		if err != nil {
			t.Fatal(err)
		}
		counts := make([]int, 1000)
		for _, v := range seq {
			counts[v]++
		}
		for i, c := range counts {
			if c < 100 || c > 320 { // mean 200, sd ≈ 14
				t.Fatalf("index %d drawn %d times of %d", i, c, n)
			}
		}
	})
	t.Run("zipf follows the law with s=1.1", func(t *testing.T) {
		const pool = 10000
		seq, err := indexSequence(distZipf, pool, n, 1)
		if err != nil {
			t.Fatal(err)
		}
		counts := make([]int, pool)
		for _, v := range seq {
			if v < 0 || v >= pool {
				t.Fatalf("index %d out of the pool", v)
			}
			counts[v]++
		}
		h := 0.0
		for k := 1; k <= pool; k++ {
			h += math.Pow(float64(k), -zipfS)
		}
		for _, k := range []int{0, 1, 9} {
			want := math.Pow(float64(k+1), -zipfS) / h * n
			if got := float64(counts[k]); math.Abs(got-want) > 0.05*want+5*math.Sqrt(want) {
				t.Errorf("index %d drawn %v times, want ≈ %.0f", k, got, want)
			}
		}
		if d := distinct(seq); d < 2000 || d > 9000 {
			t.Errorf("%d distinct indices: the tail should be long but not uniform", d)
		}
	})
	t.Run("the same seed gives the same sequence", func(t *testing.T) {
		a, _ := indexSequence(distZipf, 100, 50, 7)
		b, _ := indexSequence(distZipf, 100, 50, 7)
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("sequences differ at %d", i)
			}
		}
	})
	t.Run("an unknown distribution is an error", func(t *testing.T) {
		if _, err := indexSequence("pareto", 10, 10, 1); err == nil {
			t.Error("no error")
		}
	})
}

func TestPlotIsWellFormedSVG(t *testing.T) {
	p := plot{
		title: "×A by pool <size>", xLabel: "licenses", yLabel: "×A",
		refY: []plotRef{{1, "bare"}, {0.9, "target & more"}},
		series: []plotSeries{
			{name: "memory, uniform", color: "#1f77b4", points: []plotPoint{{100000, 0.8, 0.75, 0.85}, {1000, 0.95, 0.93, 0.97}, {10000, 0.9, 0.9, 0.9}}},
			{name: "Redis, zipf", color: "#d62728", dashed: true, points: []plotPoint{{1000, 0.85, 0.8, 0.9}}},
			{name: "empty", color: "#000"},
		},
	}
	out := p.svg()
	dec := xml.NewDecoder(strings.NewReader(out))
	counts := map[string]int{}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, out)
		}
		if se, ok := tok.(xml.StartElement); ok {
			counts[se.Name.Local]++
			if se.Name.Local == "polyline" {
				for _, a := range se.Attr {
					if a.Name.Local == "points" && len(strings.Fields(a.Value)) != 3 {
						t.Errorf("polyline points %q, want the 3 points of the first series", a.Value)
					}
				}
			}
		}
	}
	if counts["svg"] != 1 || counts["polyline"] != 1 || counts["circle"] != 4 {
		t.Errorf("elements %v: want one svg, one polyline (a one-point series draws none), 4 markers", counts)
	}
	for _, want := range []string{"×A by pool &lt;size&gt;", "target &amp; more", "memory, uniform", "Redis, zipf", ">1k<", ">100k<", `stroke-dasharray="6 4"`} {
		if !strings.Contains(out, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

func TestNiceStepAndLabels(t *testing.T) {
	for raw, want := range map[float64]float64{0.03: 0.05, 0.011: 0.02, 0.1: 0.1, 0.6: 1, 0: 0.1} {
		if got := niceStep(raw); math.Abs(got-want) > 1e-12 {
			t.Errorf("niceStep(%v) = %v, want %v", raw, got, want)
		}
	}
	for x, want := range map[float64]string{1000: "1k", 100000: "100k", 2e6: "2M", 50: "50", 1500: "1500"} {
		if got := countLabel(x); got != want {
			t.Errorf("countLabel(%v) = %q, want %q", x, got, want)
		}
	}
}

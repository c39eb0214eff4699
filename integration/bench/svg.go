package main

import (
	"cmp"
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
)

// plot is a line chart with a logarithmic x axis, written as plain SVG
// (no script, no external style), so RESULTS.md can embed it and any
// browser or Markdown viewer draws it.
type plot struct {
	title, xLabel, yLabel string
	series                []plotSeries
	// refY are horizontal reference lines (e.g. 1.0, a target), labelled.
	refY []plotRef
}

type plotRef struct {
	y     float64
	label string
}

// plotSeries is one line: points joined in x order, each with a whisker
// from lo to hi (its confidence interval) when lo < hi.
type plotSeries struct {
	name   string
	color  string
	dashed bool
	points []plotPoint
}

type plotPoint struct{ x, y, lo, hi float64 }

// Layout of the chart, in SVG user units.
const (
	svgW, svgH   = 800, 420
	plotL, plotT = 70, 40
	plotR, plotB = 540, 360
)

// svg renders the chart. Points with x ≤ 0 are skipped (log axis).
func (p plot) svg() string {
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for _, s := range p.series {
		for _, pt := range s.points {
			if pt.x <= 0 {
				continue
			}
			xmin, xmax = math.Min(xmin, pt.x), math.Max(xmax, pt.x)
			ymin, ymax = math.Min(ymin, math.Min(pt.y, pt.lo)), math.Max(ymax, math.Max(pt.y, pt.hi))
		}
	}
	for _, r := range p.refY {
		ymin, ymax = math.Min(ymin, r.y), math.Max(ymax, r.y)
	}
	if math.IsInf(xmin, 1) {
		xmin, xmax = 1, 10
	}
	if math.IsInf(ymin, 1) {
		ymin, ymax = 0, 1
	}
	// Half a decade of margin on x; a nice step and one step of margin on y.
	lx0, lx1 := math.Log10(xmin)-0.25, math.Log10(xmax)+0.25
	step := niceStep((ymax - ymin) / 5)
	y0 := math.Floor(ymin/step)*step - step
	y1 := math.Ceil(ymax/step)*step + step
	if y0 < 0 && ymin >= 0 {
		y0 = 0
	}
	px := func(x float64) float64 {
		return plotL + (math.Log10(x)-lx0)/(lx1-lx0)*(plotR-plotL)
	}
	py := func(y float64) float64 { return plotB - (y-y0)/(y1-y0)*(plotB-plotT) }

	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	esc := html.EscapeString
	w(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgW, svgH, svgW, svgH)
	w(`<rect width="%d" height="%d" fill="white"/>`+"\n", svgW, svgH)
	w(`<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", plotL, esc(p.title))
	// Grid and y ticks.
	for y := y0; y <= y1+step/2; y += step {
		w(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", plotL, py(y), plotR, py(y))
		w(`<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", plotL-6, py(y)+4, trimFloat(y, step))
	}
	// x ticks at 1, 2, 5 × powers of ten.
	for e := math.Floor(lx0); e <= math.Ceil(lx1); e++ {
		for _, m := range []float64{1, 2, 5} {
			x := m * math.Pow(10, e)
			if l := math.Log10(x); l < lx0 || l > lx1 {
				continue
			}
			stroke := "#eee"
			if m == 1 {
				stroke = "#ccc"
			}
			w(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", px(x), plotT, px(x), plotB, stroke)
			w(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", px(x), plotB+16, countLabel(x))
		}
	}
	w(`<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>`+"\n", plotL, plotT, plotR-plotL, plotB-plotT)
	w(`<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", (plotL+plotR)/2, plotB+36, esc(p.xLabel))
	w(`<text x="18" y="%d" text-anchor="middle" transform="rotate(-90 18 %d)">%s</text>`+"\n",
		(plotT+plotB)/2, (plotT+plotB)/2, esc(p.yLabel))
	for _, r := range p.refY {
		w(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#999" stroke-dasharray="2 3"/>`+"\n", plotL, py(r.y), plotR, py(r.y))
		w(`<text x="%d" y="%.1f" fill="#666">%s</text>`+"\n", plotL+4, py(r.y)-3, esc(r.label))
	}
	// Series and legend.
	for i, s := range p.series {
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		var pts []string
		for _, pt := range sortedPoints(s.points) {
			if pt.x <= 0 {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(pt.x), py(pt.y)))
		}
		if len(pts) > 1 {
			w(`<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", esc(s.color), dash, strings.Join(pts, " "))
		}
		for _, pt := range s.points {
			if pt.x <= 0 {
				continue
			}
			if pt.lo < pt.hi {
				w(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", px(pt.x), py(pt.lo), px(pt.x), py(pt.hi), esc(s.color))
			}
			w(`<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s: %s, %.3f</title></circle>`+"\n",
				px(pt.x), py(pt.y), esc(s.color), esc(s.name), countLabel(pt.x), pt.y)
		}
		ly := plotT + 10 + i*20
		w(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", plotR+15, ly, plotR+45, ly, esc(s.color), dash)
		w(`<text x="%d" y="%d">%s</text>`+"\n", plotR+52, ly+4, esc(s.name))
	}
	w("</svg>\n")
	return b.String()
}

// sortedPoints returns the points in increasing x.
func sortedPoints(pts []plotPoint) []plotPoint {
	out := slices.Clone(pts)
	slices.SortFunc(out, func(a, b plotPoint) int { return cmp.Compare(a.x, b.x) })
	return out
}

// niceStep rounds a raw tick step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) {
		return 0.1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// trimFloat prints y with as many decimals as the step needs.
func trimFloat(y, step float64) string {
	d := max(0, int(math.Ceil(-math.Log10(step)+1e-9)))
	return fmt.Sprintf("%.*f", d, y)
}

// countLabel prints 1000 as 1k and 100000 as 100k.
func countLabel(x float64) string {
	switch {
	case x >= 1e6 && math.Mod(x, 1e6) == 0:
		return fmt.Sprintf("%.0fM", x/1e6)
	case x >= 1e3 && math.Mod(x, 1e3) == 0:
		return fmt.Sprintf("%.0fk", x/1e3)
	default:
		return fmt.Sprintf("%g", x)
	}
}

package report

import (
	"encoding/xml"
	"fmt"
	"math"
	"strings"
	"time"
)

// Timeline geometry, in SVG user units (the picture scales to the page).
const (
	svgW, svgH = 960, 220
	padL, padR = 56, 16
	padT, padB = 26, 34
	plotW      = svgW - padL - padR
	plotH      = svgH - padT - padB
	markTop    = 4  // failures are marked in the band above the plot
	markBand   = 16 //
	ticksX     = 6
	legendY    = svgH - 8
)

// layers are a timeline's states, stacked from the bottom: what holds the
// port first, TIME_WAIT on top where it piles up.
var layers = []struct {
	name, class string
	of          func(*Sample) int
}{
	{"LISTEN", "st-listen", func(s *Sample) int { return s.Listen }},
	{"ESTABLISHED", "st-est", func(s *Sample) int { return s.Established }},
	{"CLOSE_WAIT", "st-cw", func(s *Sample) int { return s.CloseWait }},
	{"other", "st-other", func(s *Sample) int { return s.Other }},
	{"TIME_WAIT", "st-tw", func(s *Sample) int { return s.TimeWait }},
}

// svgTimeline draws one port's sockets by state over time as stacked step
// areas, and its refused syscalls as marks whose <title> (a tooltip) says
// what and why. It is a standalone SVG element, valid XML, that refers to
// nothing outside itself; colours come from the page's CSS classes.
func (r *Report) svgTimeline(tl *Timeline, label string) string {
	var b strings.Builder
	t0, t1 := tl.From, tl.To
	if !t1.After(t0) {
		t1 = t0.Add(time.Second)
	}
	x := func(t time.Time) float64 {
		f := float64(t.Sub(t0)) / float64(t1.Sub(t0))
		return padL + math.Max(0, math.Min(1, f))*plotW
	}
	top := 1
	for i := range tl.Samples {
		top = max(top, tl.Samples[i].Total())
	}
	y := func(v int) float64 { return padT + plotH - float64(v)/float64(top)*plotH }
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" class="timeline">`, svgW, svgH)
	fmt.Fprintf(&b, `<title>%s: sockets by state over time, and refused syscalls</title>`, esc(label))
	fmt.Fprintf(&b, `<rect class="plot" x="%d" y="%d" width="%d" height="%d"/>`, padL, padT, plotW, plotH)
	r.svgAxes(&b, t0, t1, top, x, y)
	r.svgLayers(&b, tl, x, y, t1)
	r.svgMarks(&b, tl, x)
	svgLegend(&b)
	b.WriteString(`</svg>`)
	return b.String()
}

func (r *Report) svgAxes(b *strings.Builder, t0, t1 time.Time, top int, x func(time.Time) float64, y func(int) float64) {
	// Tick labels as precise as their spacing needs.
	layout := "15:04:05"
	switch step := t1.Sub(t0) / ticksX; {
	case step < 100*time.Millisecond:
		layout = "15:04:05.000"
	case step < time.Second:
		layout = "15:04:05.0"
	}
	for i := 0; i <= ticksX; i++ {
		t := t0.Add(time.Duration(float64(t1.Sub(t0)) * float64(i) / ticksX))
		px := x(t)
		fmt.Fprintf(b, `<line class="grid" x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>`, px, padT, px, padT+plotH)
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case ticksX:
			anchor = "end"
		}
		fmt.Fprintf(b, `<text class="axis" x="%.1f" y="%d" text-anchor="%s">%s</text>`, px, padT+plotH+14, anchor,
			esc(t.In(r.loc).Format(layout)))
	}
	for _, v := range []int{0, top / 2, top} {
		if v == top/2 && (top < 2 || top%2 != 0 && top < 4) {
			continue
		}
		fmt.Fprintf(b, `<line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`, padL, y(v), padL+plotW, y(v))
		fmt.Fprintf(b, `<text class="axis" x="%d" y="%.1f" text-anchor="end">%d</text>`, padL-6, y(v)+4, v)
	}
}

// svgLayers stacks the states as step areas: a count holds until the next sample.
func (r *Report) svgLayers(b *strings.Builder, tl *Timeline, x func(time.Time) float64, y func(int) float64, end time.Time) {
	n := len(tl.Samples)
	if n == 0 {
		return
	}
	base := make([]int, n)
	for _, l := range layers {
		tops := make([]int, n)
		any := false
		for i := range tl.Samples {
			v := l.of(&tl.Samples[i])
			tops[i] = base[i] + v
			any = any || v > 0
		}
		if any {
			var p strings.Builder
			next := func(i int) time.Time {
				if i+1 < n {
					return tl.Samples[i+1].At
				}
				return end
			}
			for i := range tl.Samples { // the top edge, left to right
				fmt.Fprintf(&p, "%.1f,%.1f %.1f,%.1f ", x(tl.Samples[i].At), y(tops[i]), x(next(i)), y(tops[i]))
			}
			for i := n - 1; i >= 0; i-- { // the bottom edge, back
				fmt.Fprintf(&p, "%.1f,%.1f %.1f,%.1f ", x(next(i)), y(base[i]), x(tl.Samples[i].At), y(base[i]))
			}
			fmt.Fprintf(b, `<polygon class="%s" points="%s"><title>%s</title></polygon>`, l.class,
				strings.TrimSpace(p.String()), esc(l.name))
		}
		base = tops
	}
}

// svgMarks marks each refused syscall above the plot, with a rule down
// through it; its title is the tooltip.
func (r *Report) svgMarks(b *strings.Builder, tl *Timeline, x func(time.Time) float64) {
	for _, m := range tl.Failures {
		px := x(m.At)
		fmt.Fprintf(b, `<g class="fail"><title>%s</title><line x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>`+
			`<path d="M%.1f %d l5 -9 h-10 z"/></g>`,
			esc(m.Title), px, padT, px, padT+plotH, px, markTop+markBand-2)
	}
	if tl.Dropped > 0 {
		fmt.Fprintf(b, `<text class="axis" x="%d" y="%d" text-anchor="end">+%d refused, not marked</text>`,
			padL+plotW, markTop+10, tl.Dropped)
	}
}

func svgLegend(b *strings.Builder) {
	px := padL
	for _, l := range layers {
		fmt.Fprintf(b, `<rect class="%s" x="%d" y="%d" width="10" height="10"/>`, l.class, px, legendY-9)
		fmt.Fprintf(b, `<text class="legend" x="%d" y="%d">%s</text>`, px+14, legendY, esc(l.name))
		px += 14 + 8*len(l.name) + 18
	}
	fmt.Fprintf(b, `<path class="fail-key" d="M%d %d l5 -9 h-10 z"/>`, px+5, legendY)
	fmt.Fprintf(b, `<text class="legend" x="%d" y="%d">refused bind/connect/listen</text>`, px+14, legendY)
}

// esc escapes text for XML (and HTML).
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

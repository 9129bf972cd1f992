package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
)

// results are every run of a twbench invocation.
type results struct {
	Max      []sample            `json:"max_churn"`
	Fixed    []sample            `json:"fixed_rate"`
	Nginx    []sample            `json:"nginx_ab"`
	Programs map[string]progCost `json:"programs"`
}

func (r *results) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func of(samples []sample, name string, f func(sample) float64) []float64 {
	var out []float64
	for _, s := range samples {
		if s.Config == name {
			out = append(out, f(s))
		}
	}
	return out
}

func printMax(out io.Writer, configs []config, ss []sample) {
	ncpu := runtime.NumCPU()
	base := median(of(ss, "untraced", func(s sample) float64 { return s.ConnPerSec }))
	ring := median(of(ss, floorRing, func(s sample) float64 { return s.ConnPerSec })) / base
	fmt.Fprintf(out, "\n%-18s %9s %6s %7s %7s %12s %12s %9s %6s %10s %9s %12s\n",
		"config", "conn/s", "ratio", "÷ring", "lost×", "expected", "delivered", "lost", "exact", "cpu %core", "peak RSS", "kernel/event")
	for _, c := range configs {
		cps := median(of(ss, c.name, func(s sample) float64 { return s.ConnPerSec }))
		if c.start == nil {
			fmt.Fprintf(out, "%-18s %9.0f %6.2f\n", c.name, cps, cps/base)
			continue
		}
		over, lostX := floorRel(cps/base, ring)
		line := fmt.Sprintf("%-18s %9.0f %6.2f %7s %7s", c.name, cps, cps/base, over, lostX)
		var exp, del, lost uint64
		exact := true
		for _, s := range ss {
			if s.Config != c.name {
				continue
			}
			exp, del, lost = exp+s.Expected, del+s.Delivered, lost+s.Lost
			if s.Delivered+s.Lost != s.Expected {
				exact = false
			}
		}
		ex := "yes"
		if !exact {
			ex = "NO"
		}
		pct := median(of(ss, c.name, func(s sample) float64 { return s.TracerPct }))
		// The machine is saturated: what a connection costs beyond the
		// untraced run's, minus the tracer's own share, is the kernel's.
		perConn := float64(ncpu)/cps - float64(ncpu)/base - pct/100/cps
		fmt.Fprintf(out, "%s %12d %12d %9d %6s %9.1f%% %6.1f MiB %9.2f µs\n", line, exp, del, lost, ex, pct,
			median(of(ss, c.name, func(s sample) float64 { return s.PeakRSSMiB })), perConn*1e6/10)
	}
	fmt.Fprintln(out, "(medians over rounds; ÷ring: the ratio over the ring-buffer floor's; lost×: the throughput lost against")
	fmt.Fprintln(out, " the untraced run, in multiples of what the ring-buffer floor loses;")
	fmt.Fprintln(out, " expected/delivered/lost summed over rounds; exact: delivered + lost = expected in")
	fmt.Fprintln(out, " every run; kernel/event: the CPU a connection costs beyond the untraced run's, minus the tracer's")
	fmt.Fprintln(out, " own, per transition (10 per connection), with every CPU busy)")
	printScrapes(out, configs, ss)
}

// printScrapes says how often serve was scraped during the runs, and how
// long a scrape took.
func printScrapes(out io.Writer, configs []config, ss []sample) {
	for _, c := range configs {
		n := 0
		for _, s := range ss {
			if s.Config == c.name {
				n += s.Scrapes
			}
		}
		if n > 0 {
			ms := median(of(ss, c.name, func(s sample) float64 { return s.ScrapeMS }))
			fmt.Fprintf(out, "(%s: /metrics scraped %d times during its runs, %.1f ms per scrape (median))\n", c.name, n, ms)
		}
	}
}

// floorRel returns a configuration's ratio over the ring floor's, and the
// throughput it loses in multiples of what the ring floor loses ("" when
// the floor did not run).
func floorRel(ratio, ring float64) (over, lost string) {
	if ring == 0 || ring != ring {
		return "", ""
	}
	over = fmt.Sprintf("%.2f", ratio/ring)
	if ring < 1 && ratio <= 1 { // a run above untraced lost nothing: noise
		lost = fmt.Sprintf("%.1f", (1-ratio)/(1-ring))
	}
	return over, lost
}

// bpfPerEvent is every program's run time per state event in a sample, in µs.
func bpfPerEvent(s sample) float64 {
	var ns uint64
	for _, p := range s.Programs {
		ns += p.TimeNS
	}
	return float64(ns) / float64(s.Expected) / 1e3
}

func printFixed(out io.Writer, configs []config, ss []sample) {
	baseBusy := median(of(ss, "untraced", func(s sample) float64 { return s.BusyCPU }))
	ringBPF := median(of(ss, floorRing, bpfPerEvent))
	fmt.Fprintf(out, "\n%-18s %9s %12s %9s %12s %16s %9s %16s\n", "config", "conn/s", "events", "lost", "tracer %core",
		"BPF µs/event", "×ring", "machine µs/event")
	for _, c := range configs {
		cps := median(of(ss, c.name, func(s sample) float64 { return s.ConnPerSec }))
		if c.start == nil {
			fmt.Fprintf(out, "%-18s %9.0f\n", c.name, cps)
			continue
		}
		events := median(of(ss, c.name, func(s sample) float64 { return float64(s.Expected) }))
		var lost uint64
		for _, s := range ss {
			if s.Config == c.name {
				lost += s.Lost
			}
		}
		tracer := median(of(ss, c.name, func(s sample) float64 { return s.TracerCPU }))
		busy := median(of(ss, c.name, func(s sample) float64 { return s.BusyCPU }))
		extra := (busy - baseBusy - tracer) / events * 1e6
		bpf := median(of(ss, c.name, bpfPerEvent))
		times := ""
		if ringBPF > 0 {
			times = fmt.Sprintf("%.1f", bpf/ringBPF)
		}
		fmt.Fprintf(out, "%-18s %9.0f %12.0f %9d %11.1f%% %16.2f %9s %16.2f\n", c.name, cps, events, lost,
			median(of(ss, c.name, func(s sample) float64 { return s.TracerPct })), bpf, times, extra)
	}
	fmt.Fprintln(out, "(events: state events of one run, warmup included (median); lost: summed over all runs;")
	fmt.Fprintln(out, " BPF µs/event: every program's run time (kernel.bpf_stats_enabled) per state event; ×ring: in multiples")
	fmt.Fprintln(out, " of the ring-buffer floor's; machine µs/event:")
	fmt.Fprintln(out, " all CPUs' busy time minus the untraced run's and the tracer's own, per event: at this rate the")
	fmt.Fprintln(out, " load's own CPU varies by more than tracing adds, so read it as a bound, not a measurement)")
}

func printPrograms(out io.Writer, s sample) {
	fmt.Fprintf(out, "\n== BPF programs under maximum churn (kernel.bpf_stats_enabled=1, %.0f conn/s)\n", s.ConnPerSec)
	names := make([]string, 0, len(s.Programs))
	for n := range s.Programs {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(out, "%-22s %12s %12s\n", "program", "runs", "ns/run")
	for _, n := range names {
		p := s.Programs[n]
		per := 0.0
		if p.Runs > 0 {
			per = float64(p.TimeNS) / float64(p.Runs)
		}
		fmt.Fprintf(out, "%-22s %12d %12.0f\n", n, p.Runs, per)
	}
	fmt.Fprintln(out, strings.Repeat("-", 48))
}

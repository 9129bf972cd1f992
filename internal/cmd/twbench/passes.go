package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"time"
)

// sample is one run of one configuration.
type sample struct {
	Config      string              `json:"config"`
	Round       int                 `json:"round"`
	ConnPerSec  float64             `json:"conn_per_s"`
	Errors      uint64              `json:"churn_errors"`
	Expected    uint64              `json:"expected"`       // independent in-kernel count during the run
	Delivered   uint64              `json:"delivered"`      // state events the tracer delivered
	Lost        uint64              `json:"lost"`           // events the tracer reported lost
	TracerCPU   float64             `json:"tracer_cpu_s"`   // during the churn
	TracerPct   float64             `json:"tracer_cpu_pct"` // of one core, during the churn
	PeakRSSMiB  float64             `json:"peak_rss_mib"`
	BusyCPU     float64             `json:"busy_cpu_s"`  // all CPUs, during the churn (fixed-rate pass)
	ChurnCPU    float64             `json:"churn_cpu_s"` // the generator's own CPU: its syscalls and softirqs, where the programs run
	ChurnSecs   float64             `json:"churn_s"`
	KernelRings uint64              `json:"ring_lost"`
	Scrapes     int                 `json:"scrapes,omitempty"`   // serve: /metrics scraped during the run
	ScrapeMS    float64             `json:"scrape_ms,omitempty"` // ... the mean time of one
	Recursion   uint64              `json:"recursion_misses"`
	Programs    map[string]progCost `json:"programs,omitempty"`
}

type progCost struct {
	Runs   uint64 `json:"runs"`
	TimeNS uint64 `json:"time_ns"`
}

// runOne runs the churn once under one configuration.
func runOne(ctx context.Context, o *options, c config, counter *counter, rate int, d time.Duration) (sample, error) {
	return runLoad(ctx, o, c, counter, func(ctx context.Context) (*churnResult, error) {
		return runChurn(ctx, o, rate, d)
	})
}

// runLoad runs a load once under one configuration; counter counts the
// transitions the configuration must deliver.
func runLoad(ctx context.Context, o *options, c config, counter *counter,
	load func(context.Context) (*churnResult, error)) (sample, error) {
	s := sample{Config: c.name}
	dir, err := os.MkdirTemp("", "twbench-")
	if err != nil {
		return s, err
	}
	defer os.RemoveAll(dir)
	settle(counter) // a previous run's namespace is torn down asynchronously
	var p *tracerProc
	if c.start != nil {
		if p, err = c.start(ctx, dir); err != nil {
			return s, fmt.Errorf("%s: %w", c.name, err)
		}
	}
	c0, err := counter.read()
	if err != nil {
		return s, err
	}
	busy0 := readBusy()
	var cpu0 time.Duration
	if p != nil {
		cpu0 = p.procCPU()
	}
	var sc *scraper
	if p != nil && p.scrapeURL != "" {
		sc = startScraper(p.scrapeURL, o.warmup)
	}
	start := time.Now()
	r, err := load(ctx)
	churnTime := time.Since(start)
	if sc != nil {
		n, took, serr := sc.stop()
		if err == nil && serr != nil {
			err = fmt.Errorf("%s: scrape: %w", c.name, serr)
		}
		if s.Scrapes = n; n > 0 {
			s.ScrapeMS = float64(took.Microseconds()) / 1000 / float64(n)
		}
	}
	if err != nil {
		if p != nil {
			p.kill()
		}
		return s, err
	}
	s.BusyCPU = readBusy().busySince(busy0).Seconds()
	s.ChurnSecs = churnTime.Seconds()
	s.ConnPerSec, s.Errors = r.ConnPerSec, r.ErrorsTotal
	s.ChurnCPU = r.CPUUser + r.CPUSys
	if p == nil {
		return s, nil
	}
	s.TracerCPU = (p.procCPU() - cpu0).Seconds()
	s.TracerPct = 100 * s.TracerCPU / churnTime.Seconds()
	// The load's namespace goes with its last socket, in a kernel worker,
	// after the load has exited: its last transitions must reach the
	// tracer before it stops, or they are counted but never delivered.
	settle(counter)
	ru, err := p.stop()
	if err != nil {
		return s, err
	}
	c1, err := counter.read()
	if err != nil {
		return s, err
	}
	s.Expected = c1 - c0
	if ru != nil {
		s.PeakRSSMiB = float64(ru.Maxrss) / 1024
	}
	if p.statsFile != "" {
		st, err := readStats(p.statsFile)
		if err != nil {
			return s, fmt.Errorf("%s stats: %w", c.name, err)
		}
		s.Delivered = st.Delivered["state"]
		s.Lost = st.LostReported
		s.KernelRings = st.Kernel.StateRingLost + st.Kernel.SysRingLost
		s.Programs = map[string]progCost{}
		for name, pc := range st.Kernel.Programs {
			s.Programs[name] = progCost{Runs: pc.RunCount, TimeNS: pc.RunTimeNS}
			s.Recursion += pc.RecursionMisses
		}
	} else {
		s.Delivered = uint64(p.lines.Load())
		s.Lost = bpftraceLost(p.stderr.String())
	}
	return s, nil
}

// settle returns once the counter has not moved for 200 ms (at most 5 s:
// other work on the machine may never be quiet).
func settle(c *counter) {
	last, _ := c.read()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		n, err := c.read()
		if err != nil || n == last {
			return
		}
		last = n
	}
}

var lostRE = regexp.MustCompile(`Lost (\d+) events`)

// bpftraceLost sums bpftrace's "Lost N events" reports.
func bpftraceLost(out string) uint64 {
	var n uint64
	for _, m := range lostRE.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseUint(m[1], 10, 64)
		n += v
	}
	return n
}

// maxChurn: every configuration at the highest rate the machine makes,
// alternating, several rounds.
func maxChurn(ctx context.Context, o *options, configs []config, counter *counter, out io.Writer, res *results) error {
	fmt.Fprintf(out, "== maximum churn (%d rounds)\n", o.rounds)
	for round := range o.rounds {
		for k := range configs {
			c := configs[(k+round)%len(configs)]
			s, err := runOne(ctx, o, c, counter, 0, o.duration)
			if err != nil {
				return err
			}
			s.Round = round + 1
			res.Max = append(res.Max, s)
			fmt.Fprintf(out, "  round %d  %-18s %8.0f conn/s  tracer %5.1f%% of a core\n", s.Round, s.Config, s.ConnPerSec, s.TracerPct)
		}
	}
	printMax(out, configs, res.Max)
	return nil
}

// fixedRate: the same load at a rate the machine sustains with room to
// spare, so the cost per event can be read off: the tracer's own CPU, and
// the extra CPU the rest of the machine (the kernel) spends.
func fixedRate(ctx context.Context, o *options, configs []config, counter *counter, out io.Writer, res *results) error {
	fmt.Fprintf(out, "\n== fixed rate: %d connections/s (%d rounds)\n", o.rate, o.rounds)
	var cs []config
	for _, c := range configs {
		if c.name != "bpftrace printf" {
			cs = append(cs, c)
		}
	}
	// The programs' own run time, from the kernel's statistics: at a fixed
	// rate the load's CPU varies more than tracing adds to it.
	restore, err := enableBPFStats()
	if err != nil {
		return err
	}
	defer restore()
	for round := range o.rounds {
		for k := range cs {
			c := cs[(k+round)%len(cs)]
			s, err := runOne(ctx, o, c, counter, o.rate, o.rateDur)
			if err != nil {
				return err
			}
			s.Round = round + 1
			res.Fixed = append(res.Fixed, s)
		}
	}
	printFixed(out, cs, res.Fixed)
	return nil
}

// programCost: one maximum-churn run of `twtrace trace` with the kernel's
// BPF statistics on, for each program's run time per invocation. The
// statistics cost time themselves, so this run is not used for ratios.
func programCost(ctx context.Context, o *options, configs []config, counter *counter, out io.Writer, res *results) error {
	var c *config
	for i := range configs {
		if configs[i].name == "trace --json" {
			c = &configs[i]
		}
	}
	if c == nil {
		return nil
	}
	restore, err := enableBPFStats()
	if err != nil {
		return err
	}
	defer restore()
	s, err := runOne(ctx, o, *c, counter, 0, o.duration)
	if err != nil {
		return err
	}
	res.Programs = s.Programs
	printPrograms(out, s)
	return nil
}

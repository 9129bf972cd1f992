// Command twbench measures what twtrace costs the host it traces: the same
// connection churn (internal/cmd/twchurn) with and without a tracer attached,
// alternating configurations over several rounds and reporting medians and
// ratios, events expected (an independent in-kernel count) against events
// delivered and reported lost, and each tracer's CPU time and peak memory.
// `make bench` runs it; docs/performance.md explains the method.
//
// It must run as root on an otherwise idle machine. It changes one sysctl,
// kernel.bpf_stats_enabled, during the fixed-rate pass and the per-program
// run that ends it, and restores it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

type options struct {
	twtrace   string
	churn     string
	rounds    int
	duration  time.Duration
	warmup    time.Duration
	rate      int
	rateDur   time.Duration
	workers   int
	closeSide string
	only      string
	jsonOut   string
	nginxN    int
	nginxC    int
}

func main() {
	var o options
	flag.StringVar(&o.twtrace, "twtrace", "bin/twtrace-dev", "twtrace binary, built with -tags twtracedev (the flags that report what a run delivered)")
	flag.StringVar(&o.churn, "churn", "bin/twchurn", "load generator binary")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every configuration once, in a rotating order")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured time of each maximum-churn run")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "warmup before each measurement (the churn's first seconds run on free ports, faster)")
	flag.IntVar(&o.rate, "rate", 5000, "connections/s of the fixed-rate pass (0: skip it)")
	flag.DurationVar(&o.rateDur, "rate-duration", 5*time.Second, "measured time of each fixed-rate run")
	flag.IntVar(&o.workers, "workers", 2, "load generator workers")
	flag.StringVar(&o.closeSide, "close", "client", "which side closes first: client or server")
	flag.StringVar(&o.only, "only", "", "run only the configurations whose name contains this (a comma-separated list: any of them)")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.IntVar(&o.nginxN, "nginx-n", 30000, "requests of each run of the nginx pass (ab -n; 0: skip the pass)")
	flag.IntVar(&o.nginxC, "nginx-c", 16, "concurrent requests of the nginx pass (ab -c)")
	floor := flag.String("floor", "", "internal: run as a floor tracer (count or ring)")
	floorStats := flag.String("floor-stats", "", "internal: the floor's stats file")
	floorReady := flag.String("floor-ready", "", "internal: the floor's ready file")
	flag.Parse()
	if *floor != "" {
		if err := runFloor(*floor, *floorStats, *floorReady); err != nil {
			fmt.Fprintf(os.Stderr, "twbench -floor %s: %v\n", *floor, err)
			os.Exit(1)
		}
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &o, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "twbench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *options, out io.Writer) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: the tracers load BPF programs")
	}
	for _, bin := range []*string{&o.twtrace, &o.churn} {
		if _, err := os.Stat(*bin); err != nil {
			return fmt.Errorf("%s: %w (run `make bench`, which builds it)", *bin, err)
		}
		abs, err := filepath.Abs(*bin) // the tracers run in their own directories
		if err != nil {
			return err
		}
		*bin = abs
	}
	counter, err := openCounter()
	if err != nil {
		return fmt.Errorf("independent counter: %w", err)
	}
	defer counter.Close()

	configs := configurations(o)
	fmt.Fprintf(out, "twbench: %d rounds of %d configurations, churn %v (+%v warmup) each, %s closes first, %d workers\n",
		o.rounds, len(configs), o.duration, o.warmup, o.closeSide, o.workers)
	fmt.Fprintf(out, "host: %s\n\n", hostLine())

	var res results
	if err := maxChurn(ctx, o, configs, counter, out, &res); err != nil {
		return err
	}
	if o.rate > 0 {
		if err := fixedRate(ctx, o, configs, counter, out, &res); err != nil {
			return err
		}
	}
	if o.nginxN > 0 {
		if err := nginxPass(ctx, o, counter, out, &res); err != nil {
			return err
		}
	}
	if err := programCost(ctx, o, configs, counter, out, &res); err != nil {
		return err
	}
	if o.jsonOut != "" {
		return res.writeJSON(o.jsonOut)
	}
	return nil
}

// bpftraceAvailable reports whether the reference tracer can run here.
func bpftraceAvailable() bool {
	_, err := exec.LookPath("bpftrace")
	return err == nil
}

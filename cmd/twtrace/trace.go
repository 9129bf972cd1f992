package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer"
	"github.com/twtrace/twtrace/tracer/live"
	"github.com/twtrace/twtrace/tracer/stream"
)

// traceOptions are the flags of `twtrace trace` (and of bare `twtrace`).
type traceOptions struct {
	filters   filterFlags
	json      bool
	duration  time.Duration
	count     int
	ringSize  string
	wakeup    time.Duration
	readyFile string
	verbose   bool
	cpuProf   string
	statsFile string
	logFile   string // the UI's diagnostics (root command on a terminal)
	headless  bool   // the UI's model without a terminal (benchmarks)
}

func (o *traceOptions) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	o.registerSession(fs)
	fs.BoolVar(&o.json, "json", false, "write JSON Lines (schema in DESIGN.md) instead of text columns")
	fs.IntVar(&o.count, "count", 0, "stop after this many events")
	fs.StringVar(&o.cpuProf, "cpuprofile", "", "write a Go CPU profile of twtrace itself to this file")
	_ = fs.MarkHidden("cpuprofile")
}

// registerSession registers the flags of a tracing session, which trace and
// record share: filters, how long, the ring buffer, diagnostics.
func (o *traceOptions) registerSession(fs *pflag.FlagSet) {
	o.filters.register(fs)
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (e.g. 30s, 5m)")
	fs.StringVar(&o.ringSize, "ring-size", "4M", "BPF ring buffer `size` (power of two, e.g. 1M, 16M)")
	fs.DurationVar(&o.wakeup, "wakeup", tracer.DefaultWakeupEvery,
		"longest time an event waits in the ring buffer; 0 wakes the reader for every event (costs kernel CPU)")
	fs.StringVar(&o.readyFile, "ready-file", "", "create this file once the programs are attached")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "log diagnostics to stderr")
	fs.StringVar(&o.statsFile, "stats-file", "", "write what the run delivered and the kernel counted, as JSON, at the end")
	_ = fs.MarkHidden("ready-file")
	_ = fs.MarkHidden("stats-file")
}

func newTraceCmd(stdout, stderr io.Writer) *cobra.Command {
	opts := &traceOptions{}
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "Stream TCP state transitions and bind/connect/listen failures",
		Example: `  twtrace trace --port 8080
  twtrace trace --json --port 8080 --duration 30s > events.jsonl
  twtrace trace | grep EADDRINUSE`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTrace(cmd.Context(), opts, stdout, stderr)
		},
	}
	opts.register(cmd)
	return cmd
}

func (o *traceOptions) config(stderr io.Writer) (tracer.Config, error) {
	flt, err := o.filters.filter()
	if err != nil {
		return tracer.Config{}, err
	}
	if o.count < 0 || o.duration < 0 || o.wakeup < 0 {
		return tracer.Config{}, usagef("--count, --duration and --wakeup cannot be negative")
	}
	size, err := parseSize(o.ringSize)
	if err != nil {
		return tracer.Config{}, usagef("--ring-size: %v", err)
	}
	if size < os.Getpagesize() || size&(size-1) != 0 {
		return tracer.Config{}, usagef("--ring-size %s: must be a power of two of at least %d bytes", o.ringSize, os.Getpagesize())
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelDebug
	}
	return tracer.Config{
		Filter:      flt,
		RingSize:    size,
		WakeupEvery: o.wakeup,
		Logger:      slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	}, nil
}

func runTrace(ctx context.Context, o *traceOptions, stdout, stderr io.Writer) error {
	cfg, err := o.config(stderr)
	if err != nil {
		return err
	}
	if o.cpuProf != "" {
		stop, err := startCPUProfile(o.cpuProf)
		if err != nil {
			return err
		}
		defer stop()
	}
	sess, err := live.Start(live.Config{Tracer: cfg, Logger: cfg.Logger})
	if err != nil {
		return err
	}
	defer sess.Close()
	if err := signalReady(o.readyFile); err != nil {
		return err
	}

	var write func([]tracer.Event) error
	if o.json {
		write = stream.NewJSON(stdout).Write
	} else {
		write = stream.NewText(stdout, stream.TextOptions{Color: colorful(stdout)}).Write
	}

	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	seen := 0
	tally := newCounter()
	err = sess.Run(ctx, func(batch []tracer.Event) error {
		if o.count > 0 {
			if seen >= o.count {
				return nil
			}
			if left := o.count - seen; len(batch) > left {
				batch = batch[:left]
			}
			seen += len(batch)
			if seen >= o.count {
				cancel()
			}
		}
		tally.add(batch)
		if err := write(batch); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	})
	if err == nil && o.statsFile != "" {
		err = tally.write(o.statsFile, sess)
	}
	return err
}

// startCPUProfile profiles twtrace itself, for performance work.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// signalReady creates the --ready-file, telling a test that every program is attached.
func signalReady(path string) error {
	if path == "" {
		return nil
	}
	if err := os.WriteFile(path, []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("--ready-file: %w", err)
	}
	return nil
}

// colorful reports whether w is a terminal that wants colour.
func colorful(w io.Writer) bool {
	return os.Getenv("NO_COLOR") == "" && isTerminal(w)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

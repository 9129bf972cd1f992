package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/safefile"
	"github.com/twtrace/twtrace/tracer"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/session"
	"github.com/twtrace/twtrace/tracer/stream"
)

// eventSink takes the event stream in batches; it must not keep the slice.
type eventSink = func([]event.Event) error

// traceOptions are the flags of `twtrace trace` (and of bare `twtrace`).
type traceOptions struct {
	filters   filterFlags
	json      bool
	csv       bool // trace only: the root command has no --csv
	duration  time.Duration
	count     int
	ringSize  string
	wakeup    time.Duration
	readyFile string
	verbose   bool
	logFile   string     // the UI's diagnostics (root command on a terminal)
	logSize   int        // events the UI's log keeps
	dev       devOptions // developer flags: only in a -tags twtracedev build
}

func (o *traceOptions) register(cmd *cobra.Command, root bool) {
	fs := cmd.Flags()
	o.registerSession(fs, root)
	fs.BoolVar(&o.json, "json", false, "write JSON Lines (schema: docs/jsonl.md) instead of text columns")
	if !root {
		fs.BoolVar(&o.csv, "csv", false, csvUsage)
	}
	fs.IntVar(&o.count, "count", 0, "stop after this many events")
	accepts(fs, "count", "a number of events, or 0 for no limit")
}

const csvUsage = "write CSV instead of text columns: a header, then a row per event (times RFC 3339 UTC, durations in ms)"

// registerSession registers the flags of a tracing session, which trace and
// record share: filters, how long, the ring buffer, diagnostics.
func (o *traceOptions) registerSession(fs *pflag.FlagSet, root bool) {
	o.filters.register(fs)
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (e.g. 30s, 5m)")
	fs.StringVar(&o.ringSize, "ring-size", "4M", "BPF ring buffer `size` (power of two, e.g. 1M, 16M)")
	fs.DurationVar(&o.wakeup, "wakeup", tracer.DefaultWakeupEvery,
		"longest time an event waits in the ring buffer; 0 wakes the reader for every event (costs kernel CPU)")
	fs.StringVar(&o.readyFile, "ready-file", "", "create this file once the programs are attached")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "log diagnostics to stderr")
	accepts(fs, "wakeup", "a duration with a unit, such as 50ms, or 0 to wake the reader for every event")
	_ = fs.MarkHidden("ready-file")
	o.dev.register(fs, root)
}

func newTraceCmd(stdout, stderr io.Writer) *cobra.Command {
	opts := &traceOptions{}
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "Stream TCP state transitions and bind/connect/listen failures",
		Example: `  twtrace trace --port 8080
  twtrace trace --json --port 8080 --duration 30s > events.jsonl
  twtrace trace --csv --duration 1m > events.csv
  twtrace trace | grep EADDRINUSE`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTrace(cmd.Context(), opts, stdout, stderr)
		},
	}
	opts.register(cmd, false)
	return cmd
}

func (o *traceOptions) config(stderr io.Writer) (tracer.Config, error) {
	flt, err := o.filters.filter()
	if err != nil {
		return tracer.Config{}, err
	}
	switch {
	case o.count < 0:
		return tracer.Config{}, usagef("--count %d cannot be negative: want a number of events, or 0 for no limit", o.count)
	case o.duration < 0:
		return tracer.Config{}, usagef("--duration %s cannot be negative: want a duration such as 30s or 5m", o.duration)
	case o.wakeup < 0:
		return tracer.Config{}, usagef("--wakeup %s cannot be negative: want a duration such as 50ms, or 0", o.wakeup)
	}
	size, err := parseSize(o.ringSize)
	if err == nil {
		err = tracer.CheckRingSize(size)
	}
	if err != nil {
		return tracer.Config{}, usagef("--ring-size %s: %v", o.ringSize, err)
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

// withDuration bounds ctx by --duration, when given.
func withDuration(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

func runTrace(ctx context.Context, o *traceOptions, stdout, stderr io.Writer) error {
	if err := exclusive(flagSet{"--json", o.json}, flagSet{"--csv", o.csv}); err != nil {
		return err
	}
	cfg, err := o.config(stderr)
	if err != nil {
		return err
	}
	if err := o.dev.start(); err != nil {
		return err
	}
	sess, err := session.Start(session.Config{Tracer: cfg, Logger: cfg.Logger})
	if err != nil {
		return err
	}
	defer sess.Close()
	announce(stderr, sess.Tracer().Degraded())
	if err := signalReady(o.readyFile); err != nil {
		return err
	}

	write := streamSink(stdout, o.json, o.csv)
	ctx, cancel := withDuration(ctx, o.duration)
	defer cancel()
	seen := 0
	err = sess.Run(ctx, o.dev.sink(func(batch []event.Event) error {
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
		if err := write(batch); err != nil {
			if errors.Is(err, syscall.EIO) && ctx.Err() != nil {
				return nil // the terminal hung up (SIGHUP): nobody reads on
			}
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}))
	o.dev.crash("main")
	if derr := o.dev.finish(sess); err == nil {
		err = derr
	}
	return err
}

// streamSink returns the writer of the event stream: JSON Lines, CSV, or
// text columns (coloured on a terminal).
func streamSink(w io.Writer, json, csv bool) eventSink {
	switch {
	case json:
		return stream.NewJSON(w).Write
	case csv:
		return stream.NewCSV(w).Write
	}
	return stream.NewText(w, stream.TextOptions{Color: colorful(w)}).Write
}

// announce prints what the session traces without, one sentence a line:
// "continuing without bind/connect/listen events: ...".
func announce(stderr io.Writer, degraded []string) {
	for _, d := range degraded {
		fmt.Fprintf(stderr, "twtrace: %s\n", d)
	}
}

// writeFile writes a file twtrace creates, through safefile: mode 0600,
// never through a symbolic link, never over an existing file unless
// replace (and then by renaming a new file over it).
func writeFile(path string, replace bool, data []byte) error {
	f, err := safefile.Create(path, replace)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}

// signalReady creates the --ready-file, telling a test that every program is attached.
func signalReady(path string) error {
	if path == "" {
		return nil
	}
	if err := writeFile(path, false, fmt.Appendf(nil, "%d\n", os.Getpid())); err != nil {
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

//go:build twtracedev

package main

// The developer build (go build -tags twtracedev, as make bench does) adds
// the flags the benchmark harness drives twtrace with. The product binary
// has none of them: they are not part of its command tree.

import (
	"context"
	"fmt"
	"runtime/pprof"

	"github.com/spf13/pflag"

	"github.com/twtrace/twtrace/internal/safefile"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/session"
	"github.com/twtrace/twtrace/tui"
)

// devOptions are the developer flags of a tracing session.
type devOptions struct {
	ui        bool   // --headless: the live view's model without a terminal
	statsFile string // what the run delivered and the kernel counted, as JSON
	cpuProf   string // a Go CPU profile of twtrace itself
	panicAt   string // --panic: where to panic on purpose
	tally     *counter
	stopProf  func()
}

func (d *devOptions) register(fs *pflag.FlagSet, root bool) {
	fs.StringVar(&d.statsFile, "stats-file", "", "developer: write what the run delivered and the kernel counted, as JSON, at the end")
	fs.StringVar(&d.cpuProf, "cpuprofile", "", "developer: write a Go CPU profile of twtrace itself to this file")
	fs.StringVar(&d.panicAt, "panic", "", "developer: panic on purpose in `WHERE`, to test the exit paths: "+
		"main (when the session ends, before it is closed) or sink (at the first events)")
	if root {
		fs.BoolVar(&d.ui, "headless", false, "developer: run the live view's model without a terminal")
	}
}

// crash panics when --panic names where.
func (d *devOptions) crash(where string) {
	if d.panicAt == where {
		panic("injected by --panic " + where)
	}
}

// headless reports --headless.
func (d *devOptions) headless() bool { return d.ui }

// start begins the profile, before the session is opened.
func (d *devOptions) start() error {
	d.tally = newCounter()
	if d.cpuProf == "" {
		return nil
	}
	f, err := safefile.Create(d.cpuProf, false)
	if err != nil {
		return fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Abort()
		return fmt.Errorf("--cpuprofile: %w", err)
	}
	d.stopProf = func() { pprof.StopCPUProfile(); f.Commit() }
	return nil
}

// sink counts what a run delivers, for --stats-file, and panics in it for
// --panic sink.
func (d *devOptions) sink(fn eventSink) eventSink {
	if d.statsFile == "" && d.panicAt != "sink" {
		return fn
	}
	return func(b []event.Event) error {
		if len(b) > 0 {
			d.crash("sink")
		}
		d.tally.add(b)
		return fn(b)
	}
}

// finish stops the profile and writes the stats file.
func (d *devOptions) finish(sess *session.Session) error {
	if d.stopProf != nil {
		d.stopProf()
	}
	if d.statsFile == "" {
		return nil
	}
	return d.tally.write(d.statsFile, sess)
}

// runHeadless runs the live view's model without a terminal (twbench).
func (d *devOptions) runHeadless(ctx context.Context, sess *session.Session, opts tui.Options) (bool, error) {
	if !d.ui {
		return false, nil
	}
	return true, tui.Headless(ctx, countingFeed{sess, d}, opts)
}

// countingFeed tallies what the session delivers to the UI.
type countingFeed struct {
	*session.Session
	d *devOptions
}

func (f countingFeed) Run(ctx context.Context, fn func([]event.Event) error) error {
	return f.Session.Run(ctx, f.d.sink(fn))
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer"
	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/live"
	"github.com/twtrace/twtrace/tui"
)

// runUI runs the live view on the terminal (or, with --headless, its model
// without a terminal, for the overhead benchmark). Diagnostics go to
// --log-file: the terminal belongs to the UI.
func runUI(ctx context.Context, o *traceOptions, stdout, stderr io.Writer) error {
	logger := slog.New(slog.DiscardHandler)
	if o.logFile != "" {
		f, err := os.OpenFile(o.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return usagef("--log-file: %v", err)
		}
		defer f.Close()
		logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg, err := o.config(stderr)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	if o.cpuProf != "" {
		stop, err := startCPUProfile(o.cpuProf)
		if err != nil {
			return err
		}
		defer stop()
	}
	sess, err := live.Start(live.Config{Tracer: cfg, Logger: logger})
	if err != nil {
		return err
	}
	defer sess.Close()
	if err := signalReady(o.readyFile); err != nil {
		return err
	}
	opts := tui.Options{
		Host: hostname(), Kernel: kernelRelease(), Rates: sess.Rates,
		HostNetNS: sess.HostNetNS(), Logger: logger,
	}
	if r, err := kstat.NewReader("/proc"); err == nil {
		if sc, err := r.Sysctls(); err == nil && sc.PortRange[0] > 0 {
			opts.PortRange = sc.PortRange
		}
	}
	for _, w := range sess.Tracer().Warnings() {
		logger.Warn(w)
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	if o.headless {
		tally := newCounter()
		feed := countingFeed{sess, tally}
		err = tui.Headless(ctx, feed, opts)
		if err == nil && o.statsFile != "" {
			err = tally.write(o.statsFile, sess)
		}
		return err
	}
	if err := tui.Run(ctx, sess, opts); err != nil {
		return fmt.Errorf("%w", err)
	}
	return nil
}

// countingFeed tallies what the session delivers to the UI (--stats-file).
type countingFeed struct {
	*live.Session
	tally *counter
}

func (f countingFeed) Run(ctx context.Context, fn func([]tracer.Event) error) error {
	return f.Session.Run(ctx, func(b []tracer.Event) error {
		f.tally.add(b)
		return fn(b)
	})
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

func kernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/safefile"
	"github.com/twtrace/twtrace/tracer/event"

	"github.com/twtrace/twtrace/tracer/capture"
	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/session"
	"github.com/twtrace/twtrace/tracer/table"
	"github.com/twtrace/twtrace/tui"
)

// runUI runs the live view on the terminal. Diagnostics go to --log-file:
// the terminal belongs to the UI.
func runUI(ctx context.Context, o *traceOptions, stdout, stderr io.Writer) error {
	if o.verbose {
		return usagef("-v logs to stderr, which the live view covers: use --log-file FILE")
	}
	logger := slog.New(slog.DiscardHandler)
	if o.logFile != "" {
		f, err := safefile.Append(o.logFile)
		if err != nil {
			return inputf("--log-file: %v", err)
		}
		defer f.Close()
		logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg, err := o.config(stderr)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	if err := o.dev.start(); err != nil {
		return err
	}
	sess, err := session.Start(session.Config{Tracer: cfg, Logger: logger})
	if err != nil {
		return err
	}
	defer sess.Close()
	if err := signalReady(o.readyFile); err != nil {
		return err
	}
	opts := tui.Options{
		Host: hostname(), Kernel: kernelRelease(), Rates: sess.Rates, Scope: cfg.Filter.String(),
		HostNetNS: sess.HostNetNS(), Logger: logger, LogSize: o.logSize,
	}
	r, err := kstat.NewReader("/proc")
	if err != nil {
		r = nil
	} else if sc, err := r.Sysctls(); err == nil && sc.PortRange[0] > 0 {
		opts.PortRange = sc.PortRange
	}
	host := sess.HostNetNS()
	opts.Sysctls = func(netns uint32) *kstat.Sysctls {
		if netns == host && r != nil {
			if sc, err := r.Sysctls(); err == nil {
				return &sc // the host's, read now: someone may have just changed one
			}
		}
		return sess.Sysctls(netns) // read in the namespace, at most 10 s ago
	}
	// Said before the live view covers the terminal, so that it is there
	// again when the view ends, and marked in its header meanwhile.
	opts.Degraded = sess.Tracer().Degraded()
	announce(stderr, opts.Degraded)
	for _, d := range opts.Degraded {
		logger.Warn(d)
	}
	ctx, cancel := withDuration(ctx, o.duration)
	defer cancel()
	if ran, err := o.dev.runHeadless(ctx, sess, opts); ran {
		if derr := o.dev.finish(sess); err == nil {
			err = derr
		}
		return err
	}
	return tui.Run(ctx, sess, opts)
}

// logSizeWant is what --log-size accepts.
var logSizeWant = "a number of events from 1 to " + strconv.Itoa(tui.MaxLogSize)

// registerLogSize registers --log-size, the length of the live view's log.
func registerLogSize(fs *pflag.FlagSet, n *int) {
	fs.IntVar(n, "log-size", tui.DefaultLogSize, "events the live view's log keeps (1 to "+
		strconv.Itoa(tui.MaxLogSize)+"; about 230 bytes each, twice that while paused)")
	accepts(fs, "log-size", logSizeWant)
}

// checkLogSize refuses a --log-size out of bounds.
func checkLogSize(n int) error {
	if n < 1 || n > tui.MaxLogSize {
		return usagef("--log-size %q: want %s", strconv.Itoa(n), logSizeWant)
	}
	return nil
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

// replayUI opens the live view on the capture at path, played by a
// capture.Player: its table starts from the capture's snapshot at each pass
// and derives nothing (the capture has the TIME_WAIT events already), and
// the view's clock is the capture's. The keys move through it (pause, step,
// speed, failures, a time). A cut capture is the *capture.CutError
// returned after the view, said once.
func replayUI(ctx context.Context, path string, h capture.Header, speed float64, flt *event.Filter, logSize int) error {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		// The player reads it again to seek back, and a second time to count.
		return inputError{fmt.Errorf("%s is not a regular file: the live view reads a capture more than once; "+
			"save it to a file first, or replay it with --text", path)}
	}
	var pr table.PortRange
	if s, ok := h.Sysctls["net.ipv4.ip_local_port_range"]; ok {
		if lo, hi, ok := parseRange(s); ok {
			pr = table.PortRange{uint16(lo), uint16(hi)}
		}
	}
	p, err := capture.NewPlayer(path, flt, speed, func(tab *table.Table, r *capture.Reader) {
		if pr != (table.PortRange{}) {
			tab.SetPortRange(h.NetNS, pr)
		}
		if socks, at := r.Snapshot(); len(socks) > 0 {
			tab.Restore(capture.FilterSockets(socks, flt), at)
		}
	})
	if err != nil {
		return err
	}
	opts := tui.Options{Title: "twtrace replay", Host: h.Host, Kernel: h.Kernel, Clock: p.Now,
		HostNetNS: h.NetNS, LogSize: logSize, Scope: flt.String()}
	if pr != (table.PortRange{}) {
		opts.PortRange = [2]int{int(pr[0]), int(pr[1])}
	}
	recorded := kstat.SysctlsFromValues(h.Sysctls)
	opts.Sysctls = func(netns uint32) *kstat.Sysctls {
		if netns != h.NetNS && h.NetNS != 0 {
			return nil
		}
		return &recorded // the recording host's, as its header has them
	}
	if err := tui.Run(ctx, p, opts); err != nil {
		return err
	}
	return p.Cut()
}

// parseRange reads "32768\t60999" as /proc/sys prints ip_local_port_range.
func parseRange(s string) (lo, hi int, ok bool) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, false
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	return lo, hi, err1 == nil && err2 == nil && 0 < lo && lo <= hi && hi <= 65535
}

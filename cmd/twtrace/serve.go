package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/twtrace/twtrace/tracer"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/metrics"
	"github.com/twtrace/twtrace/tracer/owner"
	"github.com/twtrace/twtrace/tracer/session"
)

// serveOptions are the flags of `twtrace serve`.
type serveOptions struct {
	trace       traceOptions // the session's: filters, ring buffer, --ready-file, -v
	addr        string
	logFormat   string
	why         bool
	topPorts    int
	topDests    int
	byNetNS     bool
	byContainer bool
	maxValues   int
}

// DefaultMetricsAddr is loopback: exposing the metrics is a choice.
const defaultMetricsAddr = "127.0.0.1:9464"

func newServeCmd(stderr io.Writer) *cobra.Command { return serveCommand(&serveOptions{}, stderr) }

func serveCommand(o *serveOptions, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Export Prometheus metrics: TIME_WAIT by port, bind/connect/listen failures, transitions",
		Long: `serve traces like 'twtrace trace' and, instead of printing events, exports
metrics for Prometheus at http://ADDR/metrics: TCP transitions, time spent in
each state, bind/connect/listen failures by errno and port, sockets by
state, TIME_WAIT sockets by port and how they end, ephemeral ports in use
per destination against the namespace's range, the kernel's TcpExt TIME_WAIT
counters, lost events. Every label is bounded (docs/metrics.md).

It logs to stderr (text, or JSON with --log-format json) and has no UI.
/healthz answers while it runs; /readyz once the programs are attached and
the first socket snapshot is in. With --why, /why?port=N answers as
'twtrace why N --json' does, on the same listener. SIGTERM, SIGINT and
SIGHUP stop it with every program detached (exit 0).`,
		Example: `  sudo twtrace serve --metrics-addr 127.0.0.1:9464
  sudo twtrace serve --metrics-addr :9464 --log-format json --by-netns
  sudo twtrace serve --metrics-addr 127.0.0.1:9464 --why && curl '127.0.0.1:9464/why?port=8080'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runServe(cmd.Context(), o, stderr)
		},
	}
	fs := cmd.Flags()
	o.trace.registerSession(fs, false)
	fs.StringVar(&o.addr, "metrics-addr", defaultMetricsAddr, "serve metrics on this `host:port` (\":9464\" for every address)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log lines as `text` or json")
	fs.BoolVar(&o.why, "why", false, "also answer /why?port=N with the JSON of 'twtrace why N --json'")
	fs.IntVar(&o.topPorts, "top-ports", metrics.DefaultTopPorts,
		fmt.Sprintf("ports with series of their own per metric; the rest are port=\"other\" (at most %d)", metrics.MaxTopPorts))
	fs.IntVar(&o.topDests, "top-destinations", metrics.DefaultTopDestinations,
		fmt.Sprintf("destinations with series of their own; the rest are destination=\"other\" (at most %d)", metrics.MaxTopDestinations))
	fs.BoolVar(&o.byNetNS, "by-netns", false, "add a netns label: the network namespace's inode")
	fs.BoolVar(&o.byContainer, "by-container", false, "add a container label: the id of the socket owner's container")
	fs.IntVar(&o.maxValues, "max-label-values", metrics.DefaultMaxLabelValues,
		fmt.Sprintf("values of the netns or container label; the rest are \"other\" (at most %d)", metrics.MaxLabelValues))
	return cmd
}

// check validates the flags serve adds; its errors are usage errors.
func (o *serveOptions) check() error {
	if err := exclusive(flagSet{"--by-netns", o.byNetNS}, flagSet{"--by-container", o.byContainer}); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(o.addr); err != nil {
		return usagef("--metrics-addr %q: want host:port, such as 127.0.0.1:9464 or :9464", o.addr)
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return usagef("--log-format %q: want text or json", o.logFormat)
	}
	for _, b := range []struct {
		name   string
		v, max int
	}{
		{"--top-ports", o.topPorts, metrics.MaxTopPorts},
		{"--top-destinations", o.topDests, metrics.MaxTopDestinations},
		{"--max-label-values", o.maxValues, metrics.MaxLabelValues},
	} {
		if b.v < 1 || b.v > b.max {
			return usagef("%s %d: want a number from 1 to %d", b.name, b.v, b.max)
		}
	}
	return nil
}

func (o *serveOptions) logger(stderr io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if o.trace.verbose {
		opts.Level = slog.LevelDebug
	}
	if o.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(stderr, opts))
	}
	return slog.New(slog.NewTextHandler(stderr, opts))
}

// loggedError is a failure serve has logged already: its exit code, and
// nothing more on stderr (the log may be JSON).
type loggedError struct{ code int }

func (e loggedError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// logFailure logs err as the one sentence the CLI would print, and returns
// the loggedError that exits with the CLI's code for it.
func logFailure(log *slog.Logger, err error) error {
	msg, code := sentence(err)
	log.Error(msg)
	return loggedError{code}
}

// sentence is what the CLI prints for err, without "twtrace: ", and the
// exit code it gives.
func sentence(err error) (string, int) {
	var b strings.Builder
	code := exitCode(err, &b)
	return strings.TrimPrefix(strings.TrimSpace(b.String()), "twtrace: "), code
}

func runServe(ctx context.Context, o *serveOptions, stderr io.Writer) error {
	if err := o.check(); err != nil {
		return err
	}
	tcfg, err := o.trace.config(stderr)
	if err != nil {
		return err
	}
	log := o.logger(stderr)
	tcfg.Logger = log
	// Per-namespace or per-container counts need every event in user
	// space; otherwise the kernel counts, and streams one or two of ten.
	tcfg.Aggregate = !o.byNetNS && !o.byContainer
	stop, cancel := withDuration(ctx, o.trace.duration)
	defer cancel()
	// The signals that end twtrace cancel ctx (run's); this copy of them
	// names the one that came.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return logFailure(log, fmt.Errorf("--metrics-addr %s: %w", o.addr, unwrapOp(err)))
	}
	srv := newServer(log)
	httpSrv := srv.start(ln, cancel)
	log.Info("serving", "addr", ln.Addr().String(), "why", o.why)

	if err := o.trace.dev.start(); err != nil {
		shutdown(httpSrv, log)
		return logFailure(log, err)
	}
	sess, err := session.Start(session.Config{Tracer: tcfg, Logger: log})
	if err != nil {
		shutdown(httpSrv, log)
		return logFailure(log, err)
	}
	// Stopping closes the listener first, then detaches: a scraper sees the
	// target go away, and the listener's own close is traced like any other.
	running, detach := context.WithCancel(context.Background())
	defer detach()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		<-stop.Done()
		logStopping(stop, sigs, log)
		srv.setNotReady("stopping")
		shutdown(httpSrv, log)
		detach()
	}()
	err = o.serve(running, sess, srv, log)
	cancel() // the session may have ended by itself
	<-closed
	if derr := o.trace.dev.finish(sess); err == nil {
		err = derr
	}
	if cerr := sess.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("detach: %w", cerr)
	}
	if err != nil {
		return logFailure(log, err)
	}
	log.Info("stopped: every program detached")
	return nil
}

// serve registers the metrics and runs the session until ctx ends.
func (o *serveOptions) serve(ctx context.Context, sess *session.Session, srv *server, log *slog.Logger) error {
	exp, err := o.exporter(sess)
	if err != nil {
		return err
	}
	srv.setMetrics(metrics.Registry(exp))
	if o.why {
		probe := session.NewPortProbe(-1, "/proc")
		defer probe.Close()
		srv.setWhy(probe)
	}
	log.Info("programs attached", "degraded", len(sess.Tracer().Degraded()), "kernel_aggregation", sess.Tracer().Aggregating())
	first := true
	return sess.Run(ctx, o.trace.dev.sink(func(batch []event.Event) error {
		if first {
			// The pipeline hands over its first batch once the snapshot is
			// in and the ring buffer is read: ready.
			first = false
			if err := signalReady(o.trace.readyFile); err != nil {
				return err
			}
			srv.setReady()
			log.Info("ready")
		}
		return exp.Observe(batch)
	}))
}

func (o *serveOptions) exporter(sess *session.Session) (*metrics.Exporter, error) {
	kr, err := kstat.NewReader("/proc")
	if err != nil {
		return nil, err
	}
	cfg := metrics.Config{
		TopPorts: o.topPorts, TopDestinations: o.topDests, MaxLabelValues: o.maxValues,
		Table: sess.Table(), Kernel: kr, HostNetNS: sess.HostNetNS(), PortRange: sess.EphemeralPorts,
		Build: metrics.ReadBuildInfo(),
	}
	if tr := sess.Tracer(); tr.Aggregating() {
		cfg.Aggregates = kernelAggregates(tr)
	}
	switch {
	case o.byNetNS:
		cfg.Label = metrics.LabelNetNS
	case o.byContainer:
		cfg.Label = metrics.LabelContainer
		res, err := owner.NewResolver("/proc")
		if err != nil {
			return nil, err
		}
		cfg.ContainerOf = func(pid uint32) string {
			id, _ := res.Container(pid) // a process gone is in no container we can name
			return id
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return metrics.New(cfg), nil
}

// kernelAggregates reads the tracer's aggregates for the exporter. The two
// packages size their arrays alike (tracer.AggStates, metrics.NumStates):
// if they ever differ, this does not compile.
func kernelAggregates(tr *tracer.Tracer) func() (*metrics.Aggregates, error) {
	return func() (*metrics.Aggregates, error) {
		a, err := tr.Aggregates()
		if err != nil {
			return nil, err
		}
		m := &metrics.Aggregates{Transitions: a.Transitions}
		for i, d := range a.Durations {
			m.Durations[i] = metrics.KernelHist{Slots: d.Slots, SumHi: d.SumHi, SumLo: d.SumLo}
		}
		return m, nil
	}
}

// logStopping says why serve stops: the signal that ended it (delivered
// to sigs as to run's handler, which cancelled ctx), the end of --duration,
// or the session's own end.
func logStopping(ctx context.Context, sigs <-chan os.Signal, log *slog.Logger) {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		log.Info("stopping", "reason", "--duration has passed")
		return
	}
	select {
	case s := <-sigs:
		log.Info("stopping", "signal", s.String())
	case <-time.After(100 * time.Millisecond):
		log.Info("stopping")
	}
}

// shutdown stops the HTTP server, letting requests in flight finish.
func shutdown(s *http.Server, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		log.Warn("metrics server shutdown", "err", err)
	}
}

// unwrapOp drops net.OpError's repetition of the address.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// Command twtrace makes TCP socket lifecycles visible and explains
// "Address already in use". See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/twtrace/twtrace/internal/demo"
	"github.com/twtrace/twtrace/tracer"
)

// Exit codes, as README.md gives them: deploy scripts branch on them.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitFeature = 3
)

// usageError marks bad flags or arguments: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// inputError marks a file named on the command line that cannot be used: a
// capture that is damaged, an output that exists. Exit code 2, and the
// message says what is wrong with the file, without the usage hint: the
// command line was right.
type inputError struct{ err error }

func (e inputError) Error() string { return e.err.Error() }
func (e inputError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func inputf(format string, args ...any) error {
	return inputError{fmt.Errorf(format, args...)}
}

// plural counts things: "1 event", "2 events".
func plural[T ~int | ~int64 | ~uint64](n T, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// memoryLimit is the Go heap's soft limit unless GOMEMLIMIT says otherwise:
// twtrace runs on busy production hosts, where the default (let the heap
// double before collecting) would spend memory to save a little CPU.
const memoryLimit = 48 << 20

func main() {
	if demo.IsAgent() { // a process of a lesson of twtrace demo
		os.Exit(demo.Agent())
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the CLI and returns its exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	// SIGHUP (the ssh session closed) ends twtrace as SIGINT and SIGTERM do:
	// the ring buffer drained, the capture closed, every program detached.
	// SIGPIPE is handled too, so that `twtrace trace | head` ends cleanly
	// (the write fails with EPIPE) instead of being killed mid-write.
	ctx, stop := signal.NotifyContext(context.Background(),
		os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer stop()
	// A panic on this goroutine has run every deferred Close on its way
	// here (the session's detaches its programs, the live view has restored
	// the terminal): what is left is to say so in one line. Panics on the
	// pipeline's goroutines come back as errors (tracer.Run, session.Run).
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "twtrace: internal error: %v\n", r)
			code = exitFailure
		}
	}()

	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	return exitCode(err, stderr)
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var fe *tracer.FeatureError
	var ue usageError
	var ie inputError
	var le loggedError
	switch {
	case errors.As(err, &le):
		return le.code // serve: logged already
	case errors.Is(err, errBlocked):
		return exitFailure // why: the report said it
	case errors.As(err, &ie):
		fmt.Fprintf(stderr, "twtrace: %v\n", err)
		return exitUsage
	case errors.As(err, &fe):
		fmt.Fprintf(stderr, "twtrace: %s\n", fe.Error()) // one sentence, whatever wrapped it
		return exitFeature
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "twtrace: %v\nRun 'twtrace --help' for usage.\n", err)
		return exitUsage
	case errors.Is(err, syscall.EPIPE):
		return exitOK
	}
	fmt.Fprintf(stderr, "twtrace: %v\n", err)
	return exitFailure
}

// noArgs rejects positional arguments as a usage error (exit code 2).
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return nil
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	opts := &traceOptions{}
	root := &cobra.Command{
		Use:   "twtrace",
		Short: "Watch TCP socket lifecycles and explain \"Address already in use\"",
		Long: `twtrace follows every TCP state transition and every bind(), connect() and
listen() failure from the kernel, through eBPF tracepoints.

With no subcommand, on a terminal it shows the live view: ports, sockets
with TIME_WAIT countdowns, the event log, remote endpoints. Piped, or with
--json or --count, it streams events as 'twtrace trace' does.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkLogSize(opts.logSize); err != nil {
				return err
			}
			// --json and --count ask for the stream, even on a terminal.
			if opts.dev.headless() || (isTerminal(stdout) && !opts.json && opts.count == 0) {
				return runUI(cmd.Context(), opts, stdout, stderr)
			}
			return runTrace(cmd.Context(), opts, stdout, stderr)
		},
	}
	root.Flags().StringVar(&opts.logFile, "log-file", "", "write the live view's diagnostics to this file")
	registerLogSize(root.Flags(), &opts.logSize)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return flagError(err) })
	opts.register(root, true)
	root.AddCommand(newTraceCmd(stdout, stderr), newSocketsCmd(stdout, stderr),
		newRecordCmd(stdout, stderr), newReplayCmd(stdout, stderr), newWhyCmd(stdout, stderr),
		newAdviseCmd(stdout, stderr), newDemoCmd(stdout, stderr), newReportCmd(stdout, stderr), newServeCmd(stderr))
	return root
}

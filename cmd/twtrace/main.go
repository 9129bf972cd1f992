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

	"github.com/twtrace/twtrace/tracer"
)

// Exit codes (DESIGN.md: CLI contract).
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

// inputError marks a bad input file: exit code 2, and the message says
// what is wrong with the file (no usage hint: the command line was right).
type inputError struct{ err error }

func (e inputError) Error() string { return e.err.Error() }
func (e inputError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// memoryLimit is the Go heap's soft limit unless GOMEMLIMIT says otherwise:
// twtrace runs on busy production hosts, where the default (let the heap
// double before collecting) would spend memory to save a little CPU.
const memoryLimit = 48 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the CLI and returns its exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// SIGPIPE is handled too, so that `twtrace trace | head` ends cleanly
	// (the write fails with EPIPE) instead of being killed mid-write.
	ctx, stop := signal.NotifyContext(context.Background(),
		os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	defer stop()

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
	switch {
	case errors.Is(err, errBlocked):
		return exitFailure // why: the report said it
	case errors.As(err, &ie):
		fmt.Fprintf(stderr, "twtrace: %v\n", err)
		return exitUsage
	case errors.As(err, &fe):
		fmt.Fprintf(stderr, "twtrace: missing %s\n", fe.Error())
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
			// --json and --count ask for the stream, even on a terminal.
			if opts.dev.headless() || (isTerminal(stdout) && !opts.json && opts.count == 0) {
				return runUI(cmd.Context(), opts, stdout, stderr)
			}
			return runTrace(cmd.Context(), opts, stdout, stderr)
		},
	}
	root.Flags().StringVar(&opts.logFile, "log-file", "", "write the live view's diagnostics to this file")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	opts.register(root, true)
	root.AddCommand(newTraceCmd(stdout, stderr), newSocketsCmd(stdout, stderr),
		newRecordCmd(stdout, stderr), newReplayCmd(stdout, stderr), newWhyCmd(stdout, stderr),
		newAdviseCmd(stdout, stderr), newReportCmd(stdout, stderr))
	return root
}

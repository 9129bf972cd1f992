package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"slices"
	"strings"
	"syscall"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/spf13/cobra"

	"github.com/twtrace/twtrace/tracer/capture"
)

// replayOptions are the flags of `twtrace replay`.
type replayOptions struct {
	filters filterFlags
	json    bool
	csv     bool
	text    bool
	speed   float64
	verbose bool
	logSize int
}

func newReplayCmd(stdout, stderr io.Writer) *cobra.Command {
	o := &replayOptions{}
	cmd := &cobra.Command{
		Use:   "replay FILE",
		Short: "Play back a capture as an event stream",
		Long: `replay reads a capture written by 'twtrace record' (plain or .zst, told apart
by its content) and writes its events as 'twtrace trace' does: text columns,
CSV with --csv, or JSON Lines with --json, the same records as the capture
minus its header. Filters apply as they do to trace. On a terminal (without
--json, --csv or --text) it opens the live view on the capture: its clock is
the capture's, so TIME_WAIT countdowns are as they were when it was recorded.

A capture whose recorder did not close it (killed, a machine that stopped: it
ends in the middle of a line or a frame, or without its end record) is played
to its last whole event, with one warning that names the file and where it was
cut, and exit code 0. A capture damaged in the middle is played up to the
damage; replay then names the file and line and exits with code 2.`,
		Example: `  twtrace replay incident.jsonl.zst --port 8080
  twtrace replay incident.jsonl.zst --json | jq 'select(.kind == "bind")'
  twtrace replay incident.jsonl.zst --csv > incident.csv
  twtrace replay deploy.jsonl --speed 1   # at the pace it was recorded`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("replay needs one capture FILE, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runReplay(cmd.Context(), o, args[0], stdout, stderr)
		},
	}
	fs := cmd.Flags()
	o.filters.registerReplay(fs)
	fs.BoolVar(&o.json, "json", false, "write JSON Lines (schema: docs/jsonl.md)")
	fs.BoolVar(&o.csv, "csv", false, csvUsage)
	fs.BoolVar(&o.text, "text", false, "write text columns (the default)")
	fs.Float64Var(&o.speed, "speed", 0, "replay at `X` times the recorded pace (1: as recorded); 0 as fast as possible")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "describe the capture's header on stderr")
	accepts(fs, "speed", "a factor such as 1 or 0.5, or 0 for as fast as possible")
	registerLogSize(fs, &o.logSize)
	return cmd
}

func runReplay(ctx context.Context, o *replayOptions, path string, stdout, stderr io.Writer) error {
	if err := exclusive(flagSet{"--json", o.json}, flagSet{"--csv", o.csv}, flagSet{"--text", o.text}); err != nil {
		return err
	}
	if o.speed < 0 || math.IsNaN(o.speed) || math.IsInf(o.speed, 0) {
		return usagef("--speed %v: want a positive factor, or 0 for as fast as possible", o.speed)
	}
	if err := checkLogSize(o.logSize); err != nil {
		return err
	}
	flt, err := o.filters.filter()
	if err != nil {
		return err
	}
	r, err := capture.Open(path)
	if err != nil {
		return badCapture(err)
	}
	defer r.Close()
	if o.verbose {
		describe(stderr, r.Name(), r.Header())
	}
	if !o.json && !o.csv && !o.text && isTerminal(stdout) {
		return badCapture(cutWarning(replayUI(ctx, path, r.Header(), o.speed, &flt, o.logSize), stderr))
	}

	write := streamSink(stdout, o.json, o.csv)
	var out []event.Event
	err = r.Run(ctx, o.speed, func(batch []event.Event) error {
		out = out[:0]
		for i := range batch {
			if flt.Match(&batch[i]) {
				out = append(out, batch[i])
			}
		}
		if len(out) == 0 {
			return nil
		}
		if err := write(out); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	})
	return badCapture(cutWarning(err, stderr))
}

// cutWarning turns the end of a capture its recorder did not close into
// one warning: every whole event was read, and the command goes on.
func cutWarning(err error, stderr io.Writer) error {
	var ce *capture.CutError
	if errors.As(err, &ce) {
		fmt.Fprintf(stderr, "twtrace: warning: %v\n", ce)
		return nil
	}
	return err
}

// badCapture makes a capture that cannot be read, or read to its end, a
// bad input file: exit code 2.
func badCapture(err error) error {
	var fe *capture.FormatError
	if errors.As(err, &fe) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) ||
		errors.Is(err, syscall.EISDIR) {
		return inputError{err}
	}
	return err
}

// describe writes a capture's header on one line.
func describe(w io.Writer, name string, h capture.Header) {
	var flags []string
	for _, k := range slices.Sorted(maps.Keys(h.Filters)) {
		for _, v := range h.Filters[k] {
			flags = append(flags, "--"+k+"="+v)
		}
	}
	filters := "none"
	if len(flags) > 0 {
		filters = strings.Join(flags, " ")
	}
	fmt.Fprintf(w, "twtrace: %s: recorded on %s (Linux %s) from %s; filters: %s\n",
		name, h.Host, h.Kernel, h.Started.Local().Format("2006-01-02 15:04:05 MST"), filters)
}

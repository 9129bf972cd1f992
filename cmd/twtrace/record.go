package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer/capture"
	"github.com/twtrace/twtrace/tracer/session"
)

// recordOptions are the flags of `twtrace record`. The live session's flags
// are trace's, kept in a traceOptions so that both build it the same way.
type recordOptions struct {
	trace  traceOptions // filters, duration, ring size, wakeup, ready file, verbose
	output string
	force  bool
}

func newRecordCmd(stdout, stderr io.Writer) *cobra.Command {
	o := &recordOptions{}
	cmd := &cobra.Command{
		Use:   "record -o FILE",
		Short: "Record the event stream to a capture file (.zst: compressed)",
		Long: `record traces as 'twtrace trace' does and writes the events to FILE, a capture
for 'twtrace replay': JSON Lines after a header that names the host, the
kernel, its sysctls and the filters. A FILE ending in .zst
is zstd-compressed; a compressed capture being written, or cut short by a
crash, decodes up to its last second or MiB of events.

It ends after --duration, or on Ctrl-C or SIGTERM, with the file complete, and
prints one line on stderr: events, events the kernel lost, bytes, file. A write
error (a full disk) ends it at once with exit code 1; the file then holds every
event written before the error and is a readable capture.`,
		Example: `  twtrace record -o incident.jsonl.zst --port 8080
  twtrace record -o deploy.jsonl --duration 5m --state TIME_WAIT`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRecord(cmd.Context(), o, givenFilters(cmd.Flags()), stderr)
		},
	}
	fs := cmd.Flags()
	o.trace.registerSession(fs, false)
	fs.StringVarP(&o.output, "output", "o", "", "write the capture to `FILE` (required; .zst: compressed)")
	fs.BoolVar(&o.force, "force", false, "replace FILE if it exists")
	return cmd
}

// givenFilters are the filter flags set on the command line, for the
// capture's header: long name → values as given.
func givenFilters(flags *pflag.FlagSet) map[string][]string {
	var ff filterFlags
	known := pflag.NewFlagSet("filters", pflag.ContinueOnError)
	ff.register(known)
	out := map[string][]string{}
	flags.Visit(func(f *pflag.Flag) {
		if known.Lookup(f.Name) == nil {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			out[f.Name] = sv.GetSlice()
		} else {
			out[f.Name] = []string{f.Value.String()}
		}
	})
	return out
}

func runRecord(ctx context.Context, o *recordOptions, filters map[string][]string, stderr io.Writer) error {
	if o.output == "" {
		return usagef("record needs -o FILE, the capture to write")
	}
	cfg, err := o.trace.config(stderr)
	if err != nil {
		return err
	}
	if err := checkOutput(o.output, o.force); err != nil {
		return err // before loading anything
	}
	if err := o.trace.dev.start(); err != nil {
		return err
	}
	hdr, herr := capture.HostHeader("", filters)
	if herr != nil {
		cfg.Logger.Warn("the capture's header is incomplete", "err", herr)
	}

	sess, err := session.Start(session.Config{Tracer: cfg, Logger: cfg.Logger})
	if err != nil {
		return err
	}
	defer sess.Close()
	hdr.Degraded = sess.Tracer().Degraded()
	announce(stderr, hdr.Degraded)
	hdr.Time = time.Now()
	hdr.Started = hdr.Time
	w, err := capture.Create(o.output, hdr, capture.Options{Force: o.force})
	if errors.Is(err, fs.ErrExist) {
		return checkOutput(o.output, false) // created meanwhile
	}
	if err != nil {
		return err
	}
	defer w.Close() // after an early return; the normal path closes it below
	if err := signalReady(o.trace.readyFile); err != nil {
		return err
	}

	ctx, cancel := withDuration(ctx, o.trace.duration)
	defer cancel()
	var lost uint64
	err = sess.Run(ctx, o.trace.dev.sink(func(batch []event.Event) error {
		for i := range batch {
			if batch[i].Kind == event.KindLost {
				lost += batch[i].Lost
			}
		}
		// Called at every idle poll too, empty: the writer ends a
		// compressed frame when a second has passed.
		return w.Write(batch)
	}))
	o.trace.dev.crash("main")
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if derr := o.trace.dev.finish(sess); err == nil {
		err = derr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "twtrace: recorded %s (%d lost) in %s to %s\n",
		plural(w.Events(), "event", "events"), lost, byteSize(w.Bytes()), o.output)
	return nil
}

// checkOutput reports a capture file that exists (unless force) or cannot be
// created for its directory: exit code 2, without the usage hint.
func checkOutput(path string, force bool) error {
	if _, err := os.Lstat(path); err == nil && !force {
		return inputf("%s exists: choose another file, or add --force to replace it", path)
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		return inputf("-o %s: %v", path, err)
	case !fi.IsDir():
		return inputf("-o %s: %s is not a directory", path, dir)
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return inputf("-o %s: cannot create a file in %s: %v", path, dir, err)
	}
	return nil
}

// byteSize formats n bytes for people: 512 B, 3.4 KiB, 12.0 MiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

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

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/safefile"
	"github.com/twtrace/twtrace/tracer/capture"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/session"
	"github.com/twtrace/twtrace/tracer/table"
)

// recordOptions are the flags of `twtrace record`. The live session's flags
// are trace's, kept in a traceOptions so that both build it the same way.
type recordOptions struct {
	trace   traceOptions // filters, duration, ring size, wakeup, ready file, verbose
	output  string
	force   bool
	redact  bool
	maxSize string
	keep    int
}

// defaultKeep is how many rotated files --max-size keeps without --keep.
const defaultKeep = 5

// minRotateSize bounds --max-size from below: a file holds a snapshot too.
const minRotateSize = 64 << 10

func newRecordCmd(stdout, stderr io.Writer) *cobra.Command {
	o := &recordOptions{}
	cmd := &cobra.Command{
		Use:   "record -o FILE",
		Short: "Record the event stream to a capture file (.zst: compressed)",
		Long: `record traces as 'twtrace trace' does and writes the events to FILE, a capture
for 'twtrace replay' and 'twtrace report': JSON Lines (docs/jsonl.md) after a
header that names the host, the kernel, its sysctls and the filters, and the
sockets that were there when it began (with their owners, TIME_WAIT timers
and SO_REUSEADDR/SO_REUSEPORT), so that a replay knows who held a port before
the first event. A FILE ending in .zst is zstd-compressed; a compressed
capture being written, or cut short by a crash, decodes up to its last second
or MiB of events.

FILE is created with mode 0600, never through a symbolic link, never over an
existing file: --force replaces it with a new file (renamed over it, never
written into). --redact replaces every address and the host name with keyed
hashes (a random key, not stored: the same address is the same token in the
whole recording), for sharing a capture outside the team. --max-size starts a
new file when one reaches SIZE: FILE is the newest, the older ones are
FILE.1 (FILE's extensions after the number: capture.1.jsonl.zst), ... up to
--keep of them; each is a whole capture with its own header and snapshot.

It ends after --duration, or on Ctrl-C or SIGTERM, with an end record that
gives the totals and why it ended: a capture without one was cut off (replay
says so). On a terminal it shows its progress on stderr; at the end it prints
one line: events, events the kernel lost, bytes, file. A write error (a full
disk) ends it at once with exit code 1; the file then holds every event
written before the error and is a readable capture.`,
		Example: `  twtrace record -o incident.jsonl.zst --port 8080
  twtrace record -o deploy.jsonl --duration 5m --state TIME_WAIT
  twtrace record -o /var/tmp/tw.jsonl.zst --max-size 100M --keep 10
  twtrace record -o share.jsonl.zst --redact --duration 1m`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("keep") && o.maxSize == "" {
				return usagef("--keep goes with --max-size: it is how many rotated files are kept")
			}
			return runRecord(cmd.Context(), o, givenFilters(cmd.Flags()), stderr)
		},
	}
	fs := cmd.Flags()
	o.trace.registerSession(fs, false)
	fs.StringVarP(&o.output, "output", "o", "", "write the capture to `FILE` (required; .zst: compressed)")
	fs.BoolVar(&o.force, "force", false, "replace FILE (and, with --max-size, remove FILE.1 ... of an earlier recording)")
	fs.BoolVar(&o.redact, "redact", false, "replace addresses and the host name with keyed hashes, for sharing")
	fs.StringVar(&o.maxSize, "max-size", "", "begin a new file when one reaches `SIZE` (e.g. 100M), renaming the older ones FILE.1 ...")
	fs.IntVar(&o.keep, "keep", defaultKeep, "with --max-size: keep `N` older files")
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

// rotation reads --max-size and --keep.
func (o *recordOptions) rotation() (capture.Rotation, error) {
	if o.maxSize == "" {
		return capture.Rotation{}, nil
	}
	n, err := parseSize(o.maxSize)
	if err != nil || n < minRotateSize {
		return capture.Rotation{}, usagef("--max-size %s: want a size of at least 64K, such as 100M", o.maxSize)
	}
	if o.keep < 1 || o.keep > 1000 {
		return capture.Rotation{}, usagef("--keep %d: want 1 to 1000 older files", o.keep)
	}
	return capture.Rotation{MaxSize: int64(n), Keep: o.keep}, nil
}

func runRecord(ctx context.Context, o *recordOptions, filters map[string][]string, stderr io.Writer) error {
	if o.output == "" {
		return usagef("record needs -o FILE, the capture to write")
	}
	cfg, err := o.trace.config(stderr)
	if err != nil {
		return err
	}
	rot, err := o.rotation()
	if err != nil {
		return err
	}
	if err := checkOutput(o.output, o.force, rot); err != nil {
		return err // before loading anything
	}
	copt := capture.Options{Force: o.force}
	if o.redact {
		if copt.Redact, err = capture.NewRedactor(); err != nil {
			return err
		}
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
	if o.force {
		removeRotated(o.output, rot)
	}
	rec, err := capture.NewRecorder(o.output, hdr, copt, rot, recordSource(sess))
	if err != nil {
		return createError(o.output, err)
	}
	ended := false
	defer func() {
		if !ended { // an early return: still an orderly exit
			rec.End(capture.EndError)
		}
	}()
	if err := signalReady(o.trace.readyFile); err != nil {
		return err
	}

	runCtx, cancel := withDuration(ctx, o.trace.duration)
	defer cancel()
	prog := startProgress(stderr, o.output)
	err = sess.Run(runCtx, o.trace.dev.sink(func(batch []event.Event) error {
		// Called at every idle poll too, empty: the writer ends a
		// compressed frame when a second has passed.
		werr := rec.Write(batch)
		prog.update(rec.Events(), rec.Lost(), rec.Bytes())
		return werr
	}))
	prog.stop()
	o.trace.dev.crash("main")
	ended = true
	if cerr := rec.End(endReason(ctx, runCtx, err)); err == nil {
		err = cerr
	}
	if derr := o.trace.dev.finish(sess); err == nil {
		err = derr
	}
	if err != nil {
		return err
	}
	where := o.output
	if n := rec.Files(); n > 1 {
		where = fmt.Sprintf("%d files (%s, the newest, and %s ...)", n, o.output, capture.Numbered(o.output, 1))
	}
	fmt.Fprintf(stderr, "twtrace: recorded %s (%d lost) in %s to %s\n",
		plural(rec.Events(), "event", "events"), rec.Lost(), byteSize(rec.Bytes()), where)
	return nil
}

// recordSource starts each file of a recording from the session's table
// as it is then (the first: the initial snapshot, owners and options
// included) and the host's counters.
func recordSource(sess *session.Session) capture.Source {
	return capture.Source{
		Sockets: func() ([]table.Socket, time.Time) {
			now := time.Now()
			socks, _ := sess.Table().Sockets(table.Query{}, now)
			return socks, now
		},
		Counters: func() *capture.Counters { return capture.ReadCounters("") },
	}
}

// endReason says how a recording ended, for its end record: a write error
// gives its own (the writer knows it).
func endReason(parent, run context.Context, err error) string {
	switch {
	case err != nil:
		return capture.EndError
	case parent.Err() != nil:
		return capture.EndSignal // the signal context, main's
	case errors.Is(run.Err(), context.DeadlineExceeded):
		return capture.EndDuration
	}
	return capture.EndClosed
}

// createError makes a capture that cannot be created a usage error when
// the path is one twtrace never writes, or a file that appeared meanwhile.
func createError(path string, err error) error {
	switch {
	case errors.Is(err, safefile.ErrRefused):
		return inputf("-o %s: %v", path, errors.Unwrap(err))
	case errors.Is(err, fs.ErrExist):
		return inputf("%s exists: choose another file, or add --force to replace it", path)
	}
	return err
}

// checkOutput reports, as usage errors, a capture file that exists (unless
// force), is a path twtrace never writes (a symbolic link, a directory), or
// cannot be created for its directory; with rotation, the numbered files
// of an earlier recording too.
func checkOutput(path string, force bool, rot capture.Rotation) error {
	if fi, err := os.Lstat(path); err == nil {
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return inputf("-o %s is a symbolic link: twtrace does not write through links", path)
		case fi.IsDir():
			return inputf("-o %s is a directory", path)
		case !fi.Mode().IsRegular():
			return inputf("-o %s is not a regular file: twtrace writes and replaces only regular files", path)
		case !force:
			return inputf("%s exists: choose another file, or add --force to replace it", path)
		}
	}
	for k := 1; k <= rot.Keep && !force; k++ {
		if _, err := os.Lstat(capture.Numbered(path, k)); err == nil {
			return inputf("%s exists, from an earlier recording: choose another file, or add --force to remove it",
				capture.Numbered(path, k))
		}
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

// removeRotated removes the numbered files of an earlier recording at path
// (--force with --max-size). Unlinking never follows a link.
func removeRotated(path string, rot capture.Rotation) {
	for k := 1; k <= rot.Keep; k++ {
		_ = unix.Unlink(capture.Numbered(path, k)) // never a directory
	}
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

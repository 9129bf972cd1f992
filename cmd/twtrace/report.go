package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/twtrace/twtrace/internal/safefile"
	"github.com/twtrace/twtrace/tracer/capture"
	"github.com/twtrace/twtrace/tracer/report"
)

// reportOptions are the flags of `twtrace report`.
type reportOptions struct {
	filters  filterFlags
	format   string
	from, to string
	output   string
	force    bool
}

func newReportCmd(stdout, stderr io.Writer) *cobra.Command {
	o := &reportOptions{}
	cmd := &cobra.Command{
		Use:   "report FILE",
		Short: "The post-incident page of a capture: text, Markdown, JSON or HTML",
		Long: `report reads a capture and writes what it tells: the time span and host;
events by kind; the ports with the most TIME_WAIT and their peak; every
refused bind(), connect() and listen() with what held the port at that moment
(the socket table rebuilt from the capture's starting snapshot and its events)
and the advisor's verdict, cause and fix; the processes involved; the kernel's
TIME_WAIT counters over the span; the advisor's findings. A capture that lost
events says so first.

--format html writes one self-contained page (no script, font or link to
anything outside it) with a timeline per port: sockets by state over time,
refused syscalls marked, their cause on hover; it reads on a light or dark
page and on paper. --format md pastes into a review document. Without
--format, the extension of -o chooses (.md, .html, .json), else text.

-o writes to a file (mode 0600, never through a link; --force replaces it).`,
		Example: `  twtrace report incident.jsonl.zst
  twtrace report incident.jsonl.zst --format html -o incident.html
  twtrace report incident.jsonl.zst --port 8080 --from 10:31:00 --to 10:33:00 --format md`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("report needs one capture FILE, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("format") {
				o.format = formatOf(o.output)
			}
			return runReport(cmd.Context(), o, args[0], selection(cmd), stdout, stderr)
		},
	}
	fs := cmd.Flags()
	o.filters.registerReplay(fs)
	fs.StringVar(&o.format, "format", "text", "`text`, md, json or html")
	fs.StringVar(&o.from, "from", "", "report from this `time` on (10:31:05, or RFC 3339)")
	fs.StringVar(&o.to, "to", "", "report up to this `time`")
	fs.StringVarP(&o.output, "output", "o", "", "write the report to `FILE` instead of stdout")
	fs.BoolVar(&o.force, "force", false, "replace the -o FILE if it exists")
	return cmd
}

// formatOf is the format -o's extension asks for.
func formatOf(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".md", ".markdown":
		return "md"
	case ".html", ".htm":
		return "html"
	case ".json":
		return "json"
	}
	return "text"
}

// selection is the report's own flags, as given, for its summary.
func selection(cmd *cobra.Command) []string {
	var out []string
	for _, name := range []string{"port", "pid", "comm", "state", "netns", "ipv4", "ipv6", "from", "to"} {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
			out = append(out, "--"+name+" "+strings.Trim(f.Value.String(), "[]"))
		}
	}
	return out
}

func runReport(ctx context.Context, o *reportOptions, path string, sel []string, stdout, stderr io.Writer) error {
	if !slices.Contains(report.Formats, o.format) {
		return usagef("--format %q: want one of %s", o.format, strings.Join(report.Formats, ", "))
	}
	if o.force && o.output == "" {
		return usagef("--force replaces the -o FILE: give one")
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
	opt := report.Options{Filter: flt, Location: time.Local}
	day := r.Header().Started
	if opt.From, err = parseWhen("--from", o.from, day); err != nil {
		return err
	}
	if opt.To, err = parseWhen("--to", o.to, day); err != nil {
		return err
	}
	if !opt.From.IsZero() && !opt.To.IsZero() && opt.To.Before(opt.From) {
		return usagef("--to %s is before --from %s", o.to, o.from)
	}
	rep, err := report.Build(ctx, r, opt)
	if err != nil {
		return badCapture(err)
	}
	rep.Selected = sel
	if rep.Cut != "" {
		fmt.Fprintf(stderr, "twtrace: warning: %s\n", rep.Cut)
	}
	if o.output == "" {
		return rep.Write(stdout, o.format)
	}
	f, err := safefile.Create(o.output, o.force)
	switch {
	case errors.Is(err, safefile.ErrExist):
		return inputf("-o %s exists: choose another file, or add --force to replace it", o.output)
	case err != nil:
		return inputf("-o %v", err)
	}
	if err := rep.Write(f, o.format); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", o.output, err)
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("write %s: %w", o.output, err)
	}
	return nil
}

// parseWhen reads --from/--to: RFC 3339, or a time of day (15:04:05, with
// or without seconds and milliseconds) on the day the capture began, in
// the local time zone.
func parseWhen(flag, s string, day time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d := day.In(time.Local)
	for _, layout := range []string{"15:04:05.000", "15:04:05", "15:04"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return time.Date(d.Year(), d.Month(), d.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.Local), nil
		}
	}
	return time.Time{}, usagef("%s %q: want a time of day such as 10:31:05 (the capture's day) or RFC 3339 such as 2026-11-25T10:31:05Z", flag, s)
}

// reportFile reads a capture for advise: the report's analysis of it.
func reportFile(ctx context.Context, path string, opt report.Options, stderr io.Writer) (*report.Report, error) {
	r, err := capture.Open(path)
	if err != nil {
		return nil, badCapture(err)
	}
	defer r.Close()
	rep, err := report.Build(ctx, r, opt)
	if err != nil {
		return nil, badCapture(err)
	}
	if rep.Cut != "" {
		fmt.Fprintf(stderr, "twtrace: warning: %s\n", rep.Cut)
	}
	return rep, nil
}

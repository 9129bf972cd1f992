package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/twtrace/twtrace/internal/safefile"
	"github.com/twtrace/twtrace/tracer/advice"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/report"
	"github.com/twtrace/twtrace/tracer/session"
	"github.com/twtrace/twtrace/tracer/table"
	"github.com/twtrace/twtrace/tracer/text"
)

// adviseOptions are the flags of `twtrace advise`.
type adviseOptions struct {
	trace      traceOptions // the live session's filters and ring
	forD       time.Duration
	json       bool
	sysctlFile string
	force      bool
}

// maxFailures bounds the failures kept for the findings; the rest are
// counted. A capture's are the report's (report.MaxFailures).
const maxFailures = report.MaxFailures

func newAdviseCmd(stdout, stderr io.Writer) *cobra.Command {
	o := &adviseOptions{}
	cmd := &cobra.Command{
		Use:   "advise [FILE]",
		Short: "Findings and fixes from live observation or from a capture",
		Long: `advise watches the host for --for (default 10s), or reads a capture FILE, and
reports what the advisor finds: every refused bind(), connect() and listen()
with its cause at that moment, ports running out for connect(), CLOSE_WAIT or
FIN_WAIT2 piling up, TIME_WAIT near tcp_max_tw_buckets, tcp_tw_recycle still
in a sysctl file. Each finding has a stable code (docs/advice.md explains
each), its evidence, and the fixes that work on the running kernel, with the
current value of every sysctl they mention.

--sysctl-file writes the sysctl fixes, commented, as a file for
/etc/sysctl.d for you to review: twtrace never changes a sysctl itself.`,
		Example: `  sudo twtrace advise --for 60s --port 8080
  twtrace advise incident.jsonl.zst --json
  sudo twtrace advise --for 5m --sysctl-file 90-twtrace.conf`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("advise takes at most one capture FILE, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if cmd.Flags().Changed("for") {
					return usagef("--for watches the host: it does not go with a capture FILE")
				}
				return runAdviseFile(cmd.Context(), o, args[0], stdout, stderr)
			}
			return runAdviseLive(cmd.Context(), o, stdout, stderr)
		},
	}
	fs := cmd.Flags()
	o.trace.registerSession(fs, false)
	fs.DurationVar(&o.forD, "for", 10*time.Second, "watch the host this long")
	fs.BoolVar(&o.json, "json", false, "write the findings as a JSON array (docs/advice.md)")
	fs.StringVar(&o.sysctlFile, "sysctl-file", "", "also write the sysctl fixes, commented, to this `file` (for /etc/sysctl.d)")
	fs.BoolVar(&o.force, "force", false, "replace the --sysctl-file if it exists")
	return cmd
}

// observation is what advise collected before it reasons.
type observation struct {
	facts    advice.Facts
	span     time.Duration
	where    string
	failures int // all refused syscalls seen, kept or not
	lost     uint64
}

func (ob *observation) failure(tab *table.Table, ev *event.Event, sysctls *kstat.Sysctls) {
	if ev.Ret >= 0 || (ev.Kind != event.KindBind && ev.Kind != event.KindConnect && ev.Kind != event.KindListen) {
		return
	}
	ob.failures++
	if len(ob.facts.Failures) < maxFailures {
		ob.facts.Failures = append(ob.facts.Failures, advice.DiagnoseFailure(tab, ev, sysctls))
	}
}

func (ob *observation) fromTable(tab *table.Table) {
	ob.facts.Ports = tab.Ports()
	ob.facts.Processes = tab.Processes()
	ob.facts.Remotes = tab.Remotes()
}

func runAdviseLive(ctx context.Context, o *adviseOptions, stdout, stderr io.Writer) error {
	if o.forD <= 0 {
		return usagef("--for %v: want a positive duration such as 30s", o.forD)
	}
	if err := checkSysctlFile(o); err != nil {
		return err
	}
	cfg, err := o.trace.config(stderr)
	if err != nil {
		return err
	}
	_, startCounters, _ := session.NamespaceFacts(-1, nil)
	sess, err := session.Start(session.Config{Tracer: cfg, Logger: cfg.Logger})
	if err != nil {
		return err
	}
	defer sess.Close()
	if err := signalReady(o.trace.readyFile); err != nil {
		return err
	}
	host, _, _ := session.NamespaceFacts(-1, nil)
	ob := &observation{facts: advice.Facts{Namespaces: map[uint32]*advice.NetNS{}}, where: "host " + hostname()}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, o.forD)
	defer cancel()
	err = sess.Run(ctx, func(batch []event.Event) error {
		for i := range batch {
			if batch[i].Kind == event.KindLost {
				ob.lost += batch[i].Lost
			}
			ob.failure(sess.Table(), &batch[i], sysctlsOf(host, sess, batch[i].NetNS))
		}
		return nil
	})
	if err != nil {
		return err
	}
	ob.span = time.Since(start)
	ob.facts.Now = time.Now()
	ob.fromTable(sess.Table())
	if n, _, err := session.NamespaceFacts(-1, &startCounters); err == nil {
		ob.facts.Namespaces[sess.HostNetNS()] = n
	}
	// Another namespace's sysctls, as the session read them in it; its
	// counters are not read from here.
	for _, n := range ob.facts.NetNSes() {
		if _, done := ob.facts.Namespaces[n]; !done {
			if sc := sess.Sysctls(n); sc != nil {
				ob.facts.Namespaces[n] = &advice.NetNS{Sysctls: sc, FinWait2Orphans: -1}
			}
		}
	}
	ob.facts.SysctlFiles = readSysctlFiles("/")
	return writeAdvice(o, ob, stdout, stderr)
}

// sysctlsOf is the sysctls of an event's namespace: the host's as read at
// the start, another's as the session last read them in it (nil: unknown).
func sysctlsOf(host *advice.NetNS, sess *session.Session, netns uint32) *kstat.Sysctls {
	if host != nil && netns == sess.HostNetNS() {
		return host.Sysctls
	}
	return sess.Sysctls(netns)
}

func runAdviseFile(ctx context.Context, o *adviseOptions, path string, stdout, stderr io.Writer) error {
	if err := checkSysctlFile(o); err != nil {
		return err
	}
	flt, err := o.trace.filters.filter()
	if err != nil {
		return err
	}
	// The report's analysis: the table rebuilt from the snapshot and the
	// events, each refused syscall diagnosed at its moment.
	rep, err := reportFile(ctx, path, report.Options{Filter: flt}, stderr)
	if err != nil {
		return err
	}
	ob := &observation{
		facts: *rep.Facts, span: rep.To.Sub(rep.From), failures: rep.FailureCount, lost: rep.Lost,
		where: fmt.Sprintf("%s, recorded on host %s", path, rep.Host),
	}
	return writeAdvice(o, ob, stdout, stderr)
}

// checkSysctlFile refuses, before any work, a --sysctl-file that cannot be
// written.
func checkSysctlFile(o *adviseOptions) error {
	if o.sysctlFile == "" {
		if o.force {
			return usagef("--force replaces the --sysctl-file: give one")
		}
		return nil
	}
	if fi, err := os.Lstat(o.sysctlFile); err == nil {
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			return inputf("--sysctl-file %s is a symbolic link: twtrace does not write through links", o.sysctlFile)
		case fi.IsDir():
			return inputf("--sysctl-file %s is a directory", o.sysctlFile)
		case !o.force:
			return inputf("--sysctl-file %s exists: choose another file, or add --force to replace it", o.sysctlFile)
		}
	}
	return nil
}

func writeAdvice(o *adviseOptions, ob *observation, stdout, stderr io.Writer) error {
	findings := advice.Advise(&ob.facts)
	if o.sysctlFile != "" {
		if err := writeSysctlFile(o, ob, findings); err != nil {
			return err
		}
	}
	if o.json {
		if findings == nil {
			findings = []advice.Finding{}
		}
		b, err := json.MarshalIndent(findings, "", "  ")
		if err != nil {
			return err
		}
		_, err = stdout.Write(append(b, '\n'))
		return err
	}
	bw := bufio.NewWriter(stdout)
	fmt.Fprintf(bw, "twtrace advise: %s from %s of %s; %s\n",
		plural(len(findings), "finding", "findings"), ob.span.Round(time.Millisecond), ob.where,
		plural(ob.failures, "refused syscall", "refused syscalls"))
	if ob.lost > 0 {
		fmt.Fprintf(bw, "!LOST %d events the kernel could not deliver: the findings may miss what they were\n", ob.lost)
	}
	writeFailures(bw, ob)
	for _, f := range findings {
		where := ""
		if f.Port != 0 {
			where = fmt.Sprintf(" port %d", f.Port)
		}
		fmt.Fprintf(bw, "\n%s%s: %s\n", f.Code, where, f.Summary)
		for _, e := range f.Evidence {
			fmt.Fprintf(bw, "  evidence: %s\n", e)
		}
		for _, fx := range f.Fixes {
			fmt.Fprintf(bw, "  fix: %s\n", fx.Text)
		}
		for _, nf := range f.NotFixes {
			fmt.Fprintf(bw, "  not a fix: %s\n", nf)
		}
	}
	if len(findings) == 0 {
		fmt.Fprintln(bw, "nothing to fix: no refused syscall, no port running out, no socket piling up")
	}
	if o.sysctlFile != "" {
		fmt.Fprintf(bw, "\nsysctl fixes written to %s: review it, then `sysctl -p %s` (twtrace changed nothing)\n", o.sysctlFile, o.sysctlFile)
	}
	return bw.Flush()
}

// writeFailures lists the refused syscalls (the first few), each with its
// cause at that moment.
func writeFailures(w io.Writer, ob *observation) {
	const most = 20
	if len(ob.facts.Failures) == 0 {
		return
	}
	fmt.Fprintln(w, "\nRefused")
	for i, fl := range ob.facts.Failures {
		if i == most {
			fmt.Fprintf(w, "  ... and %d more\n", ob.failures-most)
			break
		}
		ev := &fl.Event
		target := ev.Src.String()
		if ev.Kind == event.KindConnect {
			target = ev.Dst.String()
		} else if !ev.Src.Addr().IsValid() {
			target = fmt.Sprintf("port %d", ev.Src.Port())
		}
		line := fmt.Sprintf("  %s %s %s by %d %s: %s", ev.Time.Local().Format("15:04:05.000"), ev.Kind, target,
			ev.PID, text.Comm(&ev.Comm), ev.Errno())
		if fl.Port != nil && len(fl.Port.Findings) > 0 {
			line += " — " + fl.Port.Findings[0].Line()
		}
		fmt.Fprintln(w, line)
	}
}

// writeSysctlFile writes the sysctl fixes as a commented sysctl.d file.
func writeSysctlFile(o *adviseOptions, ob *observation, findings []advice.Finding) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by twtrace advise on %s, from %s of %s.\n", time.Now().UTC().Format(time.RFC3339),
		ob.span.Round(time.Second), ob.where)
	b.WriteString("# Review every line before applying it (sysctl -p FILE): twtrace never changes a sysctl itself.\n")
	n := 0
	var names []string
	for _, f := range findings {
		for _, fx := range f.Fixes {
			if fx.Kind != advice.FixSysctl || fx.Suggested == "" || slices.Contains(names, fx.Name) {
				continue
			}
			names = append(names, fx.Name)
			fmt.Fprintf(&b, "\n# %s: %s\n# %s\n%s = %s\n", f.Code, f.Summary, fx.Text, fx.Name, fx.Suggested)
			n++
		}
	}
	if n == 0 {
		b.WriteString("\n# No sysctl would help with what was seen.\n")
	}
	f, err := safefile.Create(o.sysctlFile, o.force)
	if err != nil {
		if errors.Is(err, safefile.ErrExist) {
			return inputf("--sysctl-file %s exists: choose another file, or add --force to replace it", o.sysctlFile)
		}
		return inputf("--sysctl-file: %v", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", o.sysctlFile, err)
	}
	return f.Commit()
}

// readSysctlFiles reads the settings of the files systemd-sysctl and
// `sysctl --system` apply, under root.
func readSysctlFiles(root string) []advice.FileSetting {
	var out []advice.FileSetting
	files := []string{filepath.Join(root, "etc/sysctl.conf")}
	for _, dir := range []string{"etc/sysctl.d", "run/sysctl.d", "usr/local/lib/sysctl.d", "usr/lib/sysctl.d", "lib/sysctl.d"} {
		m, _ := filepath.Glob(filepath.Join(root, dir, "*.conf"))
		files = append(files, m...)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		out = append(out, advice.ParseSysctlFile(name, data)...)
	}
	return out
}

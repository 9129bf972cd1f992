package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Formats a report is written in.
var Formats = []string{"text", "md", "json", "html"}

// Write writes the report in format: text, md, json or html.
func (r *Report) Write(w io.Writer, format string) error {
	bw := bufio.NewWriter(w)
	switch format {
	case "text":
		r.render(textDoc{bw})
	case "md":
		r.render(mdDoc{bw})
	case "json":
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		bw.Write(append(b, '\n'))
	case "html":
		if err := r.writeHTML(bw); err != nil {
			return err
		}
	default:
		return fmt.Errorf("report format %q: want one of %s", format, strings.Join(Formats, ", "))
	}
	return bw.Flush()
}

// render writes the report's content, section by section.
func (r *Report) render(d doc) {
	d.title("twtrace report: " + r.File)
	for _, w := range r.Warnings() {
		d.warn(w[0], w[1])
	}
	d.para(r.Summary())
	r.renderTimelines(d)
	r.renderKinds(d)
	r.renderPorts(d)
	r.renderFailures(d)
	r.renderProcesses(d)
	r.renderCounters(d)
	r.renderFindings(d)
}

// Warnings are what a reader must know first: loss, a cut capture,
// redaction. Each is a label and a sentence.
func (r *Report) Warnings() [][2]string {
	var out [][2]string
	if r.Lossy() {
		out = append(out, [2]string{"LOST", fmt.Sprintf("the kernel could not deliver %d events of this span: every count below is a lower bound, "+
			"and a refused syscall may not show all that held its port.", r.Lost)})
	}
	if r.Cut != "" {
		out = append(out, [2]string{"CUT", r.Cut + "."})
	}
	if r.Redacted {
		out = append(out, [2]string{"REDACTED", "addresses and the host name are keyed hashes (twtrace record --redact): the same token is the same address throughout."})
	}
	return out
}

// Summary is the report's first paragraph: what, where, when, how much.
func (r *Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Host %s (Linux %s), recorded from %s", or(r.Host, "unknown"), or(r.Kernel, "unknown"), r.stamp(r.Started))
	if r.From.IsZero() {
		b.WriteString("; the report covers no event.")
	} else {
		fmt.Fprintf(&b, "; this report covers %s to %s (%s): %d events, %s.", r.stamp(r.From), r.clock(r.To),
			span(r.To.Sub(r.From)), r.Events, plural(r.FailureCount, "refused syscall", "refused syscalls"))
	}
	fmt.Fprintf(&b, " The capture began with %s on the table", plural(r.Snapshot, "socket", "sockets"))
	if r.Version < 2 {
		b.WriteString(" (format version 1: it has no starting snapshot)")
	}
	fmt.Fprintf(&b, "; %s.", r.endedWords())
	if f := flags(r.Filters); f != "" {
		fmt.Fprintf(&b, " Recorded with %s.", f)
	}
	if len(r.Selected) > 0 {
		fmt.Fprintf(&b, " Reported with %s.", strings.Join(r.Selected, " "))
	}
	return b.String()
}

func (r *Report) endedWords() string {
	switch r.Ended {
	case "":
		return "the capture does not say how it ended (format version 1)"
	case "cut":
		return "it was cut off: its recorder did not close it"
	case "signal":
		return "the recording was stopped (a signal)"
	case "duration":
		return "the recording ended after its --duration"
	case "disk_full":
		return "the recording ended on a full disk"
	case "rotated":
		return "the recording went on in the next file (--max-size)"
	}
	return "the recording ended: " + r.Ended
}

func flags(m map[string][]string) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		for _, v := range m[k] {
			out = append(out, "--"+k+" "+v)
		}
	}
	return strings.Join(out, " ")
}

// renderTimelines shows each port worth a picture (html only).
func (r *Report) renderTimelines(d doc) {
	for i := range r.Timelines {
		tl := &r.Timelines[i]
		label := fmt.Sprintf("port %d", tl.Port)
		if tl.Clients {
			label = "connect()'s local ports"
		}
		if r.foreign(tl.NetNS) {
			label += fmt.Sprintf(" (netns %d)", tl.NetNS)
		}
		caption := fmt.Sprintf("%s: sockets by state, %s to %s", label, r.clock(tl.From), r.clock(tl.To))
		if n := len(tl.Failures) + tl.Dropped; n > 0 {
			caption += fmt.Sprintf("; %s marked (hover for the cause)", plural(n, "refused syscall", "refused syscalls"))
		}
		d.figure(r.svgTimeline(tl, label), caption)
	}
}

func (r *Report) renderKinds(d doc) {
	d.section("Events by kind")
	rows := [][]string{}
	for _, k := range r.Kinds {
		rows = append(rows, []string{k.Kind, or(k.Detail, "-"), strconv.FormatInt(k.N, 10)})
	}
	if len(rows) == 0 {
		d.para("No event.")
		return
	}
	d.table([]string{"KIND", "DETAIL", "COUNT"}, rows)
}

func (r *Report) renderPorts(d doc) {
	d.section("Ports with the most TIME_WAIT")
	if len(r.Ports) == 0 {
		d.para("No port had a TIME_WAIT socket or a refused bind().")
	} else {
		rows := [][]string{}
		for _, p := range r.Ports {
			rows = append(rows, []string{r.portLabel(&p), strconv.Itoa(p.Peak), r.clock(p.PeakAt), strconv.Itoa(p.AtEnd),
				strconv.FormatUint(p.Enters, 10), strconv.FormatUint(p.Refused, 10), ownerList(p.LeftBy)})
		}
		d.table([]string{"PORT", "PEAK", "AT", "AT END", "ENTERS", "REFUSED", "LEFT BY"}, rows)
		d.para(fmt.Sprintf("Peaks as the table was sampled, every %s of capture time and at each new kind of refusal; "+
			"connect() stands for the local ports connect() picked in a namespace.", span(r.Period)))
	}
	if len(r.Remotes) > 0 {
		d.sub("Destinations of connect() by TIME_WAIT")
		rows := [][]string{}
		for _, m := range r.Remotes {
			rows = append(rows, []string{m.Remote, strconv.Itoa(m.Peak), r.clock(m.PeakAt)})
		}
		d.table([]string{"DESTINATION", "PEAK TIME_WAIT", "AT"}, rows)
	}
}

// portLabel names a port row; the namespace only when it is not the
// recording host's.
func (r *Report) portLabel(p *Port) string {
	s := strconv.Itoa(int(p.Port))
	if p.Clients {
		s = "connect()"
	}
	if r.foreign(p.NetNS) {
		s += fmt.Sprintf(" (netns %d)", p.NetNS)
	}
	return s
}

// foreign reports a namespace other than the recording host's.
func (r *Report) foreign(netns uint32) bool {
	return r.Facts != nil && r.Facts.Namespaces[netns] == nil
}

func ownerList(os []Owner) string {
	if len(os) == 0 {
		return "-"
	}
	s := make([]string, len(os))
	for i, o := range os {
		s[i] = o.String()
	}
	return strings.Join(s, ", ")
}

func (r *Report) renderFailures(d doc) {
	d.section("Refused syscalls")
	if len(r.Failures) == 0 {
		d.para("No bind(), connect() or listen() was refused.")
		return
	}
	if r.FailureCount > MaxFailures {
		d.para(fmt.Sprintf("%d refused syscalls; the first %d are diagnosed below.", r.FailureCount, MaxFailures))
	}
	for i := range r.Failures {
		r.renderGroup(d, &r.Failures[i])
	}
}

func (r *Report) renderGroup(d doc, g *Group) {
	when := "at " + r.clock(g.Time)
	if g.Count > 1 {
		when = fmt.Sprintf("%d times, %s to %s", g.Count, r.clock(g.Time), r.clock(g.Last))
	}
	d.sub(fmt.Sprintf("%s() %s %s — %s", g.Kind, g.Target, g.Errno, when))
	d.code([]string{g.Line})
	cause := item{"Cause", g.Cause}
	if g.Code != "" {
		cause.label = "Cause (" + g.Code + ")"
	}
	items := []item{cause}
	if g.Summary != g.Cause {
		items = append(items, item{"Diagnosis", g.Summary})
	}
	if g.Kind != "connect" {
		items = append(items, item{"Held by", holders(g.Held)})
	}
	if len(g.Sockets) > 0 {
		items = append(items, item{"Sockets then", sockets(g.Sockets)})
	}
	for _, f := range g.Fixes {
		items = append(items, item{"Fix", f})
	}
	for _, n := range g.Not {
		items = append(items, item{"Not a fix", n})
	}
	if len(g.PIDs) > 1 {
		items = append(items, item{"By the processes", joinPIDs(g.PIDs)})
	}
	if g.Count > 1 {
		items = append(items, item{"At", r.times(g.Times, g.Count)})
	}
	d.list(items)
}

func holders(hs []Holder) string {
	if len(hs) == 0 {
		return "no process the table knows (the sockets' owners were not seen)"
	}
	s := make([]string, len(hs))
	for i, h := range hs {
		s[i] = fmt.Sprintf("%d %s (%s)", h.PID, h.Comm, strings.Join(h.States, ", "))
	}
	return strings.Join(s, "; ")
}

func sockets(ss []Sockets) string {
	s := make([]string, len(ss))
	for i, x := range ss {
		s[i] = fmt.Sprintf("%d %s", x.N, x.State)
		switch x.Reuse {
		case "none":
			s[i] += " without SO_REUSEADDR/SO_REUSEPORT"
		case "mixed":
			s[i] += " with different options"
		case "unknown":
			s[i] += " (options unknown)"
		default:
			s[i] += " " + x.Reuse
		}
	}
	return strings.Join(s, ", ")
}

func joinPIDs(ps []uint32) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ", ")
}

func (r *Report) times(ts []time.Time, n int) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = r.clock(t)
	}
	out := strings.Join(s, ", ")
	if n > len(ts) {
		out += fmt.Sprintf(" and %d more", n-len(ts))
	}
	return out
}

func (r *Report) renderProcesses(d doc) {
	d.section("Processes involved")
	if len(r.Processes) == 0 {
		d.para("None: no refused syscall, no process behind the busiest ports.")
		return
	}
	rows := [][]string{}
	for _, p := range r.Processes {
		rows = append(rows, []string{strconv.Itoa(int(p.PID)), p.Comm, strings.Join(p.Roles, "; ")})
	}
	d.table([]string{"PID", "TASK", "WHAT"}, rows)
}

func (r *Report) renderCounters(d doc) {
	d.section("Kernel counters")
	c := r.Counters
	if c == nil {
		d.para("The capture has no kernel counters at both ends (a capture cut off, or recorded before format version 2).")
		return
	}
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	i := func(v int) string { return strconv.Itoa(v) }
	ch := func(v int64) string { return fmt.Sprintf("%+d", v) }
	d.table([]string{"COUNTER", "START", "END", "CHANGE"}, [][]string{
		{"TcpExt TW (TIME_WAIT sockets armed)", u(c.Start.TW), u(c.End.TW), ch(c.TW)},
		{"TcpExt TWKilled", u(c.Start.TWKilled), u(c.End.TWKilled), ch(c.TWKilled)},
		{"TcpExt TWRecycled (taken over by connect())", u(c.Start.TWRecycled), u(c.End.TWRecycled), ch(c.TWRecycled)},
		{"TcpExt TCPTimeWaitOverflow (not created: tcp_max_tw_buckets)", u(c.Start.TCPTimeWaitOverflow), u(c.End.TCPTimeWaitOverflow), ch(c.Overflow)},
		{"sockstat tw (timewait sockets then)", i(c.Start.TimeWait), i(c.End.TimeWait), ch(int64(c.End.TimeWait - c.Start.TimeWait))},
	})
	d.para("For the recording host's namespace, over the whole file (the report's --from/--to do not apply to them).")
}

func (r *Report) renderFindings(d doc) {
	d.section("Findings")
	if len(r.Findings) == 0 {
		d.para("Nothing to fix: no refused syscall, no port running out, no socket piling up.")
		return
	}
	for _, f := range r.Findings {
		where := ""
		if f.Port != 0 {
			where = fmt.Sprintf(" port %d", f.Port)
		}
		d.sub(fmt.Sprintf("%s%s: %s", f.Code, where, f.Cause))
		items := []item{{"", f.Summary}}
		for _, e := range f.Evidence {
			items = append(items, item{"Evidence", e})
		}
		for _, fx := range f.Fixes {
			items = append(items, item{"Fix", fx.Text})
		}
		for _, n := range f.NotFixes {
			items = append(items, item{"Not a fix", n})
		}
		d.list(items)
	}
}

func or(s, dflt string) string {
	if s == "" {
		return dflt
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// span formats a duration for people: 850 ms, 12.3 s, 4m10s.
func span(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return d.Round(time.Second).String()
}

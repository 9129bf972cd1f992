package stream

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/twtrace/twtrace/tracer/advice"
)

// WriteVerdict writes the head of a why report, each line after indent: the
// verdict for the bind the report is for, then one line per finding with
// its cause and first fix. `twtrace why` begins with it, and `twtrace demo`
// quotes it where a lesson asks why.
func WriteVerdict(w io.Writer, r *advice.PortReport, indent string, color bool) error {
	bw := bufio.NewWriter(w)
	red, green, bold, off := palette(color)
	writeVerdict(bw, r, indent, red, green, bold, off)
	return bw.Flush()
}

func writeVerdict(w io.Writer, r *advice.PortReport, indent, red, green, bold, off string) {
	verdict := green + "FREE" + off
	if r.Verdict != "free" {
		verdict = red + "BLOCKED" + off
	}
	if !r.Certain {
		verdict += " (uncertain)"
	}
	fmt.Fprintf(w, "%s%sport %d%s: %s for a %s bind() to %s as uid %d\n", indent, bold, r.Port, off, verdict, r.Options,
		bracket(r.Addr), r.UID)
	for _, f := range r.Findings {
		fmt.Fprintf(w, "%s  %s\n", indent, f.Line())
	}
}

// palette is the ANSI codes of a why report: red, green, bold, off.
func palette(color bool) (red, green, bold, off string) {
	if !color {
		return "", "", "", ""
	}
	return ansiRed, "\x1b[32m", "\x1b[1m", ansiOff
}

// WritePortReport writes the report of `twtrace why` for people: the
// verdict first (WriteVerdict), then the sockets, the holders, the table of
// attempts, and each finding with its evidence and fixes.
func WritePortReport(w io.Writer, r *advice.PortReport, color bool) error {
	bw := bufio.NewWriter(w)
	red, green, bold, off := palette(color)
	writeVerdict(bw, r, "", red, green, bold, off)

	fmt.Fprintf(bw, "\nSockets on port %d\n", r.Port)
	if len(r.ByState) == 0 {
		fmt.Fprintln(bw, "  none")
	}
	for _, s := range r.ByState {
		line := fmt.Sprintf("  %-12s %5d  options %s", s.State, s.N, s.Reuse)
		if s.State == "TIME_WAIT" && r.TimeWaitUntil != nil {
			now := time.Now()
			if r.Facts != nil {
				now = r.Facts.Now
			}
			line += fmt.Sprintf("   the last ends in %.1f s (%s)", max(r.TimeWaitUntil.Sub(now), 0).Seconds(),
				r.TimeWaitUntil.Local().Format("15:04:05"))
		}
		fmt.Fprintln(bw, line)
	}
	fmt.Fprintln(bw, "Held by")
	if len(r.Holders) == 0 {
		note := "  no process"
		if r.Sockets["TIME_WAIT"] > 0 && len(r.Sockets) == 1 {
			note += ": TIME_WAIT sockets belong to the kernel"
		}
		fmt.Fprintln(bw, note)
	}
	for _, h := range r.Holders {
		fmt.Fprintf(bw, "  %s: %s\n", h.Who(), strings.Join(h.States, ", "))
		if h.Cmdline != "" {
			fmt.Fprintf(bw, "      %s\n", Printable(h.Cmdline, 200))
		}
	}

	writeAttempts(bw, r, red, green, off)

	for _, f := range r.Findings {
		fmt.Fprintf(bw, "\n%s%s%s %s\n", bold, f.Code, off, f.Summary)
		for _, e := range f.Evidence {
			fmt.Fprintf(bw, "  evidence: %s\n", e)
		}
		for _, fx := range f.Fixes {
			fmt.Fprintf(bw, "  fix: %s\n", fx.Text)
			for _, sn := range fx.Snippets {
				fmt.Fprintf(bw, "         %-8s %s\n", sn.Lang, sn.Code)
			}
		}
		for _, nf := range f.NotFixes {
			fmt.Fprintf(bw, "  not a fix: %s\n", nf)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(bw, "\nnote: %s\n", n)
	}
	return bw.Flush()
}

// writeAttempts draws the table of every way of binding: one row per
// address, one column per set of options. "?" marks an uncertain answer.
func writeAttempts(w io.Writer, r *advice.PortReport, red, green, off string) {
	fmt.Fprintf(w, "\nA new bind() to port %d (as uid %d) would get\n", r.Port, r.UID)
	fmt.Fprintf(w, "  %-20s %-13s %-13s %-13s %s\n", "", "plain", "SO_REUSEADDR", "SO_REUSEPORT", "both")
	for i := 0; i+3 < len(r.Attempts); i += 4 {
		a := r.Attempts[i]
		label := bracket(a.Addr)
		switch a.Stack {
		case "dualstack":
			label += " dual-stack"
		case "v6only":
			label += " V6ONLY"
		}
		line := fmt.Sprintf("  %-20s", label)
		for k := range 4 {
			c := r.Attempts[i+k]
			res := string(c.Result)
			if !c.Certain {
				res += "?"
			}
			color := green
			if c.Result != advice.OK {
				color = red
			}
			line += " " + color + fmt.Sprintf("%-13s", res) + off
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}

// bracket writes an IPv6 address as a bind() shows it: [::].
func bracket(a string) string {
	if strings.Contains(a, ":") {
		return "[" + a + "]"
	}
	return a
}

// Printable cuts s to n bytes and replaces control bytes: a command line
// is whatever its process made it.
func Printable(s string, n int) string {
	var b strings.Builder
	for i := 0; i < len(s) && i < n; i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			c = '?'
		}
		b.WriteByte(c)
	}
	if len(s) > n {
		b.WriteString("…")
	}
	return b.String()
}

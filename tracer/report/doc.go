package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// doc is a document being written: the report's text and Markdown forms
// are the same content through two of these.
type doc interface {
	title(s string)
	section(s string)
	sub(s string)
	para(s string)
	warn(label, s string)
	table(head []string, rows [][]string)
	list(items []item)
	code(lines []string)
	// figure shows a port's timeline (an SVG element); text has none.
	figure(svg, caption string)
}

// item is an entry of a list: a label ("Fix", "Cause") and its text.
type item struct{ label, text string }

func (it item) String() string {
	if it.label == "" {
		return it.text
	}
	return it.label + ": " + it.text
}

// textDoc writes plain text for a terminal or a ticket: underlined
// headings, aligned columns.
type textDoc struct{ w io.Writer }

func (d textDoc) title(s string) {
	fmt.Fprintf(d.w, "%s\n%s\n", s, strings.Repeat("=", len(s)))
}

func (d textDoc) section(s string) {
	fmt.Fprintf(d.w, "\n%s\n%s\n", s, strings.Repeat("-", len(s)))
}

func (d textDoc) sub(s string) { fmt.Fprintf(d.w, "\n* %s\n", s) }

func (d textDoc) para(s string) { fmt.Fprintf(d.w, "%s\n", s) }

func (d textDoc) warn(label, s string) { fmt.Fprintf(d.w, "!%s %s\n", label, s) }

func (d textDoc) table(head []string, rows [][]string) {
	tw := tabwriter.NewWriter(d.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  "+strings.Join(head, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, "  "+strings.Join(r, "\t"))
	}
	tw.Flush()
}

func (d textDoc) list(items []item) {
	for _, it := range items {
		fmt.Fprintf(d.w, "  - %s\n", it)
	}
}

func (d textDoc) figure(string, string) {}

func (d textDoc) code(lines []string) {
	for _, l := range lines {
		fmt.Fprintf(d.w, "    %s\n", l)
	}
}

// mdDoc writes GitHub-flavoured Markdown that pastes into a review
// document: ATX headings, pipe tables, escaped text, fenced code.
type mdDoc struct{ w io.Writer }

// mdEscaper escapes what Markdown would take for markup in a table cell or
// a line of text (underscores inside words are left: they never emphasise).
var mdEscaper = strings.NewReplacer(`\`, `\\`, "`", "\\`", "*", `\*`, "|", `\|`, "<", `\<`, ">", `\>`,
	"[", `\[`, "]", `\]`, "\n", " ")

func md(s string) string {
	s = mdEscaper.Replace(s)
	if strings.HasPrefix(s, "#") || strings.HasPrefix(s, "- ") || strings.HasPrefix(s, "+ ") {
		s = `\` + s
	}
	return s
}

// Every block ends with a blank line, and none begins with one.
func (d mdDoc) title(s string)   { fmt.Fprintf(d.w, "# %s\n\n", md(s)) }
func (d mdDoc) section(s string) { fmt.Fprintf(d.w, "## %s\n\n", md(s)) }
func (d mdDoc) sub(s string)     { fmt.Fprintf(d.w, "### %s\n\n", md(s)) }
func (d mdDoc) para(s string)    { fmt.Fprintf(d.w, "%s\n\n", md(s)) }

func (d mdDoc) warn(label, s string) {
	fmt.Fprintf(d.w, "> **%s** %s\n\n", md(label), md(s))
}

func (d mdDoc) table(head []string, rows [][]string) {
	cells := func(r []string) string {
		out := make([]string, len(r))
		for i, c := range r {
			out[i] = md(c)
		}
		return "| " + strings.Join(out, " | ") + " |"
	}
	fmt.Fprintln(d.w, cells(head))
	sep := make([]string, len(head))
	for i := range sep {
		sep[i] = "---"
	}
	fmt.Fprintln(d.w, "| "+strings.Join(sep, " | ")+" |")
	for _, r := range rows {
		fmt.Fprintln(d.w, cells(r))
	}
	fmt.Fprintln(d.w)
}

func (d mdDoc) list(items []item) {
	for _, it := range items {
		if it.label == "" {
			fmt.Fprintf(d.w, "- %s\n", md(it.text))
		} else {
			fmt.Fprintf(d.w, "- **%s:** %s\n", md(it.label), md(it.text))
		}
	}
	fmt.Fprintln(d.w)
}

func (d mdDoc) figure(string, string) {}

func (d mdDoc) code(lines []string) {
	fence := "```"
	for _, l := range lines {
		for strings.Contains(l, fence) {
			fence += "`"
		}
	}
	fmt.Fprintf(d.w, "%s\n%s\n%s\n\n", fence, strings.Join(lines, "\n"), fence)
}

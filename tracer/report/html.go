package report

import (
	"fmt"
	"html"
	"io"
	"strings"
)

// htmlDoc writes the report's body as HTML, escaped; writeHTML wraps it in
// one self-contained page: the style inline, no script, no font, no image
// or link to anything outside it.
type htmlDoc struct{ w io.Writer }

func h(s string) string { return html.EscapeString(s) }

func (d htmlDoc) title(s string)   { fmt.Fprintf(d.w, "<h1>%s</h1>\n", h(s)) }
func (d htmlDoc) section(s string) { fmt.Fprintf(d.w, "<h2>%s</h2>\n", h(s)) }
func (d htmlDoc) sub(s string)     { fmt.Fprintf(d.w, "<h3>%s</h3>\n", h(s)) }
func (d htmlDoc) para(s string)    { fmt.Fprintf(d.w, "<p>%s</p>\n", h(s)) }

func (d htmlDoc) warn(label, s string) {
	fmt.Fprintf(d.w, "<p class=\"warn\"><strong>%s</strong> %s</p>\n", h(label), h(s))
}

func (d htmlDoc) table(head []string, rows [][]string) {
	fmt.Fprint(d.w, "<table>\n<thead><tr>")
	for _, c := range head {
		fmt.Fprintf(d.w, "<th>%s</th>", h(c))
	}
	fmt.Fprint(d.w, "</tr></thead>\n<tbody>\n")
	for _, r := range rows {
		fmt.Fprint(d.w, "<tr>")
		for _, c := range r {
			fmt.Fprintf(d.w, "<td>%s</td>", h(c))
		}
		fmt.Fprint(d.w, "</tr>\n")
	}
	fmt.Fprint(d.w, "</tbody>\n</table>\n")
}

func (d htmlDoc) list(items []item) {
	fmt.Fprint(d.w, "<ul>\n")
	for _, it := range items {
		if it.label == "" {
			fmt.Fprintf(d.w, "<li>%s</li>\n", h(it.text))
			continue
		}
		fmt.Fprintf(d.w, "<li><span class=\"label\">%s:</span> %s</li>\n", h(it.label), h(it.text))
	}
	fmt.Fprint(d.w, "</ul>\n")
}

func (d htmlDoc) code(lines []string) {
	fmt.Fprintf(d.w, "<pre>%s</pre>\n", h(strings.Join(lines, "\n")))
}

func (d htmlDoc) figure(svg, caption string) {
	fmt.Fprintf(d.w, "<figure>\n%s\n<figcaption>%s</figcaption>\n</figure>\n", svg, h(caption))
}

func (r *Report) writeHTML(w io.Writer) error {
	fmt.Fprintf(w, `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="generator" content="twtrace report">
<title>twtrace report: %s</title>
<style>
%s</style>
</head>
<body>
<main>
`, h(r.File), pageStyle)
	r.render(htmlDoc{w})
	_, err := fmt.Fprint(w, "</main>\n</body>\n</html>\n")
	return err
}

// pageStyle reads on a light page, a dark one (prefers-color-scheme) and
// on paper; the fonts are the reader's own.
const pageStyle = `:root {
  --bg: #ffffff; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --card: #f6f8fa;
  --listen: #0969da; --est: #1a7f37; --cw: #8250df; --other: #6e7781; --tw: #bc4c00;
  --fail: #cf222e; --warn-bg: #fff8c5; --warn-line: #d4a72c;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --line: #3d444d; --card: #151b23;
    --listen: #4493f8; --est: #3fb950; --cw: #ab7df8; --other: #9198a1; --tw: #f0883e;
    --fail: #ff7b72; --warn-bg: #272115; --warn-line: #9e6a03;
  }
}
@media print {
  :root {
    --bg: #ffffff; --fg: #000000; --muted: #444444; --line: #999999; --card: #ffffff;
    --listen: #0550ae; --est: #116329; --cw: #6639ba; --other: #57606a; --tw: #953800;
    --fail: #a40e26; --warn-bg: #ffffff; --warn-line: #000000;
  }
  main { max-width: none; margin: 0; }
  figure, table, pre, h3 { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
}
* { box-sizing: border-box; }
html { background: var(--bg); color: var(--fg); }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 1.6em; margin: 0 0 12px; overflow-wrap: anywhere; }
h2 { font-size: 1.25em; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05em; margin: 22px 0 6px; overflow-wrap: anywhere; }
p, li { overflow-wrap: anywhere; }
.warn { background: var(--warn-bg); border-left: 4px solid var(--warn-line); padding: 8px 12px; margin: 8px 0; }
table { border-collapse: collapse; margin: 8px 0 4px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: var(--card); font-weight: 600; }
pre { background: var(--card); border: 1px solid var(--line); padding: 8px 12px; overflow-x: auto;
  font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space: pre-wrap; }
ul { padding-left: 22px; margin: 6px 0; }
.label { color: var(--muted); font-weight: 600; }
figure { margin: 16px 0; }
figcaption { color: var(--muted); font-size: 0.9em; margin-top: 2px; }
svg.timeline { width: 100%; height: auto; display: block; background: var(--card); border: 1px solid var(--line); }
svg .plot { fill: var(--bg); stroke: var(--line); }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .axis, svg .legend { fill: var(--muted); font: 11px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
svg .legend { fill: var(--fg); }
svg .st-listen { fill: var(--listen); }
svg .st-est { fill: var(--est); }
svg .st-cw { fill: var(--cw); }
svg .st-other { fill: var(--other); }
svg .st-tw { fill: var(--tw); }
svg polygon { fill-opacity: 0.85; }
svg .fail line { stroke: var(--fail); stroke-width: 1; stroke-dasharray: 3 2; }
svg .fail path, svg .fail-key { fill: var(--fail); }
svg .fail:hover line { stroke-width: 2; stroke-dasharray: none; }
`

package tui

import (
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/twtrace/twtrace/tracer/advice"
	"github.com/twtrace/twtrace/tracer/table"
)

// ---------------------------------------------------------------- MODEL

// adviceView lists what the advisor finds in the table and the failures
// seen so far, each finding with its evidence and fixes (docs/advice.md
// explains every code). It scrolls by line.
type adviceView struct {
	ctx      *uiContext
	findings []advice.Finding
	offset   int
	width    int
	height   int
}

func newAdviceView(ctx *uiContext) *adviceView { return &adviceView{ctx: ctx} }

func (v *adviceView) setSize(w, h int) { v.width, v.height = w, h }

// adviceFacts builds the advisor's facts from the table and the diagnosed
// failures; it runs on the query goroutine.
func adviceFacts(tab *table.Table, req *request) *advice.Facts {
	f := &advice.Facts{
		Now: req.now, Ports: tab.Ports(), Processes: tab.Processes(), Remotes: tab.Remotes(),
		Namespaces: map[uint32]*advice.NetNS{},
	}
	for _, fl := range req.failures {
		if fl.diag != nil {
			f.Failures = append(f.Failures, *fl.diag)
		}
	}
	if req.sysctls != nil {
		for _, n := range append(f.NetNSes(), req.hostNetNS) {
			if _, done := f.Namespaces[n]; !done {
				f.Namespaces[n] = &advice.NetNS{Sysctls: req.sysctls(n), FinWait2Orphans: -1}
			}
		}
	}
	if req.rates != nil {
		if r, ok := req.rates(); ok {
			if n := f.Namespaces[req.hostNetNS]; n != nil {
				n.Rates, n.TimeWait = &r, r.TimeWait
			}
		}
	}
	return f
}

// ---------------------------------------------------------------- UPDATE

func (v *adviceView) move(k tea.KeyPressMsg) {
	nav := &v.ctx.keys.Nav
	switch {
	case key.Matches(k, nav.Down):
		v.offset++
	case key.Matches(k, nav.Up):
		v.offset--
	case key.Matches(k, nav.PageDown):
		v.offset += v.height - 2
	case key.Matches(k, nav.PageUp):
		v.offset -= v.height - 2
	case key.Matches(k, nav.Home):
		v.offset = 0
	}
	v.offset = max(v.offset, 0)
}

// ---------------------------------------------------------------- VIEW

func (v *adviceView) view() string {
	st := v.ctx.styles
	title := st.paint(&st.ViewTitle, "Advice") + st.paint(&st.Muted, " "+plural(len(v.findings), "finding", "findings")+
		" from the table and the failures seen · codes: docs/advice.md")
	lines := []string{fitWidth(title, v.width)}
	var body []string
	if len(v.findings) == 0 {
		note := "nothing to fix: no refused syscall, no port running out, no socket piling up"
		if v.ctx.querying {
			note = "querying the socket table…"
		}
		body = append(body, st.paint(&st.Muted, "  "+note))
	}
	para := func(prefix string, style *lipgloss.Style, s string) {
		wrap := lipgloss.NewStyle().Width(max(v.width-len(prefix), 20))
		for i, l := range strings.Split(wrap.Render(s), "\n") {
			p := prefix
			if i > 0 {
				p = strings.Repeat(" ", len(prefix))
			}
			body = append(body, p+st.paint(style, strings.TrimRight(l, " ")))
		}
	}
	for _, f := range v.findings {
		para(f.Code+" ", &st.Bad, f.Summary)
		for _, e := range f.Evidence {
			para("  evidence  ", &st.Muted, e)
		}
		for _, fx := range f.Fixes {
			para("  fix       ", nil, fx.TextAt(v.ctx.now))
		}
		for _, nf := range f.NotFixes {
			para("  not a fix ", &st.Muted, nf)
		}
		body = append(body, "")
	}
	v.offset = min(v.offset, max(len(body)-1, 0))
	lines = append(lines, body[v.offset:]...)
	return fitLines(lines, v.width, v.height)
}

package tui

import (
	"strings"

	"github.com/twtrace/twtrace/tracer/event"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// ---------------------------------------------------------------- VIEW

// headerLines: the title line, the counters, the tabs.
const headerLines = 3

// View renders the screen: header, the active view, footer.
func (m Model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = m.opts.Title
	return v
}

// render builds the screen as one string of exactly height lines.
func (m *Model) render() string {
	m.ctx.querying = m.refresh.got != m.refresh.want
	var b strings.Builder
	b.Grow(m.width * m.height * 2)
	b.WriteString(m.titleLine())
	b.WriteByte('\n')
	b.WriteString(m.countersLine())
	b.WriteByte('\n')
	b.WriteString(m.tabsLine())
	b.WriteByte('\n')
	switch m.active {
	case viewPorts:
		b.WriteString(m.ports.view())
	case viewSockets:
		b.WriteString(m.sockets.view(&m.filter))
	case viewEvents:
		b.WriteString(m.events.view(m.newPaused))
	case viewRemotes:
		b.WriteString(m.remotes.view())
	}
	b.WriteByte('\n')
	b.WriteString(m.statusLine())
	b.WriteByte('\n')
	b.WriteString(m.helpView())
	return b.String()
}

// footerLines: the status line and the help, one line or the full table.
func (m *Model) footerLines() int {
	if m.help.ShowAll {
		return 1 + lipgloss.Height(m.helpView())
	}
	return 2
}

// helpView is the help for the keys of the current mode, rendered again
// only when the mode or the width changes.
func (m *Model) helpView() string {
	k := helpKey{m.mode(), m.width, m.help.ShowAll}
	if m.cache.help == "" || m.cache.helpKey != k {
		m.cache.helpKey, m.cache.help = k, m.help.View(m.ctx.keys)
	}
	return m.cache.help
}

// titleLine: product, host, kernel on the left; the clock, the pause and
// the feed's state on the right.
func (m *Model) titleLine() string {
	st := m.ctx.styles
	left := st.paint(&st.Title, m.opts.Title)
	if m.opts.Host != "" {
		left += st.paint(&st.Label, "  host ") + m.opts.Host
	}
	if m.opts.Kernel != "" {
		left += st.paint(&st.Label, "  kernel ") + m.opts.Kernel
	}
	right := m.ctx.now.In(m.ctx.loc).Format("15:04:05")
	if m.paused {
		right = st.paint(&st.Paused, " PAUSED ") + st.paint(&st.Muted, " "+itoa(m.newPaused)+" new  ") + right
	}
	switch {
	case m.feedDone && m.feedErr != nil:
		right = st.paint(&st.Bad, "feed stopped: "+m.feedErr.Error()) + "  " + right
	case m.feedDone:
		right = st.paint(&st.Muted, "feed ended") + "  " + right
	}
	return spread(left, right, m.width)
}

// countersLine: the numbers to watch. Loss and skipped events are always
// there, red when not zero: the UI never hides that it misses something.
func (m *Model) countersLine() string {
	st := m.ctx.styles
	s := m.stats
	var items []string
	item := func(label, value string, style *lipgloss.Style) {
		v := st.paint(&st.Value, value)
		if style != nil {
			v = st.paint(style, value)
		}
		items = append(items, st.paint(&st.Label, label+" ")+v)
	}
	r, ok := m.evRate.get()
	item("events/s", fmtRate(r, ok), nil)
	item("sockets", itoa(s.Sockets), nil)
	item("TIME_WAIT", itoa(s.TimeWait), st.state(event.StateTimeWait))
	var bad *lipgloss.Style
	if s.Lost > 0 {
		bad = &st.Bad
	}
	item("lost", itoa(s.Lost), bad)
	if s.Evicted > 0 {
		item("evicted", itoa(s.Evicted), &st.Warn)
	}
	if m.uiDropped > 0 {
		item("UI skipped", itoa(m.uiDropped), &st.Bad)
	}
	if n := len(m.opts.Degraded); n > 0 {
		item("degraded", itoa(n), &st.Warn) // the sentences: on stderr at start, and in the log
	}
	switch {
	case m.opts.Counters == nil && m.opts.Rates == nil:
	case m.kErr != nil:
		item("kernel counters", "n/a", &st.Muted)
	default:
		item("TW/s", fmtRate(m.kRates.TW, m.kRatesOK), nil)
		item("TWKilled/s", fmtRate(m.kRates.TWKilled, m.kRatesOK), nil)
		if m.kRates.TCPTimeWaitOverflow > 0 {
			item("TW overflow/s", fmtRate(m.kRates.TCPTimeWaitOverflow, true), &st.Bad)
		}
	}
	return fitWidth(strings.Join(items, "  "), m.width)
}

// tabsLine names the views; the active one is highlighted.
func (m *Model) tabsLine() string {
	st := m.ctx.styles
	var b strings.Builder
	for i, name := range viewNames {
		label := " " + itoa(i+1) + " " + name + " "
		if viewID(i) == m.active {
			b.WriteString(st.paint(&st.TabActive, label))
		} else {
			b.WriteString(st.paint(&st.TabIdle, label))
		}
		b.WriteByte(' ')
	}
	return fitWidth(b.String(), m.width)
}

// statusLine: the filter being typed, or the filter in force and the last
// message.
func (m *Model) statusLine() string {
	st := m.ctx.styles
	var s string
	switch {
	case m.filtering:
		s = m.input.View()
		if m.status != "" {
			s += "  " + st.paint(&st.Bad, m.status)
		}
	case m.status != "":
		s = st.paint(&st.Bad, m.status)
	case !m.filter.empty():
		s = st.paint(&st.Label, "filter ") + st.paint(&st.Accent, m.filter.String()) + st.paint(&st.Muted, "  (esc clears)")
	}
	return fitWidth(s, m.width)
}

// spread puts left and right at the two ends of a line of width w.
func spread(left, right string, w int) string {
	gap := w - ansi.StringWidth(left) - ansi.StringWidth(right)
	if gap < 1 {
		return fitWidth(left+" "+right, w)
	}
	return left + strings.Repeat(" ", gap) + right
}

// fitWidth truncates a styled line to w cells.
func fitWidth(s string, w int) string {
	if ansi.StringWidth(s) > w {
		return ansi.Truncate(s, w, "…")
	}
	return s
}

// emptyNote writes a note on the first row of an empty grid: why it is
// empty, or that its data is on its way.
func emptyNote(grid string, ctx *uiContext, note string) string {
	st := ctx.styles
	if ctx.querying {
		note = "querying the socket table…"
	}
	head, rest, ok := strings.Cut(grid, "\n")
	if !ok {
		return grid
	}
	_, after, more := strings.Cut(rest, "\n")
	line := st.paint(&st.Muted, "  "+note)
	if !more {
		return head + "\n" + line
	}
	return head + "\n" + line + "\n" + after
}

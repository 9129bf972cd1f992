package tui

import (
	"slices"
	"strings"

	"github.com/twtrace/twtrace/tracer/event"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// ---------------------------------------------------------------- VIEW

// headerLines: the title line, the counters, the tabs.
const headerLines = 3

// View renders the screen: header, the active view, footer. It changes
// nothing: what it shows, Update has prepared (settle).
func (m Model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = m.opts.Title
	return v
}

// render builds the screen as one string of exactly height lines.
func (m *Model) render() string {
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
	case viewFailures:
		b.WriteString(m.failed.view())
	case viewAdvice:
		b.WriteString(m.advice.view())
	}
	b.WriteByte('\n')
	if m.alertOwnLine() {
		b.WriteString(m.alertLine())
		b.WriteByte('\n')
	}
	b.WriteString(m.statusLine())
	b.WriteByte('\n')
	b.WriteString(m.helpText)
	return b.String()
}

// footerLines: the status line and the help: one line, the full table, or
// a bad filter's error above the keys.
func (m *Model) footerLines() int {
	n := 1 + lipgloss.Height(m.helpText)
	if m.alertOwnLine() {
		n++
	}
	return n
}

// alertOwnLine: the newest failure needs a line of its own, because the
// status line shows the filter; otherwise it takes the status line. On a
// terminal too short for both, the view keeps the line.
func (m *Model) alertOwnLine() bool {
	return m.failures.last() != nil && (m.filtering || !m.filter.empty()) && m.height >= 12
}

// helpLegend explains, under the full help, the header's counters of what
// the UI misses and the words of the filter.
const helpLegend = "lost N: events the kernel could not deliver (its ring buffer was full, or it skipped a program run).\n" +
	"UI skipped N: events the log had no time to show; the tables and counts still have them.\n" +
	"/ words: 8080 sport:N dport:N · tw estab listening (ss's states) · bind connect listen fail EADDRINUSE · " +
	"pid:N uid:N comm:NAME or NAME · netns:N ipv4 ipv6\n" +
	"8080 8443: either port · 8080 nginx: both · tw fail: the TIME_WAITs and the failures"

// replayLegend explains the replay's keys under the full help.
const replayLegend = "replay: ] and [ go to the next and the previous refused syscall and pause just after it, " +
	"diagnosed against the table of that instant · t goes to a time: 14:03:07, 14:03:07.250, +30s, -2m, start, end · " +
	"+ and - double and halve the pace, from 1/8 to 1024, then max (as fast as possible)"

// renderHelp renders the help for the keys of the current mode; the full
// help ends with the legend, as much of it as fits while the view keeps
// three lines (its title, its header, a row). Lines are cut to the width:
// bubbles' help adds the item that does not fit when its ellipsis does not
// fit either.
func (m *Model) renderHelp() string {
	st := m.ctx.styles
	lines := strings.Split(m.help.View(m.ctx.keys), "\n")
	if m.status != "" {
		// What is wrong with the filter, whole, under the line being fixed.
		wrapped := strings.Split(lipgloss.NewStyle().Width(m.width).Render(m.status), "\n")
		for i, l := range wrapped[:min(len(wrapped), 3)] {
			wrapped[i] = st.paint(&st.Bad, strings.TrimRight(l, " "))
		}
		lines = append(wrapped[:min(len(wrapped), 3)], lines...)
	}
	if m.help.ShowAll {
		text := helpLegend
		if m.player != nil {
			text = replayLegend + "\n" + text
		}
		legend := lipgloss.NewStyle().Width(m.width).Render(text)
		for _, l := range strings.Split(legend, "\n") {
			lines = append(lines, st.paint(&st.Muted, strings.TrimRight(l, " ")))
		}
		own := 0
		if m.alertOwnLine() {
			own = 1
		}
		lines = lines[:min(len(lines), max(m.height-headerLines-1-own-3, 1))]
	}
	for i := range lines {
		lines[i] = fitWidth(lines[i], m.width)
	}
	return strings.Join(lines, "\n")
}

// titleLine: product, the feed's scope, host, kernel on the left; the
// feed's state and the clock on the right. Narrow, the kernel goes first,
// then the host, then the scope.
func (m *Model) titleLine() string {
	st := m.ctx.styles
	right := m.ctx.now.In(m.ctx.loc).Format("15:04:05")
	if m.player != nil {
		right = m.replayClock()
	}
	switch {
	case m.feedDone && m.feedErr != nil:
		right = st.paint(&st.Bad, "feed stopped: "+m.feedErr.Error()) + "  " + right
	case m.feedDone:
		right = st.paint(&st.Muted, "feed ended") + "  " + right
	}
	left := st.paint(&st.Title, m.opts.Title)
	host, kernel := "", ""
	if m.opts.Host != "" {
		host = st.paint(&st.Label, "  host ") + m.opts.Host
	}
	if m.opts.Kernel != "" {
		kernel = st.paint(&st.Label, "  kernel ") + m.opts.Kernel
	}
	scope := ""
	if m.opts.Scope != "" {
		scope = st.paint(&st.Label, "  only ") + st.paint(&st.Accent, m.opts.Scope)
	}
	room := m.width - ansi.StringWidth(right) - 1
	switch {
	case ansi.StringWidth(left+scope+host+kernel) <= room:
		left += scope + host + kernel
	case ansi.StringWidth(left+scope+host) <= room:
		left += scope + host
	case ansi.StringWidth(left+scope) <= room:
		left += scope
	case ansi.StringWidth(left+host) <= room:
		left += host
	}
	return spread(left, right, m.width)
}

// counter is one number of the counters line; the line drops the least
// important first when it is too narrow.
type counter struct {
	label, value string
	style        *lipgloss.Style
	rank         int // 0 is never dropped
}

// countersLine: the numbers to watch. Loss and skipped events are always
// there, red when not zero: the UI never hides that it misses something,
// and at any width the loss stays.
func (m *Model) countersLine() string {
	st := m.ctx.styles
	s := m.stats
	var lost *lipgloss.Style
	if s.Lost > 0 {
		lost = &st.Bad
	}
	r, ok := m.evRate.get()
	items := []counter{
		{"events/s", fmtRate(r, ok), nil, 6},
		{"sockets", itoa(s.Sockets), nil, 4},
		{"TIME_WAIT", itoa(s.TimeWait), st.state(event.StateTimeWait), 3},
		{"lost", itoa(s.Lost), lost, 0},
	}
	if s.Evicted > 0 {
		items = append(items, counter{"evicted", itoa(s.Evicted), &st.Warn, 5})
	}
	if m.uiDropped > 0 {
		items = append(items, counter{"UI skipped", itoa(m.uiDropped), &st.Bad, 1})
	}
	if n := len(m.opts.Degraded); n > 0 {
		// The sentences are on stderr at start, and in the log.
		items = append(items, counter{"degraded", itoa(n), &st.Warn, 2})
	}
	if m.opts.Rates != nil {
		items = append(items,
			counter{"TW/s", fmtRate(m.kRates.TW, m.kRatesOK), nil, 7},
			counter{"TWKilled/s", fmtRate(m.kRates.TWKilled, m.kRatesOK), nil, 8})
		if m.kRates.TCPTimeWaitOverflow > 0 {
			items = append(items, counter{"TW overflow/s", fmtRate(m.kRates.TCPTimeWaitOverflow, true), &st.Bad, 2})
		}
	}
	for width(items) > m.width {
		drop := 0
		for i := range items {
			if items[i].rank > items[drop].rank {
				drop = i
			}
		}
		if items[drop].rank == 0 {
			break
		}
		items = slices.Delete(items, drop, drop+1)
	}
	parts := make([]string, len(items))
	for i, c := range items {
		style := c.style
		if style == nil {
			style = &st.Value
		}
		parts[i] = st.paint(&st.Label, c.label+" ") + st.paint(style, c.value)
	}
	return fitWidth(strings.Join(parts, "  "), m.width)
}

// width is the counters' width on one line.
func width(cs []counter) int {
	n := 2 * max(len(cs)-1, 0)
	for _, c := range cs {
		n += len(c.label) + 1 + len(c.value)
	}
	return n
}

// tabsLine names the views, the active one highlighted; a paused log says
// so here, where the eye goes to change views, at any width.
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
	if m.player != nil {
		b.WriteString(" " + m.replayBadge())
	}
	if m.paused {
		b.WriteString(" " + st.paint(&st.Paused, " PAUSED ") +
			st.paint(&st.Muted, " log, "+plural(m.newPaused, "new event", "new events")))
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
		s = m.input.View() // a bad filter's error is under it, in the help's place
	case !m.filter.empty():
		s = st.paint(&st.Label, "filter ") + st.paint(&st.Accent, m.filter.String()) + st.paint(&st.Muted, "  (esc clears)")
	default:
		return m.alertLine() // the newest failure, if any
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

// plural counts things: "1 socket", "2 sockets".
func plural[T ~int | ~int64 | ~uint64](n T, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return itoa(n) + " " + many
}

package demo

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/stream"
	"github.com/twtrace/twtrace/tracer/text"
	"github.com/twtrace/twtrace/tui"
)

// ---------------------------------------------------------------- MODEL

// Messages from the LiveNarrator to its program.
type (
	lineMsg      Line
	countdownMsg time.Time // the TIME_WAIT's end; zero: no countdown
	awaitMsg     string    // what space does now; "": nothing
	overMsg      struct{ err error }
)

// What space does while the narration waits for it.
const (
	awaitStep      awaitMsg = "space: next step"
	awaitCountdown awaitMsg = "space: end the TIME_WAIT now"
	awaitOver      awaitMsg = "space: close · q: quit"
)

// liveModel is the live view with the narration in a pane on its right.
type liveModel struct {
	inner tui.Model
	netns uint32
	loc   *time.Location
	msgs  <-chan tea.Msg
	keys  chan<- struct{}

	w, h      int
	lesson    string
	lines     []Line
	lastEvent int // index in lines of the newest quoted event; -1: none
	until     time.Time
	await     awaitMsg
	over      *overMsg
	st        paneStyles
}

type paneStyles struct {
	bold, muted, bad, tw, hl, hint, sep lipgloss.Style
}

func newPaneStyles() paneStyles {
	return paneStyles{
		bold:  lipgloss.NewStyle().Bold(true),
		muted: lipgloss.NewStyle().Faint(true),
		bad:   lipgloss.NewStyle().Foreground(lipgloss.Red).Bold(true),
		tw:    lipgloss.NewStyle().Foreground(lipgloss.Yellow),
		hl:    lipgloss.NewStyle().Reverse(true),
		hint:  lipgloss.NewStyle().Reverse(true).Bold(true),
		sep:   lipgloss.NewStyle().Faint(true),
	}
}

func newLiveModel(inner tui.Model, netns uint32, loc *time.Location, msgs <-chan tea.Msg, keys chan<- struct{}) liveModel {
	return liveModel{inner: inner, netns: netns, loc: loc, msgs: msgs, keys: keys, lastEvent: -1,
		st: newPaneStyles(), w: 80, h: 24}
}

// paneWidth is the narration's share of the screen, separator included.
func (m *liveModel) paneWidth() int {
	return min(max(m.w*2/5, 30), 64, m.w/2)
}

// ---------------------------------------------------------------- UPDATE

// Init starts the live view and the wait for the narration.
func (m liveModel) Init() tea.Cmd { return tea.Batch(m.inner.Init(), m.next()) }

// next waits for the narrator's next message.
func (m liveModel) next() tea.Cmd {
	msgs := m.msgs
	return func() tea.Msg { return <-msgs }
}

// Update takes the narration and space; the rest goes to the live view.
func (m liveModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
		return m.passOn(tea.WindowSizeMsg{Width: m.w - m.paneWidth(), Height: m.h})
	case lineMsg:
		m.add(Line(msg))
		return m, m.next()
	case countdownMsg:
		m.until = time.Time(msg)
		return m, m.next()
	case awaitMsg:
		m.await = msg
		return m, m.next()
	case overMsg:
		m.over = &msg
		return m, m.next()
	case tea.KeyPressMsg:
		if m.await != "" && msg.String() == "space" {
			select {
			case m.keys <- struct{}{}:
			default:
			}
			m.await = ""
			return m, nil
		}
	}
	return m.passOn(msg)
}

func (m liveModel) passOn(msg tea.Msg) (tea.Model, tea.Cmd) {
	inner, cmd := m.inner.Update(msg)
	m.inner = inner.(tui.Model)
	return m, cmd
}

// add takes a line of narration; an event's socket becomes the one the
// Sockets view shows selected.
func (m *liveModel) add(l Line) {
	if l.Kind == LineTitle {
		m.lesson = l.Lesson
	}
	m.lines = append(m.lines, l)
	if l.Kind == LineEvent && l.Event != nil {
		m.lastEvent = len(m.lines) - 1
		m.inner = m.inner.Follow(m.netns, l.Port, l.Event.Cookie)
	}
}

// ---------------------------------------------------------------- VIEW

// View draws the live view on the left and the narration on the right.
func (m liveModel) View() tea.View {
	v := m.inner.View()
	left := strings.Split(v.Content, "\n")
	pw := m.paneWidth()
	lw := m.w - pw
	pane := m.pane(pw-2, m.h)
	var b strings.Builder
	sep := m.st.sep.Render("│")
	for i := range m.h {
		l := ""
		if i < len(left) {
			l = left[i]
		}
		if n := ansi.StringWidth(l); n < lw {
			l += strings.Repeat(" ", lw-n)
		} else if n > lw {
			l = ansi.Truncate(l, lw, "")
		}
		b.WriteString(l + sep + " " + pane[i])
		if i < m.h-1 {
			b.WriteByte('\n')
		}
	}
	v.Content = b.String()
	v.WindowTitle = "twtrace demo " + m.lesson
	return v
}

// pane is the narration's h lines of at most w cells: the newest at the
// bottom, above the countdown and what space does.
func (m *liveModel) pane(w, h int) []string {
	var foot []string
	if !m.until.IsZero() {
		foot = append(foot, m.st.tw.Render("TIME_WAIT ends in "+text.Countdown(time.Until(m.until))))
	}
	if m.over != nil {
		if m.over.err != nil {
			foot = append(foot, m.wrap(m.st.bad, m.over.err.Error(), w)...)
		} else {
			foot = append(foot, m.st.bold.Render("The lesson is over; its namespace is gone."))
		}
	}
	if m.await != "" {
		foot = append(foot, m.st.hint.Render(" "+string(m.await)+" "))
	}
	var body []string
	for i := range m.lines {
		body = append(body, m.render(&m.lines[i], i == m.lastEvent, w)...)
	}
	room := max(h-len(foot), 0)
	body = body[max(len(body)-room, 0):]
	out := append(body, make([]string, room-len(body))...)
	out = append(out, foot...)
	for i := range out {
		out[i] = ansi.Truncate(out[i], w, "…")
	}
	return out[:h]
}

// render is one line of narration as the pane shows it, wrapped to w.
func (m *liveModel) render(l *Line, newest bool, w int) []string {
	st := &m.st
	switch l.Kind {
	case LineTitle:
		return append(m.wrap(st.bold, "twtrace demo "+l.Lesson, w), m.wrap(st.muted, l.Text, w)...)
	case LineStep:
		return append([]string{""}, m.wrap(st.bold, strconv.Itoa(l.Step)+". "+l.Text, w)...)
	case LineSay:
		return m.wrap(lipgloss.NewStyle(), l.Text, w)
	case LineEvent:
		style := lipgloss.NewStyle()
		switch class, _ := text.Classify(l.Event); class {
		case text.ClassFailure, text.ClassLoss:
			style = st.bad
		case text.ClassTimeWait:
			style = st.tw
		}
		mark := "> "
		if newest {
			style, mark = st.hl, "▶ "
		}
		return m.wrap(style, mark+quoteShort(l.Event, m.loc), w)
	case LineVerdict:
		var b bytes.Buffer
		_ = stream.WriteVerdict(&b, l.Report, "", false)
		out := m.wrap(st.muted, "$ "+l.Text, w)
		for _, s := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
			out = append(out, m.wrap(st.bold, s, w)...)
		}
		if len(l.Report.Fixes) > 0 {
			out = append(out, m.wrap(lipgloss.NewStyle(), "first fix: "+l.Report.Fixes[0].Text, w)...)
		}
		return out
	case LineFinding:
		f := l.Finding
		out := append(m.wrap(st.muted, "$ "+l.Text, w), m.wrap(st.bold, f.Code+" "+f.Summary, w)...)
		if len(f.Fixes) > 0 {
			out = append(out, m.wrap(lipgloss.NewStyle(), "first fix: "+f.Fixes[0].Text, w)...)
		}
		for _, nf := range f.NotFixes {
			out = append(out, m.wrap(lipgloss.NewStyle(), "not a fix: "+nf, w)...)
		}
		return out
	case LineDone:
		return append([]string{""}, m.wrap(st.bold, "What it shows: "+l.Text, w)...)
	}
	return nil
}

// wrap cuts s into lines of w cells, each in style.
func (m *liveModel) wrap(style lipgloss.Style, s string, w int) []string {
	lines := strings.Split(ansi.Wrap(s, max(w, 8), ""), "\n")
	for i := range lines {
		lines[i] = style.Render(strings.TrimRight(lines[i], " "))
	}
	return lines
}

// quoteShort is an event in the words of package text, for a narrow pane:
// time, owner, the two ends, what happened.
func quoteShort(ev *event.Event, loc *time.Location) string {
	var b []byte
	for _, c := range []text.Column{text.ColTime, text.ColOwner, text.ColLocal, text.ColRemote} {
		n := len(b)
		b = text.AppendColumn(b, ev, c, loc)
		if len(b) > n {
			b = append(b, ' ')
		}
	}
	return string(text.AppendSummary(b, ev))
}

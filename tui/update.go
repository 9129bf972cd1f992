package tui

import (
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/twtrace/twtrace/tracer/capture"
)

// ---------------------------------------------------------------- UPDATE

// Update handles a message.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	cmd := m.update(msg)
	m.settle()
	return m, cmd
}

func (m *Model) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.resize(msg.Width, msg.Height)
		return nil
	case tea.BackgroundColorMsg:
		m.setDark(msg.IsDark())
		return nil
	case tickMsg:
		return m.onTick()
	case kickMsg:
		return m.maybeRefresh()
	case EventsMsg:
		m.addEvents(msg, 0)
		return nil
	case snapshotMsg:
		m.onSnapshot(msg)
		return m.maybeRefresh()
	case tea.KeyPressMsg:
		cmd := m.onKey(msg)
		return tea.Batch(cmd, m.maybeRefresh())
	case cmdPanic:
		m.log.Error("query panicked", "panic", msg.value, "stack", string(msg.stack))
		panic(msg.value) // for runProgram, on this goroutine
	}
	if m.filtering {
		// The input's own messages (paste, ...).
		var cmd tea.Cmd
		*m.input, cmd = m.input.Update(msg)
		return cmd
	}
	return nil
}

// onTick collects what the feed delivered, moves the clock and re-arms.
// The clock moves while the log is paused: countdowns keep running.
func (m *Model) onTick() tea.Cmd {
	now := m.opts.Clock()
	m.readPosition() // before the drain: the position is at least the events'
	if m.pending != nil {
		d := m.pending.drain(m.spare)
		if d.resets != m.resets {
			m.resets = d.resets
			m.restart() // the events drained come after the last restart
		}
		m.addEvents(d.events, d.dropped)
		for i := range d.fails {
			m.failures.add(&d.fails[i]) // after the batch they came after
		}
		m.failures.total += d.failsLost
		m.failed.sync()
		m.spare = d.events
		if d.done && !m.feedDone {
			m.feedDone, m.feedErr = true, d.err
		}
	}
	m.ctx.now = now
	m.evRate.observe(m.seen, now)
	m.stats = m.tab.Stats()
	return tea.Batch(m.tick(), m.maybeRefresh())
}

// onKey handles a key press and returns the command it needs.
func (m *Model) onKey(k tea.KeyPressMsg) tea.Cmd {
	keys := m.ctx.keys
	if m.filtering {
		return m.onFilterKey(k)
	}
	m.status = ""
	if m.onReplayKey(k) {
		return nil
	}
	switch {
	case key.Matches(k, keys.Quit):
		return tea.Quit
	case key.Matches(k, keys.Help):
		m.help.ShowAll = !m.help.ShowAll
	case key.Matches(k, keys.NextView):
		m.switchTo((m.active + 1) % numViews)
	case key.Matches(k, keys.PrevView):
		m.switchTo((m.active + numViews - 1) % numViews)
	case key.Matches(k, keys.Views):
		m.switchTo(viewID(k.Text[0] - '1'))
	case key.Matches(k, keys.Filter):
		return m.openLine(false)
	case key.Matches(k, keys.Pause):
		m.setPaused(!m.paused)
	case key.Matches(k, keys.Back):
		m.back()
	case key.Matches(k, keys.Select):
		m.selectRow()
	default:
		m.navigate(k)
	}
	return nil
}

// onFilterKey edits the filter line; enter applies it, esc leaves it as it was.
func (m *Model) onFilterKey(k tea.KeyPressMsg) tea.Cmd {
	keys := m.ctx.keys
	switch {
	case k.String() == "ctrl+c":
		return tea.Quit // q is a letter here, but ctrl+c always quits
	case key.Matches(k, keys.Cancel):
		m.closeLine()
		m.status = ""
	case key.Matches(k, keys.Apply) && m.seekLine:
		at, err := parseSeek(m.input.Value(), m.ctx.now, m.ctx.loc)
		if err != nil {
			m.status = err.Error()
			return nil
		}
		m.status = ""
		m.closeLine()
		m.player.Control(capture.PlayControl{Op: capture.PlaySeek, At: at})
		m.readPosition()
	case key.Matches(k, keys.Apply):
		f, err := parseFilter(m.input.Value())
		if err != nil {
			m.status = err.Error()
			return nil // stay in the line, so the typo can be fixed
		}
		m.status = "" // the error of a previous try is fixed
		m.closeLine()
		m.drilled = false
		m.setFilter(f)
	default:
		var cmd tea.Cmd
		*m.input, cmd = m.input.Update(k)
		return cmd
	}
	return nil
}

// openLine gives the keyboard to the line at the bottom: the filter, or
// (seek) a time to go to in a replay.
func (m *Model) openLine(seek bool) tea.Cmd {
	m.filtering, m.seekLine = true, seek
	if seek {
		m.input.Prompt, m.input.Placeholder = seekPrompt, seekPlaceholder
		m.input.SetValue("")
	} else {
		m.input.Prompt, m.input.Placeholder = filterPrompt, filterExample
		m.input.SetValue(m.filter.text)
		m.input.CursorEnd()
	}
	return m.input.Focus()
}

// closeLine gives the keyboard back to the views.
func (m *Model) closeLine() {
	m.filtering, m.seekLine = false, false
	m.input.Blur()
}

// navigate passes movement keys to the active view.
func (m *Model) navigate(k tea.KeyPressMsg) {
	switch m.active {
	case viewPorts:
		m.ports.move(k)
	case viewSockets:
		m.sockets.move(k)
	case viewEvents:
		m.events.move(k)
	case viewRemotes:
		m.remotes.move(k)
	case viewFailures:
		m.failed.move(k)
	case viewAdvice:
		m.advice.move(k)
	}
}

// switchTo shows a view; its data is fetched at once. The full help is
// about the view it was opened on: it closes.
func (m *Model) switchTo(v viewID) {
	if v < 0 || v >= numViews || v == m.active {
		return
	}
	m.active = v
	m.help.ShowAll = false
	m.refresh.want++
}

// setFilter applies a filter to every view.
func (m *Model) setFilter(f filter) {
	m.filter = f
	m.ports.setFilter(&m.filter)
	m.remotes.setFilter(&m.filter)
	m.events.setFilter(&m.filter)
	m.refresh.want++ // the sockets view filters in the table's query
}

// selectRow drills down: a port to its sockets, a socket to its timeline.
func (m *Model) selectRow() {
	switch m.active {
	case viewPorts:
		p, ok := m.ports.selected()
		if !ok {
			return
		}
		if p.folded > 0 {
			m.switchTo(viewRemotes) // client ports: by destination
			return
		}
		ns := uint32(0)
		if p.NetNS != m.ctx.hostNetNS {
			ns = p.NetNS
		}
		m.setFilter(portFilter(ns, p.Port))
		m.drilled = true
		m.sockets.resetCursor()
		m.switchTo(viewSockets)
	case viewSockets:
		if m.sockets.openDetail() {
			m.refresh.want++
		}
	}
}

// back undoes the last step: the full help, the timeline, then a
// drill-down or a filter.
func (m *Model) back() {
	switch {
	case m.help.ShowAll:
		m.help.ShowAll = false
	case m.active == viewSockets && m.sockets.detail:
		m.sockets.detail = false
	case m.drilled:
		m.drilled = false
		m.setFilter(filter{})
		m.switchTo(viewPorts)
	case !m.filter.empty():
		m.setFilter(filter{})
	}
}

// setPaused freezes or thaws the event log. The feed keeps running, and
// the other views, the countdowns and the header stay live; the header says
// how many events came since.
func (m *Model) setPaused(p bool) {
	m.paused = p
	m.newPaused = 0
	m.events.setPaused(p)
}

// onSnapshot takes the result of a table query.
func (m *Model) onSnapshot(s snapshotMsg) {
	m.refresh.inFlight = false
	m.refresh.cost = s.took
	if s.kernel != nil {
		m.kRates, m.kRatesOK = s.kernel.rates, s.kernel.ok
	}
	m.failures.diagnosed(s.diagnosed) // whatever the view: they are the failures'
	if s.gen != m.refresh.want {
		return // asked for before the view or the filter changed: ask again
	}
	m.refresh.got = s.gen
	m.stats = s.stats
	switch s.view {
	case viewPorts:
		m.ports.setData(s.ports, s.now, &m.filter)
	case viewSockets:
		m.sockets.setData(s)
	case viewRemotes:
		m.remotes.setData(s.remotes, &m.filter)
	case viewAdvice:
		m.advice.findings = s.findings
	}
	if s.took > slowQuery {
		m.log.Info("slow table query", "view", viewNames[s.view], "took", s.took,
			"sockets", s.stats.Sockets)
	}
}

package tui

import (
	"context"

	tea "charm.land/bubbletea/v2"

	"github.com/twtrace/twtrace/tracer/table"
)

// ---------------------------------------------------------------- UPDATE

// RunWrapped is Run with the live view's model inside a model of the
// caller's: wrap gets the model Run would run and returns the one to run
// (twtrace demo draws its narration beside the views). The wrapper passes
// the messages it does not handle on to the model, and sizes it.
func RunWrapped(ctx context.Context, feed Feed, opts Options, wrap func(Model) tea.Model) error {
	return run(ctx, feed, opts, wrap)
}

// Follow shows the Sockets view of one port (its sockets and the
// connections to it), with the socket of cookie selected as soon as the
// table has it (0: keep the selection): a caller that narrates what
// happens on the port keeps the view on the socket it talks about. Moving
// the cursor stops following.
func (m Model) Follow(netns uint32, port uint16, cookie uint64) Model {
	if netns == m.ctx.hostNetNS {
		netns = 0
	}
	if f := portFilter(netns, port); f.String() != m.filter.String() || f.ev.NetNS != m.filter.ev.NetNS {
		m.setFilter(f)
	}
	m.drilled = true // esc goes back to Ports, as after a drill-down
	m.sockets.detail = false
	if cookie != 0 {
		m.sockets.follow = cookie
	}
	m.switchTo(viewSockets)
	m.refresh.want++
	m.settle()
	return m
}

// Selected returns the socket the Sockets view's cursor is on, as of the
// view's last query; false when there is none.
func (m Model) Selected() (table.Socket, bool) {
	v := m.sockets
	if i := v.grid.Cursor(); i >= 0 && i < len(v.rows) {
		return v.rows[i], true
	}
	return table.Socket{}, false
}

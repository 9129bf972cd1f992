package tui

import (
	"time"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/text"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/twtrace/twtrace/tracer/table"
	"github.com/twtrace/twtrace/tui/grid"
)

// ---------------------------------------------------------------- MODEL

// socketsView lists sockets as ss -tanp -o does, in the table's order
// (namespace, local port, state, remote), and opens one's timeline.
type socketsView struct {
	ctx  *uiContext
	grid grid.Model

	rows    []table.Socket // the last query, as the table sorted it
	matched int            // how many sockets it matched (rows stops at socketsLimit)
	at      time.Time      // when it was taken (the UI's clock)
	sel     uint64         // the selected socket's cookie: the cursor follows it
	follow  uint64         // a cookie to select as soon as a query has it (Model.Follow); 0: none

	detail       bool          // the timeline is open
	detailCookie uint64        //
	detailSock   *table.Socket // the last reading; nil: gone from the table
	showNetNS    bool
	width        int
	height       int
}

var (
	socketCols = []grid.Column{
		{Title: "STATE", Width: 11},
		{Title: "LOCAL", Width: 15, Flex: 1},
		{Title: "REMOTE", Width: 15, Flex: 1},
		{Title: "OWNER", Width: 14, Flex: 1, Drop: 1},
		{Title: "AGE", Width: 7, Align: grid.Right},
		{Title: "TIMER", Width: 7, Align: grid.Right},
	}
	socketNetNSCol = grid.Column{Title: "NETNS", Width: 10, Align: grid.Right, Drop: 2}
)

func newSocketsView(ctx *uiContext) *socketsView {
	v := &socketsView{ctx: ctx, grid: grid.New(socketCols...)}
	v.grid.KeyMap = ctx.keys.Nav
	v.grid.Styles = ctx.styles.Grid
	return v
}

func (v *socketsView) setSize(w, h int) {
	v.width, v.height = w, h
	v.grid.SetSize(w, h-1)
}

// ---------------------------------------------------------------- UPDATE

func (v *socketsView) move(k tea.KeyPressMsg) {
	if !v.detail && v.grid.Move(k) {
		v.follow = 0 // the user chose
		if i := v.grid.Cursor(); i >= 0 {
			v.sel = v.rows[i].Cookie
		}
	}
}

// resetCursor starts a new list at its top (a drill-down).
func (v *socketsView) resetCursor() {
	v.sel = 0
	v.grid.SetCursor(0)
}

// openDetail opens the selected socket's timeline.
func (v *socketsView) openDetail() bool {
	i := v.grid.Cursor()
	if i < 0 {
		return false
	}
	s := v.rows[i]
	v.detail, v.detailCookie, v.detailSock = true, s.Cookie, &s
	return true
}

// setData takes a query's result.
func (v *socketsView) setData(s snapshotMsg) {
	if s.detailOnly {
		if v.detail && v.detailCookie != 0 {
			v.detailSock = s.detail
		}
		return
	}
	v.rows, v.at, v.matched = s.sockets, s.now, s.matched
	netns, cur := false, -1
	for i := range v.rows {
		netns = netns || v.rows[i].NetNS != v.ctx.hostNetNS
		if v.rows[i].Cookie == v.sel {
			cur = i
		}
	}
	for i := range v.rows {
		if v.follow != 0 && v.rows[i].Cookie == v.follow {
			cur, v.follow = i, 0
		}
	}
	if netns != v.showNetNS {
		v.showNetNS = netns
		cols := socketCols
		if netns {
			cols = append(append([]grid.Column(nil), socketCols...), socketNetNSCol)
		}
		v.grid.SetColumns(cols)
	}
	v.grid.SetRows(len(v.rows))
	if cur >= 0 {
		v.grid.SetCursor(cur)
	}
	if i := v.grid.Cursor(); i >= 0 {
		v.sel = v.rows[i].Cookie
	}
}

// ---------------------------------------------------------------- VIEW

func (v *socketsView) view(f *filter) string {
	if v.detail {
		return v.detailView()
	}
	st := v.ctx.styles
	count := itoa(len(v.rows))
	if v.matched > len(v.rows) {
		count = "first " + count + " of " + itoa(v.matched)
	}
	title := st.paint(&st.ViewTitle, "Sockets") + st.paint(&st.Muted, " "+count)
	if !f.empty() {
		title += st.paint(&st.Muted, " matching ") + st.paint(&st.Accent, f.String())
	}
	title += notHereNote(v.ctx, f, viewSockets)
	if v.ctx.querying && len(v.rows) > 0 {
		title += st.paint(&st.Muted, " · querying…")
	} else if age := v.ctx.now.Sub(v.at); !v.at.IsZero() && age >= time.Second {
		// Large tables are queried less often: say how old the list is
		// (countdowns and ages are computed for now, not for then).
		title += st.paint(&st.Muted, " · list as of "+text.Age(age)+" ago")
	}
	body := v.grid.View(v.row)
	if len(v.rows) == 0 {
		body = emptyNote(body, v.ctx, "no socket matches")
	}
	return fitWidth(title, v.grid.Width()) + "\n" + body
}

func (v *socketsView) row(i int, cells []grid.Cell) []grid.Cell {
	st := v.ctx.styles
	s := &v.rows[i]
	closed := !s.Closed.IsZero()
	stateStyle := st.state(s.State)
	var rowStyle *lipgloss.Style
	if closed {
		rowStyle, stateStyle = &st.Muted, &st.Muted
	}
	age := "-"
	if since := s.Since; closed {
		age = text.Age(v.ctx.now.Sub(s.Closed))
	} else if !since.IsZero() {
		age = text.Age(v.ctx.now.Sub(since))
	}
	timer := grid.Cell{}
	switch {
	case closed:
		timer = grid.Cell{Text: "closed", Style: rowStyle}
	case s.State == event.StateTimeWait && !s.Expires.IsZero():
		timer = grid.Cell{Text: text.Countdown(s.Expires.Sub(v.ctx.now)), Style: stateStyle}
	}
	cells = append(cells,
		grid.Cell{Text: s.State.String(), Style: stateStyle},
		grid.Cell{Text: text.Addr(s.Src), Style: rowStyle},
		grid.Cell{Text: text.Addr(s.Dst), Style: rowStyle},
		grid.Cell{Text: text.Owner(s.Owner, &s.OwnerComm), Style: rowStyle},
		grid.Cell{Text: age, Style: rowStyle},
		timer)
	if v.showNetNS {
		ns := ""
		if s.NetNS != v.ctx.hostNetNS {
			ns = itoa(s.NetNS)
		}
		cells = append(cells, grid.Cell{Text: ns, Style: rowStyle})
	}
	return cells
}

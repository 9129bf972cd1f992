package tui

import (
	"strconv"
	"strings"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/text"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/twtrace/twtrace/tracer/table"
	"github.com/twtrace/twtrace/tui/grid"
)

// ---------------------------------------------------------------- MODEL

// remotesView shows the TIME_WAIT sockets towards each remote endpoint
// against the size of the local port range: each holds a local port that
// connect() cannot use towards that endpoint until it ends. Near 100%,
// connect() fails with EADDRNOTAVAIL (and bind(0) with EADDRINUSE).
type remotesView struct {
	ctx  *uiContext
	grid grid.Model

	all       []table.RemoteSummary // the last query, most TIME_WAIT first
	rows      []int                 // indexes into all that pass the filter
	filter    *filter               // the filter the rows were chosen by
	showNetNS bool
	height    int
}

// Shares of the port range from which a row is a warning, then a danger.
const (
	exhaustWarn = 0.25
	exhaustBad  = 0.5
)

var (
	remoteCols = []grid.Column{
		{Title: "REMOTE", Width: 21, Flex: 1},
		{Title: "TIME_WAIT", Width: 9, Align: grid.Right},
		{Title: "ESTAB", Width: 6, Align: grid.Right},
		{Title: "TOTAL", Width: 6, Align: grid.Right, Drop: 2},
		{Title: "LOCAL PORT RANGE HELD", Width: 21, Flex: 1},
	}
	remoteNetNSCol = grid.Column{Title: "NETNS", Width: 10, Align: grid.Right, Drop: 1}
)

func newRemotesView(ctx *uiContext) *remotesView {
	v := &remotesView{ctx: ctx, grid: grid.New(remoteCols...), filter: &filter{}}
	v.grid.KeyMap = ctx.keys.Nav
	v.grid.Styles = ctx.styles.Grid
	return v
}

func (v *remotesView) setSize(w, h int) {
	v.height = h
	v.grid.SetSize(w, h-1)
}

// ---------------------------------------------------------------- UPDATE

func (v *remotesView) move(k tea.KeyPressMsg) { v.grid.Move(k) }

func (v *remotesView) setData(rs []table.RemoteSummary, f *filter) {
	v.all = rs
	netns := false
	for i := range rs {
		netns = netns || rs[i].NetNS != v.ctx.hostNetNS
	}
	if netns != v.showNetNS {
		v.showNetNS = netns
		cols := remoteCols
		if netns {
			cols = append([]grid.Column{remoteCols[0], remoteNetNSCol}, remoteCols[1:]...)
		}
		v.grid.SetColumns(cols)
	}
	v.setFilter(f)
}

func (v *remotesView) setFilter(f *filter) {
	v.filter = f
	v.rows = v.rows[:0]
	for i := range v.all {
		if f.matchRemote(&v.all[i]) {
			v.rows = append(v.rows, i)
		}
	}
	v.grid.SetRows(len(v.rows))
}

// ---------------------------------------------------------------- VIEW

// portRange is the ip_local_port_range of a remote's namespace, the ports
// its connect() picks from (the host's when the table does not know it).
func (v *remotesView) portRange(r *table.RemoteSummary) [2]int {
	return nsRange(r.PortRange, v.ctx.portRange)
}

func (v *remotesView) view() string {
	st := v.ctx.styles
	pr, same, guessed := v.ctx.portRange, true, false
	for k, i := range v.rows {
		r := &v.all[i]
		if k == 0 {
			pr = v.portRange(r)
		}
		same = same && v.portRange(r) == pr
		guessed = guessed || r.Guessed > 0
	}
	against := "each namespace's ip_local_port_range"
	if same {
		against = "ip_local_port_range " + itoa(pr[0]) + "-" + itoa(pr[1]) + " (" + itoa(pr[1]-pr[0]+1) + " ports)"
	}
	note := ""
	if guessed {
		note = " · ? client taken by its port"
	}
	title := st.paint(&st.ViewTitle, "Remotes") + st.paint(&st.Muted, " "+plural(len(v.rows), "endpoint", "endpoints")) +
		notHereNote(v.ctx, v.filter, viewRemotes) + st.paint(&st.Muted, " · TIME_WAIT towards each vs "+against+note)
	body := v.grid.View(v.row)
	if len(v.rows) == 0 {
		body = emptyNote(body, v.ctx, "no connection to a remote endpoint")
	}
	return fitWidth(title, v.grid.Width()) + "\n" + body
}

func (v *remotesView) row(i int, cells []grid.Cell) []grid.Cell {
	st := v.ctx.styles
	r := &v.all[v.rows[i]]
	remote := text.Addr(r.Remote)
	if r.Guessed > 0 {
		remote += " ?" // some of its sockets may be a server's (see table.SideClientGuess)
	}
	cells = append(cells, grid.Cell{Text: remote})
	if v.showNetNS {
		ns := ""
		if r.NetNS != v.ctx.hostNetNS {
			ns = itoa(r.NetNS)
		}
		cells = append(cells, grid.Cell{Text: ns})
	}
	pr := v.portRange(r)
	share := r.Exhaustion(pr[1] - pr[0] + 1)
	var style *lipgloss.Style
	switch {
	case share >= exhaustBad:
		style = &st.Bad
	case share >= exhaustWarn:
		style = &st.Warn
	}
	w := v.grid.ColumnWidth(len(cells) + 3)
	return append(cells,
		countCell(r.TimeWait, st.state(event.StateTimeWait)),
		countCell(r.Established, nil),
		grid.Cell{Text: itoa(r.Total)},
		grid.Cell{Text: shareBar(share, w), Style: style})
}

// shareBar is "██████░░░░ 61.2%" in w cells.
func shareBar(share float64, w int) string {
	pct := strconv.FormatFloat(share*100, 'f', 1, 64) + "%"
	if share > 0 && share < 0.0005 {
		pct = "<0.1%"
	}
	n := w - len(pct) - 1
	if n < 4 {
		return pct
	}
	full := min(int(share*float64(n)+0.5), n)
	return strings.Repeat("█", full) + strings.Repeat("░", n-full) + " " + pct
}

package tui

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/text"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/twtrace/twtrace/tracer/table"
	"github.com/twtrace/twtrace/tui/grid"
)

// ---------------------------------------------------------------- MODEL

// portsView has one row per local port: what holds it, how busy it is,
// when its last TIME_WAIT ends, and whether binds to it fail.
type portsView struct {
	ctx  *uiContext
	grid grid.Model

	all    []portRow  // the last query, sorted by activity
	folded []portRow  // ephemeral ports, one row per namespace
	rows   []*portRow // what is shown: rows of all and folded
	hidden int        // idle ports not shown
	nFold  int        // ports folded
	rates  portRates
	filter *filter // the filter the rows were chosen by

	// Once the user has moved the cursor, the selected port keeps it when
	// rows are re-sorted; until then the cursor stays on the busiest.
	sel       portKey
	moved     bool
	showNetNS bool
	height    int
}

type portKey struct {
	netns  uint32
	port   uint16
	folded bool
}

type portRow struct {
	table.PortSummary
	rate   float64 // transitions per second
	rateOK bool
	// folded > 0: the row stands for that many ports of the local port
	// range (client side) of its namespace.
	folded int
}

func (p *portRow) key() portKey { return portKey{p.NetNS, p.Port, p.folded > 0} }

// byActivity orders ports busiest first: transitions per second, then
// sockets, then failures.
func byActivity(a, b *portRow) int {
	return cmp.Or(
		// The row of client sockets sums many ports: it goes after the
		// service ports, however busy.
		cmp.Compare(min(a.folded, 1), min(b.folded, 1)),
		cmp.Compare(b.rate, a.rate),
		cmp.Compare(b.Total(), a.Total()),
		cmp.Compare(b.BindFailures+b.ListenFailures, a.BindFailures+a.ListenFailures),
		cmp.Compare(a.NetNS, b.NetNS),
		cmp.Compare(a.folded, b.folded),
		cmp.Compare(a.Port, b.Port))
}

// portRates measures every port's transitions per second over the same
// windows of at least rateWindow. Until the first window ends no port has a
// rate ("-"); then every port has one, a port first seen in the window
// counted from zero: the table counts a port from its first transition and
// lists it from then on, so a port not listed before had none.
type portRates struct {
	start  time.Time           // the current window's start
	counts map[portKey]uint64  // Transitions at start
	rates  map[portKey]float64 // over the last complete window
	ok     bool                // a window has ended
}

// observe takes a query's counts at a time.
func (r *portRates) observe(ports []table.PortSummary, at time.Time) {
	dt := at.Sub(r.start)
	if r.counts == nil || dt < 0 {
		// The first reading, or the clock stepped back (a replay restarted).
		r.start, r.counts, r.rates, r.ok = at, make(map[portKey]uint64, len(ports)), nil, false
		for i := range ports {
			r.counts[portKey{netns: ports[i].NetNS, port: ports[i].Port}] = ports[i].Transitions
		}
		return
	}
	if dt < rateWindow {
		return
	}
	rates := make(map[portKey]float64, len(ports))
	counts := make(map[portKey]uint64, len(ports))
	for i := range ports {
		p := &ports[i]
		k := portKey{netns: p.NetNS, port: p.Port}
		d := p.Transitions - r.counts[k]
		if p.Transitions < r.counts[k] {
			d = p.Transitions // the counter restarted
		}
		rates[k], counts[k] = float64(d)/dt.Seconds(), p.Transitions
	}
	r.start, r.counts, r.rates, r.ok = at, counts, rates, true
}

// get returns a port's rate, and whether there are rates yet.
func (r *portRates) get(k portKey) (float64, bool) { return r.rates[k], r.ok }

// Columns; NETNS only when some port is in another namespace. A narrow
// terminal keeps what answers "why is my bind refused": the port, its
// TIME_WAITs and when they end, the failures, the owners.
var (
	portCols = []grid.Column{
		{Title: "PORT", Width: 5, Align: grid.Right},
		{Title: "LISTEN", Width: 6, Align: grid.Right, Drop: 3},
		{Title: "ESTAB", Width: 6, Align: grid.Right, Drop: 4},
		{Title: "TIME_WAIT", Width: 9, Align: grid.Right},
		{Title: "OTHER", Width: 5, Align: grid.Right, Drop: 6},
		{Title: "TW ENDS IN", Width: 10, Align: grid.Right},
		{Title: "TRANS/S", Width: 7, Align: grid.Right, Drop: 5},
		{Title: "BINDFAIL", Width: 8, Align: grid.Right},
		{Title: "OWNERS", Width: 12, Flex: 1},
		{Title: "WHY (last refused bind)", Width: 24, Flex: 2, Drop: 7},
	}
	netnsCol = grid.Column{Title: "NETNS", Width: 10, Align: grid.Right, Drop: 2}
)

func newPortsView(ctx *uiContext) *portsView {
	v := &portsView{ctx: ctx, grid: grid.New(portCols...), filter: &filter{}}
	v.grid.KeyMap = ctx.keys.Nav
	v.grid.Styles = ctx.styles.Grid
	return v
}

func (v *portsView) setSize(w, h int) {
	v.height = h
	v.grid.SetSize(w, h-1) // the title line
}

// selected returns the port under the cursor.
func (v *portsView) selected() (*portRow, bool) {
	i := v.grid.Cursor()
	if i < 0 {
		return nil, false
	}
	return v.rows[i], true
}

// ---------------------------------------------------------------- UPDATE

func (v *portsView) move(k tea.KeyPressMsg) {
	if v.grid.Move(k) {
		v.moved = true
		v.remember()
	}
}

// remember notes the selected port, to find it again after a query.
func (v *portsView) remember() {
	if p, ok := v.selected(); ok {
		v.sel = p.key()
	}
}

// setData takes a query's result: rates from the change of each port's
// counters since the previous query, then the order by activity.
func (v *portsView) setData(ports []table.PortSummary, at time.Time, f *filter) {
	v.all = v.all[:0]
	v.rates.observe(ports, at)
	netns := false
	for i := range ports {
		p := &ports[i]
		r, ok := v.rates.get(portKey{netns: p.NetNS, port: p.Port})
		// The table's row of connect()-made sockets is a fold already.
		v.all = append(v.all, portRow{PortSummary: *p, rate: r, rateOK: ok, folded: p.Clients})
		netns = netns || p.NetNS != v.ctx.hostNetNS
	}
	slices.SortFunc(v.all, func(a, b portRow) int { return byActivity(&a, &b) })
	if netns != v.showNetNS {
		v.showNetNS = netns
		cols := portCols
		if netns {
			cols = slices.Insert(slices.Clone(portCols), 1, netnsCol)
		}
		v.grid.SetColumns(cols)
	}
	v.setFilter(f)
}

// setFilter selects the rows to show. Ports with no socket, no activity
// and no failure are left out. Ports of the local port range that nothing
// listens on and no bind() failed on are a client's ephemeral ports: each
// holds one or two sockets, there can be thousands, and they would bury the
// service ports, so they are folded into one row per namespace (the Remotes
// view shows them by destination). A port filter shows them one by one.
func (v *portsView) setFilter(f *filter) {
	v.filter = f
	v.rows, v.folded, v.hidden, v.nFold = v.rows[:0], v.folded[:0], 0, 0
	fold := len(f.ev.Ports) == 0 && len(f.ev.LocalPorts) == 0
	for i := range v.all {
		p := &v.all[i]
		switch {
		case !f.matchPort(&p.PortSummary):
		case p.Total() == 0 && p.rate == 0 && p.BindFailures+p.ListenFailures == 0:
			v.hidden++
		case fold && v.ephemeral(p):
			v.fold(p)
		default:
			v.rows = append(v.rows, p)
		}
	}
	if len(v.folded) > 0 {
		for i := range v.folded {
			v.rows = append(v.rows, &v.folded[i])
		}
		slices.SortStableFunc(v.rows, byActivity)
	}
	v.grid.SetRows(len(v.rows))
	for i, p := range v.rows {
		if v.moved && p.key() == v.sel {
			v.grid.SetCursor(i)
			break
		}
	}
	v.remember()
}

// ephemeral: a port of its namespace's local range with no listener, no
// failure, and that no listener or bind() ever named (a stopped server's
// port keeps its row).
func (v *portsView) ephemeral(p *portRow) bool {
	r := v.portRange(&p.PortSummary)
	return int(p.Port) >= r[0] && int(p.Port) <= r[1] && p.States[event.StateListen] == 0 &&
		p.BindFailures+p.ListenFailures == 0 && !p.Service
}

// portRange is the ip_local_port_range of a port's namespace, or the
// host's when the table does not know it.
func (v *portsView) portRange(p *table.PortSummary) [2]int {
	return nsRange(p.PortRange, v.ctx.portRange)
}

// nsRange is a namespace's range as the table has it, else the host's.
func nsRange(r table.PortRange, host [2]int) [2]int {
	if r == (table.PortRange{}) {
		return host
	}
	return [2]int{int(r[0]), int(r[1])}
}

// fold adds a port to its namespace's folded row.
func (v *portsView) fold(p *portRow) {
	v.nFold++
	var f *portRow
	for i := range v.folded {
		if v.folded[i].NetNS == p.NetNS {
			f = &v.folded[i]
		}
	}
	if f == nil {
		v.folded = append(v.folded, portRow{PortSummary: table.PortSummary{NetNS: p.NetNS, PortRange: p.PortRange}})
		f = &v.folded[len(v.folded)-1]
	}
	f.folded++
	for s, n := range p.States {
		f.States[s] += n
	}
	f.TimeWait += p.TimeWait
	if p.LastExpiry.After(f.LastExpiry) {
		f.LastExpiry = p.LastExpiry
	}
	f.Transitions += p.Transitions
	f.rate += p.rate
	f.rateOK = f.rateOK || p.rateOK
}

// ---------------------------------------------------------------- VIEW

func (v *portsView) view() string {
	st := v.ctx.styles
	// The note of the terms not applied goes first: a narrow screen cuts the end.
	title := st.paint(&st.ViewTitle, "Ports") + st.paint(&st.Muted, " "+itoa(len(v.rows))+" shown, busiest first")
	if note := notHereNote(v.ctx, v.filter, viewPorts); note != "" {
		title = st.paint(&st.ViewTitle, "Ports") + st.paint(&st.Muted, " "+itoa(len(v.rows))+" shown") + note +
			st.paint(&st.Muted, " · busiest first")
	}
	if v.nFold > 0 {
		title += st.paint(&st.Muted, " · "+itoa(v.nFold)+" ephemeral folded")
	}
	if v.hidden > 0 {
		title += st.paint(&st.Muted, " · "+itoa(v.hidden)+" idle hidden")
	}
	body := v.grid.View(v.row)
	if len(v.rows) == 0 {
		body = emptyNote(body, v.ctx, "no port has sockets or failures yet")
	}
	return fitWidth(title, v.grid.Width()) + "\n" + body
}

func (v *portsView) row(i int, cells []grid.Cell) []grid.Cell {
	st := v.ctx.styles
	p := v.rows[i]
	port := itoa(p.Port)
	switch {
	case p.folded > 0:
		port = "ephem"
	case p.Port == 0:
		port = "auto" // bind(port 0): the kernel picks; failures mean exhaustion
	}
	cells = append(cells, grid.Cell{Text: port})
	if v.showNetNS {
		ns := ""
		if p.NetNS != v.ctx.hostNetNS {
			ns = itoa(p.NetNS)
		}
		cells = append(cells, grid.Cell{Text: ns})
	}
	listen, estab, tw := p.States[event.StateListen], p.States[event.StateEstablished], p.TimeWait
	cells = append(cells,
		countCell(listen, st.state(event.StateListen)),
		countCell(estab, nil),
		countCell(tw, st.state(event.StateTimeWait)),
		countCell(p.Total()-listen-estab-tw, nil))
	ends := grid.Cell{}
	if tw > 0 && !p.LastExpiry.IsZero() {
		ends = grid.Cell{Text: text.Countdown(p.LastExpiry.Sub(v.ctx.now)), Style: st.state(event.StateTimeWait)}
	}
	fails := p.BindFailures + p.ListenFailures
	failCell := grid.Cell{Text: itoa(fails)}
	if fails > 0 {
		failCell = grid.Cell{Text: "!" + itoa(fails), Style: &st.Bad}
	}
	owners := fmtOwners(p.Owners)
	switch {
	case p.Clients > 0 && p.Guessed > 0:
		// Sockets older than twtrace: connect() made them, or a server
		// nobody saw listen did; only their port in the range says which.
		owners = plural(p.Clients, "client socket", "client sockets") + " (" + itoa(p.Guessed) + " guessed?), by remote: enter"
	case p.Clients > 0:
		owners = plural(p.Clients, "socket", "sockets") + " connect() made, by remote: enter"
	case p.folded > 0:
		pr := v.portRange(&p.PortSummary)
		owners = plural(p.folded, "client port", "client ports") + " of " + itoa(pr[0]) + "-" + itoa(pr[1]) + ", by remote: enter"
	case len(p.Owners) == 0 && tw > 0 && len(p.TimeWaitOwners) > 0:
		owners = "TIME_WAIT left by " + fmtOwners(p.TimeWaitOwners)
	case len(p.Owners) == 0 && tw > 0:
		owners = "TIME_WAIT only" // no process: the kernel holds them
	}
	why := grid.Cell{}
	if f := v.ctx.failures.forPort(p.NetNS, p.Port); f != nil && p.folded == 0 {
		why = grid.Cell{Text: whyText(f, v.ctx), Style: &st.Bad}
	}
	return append(cells, ends, grid.Cell{Text: fmtRate(p.rate, p.rateOK)}, failCell, grid.Cell{Text: owners}, why)
}

// countCell shows zero as a dot, so that the counts that matter stand out.
func countCell(n int, style *lipgloss.Style) grid.Cell {
	if n == 0 {
		return grid.Cell{Text: "·"}
	}
	return grid.Cell{Text: itoa(n), Style: style}
}

// maxOwners bounds the owners listed in a row: a port served by 64 workers
// says so instead.
const maxOwners = 4

// fmtOwners lists a port's owners, "pid comm, pid comm".
func fmtOwners(os []table.Owner) string {
	if len(os) == 0 {
		return "-"
	}
	var b strings.Builder
	for i := range min(len(os), maxOwners) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(text.Owner(os[i].PID, &os[i].Comm))
	}
	if n := len(os) - maxOwners; n > 0 {
		b.WriteString(" +" + itoa(n) + " more")
	}
	return b.String()
}

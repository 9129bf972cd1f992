package tui

import (
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/table"
)

// ---------------------------------------------------------------- COMMANDS

// Querying the table costs time proportional to the sockets it holds
// (100 000 sockets: milliseconds for Ports, far more for Sockets, which
// copies and sorts them all). So queries run off the UI's goroutine, one at
// a time, for the view on screen only, and no more often than eight times
// their own cost: at worst the UI spends an eighth of a core on them, and a
// key press never waits for one. Countdowns and ages are computed at each
// frame from the last result, so they stay live between queries.

// slowQuery is logged.
const slowQuery = 250 * time.Millisecond

// costFactor: a query taking d runs at most once every costFactor*d.
const costFactor = 8

// countersEvery is how often the kernel's counters are read.
const countersEvery = time.Second

type (
	tickMsg time.Time
	kickMsg struct{} // fetch the first data at once, without waiting for a tick
)

// refreshState schedules queries.
type refreshState struct {
	inFlight bool
	want     uint64 // generation of the query the screen needs; bumped when the view, filter or selection changes
	asked    uint64 // generation of the last query started
	got      uint64 // generation of the last result shown
	started  time.Time
	cost     time.Duration
	counters time.Time // the last reading of the kernel's counters
	req      request   // the query in flight (Headless runs it itself)
}

// request describes one query.
type request struct {
	gen      uint64
	view     viewID
	query    table.Query
	detail   uint64 // the cookie whose timeline is open, 0: none
	now      time.Time
	counters bool
}

// snapshotMsg is a query's result.
type snapshotMsg struct {
	gen     uint64
	view    viewID
	now     time.Time
	took    time.Duration
	stats   table.Stats
	ports   []table.PortSummary
	sockets []table.Socket
	matched int // sockets the query matched; more than len(sockets) at the limit
	remotes []table.RemoteSummary
	// A timeline query fetches only its socket (nil: gone from the table)
	// and leaves the list as it was.
	detailOnly bool
	detail     *table.Socket

	kernel *kernelReading // nil: not read this time
}

// kernelReading is one reading of the kernel's TIME_WAIT counters, raw
// (Options.Counters) or as rates (Options.Rates).
type kernelReading struct {
	counters kstat.Counters
	err      error
	rates    kstat.Rates
	ratesOK  bool
	isRates  bool
}

func (m Model) tick() tea.Cmd {
	return tea.Tick(m.opts.Tick, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// maybeRefresh starts a query if the screen needs one and none is running.
func (m *Model) maybeRefresh() tea.Cmd {
	r := &m.refresh
	if r.inFlight {
		return nil
	}
	changed := r.want != r.got
	due := !m.paused && time.Since(r.started) >= max(m.opts.Tick, costFactor*r.cost)
	if !changed && !due {
		return nil
	}
	req := m.request()
	r.inFlight, r.asked, r.started, r.req = true, req.gen, time.Now(), req
	if req.counters {
		r.counters = r.started
	}
	tab, kernel := m.tab, m.kernelSource()
	return safeCmd(func() tea.Msg { return takeSnapshot(tab, req, kernel) })
}

// request describes the query the active view needs.
func (m *Model) request() request {
	req := request{
		gen:      m.refresh.want,
		view:     m.active,
		now:      m.ctx.now,
		counters: m.kernelSource() != nil && time.Since(m.refresh.counters) >= countersEvery,
	}
	if m.active == viewSockets {
		req.query = m.filter.query()
		if m.sockets.detail {
			req.detail = m.sockets.detailCookie
		}
	}
	return req
}

// kernelSource returns the reader of the kernel's counters, nil if none.
func (m *Model) kernelSource() func() kernelReading {
	switch {
	case m.opts.Rates != nil:
		rates := m.opts.Rates
		return func() kernelReading {
			r, ok := rates()
			return kernelReading{rates: r, ratesOK: ok, isRates: true}
		}
	case m.opts.Counters != nil:
		counters := m.opts.Counters
		return func() kernelReading {
			c, err := counters()
			return kernelReading{counters: c, err: err}
		}
	}
	return nil
}

// socketsLimit bounds the rows the Sockets view lists: the first of the
// table's order. A filter finds the others. Copying 100 000 sockets per
// refresh would cost more than anyone reads.
const socketsLimit = 2000

// takeSnapshot runs a query. It runs on a command's goroutine: it reads
// only the table (safe for concurrent readers) and what req carries.
func takeSnapshot(tab *table.Table, req request, kernel func() kernelReading) snapshotMsg {
	start := time.Now()
	s := snapshotMsg{gen: req.gen, view: req.view, now: req.now}
	switch req.view {
	case viewPorts:
		s.ports = tab.Ports()
	case viewSockets:
		if req.detail != 0 {
			// The timeline needs only its socket: skip the full copy.
			s.detailOnly = true
			if d, ok := tab.Socket(req.detail, req.now); ok {
				s.detail = &d
			}
		} else {
			q := req.query
			q.Limit = socketsLimit
			s.sockets, s.matched = tab.Sockets(q, req.now)
		}
	case viewRemotes:
		s.remotes = tab.Remotes()
	}
	s.stats = tab.Stats()
	if req.counters && kernel != nil {
		k := kernel()
		s.kernel = &k
	}
	s.took = time.Since(start)
	return s
}

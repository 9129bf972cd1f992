package tui

import (
	"slices"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/twtrace/twtrace/tracer/advice"
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

// refreshState schedules queries, on the wall clock (Options.WallClock):
// the cost of a query is real time whatever the UI's clock shows.
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
	socket   func(*table.Socket) bool // the part of the filter the table's query cannot apply; nil: none
	detail   uint64                   // the cookie whose timeline is open, 0: none
	now      time.Time
	counters bool
	wall     func() time.Time // measures the query's cost

	// Failures to diagnose (read the table for), and for the Advice view
	// the diagnosed ones, with the namespaces' sysctls and counter rates.
	diagnose  []failure
	failures  []failure
	sysctls   func(netns uint32) *kstat.Sysctls
	rates     func() (kstat.Rates, bool)
	hostNetNS uint32
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
	// diagnosed are req.diagnose with their diagnoses; findings the
	// Advice view's.
	diagnosed []failure
	findings  []advice.Finding
	// A timeline query fetches only its socket (nil: gone from the table)
	// and leaves the list as it was.
	detailOnly bool
	detail     *table.Socket

	kernel *kernelReading // nil: not read this time
}

// kernelReading is one reading of the kernel's TIME_WAIT counter rates
// (Options.Rates).
type kernelReading struct {
	rates kstat.Rates
	ok    bool // there are rates yet
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
	now := m.opts.WallClock()
	changed := r.want != r.got || len(m.failures.queue) > 0
	due := now.Sub(r.started) >= max(m.opts.Tick, costFactor*r.cost)
	if !changed && !due {
		return nil
	}
	req := m.request(now)
	r.inFlight, r.asked, r.started, r.req = true, req.gen, now, req
	if req.counters {
		r.counters = r.started
	}
	tab, kernel := m.tab, m.kernelSource()
	return safeCmd(func() tea.Msg { return takeSnapshot(tab, req, kernel) })
}

// request describes the query the active view needs, asked at wall time now.
func (m *Model) request(now time.Time) request {
	req := request{
		gen:      m.refresh.want,
		view:     m.active,
		now:      m.ctx.now,
		counters: m.opts.Rates != nil && now.Sub(m.refresh.counters) >= countersEvery,
		wall:     m.opts.WallClock,
		diagnose: m.failures.toDiagnose(),
		sysctls:  m.opts.Sysctls,
	}
	if m.active == viewAdvice {
		req.failures = slices.Clone(m.failures.entries)
		req.rates, req.hostNetNS = m.opts.Rates, m.ctx.hostNetNS
	}
	if m.active == viewSockets {
		req.query, req.socket = m.filter.query()
		if m.sockets.detail {
			req.detail = m.sockets.detailCookie
		}
	}
	return req
}

// kernelSource returns the reader of the kernel's counter rates, nil if none.
func (m *Model) kernelSource() func() kernelReading {
	if m.opts.Rates == nil {
		return nil
	}
	rates := m.opts.Rates
	return func() kernelReading {
		r, ok := rates()
		return kernelReading{rates: r, ok: ok}
	}
}

// socketsLimit bounds the rows the Sockets view lists: the first of the
// table's order. A filter finds the others. Copying 100 000 sockets per
// refresh would cost more than anyone reads.
const socketsLimit = 2000

// takeSnapshot runs a query. It runs on a command's goroutine: it reads
// only the table (safe for concurrent readers) and what req carries.
func takeSnapshot(tab *table.Table, req request, kernel func() kernelReading) snapshotMsg {
	start := req.wall()
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
			s.sockets, s.matched = querySockets(tab, req)
		}
	case viewRemotes:
		s.remotes = tab.Remotes()
	case viewAdvice:
		s.findings = advice.Advise(adviceFacts(tab, &req))
	}
	if len(req.diagnose) > 0 {
		s.diagnosed = diagnoseFailures(tab, req.diagnose, req.sysctls)
	}
	s.stats = tab.Stats()
	if req.counters && kernel != nil {
		k := kernel()
		s.kernel = &k
	}
	s.took = req.wall().Sub(start)
	return s
}

// querySockets lists the sockets of the Sockets view. When the filter has
// parts the table's query cannot apply (a local port only, a task name), the
// query selects more and the rest is filtered here, before the limit.
func querySockets(tab *table.Table, req request) ([]table.Socket, int) {
	q := req.query
	if req.socket == nil {
		q.Limit = socketsLimit
		return tab.Sockets(q, req.now)
	}
	all, _ := tab.Sockets(q, req.now)
	n := 0
	for i := range all {
		if req.socket(&all[i]) {
			all[n] = all[i]
			n++
		}
	}
	return all[:min(n, socketsLimit)], n
}

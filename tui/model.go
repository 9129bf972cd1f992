package tui

import (
	"log/slog"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"github.com/twtrace/twtrace/tracer/capture"
	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/table"
)

// ---------------------------------------------------------------- MODEL

// EventsMsg is a batch of events the feed has already applied to the
// table. Run delivers events through its own buffer, once per tick; a
// headless user (a benchmark, a test) sends EventsMsg to Update instead.
type EventsMsg []event.Event

// viewID names a view.
type viewID int

// The views, in tab order.
const (
	viewPorts viewID = iota
	viewSockets
	viewEvents
	viewRemotes
	viewFailures
	viewAdvice
	numViews
)

var viewNames = [numViews]string{"Ports", "Sockets", "Events", "Remotes", "Failures", "Advice"}

// uiContext is what every view shares: styles, keys, and the time of the
// frame. One per model; views hold a pointer to it. Update changes it, View
// only reads it.
type uiContext struct {
	styles    *Styles
	keys      *KeyMap
	now       time.Time // the frame's "now" (Options.Clock)
	loc       *time.Location
	hostNetNS uint32
	portRange [2]int
	querying  bool // the view's data is being fetched (a new view or filter)
	failures  *failureLog
}

// Model is the UI's state. It is usable without a terminal: NewModel, then
// Update with tea.WindowSizeMsg, EventsMsg and key messages, and View.
type Model struct {
	tab  *table.Table
	opts Options
	ctx  *uiContext
	log  *slog.Logger

	pending *pending      // the feed's side; nil when headless
	spare   []event.Event // the buffer handed back to pending at each drain

	width, height int
	active        viewID
	ports         *portsView
	sockets       *socketsView
	events        *eventsView
	remotes       *remotesView
	failed        *failuresView
	advice        *adviceView
	failures      *failureLog // every refused syscall, diagnosed by the query goroutine

	// The two bubbles are 12 KB: behind pointers, so that returning the
	// Model from Update (boxed in a tea.Model) does not copy them.
	help      *help.Model
	input     *textinput.Model
	filtering bool   // the filter line has the keyboard
	filter    filter //
	drilled   bool   // the filter came from Ports' enter: esc goes back there
	status    string // a transient message (bad filter, ...)
	dark      bool   // the terminal's background, as the styles were built for it

	paused    bool
	newPaused uint64 // events delivered since the pause

	// A replay: the feed is a Player.
	player   Player
	pos      capture.Position // where it is, read at each tick
	speed    float64          // the pace asked for
	resets   uint64           // the feed's restarts taken
	seekLine bool             // the line has the keyboard for a time to go to, not a filter

	seen      uint64 // events delivered, UI drops included
	uiDropped uint64 // events the log skipped because the UI fell behind
	evRate    meter
	stats     table.Stats

	kRates   kstat.Rates
	kRatesOK bool

	feedDone bool
	feedErr  error

	refresh  refreshState
	helpKey  helpKey // what helpText was rendered for
	helpText string  // the footer's help, rendered by Update for View
}

// helpKey is what the footer's help depends on.
type helpKey struct {
	mode          mode
	width, height int
	all           bool
	dark          bool
	status        string
	failed        bool // the failure line takes a line of the body
}

// NewModel returns a model that reads tab. Options are defaulted as Run
// defaults them.
func NewModel(tab *table.Table, opts Options) Model {
	opts = opts.withDefaults()
	keys := *opts.KeyMap // setMode changes the bindings: not the caller's
	ctx := &uiContext{
		styles:    opts.Styles(true),
		keys:      &keys,
		now:       opts.Clock(),
		loc:       opts.Location,
		hostNetNS: opts.HostNetNS,
		portRange: opts.PortRange,
	}
	m := Model{
		tab:     tab,
		opts:    opts,
		ctx:     ctx,
		log:     opts.Logger,
		ports:   newPortsView(ctx),
		sockets: newSocketsView(ctx),
		events:  newEventsView(ctx, opts.LogSize),
		remotes: newRemotesView(ctx),
		advice:  newAdviceView(ctx),
		help:    new(help.New()),
		input:   new(textinput.New()),
		dark:    true,
	}
	m.failures = newFailureLog()
	m.failed = newFailuresView(ctx, m.failures)
	ctx.failures = m.failures
	m.input.Prompt = filterPrompt
	m.input.Placeholder = filterExample
	m.applyStyles(ctx.styles)
	m.stats = tab.Stats()
	m.evRate.observe(0, ctx.now)
	m.refresh.want = 1 // nothing fetched yet
	m.resize(80, 24)
	m.settle()
	return m
}

// Init starts the tick, the first query of the table, and asks the
// terminal for its background.
func (m Model) Init() tea.Cmd {
	return tea.Batch(m.tick(), func() tea.Msg { return kickMsg{} }, tea.RequestBackgroundColor)
}

// setDark builds the styles for the terminal's background.
func (m *Model) setDark(dark bool) {
	if dark == m.dark {
		return
	}
	m.dark = dark
	m.applyStyles(m.opts.Styles(dark))
}

// applyStyles hands the styles to every part that draws.
func (m *Model) applyStyles(st *Styles) {
	m.ctx.styles = st
	m.help.Styles = st.Help
	m.input.SetStyles(st.Filter)
	m.ports.grid.Styles = st.Grid
	m.sockets.grid.Styles = st.Grid
	m.events.grid.Styles = st.Grid
	m.remotes.grid.Styles = st.Grid
}

// Refresh queries the table for the current view synchronously, as the
// program does in the background. For headless use: benchmarks, tests.
func (m Model) Refresh() Model {
	req := m.request(m.opts.WallClock())
	m.refresh.asked = req.gen
	m.refresh.inFlight = true
	m.onSnapshot(takeSnapshot(m.tab, req, m.kernelSource()))
	m.settle()
	return m
}

// mode returns what the keys act on now.
func (m *Model) mode() mode {
	return mode{
		view:      m.active,
		filtering: m.filtering,
		detail:    m.active == viewSockets && m.sockets.detail,
		help:      m.help.ShowAll,
		paused:    m.paused || m.player != nil && m.pos.Paused,
		replay:    m.player != nil,
		canBack:   !m.filter.empty() || m.drilled,
	}
}

// resize lays the views out for a terminal of w x h.
func (m *Model) resize(w, h int) {
	m.width, m.height = max(w, 20), max(h, 8)
	m.help.SetWidth(m.width)
	m.input.SetWidth(min(m.width/2, 48)) // room after it for what is wrong with the filter
	m.layout()
}

// layout gives the body what the header and the footer leave; full help
// takes more footer.
func (m *Model) layout() {
	body := m.height - headerLines - m.footerLines()
	for _, v := range []interface{ setSize(w, h int) }{m.ports, m.sockets, m.events, m.remotes, m.failed, m.advice} {
		v.setSize(m.width, max(body, 2))
	}
}

// addEvents takes a batch into the log and the counters. dropped events
// came after the batch and were not kept: the log shows the gap.
func (m *Model) addEvents(evs []event.Event, dropped uint64) {
	n := uint64(len(evs)) + dropped
	m.seen += n
	if m.paused {
		m.newPaused += n
	}
	m.events.add(evs, dropped)
	for i := range evs {
		if isFailure(&evs[i]) {
			m.failures.add(&evs[i])
		}
	}
	m.failed.sync()
	if dropped > 0 {
		m.uiDropped += dropped
		m.log.Warn("event log fell behind", "skipped", dropped)
	}
}

// settle brings what View reads up to date after a message: whether the
// view's data is on its way, the bindings of the mode, the footer's help
// (and the layout, when the help changed its height).
func (m *Model) settle() {
	m.ctx.querying = m.refresh.got != m.refresh.want
	md := m.mode()
	k := helpKey{md, m.width, m.height, m.help.ShowAll, m.dark, m.status, m.alertOwnLine()}
	if k == m.helpKey && m.helpText != "" {
		return
	}
	m.ctx.keys.setMode(md)
	m.helpKey, m.helpText = k, m.renderHelp()
	m.layout()
}

package tui

import (
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/text"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/twtrace/twtrace/tui/grid"
)

// ---------------------------------------------------------------- MODEL

// eventsView is the log of recent events, newest at the bottom. It follows
// new events until the user scrolls up; paused, it shows a frozen copy
// while the ring keeps filling.
type eventsView struct {
	ctx  *uiContext
	grid grid.Model
	ring *ring

	paused      bool
	frozen      []logEntry // the ring as it was at the pause
	frozenFirst uint64     // sequence number of frozen[0]

	follow bool
	filter filter
	seqs   []uint64 // with a filter: the sequence numbers of the matching entries
	sel    uint64   // the selected entry's sequence number, when not following
	height int
}

// eventCols are the text stream's columns, EVENT and DETAIL in one. When
// space is short the running task goes first (in softirq it is whoever was
// on the CPU), then the remote end (a bind or a listen has none); the owner
// stays down to 80 columns, where EVENT still holds its longest common
// words ("TIME_WAIT enter 60.0s left (inferred)"): who was refused matters
// most.
var eventCols = []grid.Column{
	{Title: text.Titles[text.ColTime], Width: 12},
	{Title: text.Titles[text.ColTask], Width: 14, Flex: 1, Drop: 3},
	{Title: text.Titles[text.ColOwner], Width: 12, Flex: 1, Drop: 1},
	{Title: text.Titles[text.ColLocal], Width: 15, Flex: 2},
	{Title: text.Titles[text.ColRemote], Width: 15, Flex: 2, Drop: 2},
	{Title: text.Titles[text.ColWhat], Width: 34, Flex: 3},
}

func newEventsView(ctx *uiContext, size int) *eventsView {
	v := &eventsView{ctx: ctx, grid: grid.New(eventCols...), ring: newRing(size), follow: true}
	v.grid.KeyMap = ctx.keys.Nav
	v.grid.Styles = ctx.styles.Grid
	v.grid.SetCursorless(true)
	return v
}

func (v *eventsView) setSize(w, h int) {
	v.height = h
	v.grid.SetSize(w, h-1)
	v.sync()
}

// ---------------------------------------------------------------- UPDATE

// add appends a batch, and a gap entry for the events that were skipped.
func (v *eventsView) add(evs []event.Event, skipped uint64) {
	v.ring.pushEvents(evs)
	if skipped > 0 {
		v.ring.push(&logEntry{skipped: skipped})
	}
	if !v.paused {
		v.sync()
	}
}

// reset empties the log: a replay starts again from its start.
func (v *eventsView) reset() {
	v.ring.clear()
	v.frozen, v.seqs, v.sel = nil, v.seqs[:0], 0
	v.follow = true
	v.grid.SetCursorless(true)
	v.sync()
}

func (v *eventsView) setFilter(f *filter) {
	v.filter = *f
	v.sync()
}

func (v *eventsView) setPaused(p bool) {
	v.paused = p
	v.frozen = nil
	if p {
		v.frozen, v.frozenFirst = v.ring.snapshot(), v.ring.first()
	}
	v.sync()
}

func (v *eventsView) move(k tea.KeyPressMsg) {
	if !v.grid.Move(k) {
		return
	}
	// Scrolling away from the newest event stops following; going back to
	// the end (or pressing end) resumes.
	v.follow = v.grid.AtEnd() && !key.Matches(k, v.grid.KeyMap.Up, v.grid.KeyMap.PageUp)
	if key.Matches(k, v.grid.KeyMap.End) {
		v.follow = true
	}
	v.grid.SetCursorless(v.follow)
	if !v.follow {
		v.sel = v.seqAt(v.grid.Cursor())
	}
}

// base and count describe what is displayed: the ring, or the frozen copy.
func (v *eventsView) base() uint64 {
	if v.paused {
		return v.frozenFirst
	}
	return v.ring.first()
}

func (v *eventsView) count() int {
	if v.paused {
		return len(v.frozen)
	}
	return v.ring.len()
}

// entry returns the entry with a sequence number, nil if it is gone.
func (v *eventsView) entry(seq uint64) *logEntry {
	base := v.base()
	if seq < base || seq >= base+uint64(v.count()) {
		return nil
	}
	if v.paused {
		return &v.frozen[seq-base]
	}
	return v.ring.at(int(seq - base))
}

// seqAt returns the sequence number of row i.
func (v *eventsView) seqAt(i int) uint64 {
	if i < 0 {
		return 0
	}
	if !v.filter.empty() {
		return v.seqs[i]
	}
	return v.base() + uint64(i)
}

// sync recomputes the rows after the log, the filter or the pause changed,
// keeping the cursor on its entry (or on the newest when following).
func (v *eventsView) sync() {
	n := v.count()
	if !v.filter.empty() {
		v.seqs = v.seqs[:0]
		base := v.base()
		for i := range n {
			if seq := base + uint64(i); v.filter.matchEvent(v.entry(seq)) {
				v.seqs = append(v.seqs, seq)
			}
		}
		n = len(v.seqs)
	}
	v.grid.SetRows(n)
	if v.follow {
		v.grid.SetCursor(n - 1)
		return
	}
	// The row of the selected entry, or the first one still there.
	lo, hi := 0, n
	for lo < hi {
		mid := (lo + hi) / 2
		if v.seqAt(mid) < v.sel {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	v.grid.SetCursor(lo)
}

// ---------------------------------------------------------------- VIEW

func (v *eventsView) view(newPaused uint64) string {
	st := v.ctx.styles
	total := v.ring.total
	if v.paused {
		total = v.frozenFirst + uint64(len(v.frozen)) // as of the pause: the header counts what came since
	}
	title := st.paint(&st.ViewTitle, "Events") + st.paint(&st.Muted, " last "+itoa(v.count())+" of "+itoa(total))
	if !v.filter.empty() {
		title += st.paint(&st.Muted, " · "+itoa(len(v.seqs))+" matching ") + st.paint(&st.Accent, v.filter.String())
	}
	switch {
	case v.paused:
		title += " " + st.paint(&st.Paused, " PAUSED ") + st.paint(&st.Muted, " "+itoa(newPaused)+" new · space resumes")
	case v.follow:
		title += st.paint(&st.Muted, " · following")
	default:
		title += st.paint(&st.Muted, " · scrolled: end follows")
	}
	body := v.grid.View(v.row)
	if v.grid.Rows() == 0 {
		quiet := *v.ctx
		quiet.querying = false // the log is not fetched from the table
		body = emptyNote(body, &quiet, "no event yet")
	}
	return fitWidth(title, v.grid.Width()) + "\n" + body
}

func (v *eventsView) row(i int, cells []grid.Cell) []grid.Cell {
	st := v.ctx.styles
	e := v.entry(v.seqAt(i))
	if e == nil {
		return cells
	}
	if e.skipped > 0 {
		return append(cells, grid.Cell{Text: "… " + itoa(e.skipped) +
			" events not shown here: the UI fell behind (the tables have them)", Style: &st.Bad, Span: true})
	}
	ev := &e.ev
	var rowStyle, evStyle *lipgloss.Style
	class, state := text.Classify(ev)
	switch class {
	case text.ClassFailure, text.ClassLoss:
		rowStyle, evStyle = &st.Bad, &st.Bad
	case text.ClassTimeWait, text.ClassState:
		evStyle = st.state(state)
	}
	var scratch [128]byte
	column := func(c text.Column) string {
		return string(text.AppendColumn(scratch[:0], ev, c, v.ctx.loc))
	}
	cells = append(cells, grid.Cell{Text: column(text.ColTime), Style: rowStyle})
	summary := string(text.AppendSummary(scratch[:0], ev))
	if class == text.ClassLoss {
		// A message, not a record: it takes the whole row.
		return append(cells, grid.Cell{Text: summary, Style: rowStyle, Span: true})
	}
	for _, c := range [...]text.Column{text.ColTask, text.ColOwner, text.ColLocal, text.ColRemote} {
		cells = append(cells, grid.Cell{Text: column(c), Style: rowStyle})
	}
	// EVENT holds the text stream's EVENT and DETAIL: the same words.
	return append(cells, grid.Cell{Text: summary, Style: evStyle})
}

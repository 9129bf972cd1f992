package tui

import (
	"strings"

	tea "charm.land/bubbletea/v2"

	"github.com/twtrace/twtrace/tracer/advice"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/table"
	"github.com/twtrace/twtrace/tracer/text"
	"github.com/twtrace/twtrace/tui/grid"
)

// ---------------------------------------------------------------- MODEL

// Every refused bind(), connect() and listen() is kept (the last
// maxFailures of them) with its diagnosis: what held the port at that
// moment and what fixes it. The diagnosis reads the socket table, which
// costs time with its size, so the query goroutine makes it (diagnoseBatch
// at a time) and hands it back with the next snapshot.

const (
	maxFailures   = 500
	diagnoseBatch = 32
)

// failure is one refused syscall.
type failure struct {
	seq  uint64
	ev   event.Event
	diag *advice.Failure // nil until diagnosed
}

// failureLog keeps the failures, oldest first, and the ones not yet diagnosed.
type failureLog struct {
	entries []failure
	total   uint64 // failures seen, kept or not
	next    uint64 // the next sequence number
	queue   []uint64
	byPort  map[portKey]uint64 // the last diagnosed failure of each (namespace, port)
}

func newFailureLog() *failureLog { return &failureLog{byPort: map[portKey]uint64{}} }

// isFailure: a refused syscall, the only events with Ret < 0.
func isFailure(ev *event.Event) bool {
	return ev.Ret < 0 && (ev.Kind == event.KindBind || ev.Kind == event.KindConnect || ev.Kind == event.KindListen)
}

func (l *failureLog) add(ev *event.Event) {
	l.total++
	l.entries = append(l.entries, failure{seq: l.next, ev: *ev})
	l.queue = append(l.queue, l.next)
	l.next++
	if len(l.entries) > maxFailures {
		l.entries = l.entries[len(l.entries)-maxFailures:]
	}
	if len(l.queue) > maxFailures {
		l.queue = l.queue[len(l.queue)-maxFailures:]
	}
}

// reset forgets every failure: a replay starts again from its start. The
// sequence numbers go on, so that a diagnosis asked for before is not taken
// for one of a failure after.
func (l *failureLog) reset() {
	l.entries, l.queue, l.total = l.entries[:0], l.queue[:0], 0
	clear(l.byPort)
}

func (l *failureLog) at(seq uint64) *failure {
	if len(l.entries) == 0 || seq < l.entries[0].seq || seq > l.entries[len(l.entries)-1].seq {
		return nil
	}
	return &l.entries[seq-l.entries[0].seq]
}

// toDiagnose takes the next batch of undiagnosed failures for a query.
func (l *failureLog) toDiagnose() []failure {
	var out []failure
	for len(l.queue) > 0 && len(out) < diagnoseBatch {
		if f := l.at(l.queue[0]); f != nil {
			out = append(out, *f)
		}
		l.queue = l.queue[1:]
	}
	return out
}

// diagnosed takes the query's diagnoses.
func (l *failureLog) diagnosed(ds []failure) {
	for _, d := range ds {
		f := l.at(d.seq)
		if f == nil {
			continue
		}
		f.diag = d.diag
		if f.ev.Kind != event.KindConnect {
			l.byPort[portKey{netns: f.ev.NetNS, port: f.ev.Src.Port()}] = f.seq
		}
	}
}

// last is the newest failure, nil when none.
func (l *failureLog) last() *failure {
	if len(l.entries) == 0 {
		return nil
	}
	return &l.entries[len(l.entries)-1]
}

// forPort is the newest diagnosed failure of a port, nil when none.
func (l *failureLog) forPort(netns uint32, port uint16) *failure {
	seq, ok := l.byPort[portKey{netns: netns, port: port}]
	if !ok {
		return nil
	}
	return l.at(seq)
}

// diagnoseFailures runs on the query goroutine.
func diagnoseFailures(tab *table.Table, fs []failure, sysctls func(uint32) *kstat.Sysctls) []failure {
	for i := range fs {
		var s *kstat.Sysctls
		if sysctls != nil {
			s = sysctls(fs[i].ev.NetNS)
		}
		d := advice.DiagnoseFailure(tab, &fs[i].ev, s)
		fs[i].diag = &d
	}
	return fs
}

// failuresView lists the failures, newest first, each with what held the
// port at that moment and the fix.
type failuresView struct {
	ctx  *uiContext
	log  *failureLog
	grid grid.Model
}

var failureCols = []grid.Column{
	{Title: "TIME", Width: 12},
	{Title: "CALL", Width: 7},
	{Title: "ADDRESS", Width: 21, Drop: 2},
	{Title: "BY", Width: 14},
	{Title: "ERRNO", Width: 13, Drop: 1},
	{Title: "WHY — FIX", Width: 20, Flex: 1},
}

func newFailuresView(ctx *uiContext, log *failureLog) *failuresView {
	v := &failuresView{ctx: ctx, log: log, grid: grid.New(failureCols...)}
	v.grid.KeyMap = ctx.keys.Nav
	v.grid.Styles = ctx.styles.Grid
	return v
}

func (v *failuresView) setSize(w, h int) { v.grid.SetSize(w, h-1) }

// ---------------------------------------------------------------- UPDATE

func (v *failuresView) move(k tea.KeyPressMsg) { v.grid.Move(k) }

func (v *failuresView) sync() { v.grid.SetRows(len(v.log.entries)) }

// ---------------------------------------------------------------- VIEW

func (v *failuresView) view() string {
	st := v.ctx.styles
	title := st.paint(&st.ViewTitle, "Failures") + st.paint(&st.Muted, " "+plural(int(v.log.total), "refused syscall", "refused syscalls")+
		", newest first; the cause is what the socket table showed at that moment")
	body := v.grid.View(v.row)
	if len(v.log.entries) == 0 {
		quiet := *v.ctx
		quiet.querying = false
		body = emptyNote(body, &quiet, "no bind(), connect() or listen() refused yet")
	}
	return fitWidth(title, v.grid.Width()) + "\n" + body
}

func (v *failuresView) row(i int, cells []grid.Cell) []grid.Cell {
	st := v.ctx.styles
	f := &v.log.entries[len(v.log.entries)-1-i]
	ev := &f.ev
	pid, comm := text.EventOwner(ev)
	return append(cells,
		grid.Cell{Text: text.Clock(ev.Time, v.ctx.loc)},
		grid.Cell{Text: ev.Kind.String(), Style: &st.Bad},
		grid.Cell{Text: failureAddr(ev)},
		grid.Cell{Text: text.Owner(pid, comm)},
		grid.Cell{Text: ev.Errno(), Style: &st.Bad},
		grid.Cell{Text: whyText(f, v.ctx)})
}

// failureAddr is what the syscall was about: the bound address, the
// destination of a connect(), the port of a listen().
func failureAddr(ev *event.Event) string {
	if ev.Kind == event.KindConnect {
		return text.Addr(ev.Dst)
	}
	return text.Addr(ev.Src)
}

// whyText is a failure's cause and fix, or what is known so far.
func whyText(f *failure, ctx *uiContext) string {
	if f.diag == nil {
		return "diagnosing…"
	}
	if h := f.diag.Headline(); h != nil {
		return h.LineAt(ctx.now)
	}
	if f.diag.Port != nil {
		return "nothing on the port explains it now (it may have gone already)"
	}
	return "no cause found in the socket table"
}

// alertLine puts the newest failure on every screen, with its cause and
// fix, so that a refused bind() is seen without a key press.
func (m *Model) alertLine() string {
	f := m.failures.last()
	if f == nil {
		return ""
	}
	st := m.ctx.styles
	ev := &f.ev
	pid, comm := text.EventOwner(ev)
	var b strings.Builder
	b.WriteString("!" + ev.Kind.String() + " " + failureAddr(ev) + " by " + text.Owner(pid, comm) + ": " + ev.Errno())
	b.WriteString(" — " + whyText(f, m.ctx))
	line := st.paint(&st.Bad, b.String())
	if n := m.failures.total; n > 1 {
		// How many, and the view that lists them all: first, so that a long line keeps it.
		line = st.paint(&st.Muted, itoa(n)+" refused (view "+itoa(int(viewFailures)+1)+"), newest: ") + line
	}
	return fitWidth(line, m.width)
}

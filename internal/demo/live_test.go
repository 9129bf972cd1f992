package demo

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"

	"github.com/twtrace/twtrace/tracer/advice"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/table"
	"github.com/twtrace/twtrace/tui"
)

const liveNetNS = 4026532999

var liveNow = time.Date(2026, 12, 1, 9, 40, 21, 0, time.UTC)

// liveLesson is the start of restart-too-fast as the tracer shows it.
func liveLesson() []event.Event {
	at := func(ms int) time.Time { return liveNow.Add(time.Duration(ms-1000) * time.Millisecond) }
	srv := netip.MustParseAddrPort("127.0.0.1:9000")
	cli := netip.MustParseAddrPort("127.0.0.1:53178")
	old, client := event.MakeComm("old-server"), event.MakeComm("client")
	st := func(ms int, pid uint32, comm event.Comm, cookie uint64, src, dst netip.AddrPort, o, n event.State) event.Event {
		return event.Event{Kind: event.KindState, Time: at(ms), PID: pid, Comm: comm, NetNS: liveNetNS, Family: event.FamilyIPv4,
			Src: src, Dst: dst, Cookie: cookie, Old: o, New: n, Owner: pid, OwnerComm: comm, OldKnown: true, OldDur: time.Millisecond}
	}
	any := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	evs := []event.Event{
		{Kind: event.KindBind, Time: at(0), PID: 11172, Comm: old, NetNS: liveNetNS, Family: event.FamilyIPv4, Src: srv, FD: 5, ReuseAddr: true},
		st(1, 11172, old, 0x10, srv, any, event.StateClose, event.StateListen),
		st(10, 11177, client, 0x11, cli, srv, event.StateSynSent, event.StateEstablished),
		st(11, 11172, old, 0x12, srv, cli, event.StateSynRecv, event.StateEstablished),
		st(15, 11172, old, 0x12, srv, cli, event.StateEstablished, event.StateFinWait1),
		st(16, 11172, old, 0x12, srv, cli, event.StateFinWait2, event.StateClose),
	}
	var tw event.Event
	event.InferTimeWait(&evs[len(evs)-1], &tw)
	return append(evs, tw)
}

// newTestLive is the live model over the lesson's table, headless.
func newTestLive(t *testing.T, w, h int) (liveModel, chan struct{}) {
	t.Helper()
	tab := table.New(table.Config{})
	evs := liveLesson()
	tab.ApplyBatch(evs, nil)
	inner := tui.NewModel(tab, tui.Options{Title: "twtrace demo", HostNetNS: liveNetNS, Location: time.UTC,
		Clock: func() time.Time { return liveNow }})
	keys := make(chan struct{}, 1)
	m := newLiveModel(inner, liveNetNS, time.UTC, nil, keys)
	m = liveStep(m, tea.WindowSizeMsg{Width: w, Height: h})
	m = liveStep(m, tui.EventsMsg(evs))
	for _, l := range []Line{
		{Kind: LineTitle, Lesson: "restart-too-fast", Text: restartTooFast.Summary},
		{Kind: LineSay, Text: "In a private network namespace (inode 4026532999) with loopback up."},
		{Kind: LineStep, Step: 1, Text: "A server starts: it listens on 127.0.0.1:9000 with SO_REUSEADDR."},
		{Kind: LineEvent, Port: 9000, Event: &evs[0]},
		{Kind: LineEvent, Port: 9000, Event: &evs[1]},
		{Kind: LineStep, Step: 2, Text: "A client connects; the server answers and closes the connection first."},
		{Kind: LineEvent, Port: 9000, Event: &evs[4]},
		{Kind: LineEvent, Port: 9000, Event: &evs[6]},
		{Kind: LineSay, Text: "TIME_WAIT on the server's side: 127.0.0.1:9000 -> 127.0.0.1:53178, for 60 s."},
	} {
		m = liveStep(m, lineMsg(l))
	}
	m.inner = m.inner.Refresh()
	return m, keys
}

func liveStep(m liveModel, msg tea.Msg) liveModel {
	mm, _ := m.Update(msg)
	return mm.(liveModel)
}

func liveScreen(m liveModel) string { return ansi.Strip(m.View().Content) }

// The narration is a pane on the right; the live view, on the left, shows
// the Sockets view of the lesson's port with the socket the narration
// quoted last, which the pane marks.
func TestLiveScreen(t *testing.T) {
	m, _ := newTestLive(t, 140, 30)
	screen := liveScreen(m)
	golden.RequireEqual(t, []byte(screen))
	lines := strings.Split(screen, "\n")
	if len(lines) != 30 {
		t.Errorf("%d lines, want 30", len(lines))
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n > 140 {
			t.Errorf("line %d is %d cells wide", i+1, n)
		}
	}
	if s, ok := m.inner.Selected(); !ok || s.Cookie != 0x12 {
		t.Errorf("the Sockets view selects %x, want the TIME_WAIT the narration quoted last (12)", s.Cookie)
	}
	left, pane := split(lines, 140-m.paneWidth())
	requireIn(t, left, "Sockets 3 matching port 9000", "TIME_WAIT   127.0.0.1:9000     127.0.0.1:53178")
	requireIn(t, pane, "twtrace demo restart-too-fast", "1. A server starts", "2. A client connects",
		"> 09:40:20.000 11172 old-server 127.0.0.1:9000 bind ok reuseaddr fd=5",
		"▶ 09:40:20.016 11172 old-server 127.0.0.1:9000 127.0.0.1:53178 TIME_WAIT enter")
	if strings.Count(pane, "▶") != 1 {
		t.Errorf("the pane marks %d events as the one it talks about, want 1:\n%s", strings.Count(pane, "▶"), pane)
	}
}

// split cuts the screen's lines at column at: the live view, and the pane
// with its wrapped lines joined again.
func split(lines []string, at int) (left, pane string) {
	var l, r []string
	for _, line := range lines {
		rs := []rune(line)
		cut := min(len(rs), at)
		l = append(l, string(rs[:cut]))
		r = append(r, strings.TrimSpace(strings.TrimPrefix(string(rs[cut:]), "│")))
	}
	return strings.Join(l, "\n"), strings.Join(strings.Fields(strings.Join(r, " ")), " ")
}

func requireIn(t *testing.T, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%q not on the screen:\n%s", w, s)
		}
	}
}

// Space answers the narration when it waits, and is the live view's
// otherwise; a verdict, a countdown and the end show in the pane.
func TestLiveKeys(t *testing.T) {
	m, keys := newTestLive(t, 120, 40)
	space := tea.KeyPressMsg{Code: tea.KeySpace, Text: " "}
	m = liveStep(m, awaitStep)
	requireIn(t, liveScreen(m), "space: next step")
	m = liveStep(m, space)
	select {
	case <-keys:
	default:
		t.Fatal("space while the narration waits did not answer it")
	}
	if strings.Contains(liveScreen(m), "space: next step") {
		t.Error("the hint stayed after space")
	}
	m = liveStep(m, space) // nothing waits: the live view's own space pauses its log
	requireIn(t, liveScreen(m), "space resume log")
	select {
	case <-keys:
		t.Fatal("space went to the narration when nothing waited")
	default:
	}
	f := &advice.PortFacts{Port: 9000, Now: liveNow}
	r := advice.DiagnosePort(f, advice.Attempt{Addr: service})
	m = liveStep(m, lineMsg{Kind: LineVerdict, Report: &r, Text: "twtrace why 9000"})
	m = liveStep(m, countdownMsg(time.Now().Add(42*time.Second)))
	m = liveStep(m, overMsg{})
	requireIn(t, liveScreen(m), "$ twtrace why 9000", "port 9000: FREE for a plain bind()", "TIME_WAIT ends in 4",
		"The lesson is over")
	m = liveStep(m, countdownMsg(time.Time{}))
	m = liveStep(m, overMsg{err: &StepError{Lesson: "x", Step: 3, Err: errNotSeenTest}})
	s := liveScreen(m)
	requireIn(t, s, "lesson x failed at step 3")
	if strings.Contains(s, "TIME_WAIT ends in") {
		t.Error("the countdown stayed after it ended")
	}
	// A narrow terminal: the pane takes half, every line still fits.
	m = liveStep(m, tea.WindowSizeMsg{Width: 60, Height: 20})
	for i, l := range strings.Split(liveScreen(m), "\n") {
		if n := ansi.StringWidth(l); n > 60 {
			t.Errorf("at 60 columns, line %d is %d cells wide", i+1, n)
		}
	}
}

var errNotSeenTest = &errNotSeen{what: "the TIME_WAIT", want: 1, after: expectWithin}

package tui

import (
	"image/color"
	"net/netip"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/table"
)

// The rough edges a new user hit, one test each.

func keys(m Model, ks ...string) Model {
	for _, k := range ks {
		m = step(m, keyMsg(k))
	}
	return m
}

func typeFilter(m Model, s string) Model {
	m = keys(m, "/")
	for _, r := range s {
		m = step(m, keyMsg(string(r)))
	}
	return keys(m, "enter")
}

// esc closes the full help, before anything else it would undo; the help
// explains the header's loss counters.
func TestEscClosesHelp(t *testing.T) {
	m := typeFilter(headless(t, 100, 30), "8080")
	m = keys(m, "?")
	screen := stripView(m)
	requireLine(t, screen, "esc", "close help")
	requireLine(t, screen, "UI skipped N: events the log had no time to show; the tables and counts still have them")
	requireLine(t, screen, "lost N: events the kernel could not deliver")
	requireScreen(t, screen, 100, 30)
	for _, size := range [][2]int{{20, 8}, {40, 12}, {80, 24}, {200, 50}} {
		s := stripView(step(m, tea.WindowSizeMsg{Width: size[0], Height: size[1]}))
		requireScreen(t, s, size[0], size[1])
	}
	m = keys(m, "esc")
	if m.help.ShowAll {
		t.Fatal("esc left the full help open")
	}
	if m.filter.empty() {
		t.Error("esc closing the help also cleared the filter")
	}
	if s := stripView(m); strings.Contains(s, "UI skipped N") || !strings.Contains(s, "filter port 8080") {
		t.Errorf("after esc:\n%s", s)
	}
}

// The full help is about the view it was opened on: changing views closes it.
func TestHelpDoesNotFollowViews(t *testing.T) {
	for _, k := range []string{"tab", "shift+tab", "3"} {
		m := keys(headless(t, 100, 30), "?")
		if m = keys(m, k); m.help.ShowAll {
			t.Errorf("%s: the full help followed to %s", k, viewNames[m.active])
		}
	}
	// Help opened in a view stays while moving in it.
	if m := keys(headless(t, 100, 30), "?", "down"); !m.help.ShowAll {
		t.Error("moving the cursor closed the help")
	}
}

// A valid filter after an invalid one clears the error.
func TestValidFilterClearsError(t *testing.T) {
	m := typeFilter(headless(t, 100, 30), "pid:x")
	requireLine(t, stripView(m), `"x" is not a process id`)
	m = keys(m, "backspace", "backspace", "backspace", "backspace", "backspace")
	m = keys(m, "8", "0", "8", "0", "enter")
	screen := stripView(m)
	if m.filtering || strings.Contains(screen, "not a process id") {
		t.Errorf("the old error stayed:\n%s", screen)
	}
	requireLine(t, screen, "filter port 8080")
}

// The cursor row's reverse video keeps a failure count red.
func TestSelectedRowKeepsRed(t *testing.T) {
	m := headless(t, 100, 30)
	if p, _ := m.ports.selected(); p.Port != 8080 {
		t.Fatalf("cursor on %d, want 8080", p.Port)
	}
	l := rawLine(t, m.View().Content, "!2")
	if !strings.Contains(l, "\x1b[7m") {
		t.Errorf("the selected row is not reverse: %q", l)
	}
	if !regexp.MustCompile(`\x1b\[[0-9;]*31m *!2`).MatchString(l) {
		t.Errorf("the failure count lost its red under the cursor: %q", l)
	}
	if w := ansi.StringWidth(l); w != 100 {
		t.Errorf("the selected row is %d cells wide, want the width, 100", w)
	}
}

// TRANS/S follows one rule: "-" in every row until the first window of
// readings ends, then a number in every row, ports seen later included.
func TestPortRatesOneRule(t *testing.T) {
	m := headless(t, 100, 30)
	now := testNow
	m.opts.Clock = func() time.Time { return now }
	rates := func() (dash, num int) {
		for _, p := range m.ports.rows {
			if p.rateOK {
				num++
			} else {
				dash++
			}
		}
		return dash, num
	}
	if dash, num := rates(); num != 0 || dash == 0 {
		t.Fatalf("before a window: %d rows with a rate, %d without", num, dash)
	}
	// A port the table did not list before: a new server on 9090.
	now = now.Add(600 * time.Millisecond)
	m.ctx.now = now
	m.tab.ApplyBatch([]event.Event{{Kind: event.KindState, Time: now, Cookie: 0x9090, NetNS: sampleNetNS,
		Family: event.FamilyIPv4, Src: netip.MustParseAddrPort("0.0.0.0:9090"), Old: event.StateClose, New: event.StateListen,
		PID: 9, Owner: 9}}, nil)
	m = m.Refresh()
	if dash, num := rates(); num != 0 || dash != 3 {
		t.Fatalf("within the first window: %d rows with a rate, %d without; want 0, 3", num, dash)
	}
	now = now.Add(600 * time.Millisecond)
	m.ctx.now = now
	m = m.Refresh()
	if dash, num := rates(); dash != 0 || num != 3 {
		t.Fatalf("after the window: %d rows with a rate, %d without; want 3, 0", num, dash)
	}
	screen := stripView(m)
	requireLine(t, screen, "9090", "0.8 ", "9 ") // one transition over 1.2 s
	requireLine(t, screen, "8080", "     0 ")
	if strings.Contains(requireLine(t, screen, "ephem"), " - ") {
		t.Error("the folded row has no rate while the others do")
	}
}

// The pause badge is where the eye goes, not at the far right of a wide
// terminal.
func TestPausedIsNearTheViews(t *testing.T) {
	m := keys(headless(t, 200, 40), "space")
	l := requireLine(t, stripView(m), "PAUSED", "log, 0 new events")
	// Right after the last tab, not at the far end of the line.
	if i, tabs := strings.Index(l, "PAUSED"), strings.Index(l, viewNames[numViews-1])+len(viewNames[numViews-1]); i > tabs+6 {
		t.Errorf("PAUSED at column %d of 200, the tabs end at %d: %q", i, tabs, l)
	}
	requireLine(t, stripView(m), "1 Ports", "PAUSED")
	m = step(m, EventsMsg(events(1)))
	requireLine(t, stripView(m), "PAUSED", "log, 1 new event")
}

// At any width the loss count stays on screen.
func TestLostAlwaysShows(t *testing.T) {
	m := headless(t, 100, 30)
	m.uiDropped = 12345
	m.opts.Rates = func() (kstat.Rates, bool) { return kstat.Rates{TW: 3}, true }
	m.kRates, m.kRatesOK = kstat.Rates{TW: 3}, true
	for w := 20; w <= 200; w++ {
		m = step(m, tea.WindowSizeMsg{Width: w, Height: 24})
		screen := stripView(m)
		requireScreen(t, screen, w, 24)
		l := strings.Split(screen, "\n")[1]
		if !strings.Contains(l, "lost 17") {
			t.Fatalf("at %d columns the counters line lost the loss: %q", w, l)
		}
		if w >= 40 && !strings.Contains(l, "UI skipped 12345") {
			t.Errorf("at %d columns the counters line lost the UI's skips: %q", w, l)
		}
		if !strings.Contains(strings.Split(screen, "\n")[0], "09:30:17") {
			t.Errorf("at %d columns the title line lost the clock: %q", w, strings.Split(screen, "\n")[0])
		}
	}
}

// A narrow terminal keeps a port's failure count.
func TestNarrowPortsKeepFailures(t *testing.T) {
	for _, w := range []int{40, 50, 60} {
		m := step(headless(t, 100, 30), tea.WindowSizeMsg{Width: w, Height: 24})
		screen := stripView(m)
		requireScreen(t, screen, w, 24)
		requireLine(t, screen, "8080", "1", "42.5s", "!2")
		requireLine(t, screen, "PORT", "TIME_WAIT", "TW ENDS IN", "BINDFAIL")
	}
}

// Pause freezes the log only: countdowns, the header and the tables go on.
func TestPauseFreezesOnlyTheLog(t *testing.T) {
	m := headless(t, 100, 30)
	now := testNow
	m.opts.Clock = func() time.Time { return now }
	m = keys(m, "space")
	now = now.Add(2 * time.Second)
	m = step(m, tickMsg(now))
	m = m.Refresh()
	requireLine(t, stripView(m), "8080", "40.5s") // was 42.5s
	requireLine(t, stripView(m), "09:30:19")
	m = keys(m, "2")
	m = m.Refresh()
	requireLine(t, stripView(m), "TIME_WAIT", "127.0.0.1:51234", "40.5s")
	m = step(m, EventsMsg(events(2)))
	m = keys(m, "3")
	requireLine(t, stripView(m), "Events last 27 of 27", "PAUSED", "2 new")
}

// The log keeps Options.LogSize events, at most MaxLogSize.
func TestLogSize(t *testing.T) {
	for size, want := range map[int]int{10: 10, 0: DefaultLogSize, MaxLogSize + 1: MaxLogSize} {
		opts := testOptions()
		opts.LogSize = size
		m := NewModel(table.New(table.Config{}), opts)
		m = step(m, EventsMsg(events(MaxLogSize+5)))
		if n := m.events.ring.len(); n != want {
			t.Errorf("LogSize %d: the log holds %d, want %d", size, n, want)
		}
	}
}

func TestPlural(t *testing.T) {
	for n, want := range map[int]string{0: "0 sockets", 1: "1 socket", 2: "2 sockets"} {
		if got := plural(n, "socket", "sockets"); got != want {
			t.Errorf("plural(%d) = %q", n, got)
		}
	}
	// One connect()-made socket is a socket: the database client's first
	// connection only.
	var one []event.Event
	for _, ev := range sample.Events() {
		if ev.Cookie == 0x3001 {
			one = append(one, ev)
		}
	}
	tab := table.New(table.Config{})
	tab.ApplyBatch(one, nil)
	m := step(NewModel(tab, testOptions()), tea.WindowSizeMsg{Width: 100, Height: 30}).Refresh()
	requireLine(t, stripView(m), "ephem", "1 socket connect() made")
	m = keys(m, "4")
	m = m.Refresh()
	requireLine(t, stripView(m), "Remotes 1 endpoint ·")
}

// View changes nothing: what it shows, Update prepared.
func TestViewIsPure(t *testing.T) {
	m := headless(t, 100, 30)
	m = keys(m, "2") // a new view: its data is on its way
	ctx, km, help := *m.ctx, *m.ctx.keys, m.helpText
	seqs := len(m.ctx.styles.seqs)
	for range 3 {
		_ = m.View()
	}
	if !reflect.DeepEqual(ctx, *m.ctx) || !reflect.DeepEqual(km, *m.ctx.keys) || help != m.helpText ||
		seqs != len(m.ctx.styles.seqs) {
		t.Error("View changed the model's state")
	}
	if !m.ctx.querying {
		t.Error("Update did not note that the new view's data is on its way")
	}
	requireLine(t, stripView(m), "querying the socket table")
}

// The styles are built for the terminal's background, once it answers.
func TestBackgroundPicksStyles(t *testing.T) {
	var asked []bool
	opts := testOptions()
	opts.Styles = func(dark bool) *Styles {
		asked = append(asked, dark)
		return DefaultStyles(dark)
	}
	m := NewModel(newSampleFeed().tab, opts)
	m = step(m, tea.BackgroundColorMsg{Color: color.White})
	m = step(m, tea.BackgroundColorMsg{Color: color.White}) // no change: not rebuilt
	if !reflect.DeepEqual(asked, []bool{true, false}) {
		t.Fatalf("styles built for dark = %v, want dark then light", asked)
	}
	m = step(m, EventsMsg(sample.Events()))
	m = keys(m, "3")
	// On a light background TIME_WAIT is dark orange, not yellow.
	if l := rawLine(t, m.View().Content, "TIME_WAIT enter"); !strings.Contains(l, "38;5;130m") {
		t.Errorf("TIME_WAIT on a light background: %q", l)
	}
	m = step(m, tea.BackgroundColorMsg{Color: color.Black})
	if l := rawLine(t, m.View().Content, "TIME_WAIT enter"); !regexp.MustCompile(`\x1b\[[0-9;]*33m`).MatchString(l) {
		t.Errorf("TIME_WAIT on a dark background: %q", l)
	}
}

// A key map passed in is used, and not changed.
func TestKeyMapOption(t *testing.T) {
	km := DefaultKeyMap()
	km.Quit = key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "exit"))
	opts := testOptions()
	opts.KeyMap = km
	m := NewModel(newSampleFeed().tab, opts)
	m = keys(m, "/") // typing: setMode disables Quit in the UI's copy
	if !km.Quit.Enabled() {
		t.Error("the UI changed the caller's key map")
	}
	m = keys(m, "esc")
	requireLine(t, stripView(m), "x exit")
	if cmd := m.onKey(keyMsg("x")); cmd == nil || cmd() != tea.Quit() {
		t.Error("the key map's quit key does not quit")
	}
}

// The scheduler runs on the wall clock, not on the UI's (a capture's) clock.
func TestRefreshOnWallClock(t *testing.T) {
	m := headless(t, 100, 30)
	wall := time.Unix(1000, 0)
	m.opts.WallClock = func() time.Time { return wall }
	m.refresh.started = wall
	if m.maybeRefresh() != nil {
		t.Fatal("a query before a tick of wall time passed")
	}
	m.opts.Clock = func() time.Time { return testNow.Add(time.Hour) } // the capture's clock jumps: no matter
	if m.maybeRefresh() != nil {
		t.Fatal("the UI's clock made a query due")
	}
	wall = wall.Add(m.opts.Tick)
	if m.maybeRefresh() == nil || !m.refresh.started.Equal(wall) {
		t.Fatal("no query once a tick of wall time passed")
	}
}

// The host's namespace is the caller's; unknown, every namespace shows.
func TestHostNetNSFromCaller(t *testing.T) {
	m := headless(t, 100, 30)
	if m.ports.showNetNS {
		t.Error("a NETNS column for the host's own sockets")
	}
	opts := testOptions()
	opts.HostNetNS = 0
	f := newSampleFeed()
	f.tab.ApplyBatch(f.events, nil)
	m = NewModel(f.tab, opts).Refresh()
	if !m.ports.showNetNS {
		t.Error("host namespace unknown, yet no NETNS column")
	}
}

// A bad filter's error is shown whole, even at 80 columns, under the line
// being fixed.
func TestFilterErrorShowsWhole(t *testing.T) {
	m := typeFilter(headless(t, 80, 24), "estabished")
	screen := stripView(m)
	requireScreen(t, screen, 80, 24)
	lines := strings.Split(screen, "\n")
	joined := strings.Join(lines[len(lines)-4:], " ")
	want := `"estabished" is not a TCP state: want established, or comm:estabished for a task of that name`
	if !strings.Contains(strings.Join(strings.Fields(joined), " "), want) {
		t.Errorf("the error is not whole on screen:\n%s", screen)
	}
	requireLine(t, screen, "/estabished")
	requireLine(t, screen, "enter apply", "esc cancel")
}

// Each view applies what its rows can be judged by and names the rest.
func TestNotHereNotes(t *testing.T) {
	for _, c := range []struct {
		view, line, note string
	}{
		{"1", "dport:5432", "Ports 2 shown · only in Events: dport:5432 · busiest first"},
		{"1", "8080 EADDRINUSE", "only in Events: EADDRINUSE"},
		{"1", "connect fail", "only in Events: connect fail"},
		{"2", "tw fail", "only in Events: fail"},
		{"2", "listen", "Sockets 0 matching LISTEN, listen()"},
		{"4", "pid:4120 tw", "only in Events: pid:4120"},
		// The table keeps no uid: only the log's events are judged by it.
		{"1", "uid:1000", "only in Events: uid:1000"},
		{"2", "uid:0 tw", "only in Events: uid:0"},
		{"4", "uid:0", "only in Events: uid:0"},
		{"3", "uid:0 fail", "matching failed calls, uid 0"},
	} {
		m := keys(headless(t, 200, 30), c.view)
		m = typeFilter(m, c.line).Refresh()
		requireLine(t, stripView(m), c.note)
	}
	// What a view can judge, it applies: fail on Ports is the ports with
	// failures, bind the ports with binds.
	m := typeFilter(headless(t, 200, 30), "fail").Refresh()
	if screen := stripView(m); !strings.Contains(screen, "Ports 1 shown, busiest") || strings.Contains(screen, "only in Events") {
		t.Errorf("fail on Ports:\n%s", screen)
	}
	m = typeFilter(headless(t, 200, 30), "tw").Refresh()
	requireLine(t, stripView(m), "Ports 2 shown, busiest")
	m = typeFilter(headless(t, 200, 30), "nginx").Refresh()
	requireLine(t, stripView(m), "8080", "TIME_WAIT left by 4120 nginx")
	// Sockets: sport is the local port, which the table's query cannot say.
	m = keys(headless(t, 200, 30), "2")
	m = typeFilter(m, "sport:8080").Refresh()
	screen := stripView(m)
	requireLine(t, screen, "Sockets 3 matching sport 8080")
	if strings.Contains(screen, "127.0.0.1:51234   127.0.0.1:8080") {
		t.Errorf("a socket whose remote port is 8080 passed sport:8080:\n%s", screen)
	}
}

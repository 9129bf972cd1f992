package tui

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/twtrace/twtrace/internal/sample"
)

// The golden tests run the program on a fake 100x30 terminal with the ASCII
// colour profile and a fixed clock, fed with the sample stream up to 17.5 s:
// port 8080 has one TIME_WAIT with 42.5 s left, a restart's bind() failed
// with EADDRINUSE, a database client holds a connection and a TIME_WAIT
// towards 10.0.0.9:5432, 17 events were lost. Each test also asserts the facts
// its golden must show, so that a golden regenerated from a broken UI
// cannot pass unnoticed.

func TestPortsView(t *testing.T) {
	tm := startUI(t, newSampleFeed(), 100, 30)
	waitFor(t, tm, "8080", "42.5s")
	screen := finalScreen(t, tm)
	requireScreen(t, screen, 100, 30)
	requireLine(t, screen, "8080", "1", "42.5s", "!2", "TIME_WAIT left by 4120 nginx")
	requireLine(t, screen, "lost 17", "TIME_WAIT 2")
	requireLine(t, screen, "enter sockets", "q quit")
	golden.RequireEqual(t, screen)
}

func TestSocketsView(t *testing.T) {
	tm := startUI(t, newSampleFeed(), 100, 30)
	waitFor(t, tm, "8080")
	press(tm, "tab")
	waitFor(t, tm, "127.0.0.1:51234", "closed")
	screen := finalScreen(t, tm)
	requireScreen(t, screen, 100, 30)
	requireLine(t, screen, "TIME_WAIT", "127.0.0.1:8080", "127.0.0.1:51234", "4120 nginx", "42.5s")
	requireLine(t, screen, "CLOSE", "0.0.0.0:8080", "closed")
	golden.RequireEqual(t, screen)
}

func TestEventsView(t *testing.T) {
	tm := startUI(t, newSampleFeed(), 100, 30)
	waitFor(t, tm, "8080")
	press(tm, "3")
	waitFor(t, tm, "EADDRINUSE", "LOST 17")
	screen := finalScreen(t, tm)
	requireScreen(t, screen, 100, 30)
	requireLine(t, screen, "4300 nginx", "!bind EADDRINUSE no reuseaddr")
	requireLine(t, screen, "!LOST 17 events")
	requireLine(t, screen, "TIME_WAIT enter 60.0s left (inferred)")
	// The task name that carries an escape sequence is shown defanged.
	if strings.Contains(screen, "\x1b[2J") {
		t.Error("a task name's escape sequence reached the screen")
	}
	golden.RequireEqual(t, screen)
}

// TestEventsViewAt80: on an 80x24 terminal the Events view drops the
// running task and the remote end before the owner, so that the pid of
// every refused syscall stays on screen.
func TestEventsViewAt80(t *testing.T) {
	tm := startUI(t, newSampleFeed(), 80, 24)
	waitFor(t, tm, "8080")
	press(tm, "3")
	waitFor(t, tm, "EADDRINUSE", "LOST 17")
	screen := finalScreen(t, tm)
	requireScreen(t, screen, 80, 24)
	requireLine(t, screen, "TIME", "OWNER", "LOCAL", "EVENT")
	requireLine(t, screen, "4300 nginx", "0.0.0.0:8080", "!bind EADDRINUSE no reuseaddr")
	requireLine(t, screen, "4301 backup", "*:8080", "!listen EADDRINUSE")
	requireLine(t, screen, "6000 loadgen", "!connect EADDRNOTAVAIL")
	requireLine(t, screen, "4120 nginx", "TIME_WAIT enter 60.0s left (inferred)")
	golden.RequireEqual(t, screen)
}

func TestRemotesView(t *testing.T) {
	tm := startUI(t, newSampleFeed(), 100, 30)
	waitFor(t, tm, "8080")
	press(tm, "4")
	waitFor(t, tm, "ip_local_port_range", "10.0.0.9:5432")
	screen := finalScreen(t, tm)
	requireScreen(t, screen, 100, 30)
	requireLine(t, screen, "10.0.0.9:5432", "1", "%")
	requireLine(t, screen, "Remotes 1 endpoint ·")
	golden.RequireEqual(t, screen)
}

// TestFilterAndTimeline: tab to Sockets, filter by state, open the
// TIME_WAIT's timeline.
func TestFilterAndTimeline(t *testing.T) {
	tm := startUI(t, newSampleFeed(), 100, 30)
	waitFor(t, tm, "8080")
	press(tm, "tab")
	waitFor(t, tm, "closed")
	tm.Type("/tw")
	press(tm, "enter")
	waitFor(t, tm, "Sockets 2 matching TIME_WAIT")
	press(tm, "enter")
	waitFor(t, tm, "Timeline")
	screen := finalScreen(t, tm)
	requireScreen(t, screen, 100, 30)
	requireLine(t, screen, "Socket sk:2a03", "TIME_WAIT", "ends in 42.5s", "09:31:00.036")
	requireLine(t, screen, "ESTABLISHED", "25.0 ms")
	requireLine(t, screen, "TIME_WAIT", "17.46 s", "so far", "42.5s left")
	requireLine(t, screen, "refused with EADDRINUSE")
	requireLine(t, screen, "esc close")
	golden.RequireEqual(t, screen)
}

// TestDrillDown: enter on a port lists its sockets; esc comes back.
func TestDrillDown(t *testing.T) {
	tm := startUI(t, newSampleFeed(), 100, 30)
	waitFor(t, tm, "42.5s")
	press(tm, "enter")
	waitFor(t, tm, "matching port 8080")
	screen := finalScreen(t, tm)
	requireLine(t, screen, "Sockets 4 matching port 8080")
	requireLine(t, screen, "filter port 8080")
	requireLine(t, screen, "esc back")
	golden.RequireEqual(t, screen)
}

func TestDrillDownBack(t *testing.T) {
	tm := startUI(t, newSampleFeed(), 100, 30)
	waitFor(t, tm, "42.5s")
	press(tm, "enter")
	waitFor(t, tm, "matching port 8080")
	press(tm, "esc")
	m := finalModel(t, tm)
	if m.active != viewPorts || !m.filter.empty() {
		t.Errorf("esc after a drill-down: view %s, filter %q; want Ports, no filter", viewNames[m.active], m.filter.String())
	}
}

// TestPause: paused, the log stands still while the feed goes on, and the
// header counts what came.
func TestPause(t *testing.T) {
	f := newSampleFeed()
	tm := startUI(t, f, 100, 30)
	press(tm, "3")
	waitFor(t, tm, "EADDRINUSE") // the log has the sample: the table gets it first
	press(tm, "space")
	waitFor(t, tm, "PAUSED")
	extra := sample.Events()[:3]
	for i := range extra {
		extra[i].Time = testNow
		extra[i].Cookie += 0x1000
	}
	f.more <- extra
	waitFor(t, tm, "3 new")
	screen := finalScreen(t, tm)
	requireLine(t, screen, "Events last 27 of 27", "PAUSED", "3 new", "space resumes")
	requireLine(t, screen, "1 Ports", "4 Remotes", "PAUSED", "log, 3 new events")
	requireLine(t, screen, "space resume log")
	if strings.Contains(screen, "09:30:17.500") {
		t.Error("events that came during the pause are shown")
	}
	golden.RequireEqual(t, screen)
}

func TestResume(t *testing.T) {
	f := newSampleFeed()
	tm := startUI(t, f, 100, 30)
	press(tm, "3")
	waitFor(t, tm, "EADDRINUSE") // the log has the sample: the table gets it first
	press(tm, "space")
	waitFor(t, tm, "PAUSED")
	f.more <- []event.Event{{Kind: event.KindLost, Time: testNow, Lost: 5}}
	waitFor(t, tm, "1 new")
	press(tm, "space")
	waitFor(t, tm, "following")
	screen := finalScreen(t, tm)
	requireLine(t, screen, "Events last 28 of 28", "following")
	requireLine(t, screen, "09:30:17.500", "!LOST 5 events")
	requireLine(t, screen, "lost 22")
}

// TestResize: every view fits 80x24 after a resize.
func TestResize(t *testing.T) {
	shows := [numViews]string{"42.5s", "closed", "EADDRINUSE", "10.0.0.9:5432", "EADDRNOTAVAIL", "TW201"}
	for i, name := range viewNames {
		t.Run(name, func(t *testing.T) {
			tm := startUI(t, newSampleFeed(), 100, 30)
			waitFor(t, tm, "8080")
			press(tm, string(rune('1'+i)))
			waitFor(t, tm, name+" ", shows[i])
			tm.Send(tea.WindowSizeMsg{Width: 80, Height: 24})
			waitFor(t, tm, "09:30:17\n") // the header is redrawn at the new width
			screen := finalScreen(t, tm)
			requireScreen(t, screen, 80, 24)
			golden.RequireEqual(t, screen)
		})
	}
}

// TestNoColour: with the ASCII profile (NO_COLOR), no colour reaches the
// terminal; bold and reverse still mark what matters.
func TestNoColour(t *testing.T) {
	tm := startUI(t, newSampleFeed(), 100, 30)
	waitFor(t, tm, "8080")
	press(tm, "3")
	waitFor(t, tm, "EADDRINUSE")
	if err := tm.Quit(); err != nil {
		t.Fatal(err)
	}
	out := string(readAll(t, tm.FinalOutput(t, teatest.WithFinalTimeout(5*time.Second))))
	if c := regexp.MustCompile(`\x1b\[[0-9;]*(3[0-7]|9[0-7]|38;[0-9;]+)m`).FindString(out); c != "" {
		t.Errorf("a colour reached an ASCII terminal: %q", c)
	}
	if !strings.Contains(out, "\x1b[1m") && !strings.Contains(out, ";1m") && !strings.Contains(out, "[1;") {
		t.Error("no bold at all: failures would not stand out without colour")
	}
}

// TestColours: failures and loss are red, TIME_WAIT yellow, in the view's
// own output (before the terminal's profile downsamples it).
func TestColours(t *testing.T) {
	m := headless(t, 100, 30)
	m = step(m, keyMsg("3"))
	view := m.View().Content
	red := regexp.MustCompile(`\x1b\[[0-9;]*31m`)
	for _, want := range []string{"EADDRINUSE", "LOST 17", "EADDRNOTAVAIL"} {
		l := rawLine(t, view, want)
		if !red.MatchString(l) {
			t.Errorf("line with %s is not red: %q", want, l)
		}
	}
	if l := rawLine(t, view, "TIME_WAIT enter"); !regexp.MustCompile(`\x1b\[[0-9;]*33m`).MatchString(l) {
		t.Errorf("TIME_WAIT enter is not yellow: %q", l)
	}
	if l := rawLine(t, view, "lost"); !red.MatchString(l) {
		t.Errorf("the lost counter is not red: %q", l)
	}
	if l := rawLine(t, view, "FIN_WAIT1 -> FIN_WAIT2"); red.MatchString(l) {
		t.Errorf("a plain transition is red: %q", l)
	}
}

func rawLine(t *testing.T, view, want string) string {
	t.Helper()
	for _, l := range strings.Split(view, "\n") {
		if strings.Contains(l, want) {
			return l
		}
	}
	t.Fatalf("no line contains %q", want)
	return ""
}

package tui

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/table"
)

// sampleNetNS is the network namespace of the sample's events.
const sampleNetNS = 4026531840

// testNow is the fixed clock of the golden tests: 17.5 s into the sample,
// when its TIME_WAIT on port 8080 has 42.5 s left.
var testNow = sample.Start.Add(17500 * time.Millisecond)

// testFeed plays events as a live feed would: it applies each batch to its
// table, then hands it over. It delivers the events up to the clock at
// once, then whatever is sent on more, until the context ends.
type testFeed struct {
	tab    *table.Table
	events []event.Event
	more   chan []event.Event
}

func newSampleFeed() *testFeed {
	var evs []event.Event
	for _, ev := range sample.Events() {
		if !ev.Time.After(testNow) {
			evs = append(evs, ev)
		}
	}
	return &testFeed{tab: table.New(table.Config{}), events: evs, more: make(chan []event.Event)}
}

func (f *testFeed) Table() *table.Table { return f.tab }

func (f *testFeed) Run(ctx context.Context, fn func([]event.Event) error) error {
	deliver := func(b []event.Event) error {
		f.tab.ApplyBatch(b, nil)
		return fn(b)
	}
	if err := deliver(f.events); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case b := <-f.more:
			if err := deliver(b); err != nil {
				return err
			}
		}
	}
}

func testOptions() Options {
	return Options{
		Clock:     func() time.Time { return testNow },
		Location:  time.UTC,
		Host:      "web-1",
		Kernel:    "6.8.0-twtrace",
		Tick:      20 * time.Millisecond, // tests need not wait 200 ms per frame
		HostNetNS: sampleNetNS,           // the sample's namespace, whatever this machine's is
	}
}

// ui is a program under test.
type ui struct {
	*teatest.TestModel
	frame *atomic.Pointer[string] // the last screen rendered
	calm  *atomic.Bool            // ... with every failure seen diagnosed
}

// probe records each screen the program renders, so that tests wait for
// what is on the screen rather than for the renderer's partial redraws.
type probe struct {
	Model
	frame *atomic.Pointer[string]
	calm  *atomic.Bool
}

func (p probe) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	m, cmd := p.Model.Update(msg)
	return probe{m.(Model), p.frame, p.calm}, cmd
}

func (p probe) View() tea.View {
	v := p.Model.View()
	s := ansi.Strip(v.Content)
	p.frame.Store(&s)
	calm := p.Model.failures.total > 0 && len(p.Model.failures.queue) == 0
	for _, f := range p.Model.failures.entries {
		calm = calm && f.diag != nil
	}
	p.calm.Store(calm)
	return v
}

// startUI runs the UI on a fake terminal of w x h with a pinned colour
// profile, fed by feed.
func startUI(t *testing.T, feed Feed, w, h int) *ui {
	t.Helper()
	return startUIWith(t, feed, testOptions(), w, h)
}

// startUIWith is startUI with options of the test's own.
func startUIWith(t *testing.T, feed Feed, opts Options, w, h int) *ui {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m, wait := attach(ctx, feed, opts)
	p := probe{m, new(atomic.Pointer[string]), new(atomic.Bool)}
	tm := teatest.NewTestModel(t, p,
		teatest.WithInitialTermSize(w, h),
		teatest.WithProgramOptions(tea.WithColorProfile(colorprofile.ASCII)))
	t.Cleanup(func() {
		cancel()
		if err := wait(); err != context.Canceled {
			t.Errorf("feed: %v", err)
		}
	})
	return &ui{tm, p.frame, p.calm}
}

// waitFor waits until the screen shows every string.
func waitFor(t *testing.T, u *ui, want ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := ""
		if f := u.frame.Load(); f != nil {
			s = *f
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(s, w)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the screen never showed %q; last screen:\n%s", want, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// finalModel quits and returns the model as the program left it.
func finalModel(t *testing.T, u *ui) Model {
	t.Helper()
	if err := u.Quit(); err != nil {
		t.Fatal(err)
	}
	return u.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(probe).Model
}

// finalScreen quits and returns the last screen as plain text.
func finalScreen(t *testing.T, u *ui) string {
	t.Helper()
	settled(t, u)
	return ansi.Strip(finalModel(t, u).View().Content)
}

// settled waits (bounded) until the failures on screen are diagnosed: the
// query goroutine makes diagnoses, a golden must not depend on its timing.
func settled(t *testing.T, u *ui) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Every test feed has failures: all of them in, and diagnosed.
		if u.calm.Load() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("failures still being diagnosed after 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func press(u *ui, keys ...string) {
	for _, k := range keys {
		u.Send(keyMsg(k))
	}
}

// keyMsg makes the key press a terminal would send for a key name.
func keyMsg(k string) tea.KeyPressMsg {
	switch k {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "shift+tab":
		return tea.KeyPressMsg{Code: tea.KeyTab, Mod: tea.ModShift}
	case "space":
		return tea.KeyPressMsg{Code: tea.KeySpace, Text: " "}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "end":
		return tea.KeyPressMsg{Code: tea.KeyEnd}
	case "backspace":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	}
	r := []rune(k)[0]
	return tea.KeyPressMsg{Code: r, Text: k}
}

// requireScreen checks the shape of a screen: exactly h lines of at most
// w cells.
func requireScreen(t *testing.T, screen string, w, h int) {
	t.Helper()
	lines := strings.Split(screen, "\n")
	if len(lines) != h {
		t.Errorf("screen has %d lines, want %d", len(lines), h)
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n > w {
			t.Errorf("line %d is %d cells wide, more than %d: %q", i+1, n, w, l)
		}
	}
}

// requireLine fails unless one line of the screen contains every string.
func requireLine(t *testing.T, screen string, want ...string) string {
	t.Helper()
	for _, l := range strings.Split(screen, "\n") {
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			return l
		}
	}
	t.Fatalf("no line contains all of %q in:\n%s", want, screen)
	return ""
}

func readAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// headless returns a model fed with the sample up to testNow, without a
// program: for tests of rendering details and for benchmarks.
func headless(t testing.TB, w, h int) Model {
	t.Helper()
	return headlessWith(t, newSampleFeed(), testOptions(), w, h)
}

// headlessWith is headless with a feed and options of the test's own.
func headlessWith(t testing.TB, f *testFeed, opts Options, w, h int) Model {
	t.Helper()
	f.tab.ApplyBatch(f.events, nil)
	m := NewModel(f.tab, opts)
	m = step(m, tea.WindowSizeMsg{Width: w, Height: h})
	m = step(m, EventsMsg(f.events))
	return m.Refresh()
}

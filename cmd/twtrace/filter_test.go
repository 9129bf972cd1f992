package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/jsonl"
	"github.com/twtrace/twtrace/tracer/table"
	"github.com/twtrace/twtrace/tui"
)

// The live view's "/" line and the CLI's flags select the same events. The
// CLI's side is replay of the sample capture with the flags; the live view's
// is its Events view with the terms typed, fed the sample. The view's count
// of matching events on the whole sample equals the CLI's, and every event
// the CLI selected matches in the view: the two sets are the same.
func TestLiveAndCLIFiltersAgree(t *testing.T) {
	path := writeCapture(t, "cap.jsonl")
	for _, tc := range []struct {
		line  string
		flags []string
	}{
		{"8080", []string{"--port", "8080"}},
		{"443 5432", []string{"--port", "443,5432"}},
		{"sport:8080", []string{"--sport", "8080"}},
		{"dport:8080", []string{"--dport", "8080"}},
		{"dport:443", []string{"--dport", "443"}},
		{"tw", []string{"--state", "tw"}},
		{"time-wait estab", []string{"--state", "time-wait", "--state", "estab"}},
		{"TIME_WAIT fin-wait-1", []string{"--state", "TIME_WAIT,fin-wait-1"}},
		{"listening", []string{"--state", "listening"}},
		{"closed 8080", []string{"--state", "closed", "--port", "8080"}},
		{"fail", []string{"--errors"}},
		{"fail 8080", []string{"-E", "--port", "8080"}},
		{"tw fail", []string{"--state", "tw", "-E"}},
		{"pid:4120", []string{"--pid", "4120"}},
		{"pid:6000 syn-sent", []string{"--pid", "6000", "--state", "syn-sent"}},
		{"nginx", []string{"--comm", "nginx"}},
		{"comm:curl 8080", []string{"--comm", "curl", "--port", "8080"}},
		{"netns:4026531840 ipv6", []string{"--netns", "4026531840", "-6"}},
		{"ipv4 fail", []string{"-4", "-E"}},
	} {
		out := replayJSON(t, append(append([]string{"replay", "--json"}, tc.flags...), path)...)
		if len(out) == 0 {
			t.Errorf("%q: the CLI selected nothing: a case that tests nothing", tc.flags)
			continue
		}
		all := liveMatches(t, sample.Events(), tc.line)
		picked := liveMatches(t, out, tc.line)
		if all != len(out) || picked != len(out) {
			t.Errorf("/%s shows %d of the sample, %d of the %d events %q selects", tc.line, all, picked, len(out), tc.flags)
		}
	}
}

// replayJSON runs the CLI and decodes the events it writes.
func replayJSON(t *testing.T, args ...string) []event.Event {
	t.Helper()
	code, out, stderr := runCLI(args...)
	if code != 0 {
		t.Fatalf("twtrace %q: exit %d: %s", args, code, stderr)
	}
	var evs []event.Event
	for _, l := range strings.SplitAfter(out, "\n") {
		if l == "" {
			continue
		}
		var ev event.Event
		if err := jsonl.Decode([]byte(l), &ev); err != nil {
			t.Fatalf("decode %q: %v", l, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

var matching = regexp.MustCompile(`Events last \d+ of \d+ · (\d+) matching`)

// liveMatches types a filter into the live view's Events view, fed evs,
// and returns how many events it says match.
func liveMatches(t *testing.T, evs []event.Event, line string) int {
	t.Helper()
	tab := table.New(table.Config{})
	tab.ApplyBatch(evs, nil)
	m := tea.Model(tui.NewModel(tab, tui.Options{Clock: func() time.Time { return sample.Start }, Location: time.UTC}))
	for _, msg := range []tea.Msg{tea.WindowSizeMsg{Width: 200, Height: 60}, tui.EventsMsg(evs)} {
		m, _ = m.Update(msg)
	}
	for _, r := range "3/" + line {
		m, _ = m.Update(tea.KeyPressMsg{Code: r, Text: string(r)})
	}
	m, _ = m.Update(tea.KeyPressMsg{Code: tea.KeyEnter})
	screen := ansi.Strip(m.View().Content)
	g := matching.FindStringSubmatch(screen)
	if g == nil {
		t.Fatalf("/%s: no count of matching events on screen:\n%s", line, screen)
	}
	n, _ := strconv.Atoi(g[1])
	return n
}

package tui

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/golden"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/capture"
)

// samplePlayer plays the sample as a capture: 28 events from 09:30:00.000
// to 09:31:00.036, its refused syscalls the 23rd to the 25th, paused
// before the first event.
func samplePlayer(t *testing.T, speed float64) *capture.Player {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sample.jsonl.zst")
	h := capture.Header{Time: sample.Start, Version: capture.Version, Host: "web-1", Kernel: "6.8.0-twtrace",
		Started: sample.Start.Add(-time.Second), NetNS: sampleNetNS}
	if err := capture.WriteFile(path, h, capture.Options{}, sample.Events()); err != nil {
		t.Fatal(err)
	}
	p, err := capture.NewPlayer(path, nil, speed, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Control(capture.PlayControl{Op: capture.PlayPause})
	return p
}

func startReplay(t *testing.T, p *capture.Player, w, h int) *ui {
	t.Helper()
	opts := testOptions()
	opts.Title = "twtrace replay"
	opts.Clock = p.Now
	return startUIWith(t, p, opts, w, h)
}

// steady masks the event rate: measured on the capture's clock at the
// UI's ticks, it depends on when the keys came between them.
func steady(screen string) string {
	return regexp.MustCompile(`events/s \S+`).ReplaceAllString(screen, "events/s ?")
}

// Paused at the start, a step plays one event, the clock moves to it.
func TestReplayStep(t *testing.T) {
	p := samplePlayer(t, 1)
	u := startReplay(t, p, 100, 30)
	press(u, "3")
	waitFor(t, u, "PAUSED", "event 0/28", "failure 0/3", "09:29:59.000", "space play")
	press(u, ".", ".", ".")
	waitFor(t, u, "event 3/28", "09:30:00.010")
	press(u, "]")
	waitFor(t, u, "event 23/28", "failure 1/3", "09:30:01.200")
	screen := finalScreen(t, u)
	requireLine(t, screen, "twtrace replay", "replay ×1  event 23/28  09:30:01.200")
	requireLine(t, screen, "6 Advice", "PAUSED  failure 1/3")
	requireLine(t, screen, "Events last 23 of 23")
	requireLine(t, screen, "space play", ". step", "] next failure")
	if strings.Contains(screen, "LISTEN") && strings.Contains(screen, "EADDRINUSE listen") {
		t.Error("the listen() refused after the position is shown")
	}
	requireScreen(t, screen, 100, 30)
	golden.RequireEqual(t, steady(screen))
}

// The next failure is diagnosed at its moment; back to the one before
// starts again from the start: the log has only what came up to it.
func TestReplayFailures(t *testing.T) {
	p := samplePlayer(t, 1)
	u := startReplay(t, p, 100, 30)
	press(u, "5", "]", "]")
	waitFor(t, u, "failure 2/3", "event 24/28")
	press(u, "]")
	waitFor(t, u, "failure 3/3", "event 25/28")
	press(u, "]")
	waitFor(t, u, "no refused syscall after this point")
	press(u, "[", "[")
	waitFor(t, u, "failure 1/3", "event 23/28", "09:30:01.200")
	press(u, "[")
	waitFor(t, u, "no refused syscall before this point")
	screen := finalScreen(t, u)
	requireLine(t, screen, "Failures 1 refused syscall, newest first")
	requireLine(t, screen, "bind", "0.0.0.0:8080", "EADDRINUSE")
	if strings.Contains(screen, "connect") {
		t.Errorf("the connect() refused after the position is still listed:\n%s", screen)
	}
	requireScreen(t, screen, 100, 30)
	golden.RequireEqual(t, steady(screen))
}

// + and - double and halve the pace, down to 1/8 and up to as fast as
// possible; space plays and pauses.
func TestReplaySpeed(t *testing.T) {
	p := samplePlayer(t, 1)
	u := startReplay(t, p, 100, 30)
	waitFor(t, u, "replay ×1 ")
	press(u, "+", "+")
	waitFor(t, u, "replay ×4 ")
	press(u, "-", "-", "-", "-", "-", "-")
	waitFor(t, u, "replay ×0.125 ")
	for range 14 {
		press(u, "=")
	}
	waitFor(t, u, "replay max ")
	press(u, "space")
	waitFor(t, u, " END  failure 3/3", "event 28/28", "09:31:00.036")
	press(u, "-")
	waitFor(t, u, "replay ×1024 ")
	m := finalModel(t, u)
	if pos := p.Position(); !pos.AtEnd || pos.Played != 28 || pos.Speed != capture.MaxSpeed {
		t.Errorf("the player: %+v", pos)
	}
	if m.events.ring.len() != 28 {
		t.Errorf("the log has %d events, want 28", m.events.ring.len())
	}
}

// t goes to a time of day, a step or the end; a bad one is one sentence,
// and the line stays open to fix it.
func TestReplaySeek(t *testing.T) {
	p := samplePlayer(t, 1)
	u := startReplay(t, p, 100, 30)
	press(u, "3", "t")
	waitFor(t, u, "go to ", "14:03:07 · 14:03:07.250")
	for _, k := range "9:3O" {
		press(u, string(k))
	}
	press(u, "enter")
	waitFor(t, u, "go to \"9:3O\": want a time of day such as 14:03:07")
	press(u, "backspace", "backspace", "backspace", "backspace")
	for _, k := range "09:30:01" {
		press(u, string(k))
	}
	press(u, "enter")
	waitFor(t, u, "event 18/28  09:30:01.000", "PAUSED")
	press(u, "t")
	for _, k := range "-900ms" {
		press(u, string(k))
	}
	press(u, "enter")
	waitFor(t, u, "event 13/28  09:30:00.100", "Events last 13 of 13")
	press(u, "t", "e", "n", "d", "enter")
	waitFor(t, u, " END ", "event 28/28")
	screen := finalScreen(t, u)
	requireLine(t, screen, "Events last 28 of 28")
	requireLine(t, screen, "TIME_WAIT", "127.0.0.1:8080")
}

func TestParseSeek(t *testing.T) {
	now := time.Date(2026, 11, 25, 0, 1, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Time
	}{
		{"00:02", now.Add(time.Minute)},
		{"23:59:00", now.Add(-2 * time.Minute)}, // the day before: nearest
		{"00:00:30.250", now.Add(-29750 * time.Millisecond)},
		{"+1m30s", now.Add(90 * time.Second)},
		{"-5s", now.Add(-5 * time.Second)},
		{" start ", time.Time{}},
		{"end", seekEnd},
	} {
		got, err := parseSeek(c.in, now, time.UTC)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("parseSeek(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "noon", "25:00", "+", "1m", "12:3x"} {
		if _, err := parseSeek(in, now, time.UTC); err == nil || strings.Count(err.Error(), ". ") > 0 {
			t.Errorf("parseSeek(%q): %v, want one sentence", in, err)
		}
	}
}

// A live feed has none of the replay's keys.
func TestLiveHasNoReplayKeys(t *testing.T) {
	u := startUI(t, newSampleFeed(), 100, 30)
	press(u, "?")
	waitFor(t, u, "pause log")
	press(u, "]", "t", ".")
	screen := finalScreen(t, u)
	for _, s := range []string{"next failure", "go to", "step", "PAUSED", "event 0", "replay"} {
		if strings.Contains(screen, s) {
			t.Errorf("a live view shows %q:\n%s", s, screen)
		}
	}
}

package tui

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/stream"
	"github.com/twtrace/twtrace/tracer/text"
)

// TestEventsReadAsTrace: each event of the sample reads the same in the
// Events view as in `twtrace trace`: on a screen wide enough for every
// column, each column holds the same words, and EVENT holds the stream's
// EVENT and DETAIL.
func TestEventsReadAsTrace(t *testing.T) {
	evs := newSampleFeed().events
	var out bytes.Buffer
	if err := stream.NewText(&out, stream.TextOptions{Location: time.UTC}).Write(evs); err != nil {
		t.Fatal(err)
	}
	traced := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")

	m := headless(t, 200, len(evs)+10)
	m = step(m, keyMsg("3"))
	lines := strings.Split(stripView(m), "\n")
	at := 0
	for at < len(lines) && !strings.HasPrefix(lines[at], "TIME ") {
		at++
	}
	if at == len(lines) {
		t.Fatalf("no header line on the Events view:\n%s", strings.Join(lines, "\n"))
	}
	shown := lines[at+1 : min(at+1+len(evs), len(lines))]
	if len(traced) != len(evs)+1 || len(shown) != len(evs) {
		t.Fatalf("%d events: %d lines traced, %d rows shown", len(evs), len(traced)-1, len(shown))
	}

	titles := text.Titles[:text.ColDetail] // the view's columns: EVENT takes DETAIL in
	for i := range evs {
		want := fields(t, traced[0], traced[i+1], titles)
		got := fields(t, lines[at], shown[i], titles)
		if want[text.ColTask]+want[text.ColOwner]+want[text.ColLocal]+want[text.ColRemote] == "" {
			// A loss report is a message across the row: the same words, after the time.
			got[text.ColWhat] = strings.Join(strings.Fields(shown[i][len(got[text.ColTime]):]), " ")
			got[text.ColTask], got[text.ColOwner], got[text.ColLocal], got[text.ColRemote] = "", "", "", ""
		}
		for c := range titles {
			if got[c] != want[c] {
				t.Errorf("event %d, %s: the view shows %q, trace prints %q", i, titles[c], got[c], want[c])
			}
		}
	}
}

// fields cuts a line at the offsets of the header's titles; the last field
// runs to the end of the line, its spaces collapsed.
func fields(t *testing.T, header, line string, titles []string) []string {
	t.Helper()
	offs := make([]int, len(titles)+1)
	for i, title := range titles {
		offs[i] = strings.Index(header, title+" ")
		if i == len(titles)-1 && offs[i] < 0 && strings.HasSuffix(strings.TrimRight(header, " "), title) {
			offs[i] = strings.LastIndex(header, title)
		}
		if offs[i] < 0 || (i > 0 && offs[i] <= offs[i-1]) {
			t.Fatalf("header %q: no column %s after the previous one", header, title)
		}
	}
	offs[len(titles)] = len(line)
	out := make([]string, len(titles))
	for i := range titles {
		lo, hi := min(offs[i], len(line)), min(offs[i+1], len(line))
		if i == len(titles)-1 {
			out[i] = strings.Join(strings.Fields(line[lo:]), " ")
		} else {
			out[i] = strings.TrimSpace(line[lo:hi])
		}
	}
	return out
}

package stream

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/charmbracelet/x/exp/golden"

	"github.com/twtrace/twtrace/internal/sample"
)

func render(t *testing.T, opt TextOptions, batches ...[]event.Event) string {
	t.Helper()
	var out bytes.Buffer
	w := NewText(&out, opt)
	for _, b := range batches {
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	return out.String()
}

func TestTextGolden(t *testing.T) {
	golden.RequireEqual(t, render(t, TextOptions{Location: time.UTC}, sample.Events()))
}

func TestTextColorGolden(t *testing.T) {
	golden.RequireEqual(t, render(t, TextOptions{Location: time.UTC, Color: true}, sample.Events()))
}

// The header comes once, before the first batch, whatever the batching.
func TestTextHeaderOnce(t *testing.T) {
	evs := sample.Events()
	whole := render(t, TextOptions{Location: time.UTC}, evs)
	split := render(t, TextOptions{Location: time.UTC}, evs[:3], nil, evs[3:])
	if whole != split {
		t.Errorf("batching changes the output:\n%s\nvs\n%s", whole, split)
	}
	if n := strings.Count(whole, "TIME "); n != 1 {
		t.Errorf("header printed %d times", n)
	}
	if strings.Contains(render(t, TextOptions{Location: time.UTC, NoHeader: true}, evs), "TIME ") {
		t.Error("NoHeader still prints the header")
	}
}

// A task name cannot inject terminal escapes into the text output.
func TestTextSanitisesComm(t *testing.T) {
	out := render(t, TextOptions{Location: time.UTC}, sample.Events())
	if strings.ContainsRune(out, 0x1b) {
		t.Error("escape byte from a task name reached the terminal")
	}
}

func TestJSONWritesWholeBatches(t *testing.T) {
	var w countingWriter
	j := NewJSON(&w)
	evs := sample.Events()
	if err := j.Write(evs); err != nil {
		t.Fatal(err)
	}
	if w.calls != 1 || bytes.Count(w.buf.Bytes(), []byte("\n")) != len(evs) {
		t.Errorf("%d writes, %d lines for %d events", w.calls, bytes.Count(w.buf.Bytes(), []byte("\n")), len(evs))
	}
}

func TestWriteErrorsSurface(t *testing.T) {
	full := errors.New("no space left on device")
	evs := sample.Events()
	if err := NewJSON(failingWriter{full}).Write(evs); !errors.Is(err, full) {
		t.Errorf("JSON: %v", err)
	}
	if err := NewText(failingWriter{full}, TextOptions{}).Write(evs); !errors.Is(err, full) {
		t.Errorf("text: %v", err)
	}
}

type countingWriter struct {
	buf   bytes.Buffer
	calls int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.calls++
	return c.buf.Write(p)
}

type failingWriter struct{ err error }

func (f failingWriter) Write(p []byte) (int, error) { return 0, f.err }

func BenchmarkText(b *testing.B) {
	evs := sample.Events()
	w := NewText(&bytes.Buffer{}, TextOptions{Location: time.UTC, NoHeader: true})
	var sink discard
	w.w = &sink
	b.ReportAllocs()
	for b.Loop() {
		_ = w.Write(evs)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

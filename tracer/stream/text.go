package stream

import (
	"io"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/text"
)

// TextOptions configures the text writer.
type TextOptions struct {
	Color    bool           // ANSI colours: failures and loss in red, TIME_WAIT in yellow
	Location *time.Location // time zone of the TIME column; nil: local
	NoHeader bool
}

// Text writes one aligned line per event under a header line: the columns
// of package text, padded.
type Text struct {
	out
	opt TextOptions
}

// Column widths, by text.Column; wider values push the rest of their line
// to the right. DETAIL, the last, is not padded.
var widths = [text.NumColumns]int{
	text.ColTime:   12,
	text.ColTask:   wOwner,
	text.ColOwner:  wOwner,
	text.ColLocal:  wAddr,
	text.ColRemote: wAddr,
	text.ColWhat:   28,
}

const (
	wOwner  = 23
	wAddr   = 23
	ansiRed = "\x1b[1;31m"
	ansiYel = "\x1b[33m"
	ansiOff = "\x1b[0m"
)

// NewText returns a text writer to w.
func NewText(w io.Writer, opt TextOptions) *Text {
	if opt.Location == nil {
		opt.Location = time.Local
	}
	header := ""
	if !opt.NoHeader {
		header = Header() + "\n"
	}
	return &Text{out: newOut(w, header), opt: opt}
}

// Header is the column header line.
func Header() string {
	var b []byte
	for c, title := range text.Titles {
		b = pad(b, title, widths[c])
	}
	return string(trimRight(b, 0))
}

// Write renders a batch and writes it with one call.
func (t *Text) Write(batch []event.Event) error { return t.write(batch, t) }

// Colour is the ANSI code an event's line is written in, "" for none:
// failures and loss red, TIME_WAIT yellow.
func Colour(ev *event.Event) string {
	switch class, _ := text.Classify(ev); class {
	case text.ClassFailure, text.ClassLoss:
		return ansiRed
	case text.ClassTimeWait:
		return ansiYel
	}
	return ""
}

func (t *Text) appendRow(b []byte, ev *event.Event) []byte {
	color := ""
	if t.opt.Color {
		color = Colour(ev)
	}
	b = append(b, color...)
	start := len(b)
	for c := range text.NumColumns {
		s := len(b)
		b = text.AppendColumn(b, ev, c, t.opt.Location)
		if c < text.NumColumns-1 {
			b = padTo(b, s, widths[c])
		}
	}
	b = trimRight(b, start) // a line without DETAIL ends at its EVENT
	if color != "" {
		b = append(b, ansiOff...)
	}
	return append(b, '\n')
}

// trimRight drops the spaces at the end of what was appended since start.
func trimRight(b []byte, start int) []byte {
	for len(b) > start && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	return b
}

func pad(b []byte, s string, w int) []byte {
	start := len(b)
	b = append(b, s...)
	return padTo(b, start, w)
}

// padTo pads what was appended since start to w columns plus one space.
func padTo(b []byte, start, w int) []byte {
	for n := w - (len(b) - start); n > 0; n -= len(spaces) {
		b = append(b, spaces[:min(n, len(spaces))]...)
	}
	return append(b, ' ')
}

var spaces = []byte("                                ")

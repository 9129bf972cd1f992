// Package stream writes the event stream to a terminal, a pipe or a file:
// aligned text columns for people, JSON Lines for programs. Every batch is
// written out whole when it is handed over, so a pipe such as
// `twtrace trace | grep EADDRINUSE` sees each line as soon as the batch it
// came in (at most one ring buffer poll interval after the event).
package stream

import (
	"io"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/jsonl"
)

// JSON writes JSON Lines.
type JSON struct {
	out
	enc jsonl.Encoder
}

// NewJSON returns a JSON Lines writer to w.
func NewJSON(w io.Writer) *JSON {
	return &JSON{out: newOut(w, "")}
}

// Write encodes a batch and writes it with one call.
func (j *JSON) Write(batch []event.Event) error { return j.write(batch, j) }

func (j *JSON) appendRow(b []byte, ev *event.Event) []byte { return j.enc.Append(b, ev) }

// out is what every writer shares: one buffer, filled with a batch's rows
// (after the header, the first time) and written with one call.
type out struct {
	w      io.Writer
	buf    []byte
	header string // written before the first row, then cleared
}

func newOut(w io.Writer, header string) out {
	return out{w: w, buf: make([]byte, 0, 64<<10), header: header}
}

// rows formats one event as a writer's row.
type rows interface {
	appendRow(b []byte, ev *event.Event) []byte
}

func (o *out) write(batch []event.Event, r rows) error {
	b := append(o.buf[:0], o.header...)
	o.header = ""
	for i := range batch {
		b = r.appendRow(b, &batch[i])
	}
	o.buf = b
	if len(b) == 0 {
		return nil
	}
	_, err := o.w.Write(b)
	return err
}

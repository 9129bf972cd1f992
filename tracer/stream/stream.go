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
	w   io.Writer
	buf []byte
	enc jsonl.Encoder
}

// NewJSON returns a JSON Lines writer to w.
func NewJSON(w io.Writer) *JSON {
	return &JSON{w: w, buf: make([]byte, 0, 64<<10)}
}

// Write encodes a batch and writes it with one call.
func (j *JSON) Write(batch []event.Event) error {
	b := j.buf[:0]
	for i := range batch {
		b = j.enc.Append(b, &batch[i])
	}
	j.buf = b
	if len(b) == 0 {
		return nil
	}
	_, err := j.w.Write(b)
	return err
}

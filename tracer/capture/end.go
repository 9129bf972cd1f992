package capture

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/jsonl"
)

// End writes the end record (the file's totals, why the recording ended,
// the counters c at the end), ends the last frame, syncs and closes a file
// Create opened, and returns the first error the writer met.
//
// After a write error it still writes the end record after the file's
// valid part, with the reason the error gives (EndDiskFull, EndWriteError):
// cutting the file back freed the space of the part that did not fit. If
// that fails too, the file ends without one and reads as a cut capture,
// every event of it still readable.
func (w *Writer) End(reason string, c *Counters) error {
	if w.closed {
		return w.err
	}
	w.closed = true
	err := w.Flush()
	if w.err != nil {
		reason = failReason(w.err)
	}
	if werr := w.writeEnd(reason, c); err == nil {
		err = werr
	}
	if w.file == nil {
		return err
	}
	if err == nil {
		// Errors of delayed writes (NFS, some full disks) show here.
		if serr := w.file.Sync(); serr != nil && !errors.Is(serr, unix.EINVAL) {
			err = w.fail(serr)
		}
	}
	if cerr := w.file.Close(); cerr != nil && err == nil {
		w.err = &WriteError{Name: w.name, Saved: w.events, Err: cerr}
		err = w.err
	}
	return err
}

// failReason is the end reason of a write error.
func failReason(err error) string {
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
		return EndDiskFull
	}
	return EndWriteError
}

// writeEnd appends the end record in a frame of its own. It returns the
// error that stopped it when the writer had none before. After a write
// error (a full disk) it makes room for it by dropping the last events, a
// line or a frame at a time, a few at most: the failed write filled the
// disk to its last byte, and the end record says how the file ends.
func (w *Writer) writeEnd(reason string, c *Counters) error {
	failed := w.err != nil
	for try := 0; ; try++ {
		if failed && !w.rewind() {
			return nil
		}
		err := w.tryEnd(reason, c)
		switch {
		case err == nil:
			return nil
		case !failed:
			return w.fail(err)
		case try == maxDrops || !w.dropLast():
			return nil
		}
		var we *WriteError
		if errors.As(w.err, &we) {
			we.Saved = w.events
		}
	}
}

// maxDrops bounds the events dropped to make room for an end record.
const maxDrops = 16

// tryEnd writes the end record after the valid part; on failure the file
// is cut back to it.
func (w *Writer) tryEnd(reason string, c *Counters) error {
	line, err := encodeEnd(&End{Time: time.Now(), Events: w.events, Lost: w.lost, Bytes: w.saved, Reason: reason, Counters: c})
	if err != nil {
		return err
	}
	if w.zenc != nil {
		w.zenc.Reset(w.out) // a new frame, whatever the last one became
		if _, err = w.zenc.Write(line); err == nil {
			err = w.zenc.Close()
		}
	} else {
		_, err = w.out.Write(line)
	}
	if err != nil {
		if w.file != nil {
			_ = w.file.Truncate(w.saved)
		}
		return err
	}
	w.saved = w.out.n
	return nil
}

// rewind puts the file's offset back at the end of its valid part, after a
// failed write left it further: only a file Create opened can be.
func (w *Writer) rewind() bool {
	if w.file == nil {
		return false
	}
	if _, err := w.file.Seek(w.saved, io.SeekStart); err != nil {
		return false
	}
	w.out.n = w.saved
	return true
}

// dropLast cuts the file's last event line, or its last frame, off its
// valid part; false when there is none to drop (never the header or the
// snapshot).
func (w *Writer) dropLast() bool {
	if w.zenc != nil {
		n := len(w.frames)
		if n == 0 || w.frames[n-1].start < w.eventsAt {
			return false
		}
		f := w.frames[n-1]
		w.frames = w.frames[:n-1]
		w.saved, w.events, w.lost = f.start, w.events-f.events, w.lost-f.lost
		return w.file.Truncate(w.saved) == nil
	}
	tail := make([]byte, min(w.saved-w.eventsAt, 64<<10))
	if len(tail) < 2 {
		return false
	}
	if _, err := w.file.ReadAt(tail, w.saved-int64(len(tail))); err != nil {
		return false
	}
	start := bytes.LastIndexByte(tail[:len(tail)-1], '\n') + 1
	if start == 0 && int64(len(tail)) < w.saved-w.eventsAt {
		return false // a line longer than the tail: not an event line
	}
	var ev event.Event
	if jsonl.Decode(tail[start:len(tail)-1], &ev) == nil && ev.Kind == event.KindLost {
		w.lost -= ev.Lost
	}
	w.saved -= int64(len(tail) - start)
	w.events--
	return w.file.Truncate(w.saved) == nil
}

func encodeEnd(e *End) ([]byte, error) {
	reason := e.Reason
	r := endRecord{
		Kind: event.KindEnd.String(), TS: e.Time.UTC().Format(time.RFC3339Nano),
		Events: &e.Events, Lost: &e.Lost, Bytes: &e.Bytes, Reason: &reason, Counters: e.Counters,
	}
	b, err := json.Marshal(&r)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// decodeEnd parses an end record.
func decodeEnd(line []byte) (End, error) {
	var r endRecord
	if err := json.Unmarshal(line, &r); err != nil {
		return End{}, errors.New("end record: not a JSON object")
	}
	ts, err := time.Parse(time.RFC3339Nano, r.TS)
	if err != nil {
		return End{}, errors.New(`end record: bad "ts"`)
	}
	switch {
	case r.Events == nil || *r.Events < 0:
		return End{}, errors.New(`end record without a count of "events"`)
	case r.Lost == nil:
		return End{}, errors.New(`end record without "lost"`)
	case r.Bytes == nil || *r.Bytes < 0:
		return End{}, errors.New(`end record without "bytes"`)
	case r.Reason == nil:
		return End{}, errors.New(`end record without "reason"`)
	}
	return End{Time: ts.UTC(), Events: *r.Events, Lost: *r.Lost, Bytes: *r.Bytes, Reason: *r.Reason, Counters: r.Counters}, nil
}

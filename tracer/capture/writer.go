package capture

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/klauspost/compress/zstd"

	"github.com/twtrace/twtrace/internal/safefile"
	"github.com/twtrace/twtrace/tracer/jsonl"
	"github.com/twtrace/twtrace/tracer/table"
)

// Frame bounds of a compressed capture: a frame ends after this much JSON
// or this long after its first byte, whichever comes first. A file cut by a
// crash loses at most the frame being written.
const (
	DefaultFlushBytes = 1 << 20
	DefaultFlushEvery = time.Second
)

// level is the zstd level of compressed captures. BenchmarkWriter, one core
// of the 2-core development machine, JSON encoding included, on a realistic
// stream: SpeedFastest ~1.35M events/s at a ratio of 13.4, SpeedDefault
// ~1.3M/s at 14.3, SpeedBetterCompression ~0.95M/s at 16.5. The fastest
// costs the least CPU in the bursts that matter (400 000 events/s take
// about 30% of a core) for 5% more bytes.
const level = zstd.SpeedFastest

// Options configures a Writer.
type Options struct {
	Force    bool // Create replaces an existing file
	Compress bool // zstd; Create sets it for a name ending in .zst

	// Redact replaces addresses and the host name with keyed hashes.
	Redact *Redactor

	// FlushBytes and FlushEvery bound a compressed frame; 0 means the default.
	// The time bound is checked at each Write: a caller with sporadic events
	// calls Write with an empty batch now and then (session.Session's sink is
	// called at every idle poll) or Flush.
	FlushBytes int
	FlushEvery time.Duration
}

// Writer writes a capture. It is not safe for concurrent use.
type Writer struct {
	name   string
	opt    Options
	out    *countWriter
	file   *safefile.File // Create's: cut back to the valid part after an error, synced and closed by End
	zenc   *zstd.Encoder
	jenc   jsonl.Encoder
	buf    []byte
	err    error // sticky
	closed bool

	events      int64  // events written, in complete lines or frames
	lost        uint64 // the sum of the lost records among them
	saved       int64  // bytes of out that form a valid capture
	pending     int    // JSON bytes in the open frame
	pendingEvs  int64  // events in the open frame
	pendingLost uint64 // lost in the open frame
	frameStart  time.Time
	frames      []frame       // the last frames written, for End on a full disk
	eventsAt    int64         // where the events begin, after the header and the snapshot
	scratch     []event.Event // a batch being redacted
}

// frame is one compressed frame of events: where it starts, what it holds.
type frame struct {
	start  int64
	events int64
	lost   uint64
}

// keptFrames bounds Writer.frames.
const keptFrames = 8

// countWriter counts the bytes its writer took.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// WriteFile writes a whole capture at once: header, events, end record
// (tests, and tools that make captures).
func WriteFile(path string, h Header, opt Options, evs []event.Event) error {
	w, err := Create(path, h, opt)
	if err != nil {
		return err
	}
	if err := w.Write(evs); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// Create creates the capture file path, through safefile (mode 0600, never
// through a symbolic link), and writes its header. An existing file is an
// error wrapping fs.ErrExist unless opt.Force is set; then a new file
// replaces it, renamed over it once the header is written: the old file,
// and whatever it links to, is never written. A path twtrace never writes
// (a symbolic link, a directory) is an error wrapping safefile.ErrRefused.
func Create(path string, h Header, opt Options) (*Writer, error) {
	f, err := safefile.Create(path, opt.Force)
	if err != nil {
		return nil, fmt.Errorf("create capture: %w", err)
	}
	opt.Compress = opt.Compress || compressed(path)
	w, err := newWriter(f, path, h, opt)
	if err == nil {
		err = f.Publish()
	}
	if err != nil {
		// Without its header it is not a capture: leave nothing behind.
		f.Remove()
		return nil, err
	}
	w.file = f
	return w, nil
}

// NewWriter writes a capture to out, named name in errors, and writes the header.
func NewWriter(out io.Writer, name string, h Header, opt Options) (*Writer, error) {
	return newWriter(out, name, h, opt)
}

func newWriter(out io.Writer, name string, h Header, opt Options) (*Writer, error) {
	if opt.FlushBytes <= 0 {
		opt.FlushBytes = DefaultFlushBytes
	}
	if opt.FlushEvery <= 0 {
		opt.FlushEvery = DefaultFlushEvery
	}
	w := &Writer{name: name, opt: opt, out: &countWriter{w: out}, buf: make([]byte, 0, 64<<10)}
	if opt.Compress {
		// Synchronous (concurrency 1): a write error surfaces in the Write
		// that met it, no goroutine is involved, and it is faster per core.
		enc, err := zstd.NewWriter(w.out, zstd.WithEncoderLevel(level),
			zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
		if err != nil {
			return nil, fmt.Errorf("zstd encoder: %w", err)
		}
		w.zenc = enc
	}
	if opt.Redact != nil {
		h = opt.Redact.header(h)
	}
	line, err := encodeHeader(h)
	if err != nil {
		return nil, err
	}
	if err := w.writeBytes(line, 0, 0); err == nil {
		err = w.Flush()
	}
	if w.err != nil {
		return nil, fmt.Errorf("write capture %s: header: %w", name, errors.Unwrap(w.err))
	}
	return w, nil
}

// encodeHeader is the header's line. Version 0 means Version; a zero time, now.
func encodeHeader(h Header) ([]byte, error) {
	if h.Version == 0 {
		h.Version = Version
	}
	if h.Time.IsZero() {
		h.Time = time.Now()
	}
	if h.Started.IsZero() {
		h.Started = h.Time
	}
	r := headerRecord{
		Kind: event.KindHeader.String(), TS: h.Time.UTC().Format(time.RFC3339Nano),
		Version: h.Version, Host: h.Host, Kernel: h.Kernel,
		Started: h.Started.UTC().Format(time.RFC3339Nano), Sysctls: h.Sysctls, Filters: h.Filters,
		NetNS: h.NetNS, Degraded: h.Degraded, Counters: h.Counters, Redacted: h.Redacted,
	}
	if r.Sysctls == nil {
		r.Sysctls = map[string]string{}
	}
	if r.Filters == nil {
		r.Filters = map[string][]string{}
	}
	b, err := json.Marshal(&r)
	if err != nil {
		return nil, fmt.Errorf("encode capture header: %w", err)
	}
	return append(b, '\n'), nil
}

// WriteSnapshot writes the starting snapshot, one socket record per
// socket, taken at time at: right after the header, before any event (a
// reader rebuilds the table from it before it plays the events).
func (w *Writer) WriteSnapshot(socks []table.Socket, at time.Time) error {
	if w.err != nil {
		return w.err
	}
	if w.events > 0 || w.pendingEvs > 0 {
		return errors.New("capture: the snapshot goes before the events")
	}
	b := w.buf[:0]
	for i := range socks {
		s := &socks[i]
		if w.opt.Redact != nil {
			c := *s
			w.opt.Redact.socket(&c)
			s = &c
		}
		b = jsonl.AppendSocketRecord(b, s, at)
		if len(b) >= 64<<10 {
			if err := w.writeBytes(b, 0, 0); err != nil {
				return err
			}
			b = b[:0]
		}
	}
	w.buf = b
	return w.writeBytes(b, 0, 0)
}

// Write appends a batch with one write (plain) or one call of the
// compressor, and ends the compressed frame when it is due. Header events are
// skipped: a capture has one header, its first line. After an error every
// call returns it: a *WriteError, which says how many events the file keeps.
func (w *Writer) Write(batch []event.Event) error {
	if w.err != nil {
		return w.err
	}
	if w.opt.Redact != nil {
		w.scratch = append(w.scratch[:0], batch...)
		for i := range w.scratch {
			w.opt.Redact.event(&w.scratch[i])
		}
		batch = w.scratch
	}
	b := w.buf[:0]
	n, lost := int64(0), uint64(0)
	for i := range batch {
		switch batch[i].Kind {
		case event.KindHeader, event.KindSocket, event.KindEnd:
			continue
		case event.KindLost:
			lost += batch[i].Lost
		}
		b = w.jenc.Append(b, &batch[i])
		n++
	}
	w.buf = b
	if w.eventsAt == 0 {
		w.eventsAt = w.out.n // after the header and the snapshot, their frame ended
		if w.zenc != nil && w.pending > 0 {
			if err := w.Flush(); err != nil {
				return err
			}
			w.eventsAt = w.out.n
		}
	}
	if err := w.writeBytes(b, n, lost); err != nil {
		return err
	}
	if w.zenc != nil && w.pending > 0 &&
		(w.pending >= w.opt.FlushBytes || time.Since(w.frameStart) >= w.opt.FlushEvery) {
		return w.Flush()
	}
	return nil
}

// writeBytes writes b, holding n events and lost lost ones, to the file or
// the open frame.
func (w *Writer) writeBytes(b []byte, n int64, lost uint64) error {
	if len(b) == 0 {
		return nil
	}
	if w.zenc != nil {
		if w.pending == 0 {
			w.frameStart = time.Now()
		}
		if _, err := w.zenc.Write(b); err != nil {
			return w.fail(err)
		}
		w.pending += len(b)
		w.pendingEvs += n
		w.pendingLost += lost
		return nil
	}
	k, err := w.out.Write(b)
	if err != nil {
		// Keep the complete lines of a partial write.
		if i := bytes.LastIndexByte(b[:k], '\n'); i >= 0 {
			w.saved += int64(i + 1)
			if n > 0 { // socket records are not events
				w.events += int64(bytes.Count(b[:i+1], []byte{'\n'}))
			}
		}
		return w.fail(err)
	}
	w.saved += int64(k)
	w.events += n
	w.lost += lost
	return nil
}

// Flush ends the open compressed frame, so that everything written so far
// is in the file and decodes. A plain capture has nothing to flush.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if w.zenc == nil || w.pending == 0 {
		return nil
	}
	if err := w.zenc.Close(); err != nil {
		return w.fail(err)
	}
	w.zenc.Reset(w.out)
	if w.pendingEvs > 0 {
		if len(w.frames) == keptFrames {
			w.frames = append(w.frames[:0], w.frames[1:]...)
		}
		w.frames = append(w.frames, frame{w.saved, w.pendingEvs, w.pendingLost})
	}
	w.saved = w.out.n
	w.events += w.pendingEvs
	w.lost += w.pendingLost
	w.pending, w.pendingEvs, w.pendingLost = 0, 0, 0
	return nil
}

// fail records the first error and cuts the file back to its valid part.
func (w *Writer) fail(err error) error {
	if w.file != nil {
		// Shrinking a file needs no space; if it fails anyway, a reader
		// still delivers everything up to the damaged end.
		_ = w.file.Truncate(w.saved)
	}
	w.pending, w.pendingEvs, w.pendingLost = 0, 0, 0
	w.err = &WriteError{Name: w.name, Saved: w.events, Err: err}
	return w.err
}

// Events is the number of events in the file: in complete lines (plain)
// or complete frames (compressed).
func (w *Writer) Events() int64 { return w.events }

// Lost is the sum of the lost records in the file, as Events counts them.
func (w *Writer) Lost() uint64 { return w.lost }

// Bytes is the size of the file's valid part.
func (w *Writer) Bytes() int64 { return w.saved }

// Name is the file's name.
func (w *Writer) Name() string { return w.name }

// Err is the first error the writer met, a *WriteError; nil when none.
func (w *Writer) Err() error { return w.err }

// Close is End(EndClosed, nil).
func (w *Writer) Close() error { return w.End(EndClosed, nil) }

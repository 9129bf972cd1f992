package capture

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer/jsonl"
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
	file   *os.File // Create's: cut back to the valid part after an error, synced and closed by Close
	zenc   *zstd.Encoder
	jenc   jsonl.Encoder
	buf    []byte
	err    error // sticky
	closed bool

	events     int64 // events written, in complete lines or frames
	saved      int64 // bytes of out that form a valid capture
	pending    int   // JSON bytes in the open frame
	pendingEvs int64 // events in the open frame
	frameStart time.Time
}

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

// Create creates the capture file path and writes its header. An existing
// file is an error wrapping fs.ErrExist unless opt.Force is set.
func Create(path string, h Header, opt Options) (*Writer, error) {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if opt.Force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create capture: %w", err)
	}
	opt.Compress = opt.Compress || compressed(path)
	w, err := newWriter(f, path, h, opt)
	if err != nil {
		f.Close()
		if !opt.Force {
			// The file is ours (O_EXCL), and without its header it is
			// not a capture: leave nothing behind. With Force it may be a
			// device such as /dev/full, which is never removed.
			os.Remove(path)
		}
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
	line, err := encodeHeader(h)
	if err != nil {
		return nil, err
	}
	if err := w.writeBytes(line, 0); err == nil {
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
		NetNS: h.NetNS, Degraded: h.Degraded,
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

// Write appends a batch with one write (plain) or one call of the
// compressor, and ends the compressed frame when it is due. Header events are
// skipped: a capture has one header, its first line. After an error every
// call returns it: a *WriteError, which says how many events the file keeps.
func (w *Writer) Write(batch []event.Event) error {
	if w.err != nil {
		return w.err
	}
	b := w.buf[:0]
	n := int64(0)
	for i := range batch {
		if batch[i].Kind == event.KindHeader {
			continue
		}
		b = w.jenc.Append(b, &batch[i])
		n++
	}
	w.buf = b
	if err := w.writeBytes(b, n); err != nil {
		return err
	}
	if w.zenc != nil && w.pending > 0 &&
		(w.pending >= w.opt.FlushBytes || time.Since(w.frameStart) >= w.opt.FlushEvery) {
		return w.Flush()
	}
	return nil
}

// writeBytes writes b, holding n events, to the file or the open frame.
func (w *Writer) writeBytes(b []byte, n int64) error {
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
		return nil
	}
	k, err := w.out.Write(b)
	if err != nil {
		// Keep the complete lines of a partial write.
		if i := bytes.LastIndexByte(b[:k], '\n'); i >= 0 {
			w.saved += int64(i + 1)
			w.events += int64(bytes.Count(b[:i+1], []byte{'\n'}))
		}
		return w.fail(err)
	}
	w.saved += int64(k)
	w.events += n
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
	w.saved = w.out.n
	w.events += w.pendingEvs
	w.pending, w.pendingEvs = 0, 0
	return nil
}

// fail records the first error and cuts the file back to its valid part.
func (w *Writer) fail(err error) error {
	if w.file != nil {
		// Shrinking a file needs no space; if it fails anyway, a reader
		// still delivers everything up to the damaged end.
		_ = w.file.Truncate(w.saved)
	}
	w.pending, w.pendingEvs = 0, 0
	w.err = &WriteError{Name: w.name, Saved: w.events, Err: err}
	return w.err
}

// Events is the number of events in the file: in complete lines (plain)
// or complete frames (compressed).
func (w *Writer) Events() int64 { return w.events }

// Bytes is the size of the file's valid part.
func (w *Writer) Bytes() int64 { return w.saved }

// Name is the file's name.
func (w *Writer) Name() string { return w.name }

// Close ends the last frame, syncs and closes a file Create opened, and
// returns the first error the writer met.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	err := w.Flush()
	if w.file != nil {
		if err == nil {
			// Errors of delayed writes (NFS, some full disks) show here.
			// EINVAL: the file cannot be synced (a device such as /dev/null).
			if serr := w.file.Sync(); serr != nil && !errors.Is(serr, unix.EINVAL) {
				err = w.fail(serr)
			}
		}
		if cerr := w.file.Close(); cerr != nil && err == nil {
			w.err = &WriteError{Name: w.name, Saved: w.events, Err: cerr}
			err = w.err
		}
	}
	return err
}

package capture

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/klauspost/compress/zstd"

	"github.com/twtrace/twtrace/tracer/jsonl"
	"github.com/twtrace/twtrace/tracer/table"
)

// maxWindow bounds the zstd window a capture may declare. This package
// writes 1 MiB windows; 32 MiB admits files recompressed by the zstd tool
// at high levels while a hostile header cannot claim gigabytes.
const maxWindow = 32 << 20

// Reader reads a capture: plain or zstd-compressed, told apart by the
// magic bytes. Captures are untrusted input: every problem is an error,
// never a panic, and every event before the problem is delivered first.
type Reader struct {
	name string
	file *os.File // when Open opened it
	src  *source
	dec  *zstd.Decoder
	br   *bufio.Reader
	long []byte // a line longer than br's buffer, assembled
	line int    // lines read so far
	hdr  Header
	err  error // sticky

	snap    []table.Socket // the starting snapshot
	snapAt  time.Time
	pending bool        // ev holds the first event, read with the snapshot
	first   event.Event //
	events  int64       // events delivered
	last    time.Time   // the last one's time
	end     *End        // the end record, once read
}

// maxSnapshot bounds the socket records a capture may hold, as a live table
// holds at most that many sockets: a hostile file cannot claim gigabytes.
const maxSnapshot = table.DefaultMaxSockets

// Open opens the capture at path and reads its header.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open capture: %w", err)
	}
	r, err := NewReader(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.file = f
	return r, nil
}

// NewReader reads a capture from in, named name in errors, and reads its header.
func NewReader(in io.Reader, name string) (*Reader, error) {
	r := &Reader{name: name, src: &source{r: in}}
	raw := bufio.NewReaderSize(r.src, 64<<10)
	r.br = raw
	magic, err := raw.Peek(4)
	switch {
	case len(magic) == 0 && err == io.EOF:
		return nil, r.format(errors.New("empty file: not a twtrace capture"))
	case len(magic) == 0 && err != nil:
		return nil, fmt.Errorf("read capture %s: %w", name, err)
	case isZstd(magic):
		dec, err := zstd.NewReader(raw, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(maxWindow), zstd.WithDecoderMaxMemory(maxWindow))
		if err != nil {
			return nil, fmt.Errorf("zstd decoder: %w", err)
		}
		r.dec = dec
		r.br = bufio.NewReaderSize(dec, 64<<10)
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		return nil, r.format(errors.New("gzip-compressed, not a twtrace capture: decompress it with gunzip first"))
	}
	if err := r.readHeader(); err != nil {
		r.Close()
		return nil, err
	}
	r.readSnapshot()
	return r, nil
}

// isZstd reports a zstd frame or a skippable frame (RFC 8878, 3.1).
func isZstd(m []byte) bool {
	if len(m) < 4 {
		return false
	}
	return (m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd) ||
		(m[0]&0xf0 == 0x50 && m[1] == 0x2a && m[2] == 0x4d && m[3] == 0x18)
}

func (r *Reader) format(err error) error {
	return &FormatError{Name: r.name, Line: r.line, Err: err}
}

func (r *Reader) readHeader() error {
	line, err := r.readLine()
	if err == io.EOF {
		return r.format(errors.New("empty file: not a twtrace capture"))
	}
	if err != nil {
		var fe *FormatError
		var cut *CutError
		start := bytes.TrimLeft(r.long, " \t\r\n")
		switch {
		case (errors.As(err, &fe) || errors.As(err, &cut)) && len(start) > 0 && start[0] != '{':
			return r.format(errors.New("not a twtrace capture (no JSON header record)"))
		case errors.As(err, &cut):
			return r.format(fmt.Errorf("the file ends %s, in its header: it holds nothing to read", cut.Where))
		}
		return err
	}
	var h headerRecord
	if err := json.Unmarshal(line, &h); err != nil {
		return r.format(errors.New("not a twtrace capture: the first line is not a JSON header record"))
	}
	if h.Kind != event.KindHeader.String() {
		return r.format(fmt.Errorf("not a twtrace capture: the first record is %q, not a header "+
			"(trace --json output has none: record captures with twtrace record)", h.Kind))
	}
	switch {
	case h.Version == 0:
		return r.format(fmt.Errorf(`header without "version": this twtrace reads versions %s`, versions()))
	case h.Version > Version:
		return r.format(fmt.Errorf("capture format version %d is newer than this twtrace reads (versions %s): upgrade twtrace", h.Version, versions()))
	case h.Version < oldestVersion:
		return r.format(fmt.Errorf("bad capture format version %d: this twtrace reads versions %s", h.Version, versions()))
	}
	ts, err := time.Parse(time.RFC3339Nano, h.TS)
	if err != nil {
		return r.format(fmt.Errorf(`header: bad "ts": %w`, err))
	}
	started, err := time.Parse(time.RFC3339Nano, h.Started)
	if err != nil {
		return r.format(fmt.Errorf(`header: bad "started": %w`, err))
	}
	r.hdr = Header{Time: ts.UTC(), Version: h.Version, Host: h.Host, Kernel: h.Kernel,
		Started: started.UTC(), Sysctls: h.Sysctls, Filters: h.Filters, NetNS: h.NetNS, Degraded: h.Degraded,
		Counters: h.Counters, Redacted: h.Redacted}
	return nil
}

// versions lists the format versions this package reads: "1 and 2".
func versions() string {
	var b strings.Builder
	for v := oldestVersion; v <= Version; v++ {
		switch {
		case v == oldestVersion:
		case v == Version:
			b.WriteString(" and ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(v))
	}
	return b.String()
}

// readSnapshot reads the socket records after the header, and the first
// record after them: an event, kept for Next, or the end.
func (r *Reader) readSnapshot() {
	for {
		line, err := r.readLine()
		if err != nil {
			r.err = r.atEnd(err)
			return
		}
		err = jsonl.Decode(line, &r.first)
		if errors.Is(err, jsonl.ErrSocket) {
			if len(r.snap) == maxSnapshot {
				r.err = r.format(fmt.Errorf("more than %d socket records: damaged, or not a twtrace capture", maxSnapshot))
				return
			}
			var s table.Socket
			at, err := jsonl.DecodeSocket(line, &s)
			if err != nil {
				r.err = r.format(err)
				return
			}
			if len(r.snap) == 0 {
				r.snapAt = at
			} else if !at.Equal(r.snapAt) {
				// One snapshot, one moment: the timers count from it.
				r.err = r.format(fmt.Errorf("a socket record of %s in a snapshot taken at %s",
					at.Format(time.RFC3339Nano), r.snapAt.Format(time.RFC3339Nano)))
				return
			}
			r.snap = append(r.snap, s)
			continue
		}
		if err == nil {
			r.pending = true
			r.count(&r.first)
			return
		}
		r.err = r.record(line, err)
		return
	}
}

// Snapshot is the capture's starting snapshot: the sockets of its socket
// records and when it was taken. A capture of version 1 has none; one cut
// short in its snapshot has the sockets before the cut.
func (r *Reader) Snapshot() ([]table.Socket, time.Time) { return r.snap, r.snapAt }

// End is the capture's end record, once Next has reached it.
func (r *Reader) End() (End, bool) {
	if r.end == nil {
		return End{}, false
	}
	return *r.end, true
}

// Events is the number of events delivered so far.
func (r *Reader) Events() int64 { return r.events }

func (r *Reader) count(ev *event.Event) {
	r.events++
	r.last = ev.Time
}

// Header is the capture's header.
func (r *Reader) Header() Header { return r.hdr }

// Name is the capture's name, as errors give it.
func (r *Reader) Name() string { return r.name }

// Line is the number of lines read so far, the header included.
func (r *Reader) Line() int { return r.line }

// Next reads the next event into ev. It returns io.EOF at the end of a
// complete capture; a *FormatError for a capture that is cut short, corrupt
// or not a capture at all; another error when reading the file fails. After
// an error every call returns it.
//
// A capture that its recorder did not close — it ends in the middle of a
// line or of a compressed frame, or (from version 2) without an end
// record — ends with a *CutError instead of io.EOF, after every whole event.
func (r *Reader) Next(ev *event.Event) error {
	if r.pending {
		r.pending = false
		*ev = r.first
		return nil
	}
	if r.err != nil {
		return r.err
	}
	line, err := r.readLine()
	if err != nil {
		r.err = r.atEnd(err)
		return r.err
	}
	if err := jsonl.Decode(line, ev); err != nil {
		r.err = r.record(line, err)
		return r.err
	}
	r.count(ev)
	return nil
}

// record handles a line that is not an event: the end record, or an error.
func (r *Reader) record(line []byte, err error) error {
	switch {
	case errors.Is(err, jsonl.ErrHeader):
		return r.format(errors.New("a second header record (captures cannot be concatenated)"))
	case errors.Is(err, jsonl.ErrSocket):
		return r.format(errors.New("a socket record among the events (the snapshot's records follow the header)"))
	case !errors.Is(err, jsonl.ErrEnd):
		return r.format(err)
	}
	e, err := decodeEnd(line)
	if err != nil {
		return r.format(err)
	}
	if e.Events != r.events {
		return r.format(fmt.Errorf("the end record counts %d events, the file holds %d: it was damaged", e.Events, r.events))
	}
	r.end = &e
	if _, err := r.readLine(); err != io.EOF {
		var cut *CutError
		if err == nil || errors.As(err, &cut) {
			return r.format(errors.New("data after the end record (captures cannot be concatenated)"))
		}
		return err
	}
	return io.EOF
}

// atEnd explains the end of the file, or an error reading it: io.EOF at
// the end of a complete capture, a *CutError for one its recorder did not
// close.
func (r *Reader) atEnd(err error) error {
	var cut *CutError
	if !errors.As(err, &cut) {
		if err != io.EOF || r.hdr.Version < 2 || r.end != nil {
			return err
		}
		cut = &CutError{Name: r.name, Line: r.line + 1}
	}
	cut.Events, cut.Last = r.events, r.last
	return cut
}

// readLine returns the next line, without its newline; the slice is valid
// until the next call.
func (r *Reader) readLine() ([]byte, error) {
	r.line++
	r.long = r.long[:0]
	for {
		frag, err := r.br.ReadSlice('\n')
		switch {
		case err == nil:
			if len(r.long) == 0 {
				return frag[:len(frag)-1], nil
			}
			if len(r.long)+len(frag)-1 > MaxLine {
				return nil, r.tooLong()
			}
			r.long = append(r.long, frag[:len(frag)-1]...)
			return r.long, nil
		case errors.Is(err, bufio.ErrBufferFull):
			if len(r.long)+len(frag) > MaxLine {
				return nil, r.tooLong()
			}
			r.long = append(r.long, frag...)
			continue
		}
		r.long = append(r.long, frag...) // kept for readHeader's diagnosis
		return nil, r.readError(err, len(r.long) > 0)
	}
}

func (r *Reader) tooLong() error {
	return r.format(fmt.Errorf("line longer than %d KiB: damaged, or not a twtrace capture", MaxLine>>10))
}

// readError explains an error of the underlying reader; partial says a line
// had begun.
func (r *Reader) readError(err error, partial bool) error {
	switch {
	case err == io.EOF && !partial:
		r.line--
		return io.EOF
	case err == io.EOF:
		return &CutError{Name: r.name, Line: r.line, Where: "in the middle of the line"}
	case r.dec != nil && errors.Is(err, io.ErrUnexpectedEOF):
		return &CutError{Name: r.name, Line: r.line, Where: "in the middle of a compressed frame"}
	case r.dec != nil && r.src.err == nil:
		return r.format(fmt.Errorf("corrupt compressed data: %w", err))
	}
	return fmt.Errorf("read capture %s: line %d: %w", r.name, r.line, err)
}

// source remembers a failure of the underlying reader, to tell a file that
// cannot be read from compressed data that cannot be decoded.
type source struct {
	r   io.Reader
	err error
}

func (s *source) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// Close releases the decoder and closes a file Open opened.
func (r *Reader) Close() error {
	if r.dec != nil {
		r.dec.Close()
		r.dec = nil
	}
	if r.file != nil {
		err := r.file.Close()
		r.file = nil
		return err
	}
	return nil
}

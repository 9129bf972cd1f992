package capture

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/klauspost/compress/zstd"

	"github.com/twtrace/twtrace/tracer/jsonl"
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
}

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
		if start := bytes.TrimLeft(r.long, " \t\r\n"); errors.As(err, &fe) && len(start) > 0 && start[0] != '{' {
			return r.format(errors.New("not a twtrace capture (no JSON header record)"))
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
		return r.format(errors.New(`header without "version"`))
	case h.Version > Version:
		return r.format(fmt.Errorf("capture format version %d is newer than this twtrace reads (%d): upgrade twtrace", h.Version, Version))
	case h.Version < 0:
		return r.format(fmt.Errorf("bad capture format version %d", h.Version))
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
		Started: started.UTC(), Sysctls: h.Sysctls, Filters: h.Filters, NetNS: h.NetNS, Degraded: h.Degraded}
	return nil
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
func (r *Reader) Next(ev *event.Event) error {
	if r.err != nil {
		return r.err
	}
	line, err := r.readLine()
	if err == nil {
		if err = jsonl.Decode(line, ev); errors.Is(err, jsonl.ErrHeader) {
			err = r.format(errors.New("a second header record (captures cannot be concatenated)"))
		} else if err != nil {
			err = r.format(err)
		}
	}
	r.err = err
	return err
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
		return r.format(errors.New("the file ends in the middle of a line: it was cut short"))
	case r.dec != nil && errors.Is(err, io.ErrUnexpectedEOF):
		return r.format(errors.New("the compressed stream ends in the middle of a frame: the file was cut short"))
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

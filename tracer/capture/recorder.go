package capture

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/table"
)

// Rotation splits a long recording into files of bounded size.
type Rotation struct {
	// MaxSize: a file that reaches this many bytes, and covers a second at
	// least, is closed (its end record says EndRotated) and the next one
	// begins. A compressed file grows a frame at a time: it may pass
	// MaxSize by one. 0: never.
	MaxSize int64
	// Keep is how many closed files are kept, Numbered(path, 1) (the
	// newest) to Numbered(path, Keep); older ones are removed.
	Keep int
}

// Source is what a recording starts each file from: the socket table as it
// is now, and the host's counters now (nil when unknown).
type Source struct {
	Sockets  func() ([]table.Socket, time.Time)
	Counters func() *Counters
}

// Recorder writes a recording: one capture at path or, with a Rotation, a
// series of captures, the newest at path and the older ones renamed to
// Numbered(path, 1), 2, … as logrotate does. Each file is a whole capture —
// its own header, its own starting snapshot, its own end record — that
// reads and replays alone. Like a Writer it is not safe for concurrent use.
type Recorder struct {
	path string
	hdr  Header
	opt  Options
	rot  Rotation
	src  Source
	w    *Writer

	files  int       // files begun
	began  time.Time // when the current one began
	events int64     // totals of the closed files
	lost   uint64
	bytes  int64
}

// NewRecorder creates the recording's first file (Create's rules) and
// writes its header and starting snapshot.
func NewRecorder(path string, hdr Header, opt Options, rot Rotation, src Source) (*Recorder, error) {
	if rot.MaxSize > 0 && rot.Keep < 1 {
		return nil, errors.New("capture rotation: keep at least one file")
	}
	r := &Recorder{path: path, hdr: hdr, opt: opt, rot: rot, src: src}
	if err := r.begin(); err != nil {
		return nil, err
	}
	return r, nil
}

// begin creates the file at path and writes its header and snapshot.
func (r *Recorder) begin() error {
	w, err := Create(r.path, r.hdr, r.opt)
	if err != nil {
		return err
	}
	if r.src.Sockets != nil {
		socks, at := r.src.Sockets()
		if err := w.WriteSnapshot(socks, at); err != nil {
			w.End(EndError, nil)
			return err
		}
	}
	r.w = w
	r.files++
	r.began = time.Now()
	r.opt.Force = false // rotation renamed the last one away: a file at path now is not ours
	return nil
}

// Write writes a batch (Writer.Write) and begins the next file when this
// one has reached its size.
func (r *Recorder) Write(batch []event.Event) error {
	if err := r.w.Write(batch); err != nil {
		return err
	}
	if r.rot.MaxSize > 0 && r.w.Bytes() >= r.rot.MaxSize && r.w.Events() > 0 && time.Since(r.began) >= minFileSpan {
		return r.rotate()
	}
	return nil
}

// minFileSpan is the least a rotated file covers: a snapshot larger than
// MaxSize does not make a new file at every batch. (A variable for tests.)
var minFileSpan = time.Second

// rotate ends the current file, shifts the numbered files and begins anew.
func (r *Recorder) rotate() error {
	c := r.counters()
	if err := r.w.End(EndRotated, c); err != nil {
		return err
	}
	r.events += r.w.Events()
	r.lost += r.w.Lost()
	r.bytes += r.w.Bytes()
	// rename never follows a link: a link planted at a numbered name is
	// replaced, never written through.
	for k := r.rot.Keep - 1; k >= 1; k-- {
		if err := os.Rename(Numbered(r.path, k), Numbered(r.path, k+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotate capture %s: %w", r.path, err)
		}
	}
	if err := os.Rename(r.path, Numbered(r.path, 1)); err != nil {
		return fmt.Errorf("rotate capture %s: %w", r.path, err)
	}
	r.hdr.Time = time.Now()
	r.hdr.Counters = c
	if err := r.begin(); err != nil {
		return fmt.Errorf("rotate capture: %w", err)
	}
	return nil
}

func (r *Recorder) counters() *Counters {
	if r.src.Counters == nil {
		return nil
	}
	return r.src.Counters()
}

// End ends the current file with reason (Writer.End).
func (r *Recorder) End(reason string) error { return r.w.End(reason, r.counters()) }

// Events, Lost and Bytes are the recording's totals over all its files.
func (r *Recorder) Events() int64 { return r.events + r.w.Events() }

// Lost is the sum of the lost records written.
func (r *Recorder) Lost() uint64 { return r.lost + r.w.Lost() }

// Bytes is the size of the files written.
func (r *Recorder) Bytes() int64 { return r.bytes + r.w.Bytes() }

// Files is how many files the recording began.
func (r *Recorder) Files() int { return r.files }

// Err is the current file's first error (Writer.Err).
func (r *Recorder) Err() error { return r.w.Err() }

// Numbered is the name of the n-th older file of a rotated recording at
// path: the number goes before the capture's extensions, so that
// capture.jsonl.zst is followed by capture.1.jsonl.zst.
func Numbered(path string, n int) string {
	dir, base := filepath.Split(path)
	i := strings.Index(base, ".jsonl")
	if i <= 0 {
		i = strings.LastIndexByte(base, '.')
	}
	if i <= 0 {
		i = len(base)
	}
	return dir + base[:i] + "." + strconv.Itoa(n) + base[i:]
}

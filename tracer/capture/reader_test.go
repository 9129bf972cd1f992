package capture

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"

	"github.com/klauspost/compress/zstd"

	"github.com/twtrace/twtrace/internal/sample"
)

// encode writes a capture of evs to memory.
func encode(t testing.TB, opt Options, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, "mem", testHeader(), opt)
	if err != nil {
		t.Fatal(err)
	}
	evs := stream(n)
	for i := 0; i < n; i += 10 {
		if err := w.Write(evs[i:min(i+10, n)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// read reads a capture from memory: the events, and the error that
// stopped it (from NewReader or Next; nil at a clean end).
func read(t testing.TB, data []byte) (int, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data), "cap.jsonl")
	if err != nil {
		return 0, err
	}
	defer r.Close()
	evs, err := readAll(t, r)
	if err != nil && !sameEvents(evs, stream(len(evs))) {
		t.Fatalf("the events before the error differ from those written")
	}
	return len(evs), err
}

// wantFormatError checks that err is a *FormatError saying want at line.
func wantFormatError(t *testing.T, err error, line int, want string) {
	t.Helper()
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Line != line || !strings.Contains(err.Error(), want) ||
		!strings.HasPrefix(err.Error(), "capture cap.jsonl: ") {
		t.Errorf("error %v; want a *FormatError at line %d saying %q", err, line, want)
	}
}

// wantCut checks that err is a *CutError at line, cut where (a place in
// the line, or "" at a boundary), after events.
func wantCut(t *testing.T, err error, line int, where string, events int) {
	t.Helper()
	var ce *CutError
	if !errors.As(err, &ce) || ce.Line != line || ce.Where != where || ce.Events != int64(events) ||
		!strings.Contains(err.Error(), "its recorder did not close it") {
		t.Fatalf("error %v; want a *CutError at line %d, %q, after %d events", err, line, where, events)
	}
}

// A plain capture cut anywhere: every complete line is delivered, then a
// *CutError that names the line — also when the cut falls between lines,
// since the end record is missing. Only the whole file reads as complete.
func TestTruncatedPlain(t *testing.T) {
	data := encode(t, Options{}, 25)
	headerEnd := bytes.IndexByte(data, '\n') + 1
	for cut := 0; cut <= len(data); cut++ {
		n, err := read(t, data[:cut])
		lines := bytes.Count(data[:cut], []byte{'\n'})
		switch {
		case cut == 0:
			wantFormatError(t, err, 0, "empty file: not a twtrace capture")
		case cut < headerEnd:
			wantFormatError(t, err, 1, "the file ends in the middle of the line, in its header")
		case cut == len(data):
			if err != nil || n != 25 {
				t.Fatalf("the whole capture: %d events, %v", n, err)
			}
		case data[cut-1] == '\n':
			if n != lines-1 {
				t.Fatalf("cut at a line end (%d): %d events, want %d", cut, n, lines-1)
			}
			wantCut(t, err, lines+1, "", n)
		default:
			if n != min(lines-1, 25) {
				t.Fatalf("cut at %d: %d events, want %d", cut, n, lines-1)
			}
			wantCut(t, err, lines+1, "in the middle of the line", n)
		}
	}
}

// A compressed capture cut anywhere: never more than the open frame is
// lost, and a cut between frames reads as a complete capture.
func TestTruncatedZstd(t *testing.T) {
	// Frame ends, from the writer's own accounting.
	var buf bytes.Buffer
	w, err := NewWriter(&buf, "mem", testHeader(), Options{Compress: true, FlushBytes: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	type frame struct{ bytes, events int64 }
	frames := []frame{{w.Bytes(), 0}}
	evs := stream(600)
	for i := 0; i < len(evs); i += 10 {
		if err := w.Write(evs[i : i+10]); err != nil {
			t.Fatal(err)
		}
		if last := frames[len(frames)-1]; w.Bytes() != last.bytes {
			frames = append(frames, frame{w.Bytes(), w.Events()})
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	frames = append(frames, frame{w.Bytes(), w.Events()})
	data := buf.Bytes()
	if len(frames) < 5 {
		t.Fatalf("only %d frames", len(frames))
	}

	cuts := map[int]bool{}
	for c := 0; c < len(data); c += 61 {
		cuts[c] = true
	}
	for _, f := range frames {
		for d := -2; d <= 2; d++ {
			if c := int(f.bytes) + d; c >= 0 && c <= len(data) {
				cuts[c] = true
			}
		}
	}
	for cut := range cuts {
		n, err := read(t, data[:cut])
		if cut == 0 {
			wantFormatError(t, err, 0, "empty file")
			continue
		}
		var saved int64 = -1
		atFrameEnd := false
		for _, f := range frames {
			if int64(cut) >= f.bytes {
				saved = f.events
				atFrameEnd = int64(cut) == f.bytes
			}
		}
		if saved < 0 {
			if err == nil {
				t.Fatalf("cut at %d, inside the header's frame: no error", cut)
			}
			continue
		}
		if int64(n) < saved {
			t.Fatalf("cut at %d: %d events, but %d were in complete frames", cut, n, saved)
		}
		var ce *CutError
		switch {
		case cut == len(data):
			if err != nil || n != len(evs) {
				t.Fatalf("the whole capture: %d events, %v", n, err)
			}
		case atFrameEnd:
			// Between frames: only the end record says it is not all.
			wantCut(t, err, n+2, "", n)
		case !errors.As(err, &ce) || ce.Where != "in the middle of a compressed frame":
			t.Fatalf("cut at %d: error %v, want a *CutError in a frame", cut, err)
		}
	}
	// The message of a cut frame.
	n, err := read(t, data[:frames[2].bytes+40])
	wantCut(t, err, int(frames[2].events)+2, "in the middle of a compressed frame", n)
}

func TestBadInput(t *testing.T) {
	valid := encode(t, Options{}, 10)
	lines := bytes.SplitAfter(valid, []byte{'\n'})
	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }
	zst := func(b []byte) []byte {
		enc, _ := zstd.NewWriter(nil)
		return enc.EncodeAll(b, nil)
	}
	random := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	random[0] = 0x7f // not a magic number
	elf := append([]byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00"), bytes.Repeat([]byte{0}, 2<<20)...)
	long := join(lines[0], lines[1], bytes.Repeat([]byte("x"), 2<<20), []byte("\n"))
	for _, tc := range []struct {
		name   string
		data   []byte
		events int
		line   int
		want   string
	}{
		{"empty", nil, 0, 0, "empty file: not a twtrace capture"},
		{"random bytes", random, 0, 1, "not a twtrace capture"},
		{"an executable", elf, 0, 1, "not a twtrace capture"},
		{"text", []byte("hello\nworld\n"), 0, 1, "not a twtrace capture: the first line is not a JSON header record"},
		{"trace --json output", join(lines[1:]...), 0, 1, `the first record is "bind", not a header`},
		{"gzip", []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00"), 0, 0, "gzip-compressed"},
		{"newer version", []byte(`{"kind":"header","ts":"2026-01-01T00:00:00Z","version":3,"started":"2026-01-01T00:00:00Z"}` + "\n"),
			0, 1, "capture format version 3 is newer than this twtrace reads (versions 1 and 2): upgrade twtrace"},
		{"negative version", []byte(`{"kind":"header","ts":"2026-01-01T00:00:00Z","version":-1,"started":"2026-01-01T00:00:00Z"}` + "\n"),
			0, 1, "bad capture format version -1: this twtrace reads versions 1 and 2"},
		{"no version", []byte(`{"kind":"header","ts":"2026-01-01T00:00:00Z"}` + "\n"), 0, 1, `header without "version": this twtrace reads versions 1 and 2`},
		{"corrupt line", join(lines[0], lines[1], lines[2], []byte(`{"kind":"state","ts":"2026-`+"\n"), lines[3]), 2, 4, "not a JSON object"},
		{"bad field", join(lines[0], lines[1], []byte(`{"kind":"bind","ts":"2026-01-01T00:00:00Z"}`+"\n")), 1, 3, `bind record without "pid"`},
		{"empty line", join(lines[0], lines[1], []byte("\n"), lines[2]), 1, 3, "not a JSON object"},
		{"second header", join(lines[0], lines[1], lines[0], lines[2]), 1, 3, "a second header record"},
		{"huge line", long, 1, 3, "line longer than 1024 KiB"},
		{"zstd bomb", zst(join(lines[0], bytes.Repeat([]byte{' '}, 64<<20))), 0, 2, "line longer than 1024 KiB"},
		{"zstd text", zst([]byte("hello\n")), 0, 1, "not a twtrace capture"},
		{"zstd garbage", append([]byte{0x28, 0xb5, 0x2f, 0xfd}, random...), 0, 1, "corrupt compressed data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := read(t, tc.data)
			if n != tc.events {
				t.Errorf("%d events before the error, want %d", n, tc.events)
			}
			wantFormatError(t, err, tc.line, tc.want)
		})
	}
}

// A flipped byte inside compressed data: an error, never a panic, and the
// events before it. A flip that makes a frame claim more data than the file
// has reads as a cut frame: to the decoder, the two are the same.
func TestCorruptZstd(t *testing.T) {
	data := encode(t, Options{Compress: true, FlushBytes: 8 << 10}, 600)
	rng := rand.New(rand.NewPCG(5, 6))
	for range 300 {
		bad := bytes.Clone(data)
		bad[rng.IntN(len(bad))] ^= byte(1 + rng.IntN(255))
		if _, err := read(t, bad); err != nil {
			var fe *FormatError
			var ce *CutError
			if !errors.As(err, &fe) && !errors.As(err, &ce) {
				t.Fatalf("corrupt data: %v, want a *FormatError or *CutError", err)
			}
		}
	}
}

// A file that cannot be read is not a bad capture: the error says so.
func TestReadError(t *testing.T) {
	for _, opt := range []Options{{}, {Compress: true, FlushBytes: 4 << 10}} {
		data := encode(t, opt, 300)
		in := io.MultiReader(bytes.NewReader(data[:len(data)/2]), iotest.ErrReader(syscall.EIO))
		r, err := NewReader(in, "cap.jsonl")
		if err != nil {
			t.Fatal(err)
		}
		evs, err := readAll(t, r)
		var fe *FormatError
		if !errors.Is(err, syscall.EIO) || errors.As(err, &fe) || !strings.Contains(err.Error(), "read capture cap.jsonl: line ") {
			t.Errorf("compress=%v: %v, want EIO naming the file and line", opt.Compress, err)
		}
		if len(evs) == 0 || !sameEvents(evs, stream(len(evs))) {
			t.Errorf("compress=%v: %d events before the error", opt.Compress, len(evs))
		}
	}
}

// The sample stream's header is what the writer wrote.
func TestReaderHeader(t *testing.T) {
	r, err := NewReader(bytes.NewReader(encode(t, Options{Compress: true}, 1)), "mem")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if h := r.Header(); h.Host != "web-1" || !h.Started.Equal(sample.Start.Add(-1e9)) || h.Filters["port"][0] != "8080" {
		t.Errorf("header %+v", h)
	}
}

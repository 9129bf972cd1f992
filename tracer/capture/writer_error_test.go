package capture

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/twtrace/twtrace/internal/safefile"
)

// fullWriter takes limit bytes, then fails with ENOSPC, as a full disk does:
// the write that crosses the limit is partial.
type fullWriter struct {
	buf   bytes.Buffer
	limit int
}

func (f *fullWriter) Write(p []byte) (int, error) {
	room := f.limit - f.buf.Len()
	if len(p) <= room {
		return f.buf.Write(p)
	}
	f.buf.Write(p[:max(room, 0)])
	return max(room, 0), syscall.ENOSPC
}

// A failed write surfaces at once, names the file and what it keeps, and
// what was written before stays a capture that reads back.
func TestWriteErrorKeepsWhatWasWritten(t *testing.T) {
	evs := stream(5000)
	for _, compress := range []bool{false, true} {
		for _, limit := range []int{1000, 4096, 20_000, 70_000} {
			fw := &fullWriter{limit: limit}
			w, err := NewWriter(fw, "/mnt/full/cap", testHeader(), Options{Compress: compress, FlushBytes: 32 << 10})
			if err != nil {
				t.Fatal(err)
			}
			var werr error
			for i := 0; i < len(evs) && werr == nil; i += 100 {
				werr = w.Write(evs[i : i+100])
				if werr == nil && int64(fw.buf.Len()) > int64(limit) {
					t.Fatalf("wrote past the limit without an error")
				}
			}
			if werr == nil {
				werr = w.Close() // the last frame is written at Close
			}
			var we *WriteError
			if !errors.As(werr, &we) || !errors.Is(werr, syscall.ENOSPC) {
				t.Fatalf("compress=%v limit=%d: error %v, want a *WriteError of ENOSPC", compress, limit, werr)
			}
			msg := werr.Error()
			if !strings.Contains(msg, "/mnt/full/cap") || !strings.Contains(msg, "no space left on device") ||
				!strings.Contains(msg, "first "+strconv.FormatInt(we.Saved, 10)+" events") || we.Saved != w.Events() {
				t.Errorf("message %q (saved %d, Events %d)", msg, we.Saved, w.Events())
			}
			if err := w.Write(evs[:1]); err != werr {
				t.Errorf("Write after the error: %v", err)
			}
			if err := w.Close(); err != werr {
				t.Errorf("Close after the error: %v", err)
			}

			// The bytes before the failure: every saved event reads back.
			r, err := NewReader(bytes.NewReader(fw.buf.Bytes()), "cut")
			if err != nil {
				t.Fatalf("compress=%v limit=%d: the header is gone: %v", compress, limit, err)
			}
			got, _ := readAll(t, r)
			if int64(len(got)) < we.Saved {
				t.Errorf("compress=%v limit=%d: %d events read back, %d saved", compress, limit, len(got), we.Saved)
			}
			if !sameEvents(got, evs[:len(got)]) {
				t.Errorf("compress=%v limit=%d: events read back differ", compress, limit)
			}
		}
	}
}

// A header that cannot be written leaves nothing that looks like a capture,
// and never removes a file it did not create; a device is never written,
// not even with Force (TestFullDiskForce: a header that does not fit).
func TestHeaderWriteError(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	for _, compress := range []bool{false, true} {
		_, err := Create("/dev/full", testHeader(), Options{Force: true, Compress: compress})
		if !errors.Is(err, safefile.ErrRefused) || !strings.Contains(err.Error(), "/dev/full is not a regular file") {
			t.Errorf("Create(/dev/full): %v", err)
		}
		if _, err := os.Stat("/dev/full"); err != nil {
			t.Fatalf("/dev/full is gone: %v", err)
		}
	}
	_, err := NewWriter(&fullWriter{limit: 10}, "small", testHeader(), Options{})
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "small") {
		t.Errorf("NewWriter onto a full writer: %v", err)
	}
}

// A file that is written to /dev/full fails at the first batch, with the count.
func TestWriteToDevFull(t *testing.T) {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip("no /dev/full")
	}
	defer f.Close()
	var hdr bytes.Buffer
	w, err := NewWriter(&hdr, "/dev/full", testHeader(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.out.w = f // the header went elsewhere; the events meet the full device
	err = w.Write(stream(10))
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "write capture /dev/full: ") ||
		!strings.Contains(err.Error(), "keeps the first 0 events") {
		t.Errorf("write to /dev/full: %v", err)
	}
}

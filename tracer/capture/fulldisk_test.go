package capture

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/twtrace/twtrace/tracer/event"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/nsthread"
	"github.com/twtrace/twtrace/internal/tracertest"
)

// onTinyDisk runs fn on a thread whose private mount namespace has a
// 64 KiB tmpfs on dir. Nothing of it is visible outside the thread, and it
// is gone when fn returns: fn must do all its file work itself.
func onTinyDisk(t *testing.T, dir string, fn func() error) {
	t.Helper()
	err := nsthread.Run(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("unshare(CLONE_NEWNS): %w", err)
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("make mounts private: %w", err)
		}
		if err := unix.Mount("twtrace-test", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k"); err != nil {
			return fmt.Errorf("mount a tmpfs: %w", err)
		}
		return fn()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A real full file system: the write that meets ENOSPC reports it with the
// count, and the file, cut back to its last complete line or frame, reads
// back to the end with no error.
func TestFullDisk(t *testing.T) {
	tracertest.Require(t)
	evs := stream(20000)
	for _, name := range []string{"cap.jsonl", "cap.jsonl.zst"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			onTinyDisk(t, dir, func() error {
				path := filepath.Join(dir, name)
				w, err := Create(path, testHeader(), Options{FlushBytes: 16 << 10})
				if err != nil {
					return err
				}
				var werr error
				for i := 0; i < len(evs) && werr == nil; i += 50 {
					werr = w.Write(evs[i : i+50])
				}
				if werr == nil {
					werr = w.Close()
				}
				var we *WriteError
				if !errors.As(werr, &we) || !errors.Is(werr, syscall.ENOSPC) ||
					!strings.Contains(werr.Error(), "write capture "+path+": ") {
					return fmt.Errorf("writing 20000 events onto 64 KiB: %v, want a *WriteError of ENOSPC", werr)
				}
				t.Logf("%s", werr)
				if err := w.Close(); err != werr {
					return fmt.Errorf("Close: %v, want the write error", err)
				}
				fi, err := os.Stat(path)
				if err != nil || fi.Size() != w.Bytes() {
					return fmt.Errorf("file of %d bytes (%v), the writer saved %d", fi.Size(), err, w.Bytes())
				}
				r, err := Open(path)
				if err != nil {
					return err
				}
				defer r.Close()
				n := 0
				for ; ; n++ {
					var ev event.Event
					if err := r.Next(&ev); err == io.EOF {
						break
					} else if err != nil {
						return fmt.Errorf("after %d events: %w", n, err)
					}
				}
				if int64(n) != we.Saved || n == 0 {
					return fmt.Errorf("read back %d events, the error said %d", n, we.Saved)
				}
				// The end record made it: room was made for it.
				if end, ok := r.End(); !ok || end.Reason != EndDiskFull || end.Events != we.Saved {
					return fmt.Errorf("end record %+v (%v), want disk_full with %d events", end, ok, we.Saved)
				}
				if fi.Mode().Perm() != 0o600 {
					return fmt.Errorf("mode %v", fi.Mode().Perm())
				}
				return nil
			})
		})
	}
}

// --force on a full disk: the replacement cannot be written, and the file
// it was to replace is untouched (replacing is by rename, never in place).
func TestFullDiskForce(t *testing.T) {
	tracertest.Require(t)
	dir := t.TempDir()
	onTinyDisk(t, dir, func() error {
		path := filepath.Join(dir, "cap.jsonl")
		old := []byte(strings.Repeat("precious\n", 1000))
		if err := os.WriteFile(path, old, 0o644); err != nil {
			return err
		}
		filler, err := os.Create(filepath.Join(dir, "filler"))
		if err != nil {
			return err
		}
		for err == nil {
			_, err = filler.Write(make([]byte, 4096))
		}
		filler.Close()
		if _, err := Create(path, testHeader(), Options{Force: true}); !errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("Create --force on a full disk: %v, want ENOSPC", err)
		}
		if b, _ := os.ReadFile(path); string(b) != string(old) {
			return fmt.Errorf("the old file changed: %d bytes", len(b))
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".cap.jsonl.tmp-*")); len(left) != 0 {
			return fmt.Errorf("temporary files left: %v", left)
		}
		return nil
	})
}

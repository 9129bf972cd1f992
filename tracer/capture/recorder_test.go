package capture

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/table"
)

func TestNumbered(t *testing.T) {
	for in, want := range map[string]string{
		"capture.jsonl.zst":     "capture.3.jsonl.zst",
		"/var/tmp/tw.jsonl":     "/var/tmp/tw.3.jsonl",
		"incident.zst":          "incident.3.zst",
		"dir.d/capture":         "dir.d/capture.3",
		"a.b.cap":               "a.b.3.cap",
		".hidden":               ".hidden.3",
		"/x/y.2026.jsonl.zst":   "/x/y.2026.3.jsonl.zst",
		"relative/name.ndjson":  "relative/name.3.ndjson",
		"capture.jsonl.zst.old": "capture.3.jsonl.zst.old",
	} {
		if got := Numbered(in, 3); got != want {
			t.Errorf("Numbered(%q, 3) = %q, want %q", in, got, want)
		}
	}
}

// A rotated recording: FILE is the newest, FILE.1 ... FILE.keep the older
// ones, each a whole capture (header, snapshot, end record) that reads
// alone; the totals are those of all files; no more than keep are left.
func TestRecorderRotates(t *testing.T) {
	shortSpan(t)
	for _, name := range []string{"cap.jsonl", "cap.jsonl.zst"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, name)
			snaps := 0
			src := Source{
				Sockets: func() ([]table.Socket, time.Time) {
					snaps++
					return snapshotSockets(), sample.Start
				},
				Counters: func() *Counters { return &Counters{TW: uint64(snaps)} },
			}
			rec, err := NewRecorder(path, testHeader(), Options{FlushBytes: 4 << 10}, Rotation{MaxSize: 16 << 10, Keep: 2}, src)
			if err != nil {
				t.Fatal(err)
			}
			evs := stream(4000)
			for i := 0; i < len(evs); i += 100 {
				if err := rec.Write(evs[i : i+100]); err != nil {
					t.Fatal(err)
				}
				if i%1000 == 900 {
					time.Sleep(minFileSpan) // a file covers a second at least
				}
			}
			if err := rec.End(EndSignal); err != nil {
				t.Fatal(err)
			}
			if rec.Files() < 3 {
				t.Fatalf("%d files for 4000 events in 16 KiB files", rec.Files())
			}
			if _, err := os.Stat(Numbered(path, 3)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a third older file was kept: %v", err)
			}
			total := int64(0)
			for k, p := range []string{Numbered(path, 2), Numbered(path, 1), path} {
				r, err := Open(p)
				if err != nil {
					t.Fatal(err)
				}
				got, err := readAll(t, r)
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				end, _ := r.End()
				socks, _ := r.Snapshot()
				if len(socks) != 3 || end.Events != int64(len(got)) || r.Header().Counters == nil && k > 0 {
					t.Errorf("%s: %d sockets, end %+v", p, len(socks), end)
				}
				want := EndRotated
				if p == path {
					want = EndSignal
				}
				if end.Reason != want {
					t.Errorf("%s ends %q, want %q", p, end.Reason, want)
				}
				if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: mode %v", p, fi.Mode().Perm())
				}
				total += int64(len(got))
				r.Close()
			}
			if total > rec.Events() || rec.Events() != 4000 {
				t.Errorf("the files hold %d events, the recorder wrote %d", total, rec.Events())
			}
		})
	}
}

// A link planted at a numbered name is renamed, never written through.
func TestRotationNeverFollowsLinks(t *testing.T) {
	shortSpan(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "cap.jsonl")
	target := filepath.Join(dir, "precious")
	os.WriteFile(target, []byte("keep"), 0o644)
	os.Symlink(target, Numbered(path, 1))
	rec, err := NewRecorder(path, testHeader(), Options{}, Rotation{MaxSize: 4 << 10, Keep: 3}, Source{})
	if err != nil {
		t.Fatal(err)
	}
	evs := stream(200)
	time.Sleep(minFileSpan)
	if err := rec.Write(evs); err != nil {
		t.Fatal(err)
	}
	if err := rec.End(EndClosed); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("the link's target was written: %q", b)
	}
	if fi, err := os.Lstat(Numbered(path, 2)); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the planted link was not moved along: %v", err)
	}
}

// shortSpan lets a test's files rotate after 20 ms instead of a second.
func shortSpan(t *testing.T) {
	old := minFileSpan
	minFileSpan = 20 * time.Millisecond
	t.Cleanup(func() { minFileSpan = old })
}

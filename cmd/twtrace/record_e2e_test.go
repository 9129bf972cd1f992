package main

// record and replay as a user runs them: the real binary, as root, on
// loopback, stopped with SIGINT or SIGTERM; and record onto a full file system.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/tracertest"
	"github.com/twtrace/twtrace/tracer/capture"
)

// recording is a running `twtrace record`.
type recording struct {
	cmd    *exec.Cmd
	stderr *strings.Builder
	exited chan error // its exit, once
}

// startRecord starts `twtrace record` and waits until its programs are attached.
func startRecord(t *testing.T, ctx context.Context, bin string, args ...string) *recording {
	t.Helper()
	rec, err := startRecordIn(ctx, t.TempDir(), bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// startRecordIn is startRecord with its ready file in dir, for any goroutine.
func startRecordIn(ctx context.Context, dir, bin string, args ...string) (*recording, error) {
	ready := filepath.Join(dir, "ready")
	cmd := exec.CommandContext(ctx, bin, append([]string{"record", "--ready-file", ready}, args...)...)
	rec := &recording{cmd: cmd, stderr: &strings.Builder{}, exited: make(chan error, 1)}
	cmd.Stderr = rec.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { rec.exited <- cmd.Wait() }()
	deadline := time.After(10 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			return rec, nil
		}
		select {
		case err := <-rec.exited:
			return nil, fmt.Errorf("twtrace record exited before it was ready (%v): %s", err, rec.stderr)
		case <-deadline:
			cmd.Process.Kill()
			<-rec.exited
			return nil, fmt.Errorf("twtrace record not ready after 10 s: %s", rec.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// serverClosesFirst makes n connections on port whose server side closes
// first, each leaving a TIME_WAIT on the port, then closes the listener.
func serverClosesFirst(t *testing.T, ctx context.Context, port, n int) {
	t.Helper()
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(ctx, "tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dial := func(addr string) (net.Conn, error) { return net.Dial("tcp4", addr) }
	for range n {
		if _, err := tracertest.CloseFirst(l, dial, true); err != nil {
			t.Fatal(err)
		}
	}
}

// captureHas polls the capture being written until an event matches (5 s).
func captureHas(t *testing.T, path string, match func(*event.Event) bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		r, err := capture.Open(path)
		if err != nil {
			continue
		}
		var ev event.Event
		for r.Next(&ev) == nil {
			if match(&ev) {
				r.Close()
				return
			}
		}
		r.Close()
	}
	t.Fatalf("%s: the expected event is not readable within 5 s while record runs", path)
}

func TestRecordReplayCLI(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	bin := buildBinary(t)
	// Each signal ends it cleanly: SIGHUP is the ssh session closing.
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{{"cap.jsonl", syscall.SIGINT}, {"cap.jsonl.zst", syscall.SIGTERM}, {"hup.jsonl.zst", syscall.SIGHUP}} {
		name, sig := tc.name, tc.sig
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			port := freePort(t)
			path := filepath.Join(t.TempDir(), name)
			rec := startRecord(t, ctx, bin, "-o", path, "--port", strconv.Itoa(port))
			stderr := rec.stderr
			serverClosesFirst(t, ctx, port, 1)

			// The file is readable while record runs: a compressed one
			// within a second, at the end of its frame.
			captureHas(t, path, func(ev *event.Event) bool {
				return ev.Kind == event.KindTimeWait && ev.Src.Port() == uint16(port)
			})
			progs := bpfProgIDs(t, rec.cmd.Process.Pid)
			if len(progs) == 0 {
				t.Fatal("the running twtrace holds no BPF program")
			}
			if err := rec.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if err := <-rec.exited; err != nil {
				t.Fatalf("record after %v: %v; stderr: %s", sig, err, stderr)
			}
			for _, id := range progs {
				if programExists(id) {
					t.Errorf("BPF program %d still loaded after record exited on %v", id, sig)
				}
			}
			summary := regexp.MustCompile(`^twtrace: recorded (\d+) events? \(0 lost\) in [0-9.]+ (B|KiB) to ` + regexp.QuoteMeta(path) + "\n$")
			if !summary.MatchString(stderr.String()) {
				t.Errorf("record's summary: %q", stderr)
			}

			out, err := exec.CommandContext(ctx, bin, "replay", "--json", path).Output()
			if err != nil {
				t.Fatalf("replay --json: %v", err)
			}
			var kinds []string
			seen := map[string]bool{}
			for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("replay --json: not JSON: %q", line)
				}
				if m["sport"] != float64(port) && m["dport"] != float64(port) && m["port"] != float64(port) {
					t.Errorf("an event of another port in a --port %d capture: %s", port, line)
				}
				// kind, old state or timewait event, new state, local end on the port
				key := fmt.Sprintf("%s %s %s %v", m["kind"], str(m["old"])+str(m["event"]), str(m["new"]), m["sport"] == float64(port))
				kinds = append(kinds, key)
				seen[key] = true
			}
			for _, want := range []string{
				"state CLOSE LISTEN true",
				"state ESTABLISHED FIN_WAIT1 true", // the server closes first
				"state FIN_WAIT2 CLOSE true",
				"timewait enter  true",
				"state LAST_ACK CLOSE false", // the client, passive closer
			} {
				if !seen[want] {
					t.Errorf("replay lacks %q; got:\n%s", want, strings.Join(kinds, "\n"))
				}
			}
			if m := summary.FindStringSubmatch(stderr.String()); m != nil && m[1] != strconv.Itoa(len(kinds)) {
				t.Errorf("record said %s events, replay shows %d", m[1], len(kinds))
			}

			text, err := exec.CommandContext(ctx, bin, "replay", "--state", "TIME_WAIT", path).Output()
			if err != nil || !strings.Contains(string(text), "TIME_WAIT enter") || strings.Contains(string(text), "FIN_WAIT1") {
				t.Errorf("replay --state TIME_WAIT (text): %v\n%s", err, text)
			}
		})
	}
}

// str is a JSON string field, "" when absent.
func str(v any) string {
	s, _ := v.(string)
	return s
}

// tinyDisk is a locked OS thread (never the main one) whose private mount
// namespace has a 64 KiB tmpfs on a directory. Processes started from it
// inherit the namespace; nothing of it is visible outside, and it is gone
// when the test ends: file work on the tmpfs goes through Do.
type tinyDisk struct{ work chan func() }

func newTinyDisk(t *testing.T, dir string) *tinyDisk {
	return newMountThread(t, dir, unix.MS_NOSUID|unix.MS_NODEV, "size=64k")
}

// newMountThread is a tinyDisk with its own tmpfs flags and options (a
// read-only one: unix.MS_RDONLY).
func newMountThread(t *testing.T, dir string, flags uintptr, opts string) *tinyDisk {
	t.Helper()
	d := &tinyDisk{work: make(chan func())}
	setup := make(chan error, 1)
	serve := func() {
		setup <- mountTmpfs(dir, flags, opts)
		for fn := range d.work {
			fn()
		}
	}
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if unix.Gettid() != unix.Getpid() {
			serve()
			return
		}
		// The main thread cannot be discarded: hand the work to another.
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			serve()
			close(done)
		}()
		<-done
		runtime.UnlockOSThread()
	}()
	t.Cleanup(func() { close(d.work) })
	if err := <-setup; err != nil {
		t.Fatal(err)
	}
	return d
}

func mountTmpfs(dir string, flags uintptr, opts string) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare(CLONE_NEWNS): %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Mount("twtrace-test", dir, "tmpfs", flags, opts); err != nil {
		return fmt.Errorf("mount a tmpfs: %w", err)
	}
	return nil
}

// Do runs fn on the thread.
func (d *tinyDisk) Do(fn func() error) error {
	errc := make(chan error, 1)
	d.work <- func() { errc <- fn() }
	return <-errc
}

// record onto a full file system: exit 1 at once, a message naming the
// file and the events it keeps, and a file that reads back to its end.
func TestRecordFullDisk(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	bin := buildBinary(t)
	for _, name := range []string{"cap.jsonl", "cap.jsonl.zst"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			port := freePort(t)
			dir, readyDir := t.TempDir(), t.TempDir()
			disk := newTinyDisk(t, dir)
			path := filepath.Join(dir, name)
			var rec *recording
			err := disk.Do(func() (err error) {
				rec, err = startRecordIn(ctx, readyDir, bin, "-o", path, "--port", strconv.Itoa(port))
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			stderr := rec.stderr

			// Connections until the 64 KiB are full: about 20 plain, 250 compressed.
			var werr error
		fill:
			for range 20000 {
				serverClosesFirst(t, ctx, port, 1)
				select {
				case werr = <-rec.exited:
					break fill
				default:
				}
			}
			if werr == nil {
				rec.cmd.Process.Signal(syscall.SIGINT)
				t.Fatalf("record did not fail on a full disk; stderr: %s", stderr)
			}
			var ee *exec.ExitError
			if !errors.As(werr, &ee) || ee.ExitCode() != exitFailure {
				t.Fatalf("record on a full disk: %v, want exit code 1; stderr: %s", werr, stderr)
			}
			msg := regexp.MustCompile(`^twtrace: write capture ` + regexp.QuoteMeta(path) +
				`: no space left on device; the file keeps the first (\d+) events and is readable up to them\n$`)
			m := msg.FindStringSubmatch(stderr.String())
			if m == nil {
				t.Fatalf("record's message on a full disk: %q", stderr)
			}
			t.Logf("%s", stderr)

			n := 0
			err = disk.Do(func() error {
				r, err := capture.Open(path)
				if err != nil {
					return err
				}
				defer r.Close()
				for ev := (event.Event{}); ; n++ {
					if err := r.Next(&ev); err == io.EOF {
						return nil
					} else if err != nil {
						return fmt.Errorf("after %d events: %w", n, err)
					}
				}
			})
			if err != nil {
				t.Fatalf("the capture left on the full disk: %v", err)
			}
			if strconv.Itoa(n) != m[1] || n == 0 {
				t.Fatalf("the capture holds %d events, the message says %s", n, m[1])
			}
			// It ends with its end record (room was made for it), mode 0600.
			err = disk.Do(func() error {
				r, err := capture.Open(path)
				if err != nil {
					return err
				}
				defer r.Close()
				for r.Next(new(event.Event)) == nil {
				}
				if end, ok := r.End(); !ok || end.Reason != capture.EndDiskFull || strconv.FormatInt(end.Events, 10) != m[1] {
					return fmt.Errorf("end record %+v (%v), want disk_full with %s events", end, ok, m[1])
				}
				if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
					return fmt.Errorf("mode %v (%v), want 0600", fi.Mode().Perm(), err)
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
}

package main

// Exit paths that are not signals: a panic, injected by the developer build's
// --panic, on the main goroutine or in the event pipeline, of trace and
// record. Each ends with exit code 1, one line on stderr, every program of
// the process detached, and (record) a capture that replays.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twtrace/twtrace/internal/tracertest"
)

func TestPanicDetaches(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	bin := buildBinary(t, "twtracedev")
	for _, tc := range []struct {
		cmd, where, line string
	}{
		{"trace", "main", "twtrace: internal error: injected by --panic main\n"},
		{"trace", "sink", "twtrace: internal error in the event pipeline: injected by --panic sink\n"},
		{"record", "main", "twtrace: internal error: injected by --panic main\n"},
		{"record", "sink", "twtrace: internal error in the event pipeline: injected by --panic sink\n"},
	} {
		t.Run(tc.cmd+"/"+tc.where, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			dir := t.TempDir()
			port := freePort(t)
			args := []string{tc.cmd, "--panic", tc.where, "--port", strconv.Itoa(port), "--ready-file", filepath.Join(dir, "ready")}
			capture := filepath.Join(dir, "cap.jsonl.zst")
			if tc.cmd == "record" {
				args = append(args, "-o", capture)
			} else {
				args = append(args, "--json")
			}
			cmd := exec.CommandContext(ctx, bin, args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			waitReady(t, filepath.Join(dir, "ready"), exited, &stderr)
			progs := bpfProgIDs(t, cmd.Process.Pid)
			if tc.where == "sink" {
				serverClosesFirst(t, ctx, port, 1) // the events it panics on
			} else if err := cmd.Process.Signal(os.Interrupt); err != nil { // the end it panics at
				t.Fatal(err)
			}
			err := <-exited
			if code := cmd.ProcessState.ExitCode(); code != exitFailure || stderr.String() != tc.line {
				t.Fatalf("twtrace %s: %v, exit %d, stderr %q; want exit 1 and %q", strings.Join(args, " "), err, code, stderr.String(), tc.line)
			}
			if len(progs) == 0 {
				t.Fatal("never saw the programs of the process")
			}
			for _, id := range progs {
				if programExists(id) {
					t.Errorf("BPF program %d still loaded after the panic", id)
				}
			}
			if tc.cmd == "record" {
				if out, err := exec.CommandContext(ctx, bin, "replay", "--json", capture).CombinedOutput(); err != nil {
					t.Errorf("the capture after the panic does not replay: %v\n%s", err, out)
				}
			}
		})
	}
}

// waitReady waits for the --ready-file of a twtrace that may exit first.
func waitReady(t *testing.T, ready string, exited <-chan error, stderr *strings.Builder) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			return
		}
		select {
		case err := <-exited:
			t.Fatalf("twtrace exited before it was ready (%v): %s", err, stderr)
		case <-deadline:
			t.Fatalf("twtrace not ready after 10 s: %s", stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twtrace/twtrace/internal/tracertest"
)

func TestProgressLine(t *testing.T) {
	p := &progress{name: "cap.jsonl.zst", color: true}
	got := p.line(83*time.Second, 12345, 3, 5<<20, 2345.6)
	want := "twtrace: recording 00:01:23  12345 events  \x1b[31m3 lost\x1b[0m  5.0 MiB  2346 events/s  cap.jsonl.zst"
	if got != want {
		t.Errorf("line\n got %q\nwant %q", got, want)
	}
	if got := p.line(time.Second, 1, 0, 10, 1); strings.Contains(got, "\x1b[") {
		t.Errorf("no loss in red: %q", got)
	}
	p.color = false
	if got := p.line(time.Second, 1, 3, 10, 1); strings.Contains(got, "\x1b[") {
		t.Errorf("colour without a colour terminal: %q", got)
	}
	// Not a terminal: no progress at all.
	var nothing *progress = startProgress(io.Discard, "x")
	nothing.update(1, 2, 3)
	nothing.stop()
}

// On a terminal, record redraws one progress line on stderr, then
// replaces it with its final line.
func TestRecordProgressOnTerminal(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	bin := buildBinary(t)
	master, slave := openPTY(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path := t.TempDir() + "/cap.jsonl"
	cmd := exec.CommandContext(ctx, bin, "record", "-o", path, "--duration", "1600ms", "--port", "9")
	cmd.Stderr = slave
	cmd.Env = append(os.Environ(), "NO_COLOR=")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var out strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := master.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	got := out.String()
	live := regexp.MustCompile(`\r\x1b\[Ktwtrace: recording 00:00:01  \d+ events  0 lost  [0-9.]+ (B|KiB)  \d+ events/s  ` + regexp.QuoteMeta(path))
	final := regexp.MustCompile(`\r\x1b\[Ktwtrace: recorded \d+ events \(0 lost\) in [0-9.]+ (B|KiB) to ` + regexp.QuoteMeta(path) + "\r?\n$")
	if !live.MatchString(got) || !final.MatchString(got) {
		t.Errorf("stderr on a terminal: %q", got)
	}
}

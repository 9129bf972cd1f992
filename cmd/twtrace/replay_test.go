package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/capture"
	"github.com/twtrace/twtrace/tracer/jsonl"
)

// writeCapture writes the sample stream to a capture named name.
func writeCapture(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	h := capture.Header{Host: "web-1", Kernel: "6.8.0", Filters: map[string][]string{"port": {"8080"}}}
	if err := capture.WriteFile(path, h, capture.Options{}, sample.Events()); err != nil {
		t.Fatal(err)
	}
	return path
}

// sampleJSON is the sample stream as trace --json writes it.
func sampleJSON() string {
	var b []byte
	for _, ev := range sample.Events() {
		b = jsonl.Append(b, &ev)
	}
	return string(b)
}

func TestReplay(t *testing.T) {
	for _, name := range []string{"cap.jsonl", "cap.jsonl.zst"} {
		path := writeCapture(t, name)
		code, out, stderr := runCLI("replay", "--json", path)
		if code != 0 || out != sampleJSON() || stderr != "" {
			t.Errorf("replay --json %s: exit %d, stderr %q, output:\n%s", name, code, stderr, out)
		}
		code, out, _ = runCLI("replay", path)
		if code != 0 || !strings.Contains(out, "TIME_WAIT enter") || !strings.Contains(out, "!bind EADDRINUSE") ||
			strings.Count(out, "\n") != len(sample.Events())+1 {
			t.Errorf("replay %s (text): exit %d, output:\n%s", name, code, out)
		}
	}
}

func TestReplayFilters(t *testing.T) {
	path := writeCapture(t, "cap.jsonl.zst")
	code, out, _ := runCLI("replay", "--json", "--port", "443", path)
	// What the filter selects live, lost records included: no filter hides them.
	flt := event.Filter{Ports: []uint16{443}}
	var want []byte
	for _, ev := range sample.Events() {
		if flt.Match(&ev) {
			want = jsonl.Append(want, &ev)
		}
	}
	if code != 0 || out != string(want) || !strings.Contains(out, `"kind":"connect"`) || !strings.Contains(out, `"kind":"lost"`) {
		t.Errorf("replay --port 443: exit %d:\n%s\nwant:\n%s", code, out, want)
	}
	code, out, _ = runCLI("replay", "--json", "--state", "TIME_WAIT", "-4", path)
	if code != 0 || !strings.Contains(out, `"kind":"timewait"`) || strings.Contains(out, `"kind":"state"`) {
		t.Errorf("replay --state TIME_WAIT: exit %d:\n%s", code, out)
	}
	code, _, stderr := runCLI("replay", "-v", "--text", "--speed", "1000", path)
	if code != 0 || !strings.Contains(stderr, "recorded on web-1 (Linux 6.8.0)") || !strings.Contains(stderr, "filters: --port=8080") {
		t.Errorf("replay -v: exit %d, stderr %q", code, stderr)
	}
}

// A damaged capture: the events before the damage, then exit 2 with the
// file and line.
// sampleFiles are the bytes of the sample stream's capture, plain and
// compressed, and the plain one's lines.
func sampleFiles(t *testing.T) (plain, zst []byte, lines [][]byte) {
	t.Helper()
	plain, err := os.ReadFile(writeCapture(t, "cap.jsonl"))
	if err == nil {
		zst, err = os.ReadFile(writeCapture(t, "cap.jsonl.zst"))
	}
	if err != nil {
		t.Fatal(err)
	}
	return plain, zst, bytes.SplitAfter(plain, []byte("\n"))
}

func TestReplayBadFile(t *testing.T) {
	plain, _, lines := sampleFiles(t)
	n := len(sample.Events())
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		data   []byte
		events int
		want   string
	}{
		{"corrupt.jsonl", bytes.Join([][]byte{lines[0], lines[1], lines[2], []byte("{garbage\n"), lines[3]}, nil), 2,
			"line 4: not a JSON object"},
		{"binary", []byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00"), 0, "line 1: not a twtrace capture"},
		{"empty", nil, 0, "empty file: not a twtrace capture"},
		{"after-end.jsonl", append(bytes.Clone(plain), lines[1]...), n, fmt.Sprintf("line %d: data after the end record", n+3)},
	} {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, stderr := runCLI("replay", "--json", path)
		if code != exitUsage || !strings.Contains(stderr, "twtrace: capture "+path+": ") || !strings.Contains(stderr, tc.want) {
			t.Errorf("replay %s: exit %d, stderr %q; want exit 2 saying %q", tc.name, code, stderr, tc.want)
		}
		if want := strings.SplitAfterN(sampleJSON(), "\n", tc.events+1); tc.events > 0 &&
			out != strings.Join(want[:tc.events], "") {
			t.Errorf("replay %s: want the %d events before the damage, got:\n%s", tc.name, tc.events, out)
		}
		if tc.events == 0 && out != "" {
			t.Errorf("replay %s: output %q", tc.name, out)
		}
	}
}

// A capture its recorder did not close: every whole event, one warning
// naming the file and where it was cut, exit 0 — also when it was cut
// exactly between two lines or frames, which only the missing end record tells.
func TestReplayCutFile(t *testing.T) {
	plain, zst, lines := sampleFiles(t)
	n := len(sample.Events())
	noEnd := plain[:len(plain)-len(lines[len(lines)-2])]
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		data   []byte
		events int
		want   string
	}{
		{"cut.jsonl", noEnd[:len(noEnd)-20], n - 1, fmt.Sprintf("is cut at line %d, in the middle of the line: its recorder did not close it", n+1)},
		{"boundary.jsonl", noEnd, n, fmt.Sprintf("is cut at line %d, without its end record: its recorder did not close it", n+2)},
		{"cut.jsonl.zst", zst[:len(zst)-9], n, fmt.Sprintf("is cut at line %d, in the middle of a compressed frame", n+2)},
	} {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, tc.data, 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, stderr := runCLI("replay", "--json", path)
		if code != exitOK || strings.Count(stderr, "\n") != 1 ||
			!strings.HasPrefix(stderr, "twtrace: warning: capture "+path+" ") || !strings.Contains(stderr, tc.want) {
			t.Errorf("replay %s: exit %d, stderr %q; want exit 0 and one warning saying %q", tc.name, code, stderr, tc.want)
		}
		if want := strings.SplitAfterN(sampleJSON(), "\n", tc.events+1); out != strings.Join(want[:tc.events], "") {
			t.Errorf("replay %s: want the %d whole events, got:\n%s", tc.name, tc.events, out)
		}
	}
}

func TestReplayUsage(t *testing.T) {
	path := writeCapture(t, "cap.jsonl")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"replay"}, "replay needs one capture FILE"},
		{[]string{"replay", path, path}, "replay needs one capture FILE, got 2"},
		{[]string{"replay", "--json", "--text", path}, "--json and --text exclude each other"},
		{[]string{"replay", "--speed", "-1", path}, "--speed -1"},
		{[]string{"replay", "--port", "0", path}, `--port "0"`},
		{[]string{"replay", filepath.Join(t.TempDir(), "missing.jsonl")}, "no such file or directory"},
		{[]string{"replay", t.TempDir()}, "is a directory"},
	} {
		code, _, stderr := runCLI(tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("twtrace %v: exit %d, stderr %q; want exit 2 mentioning %q", tc.args, code, stderr, tc.want)
		}
	}
}

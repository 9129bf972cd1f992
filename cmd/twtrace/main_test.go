package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/twtrace/twtrace/tracer"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestBadUsageExits2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"trace", "--port", "0"}, `--port "0"`},
		{[]string{"trace", "--port", "70000"}, `--port "70000"`},
		{[]string{"trace", "--port", "http"}, `--port "http"`},
		{[]string{"trace", "--state", "ESTABLISH"}, `--state "ESTABLISH"`},
		{[]string{"trace", "-4", "-6"}, "-4 and -6"},
		{[]string{"trace", "--ring-size", "3M"}, "power of two"},
		{[]string{"trace", "--ring-size", "lots"}, "--ring-size"},
		{[]string{"trace", "--count", "-1"}, "cannot be negative"},
		{[]string{"trace", "--no-such-flag"}, "unknown flag"},
		{[]string{"trace", "extra"}, "unknown command"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"trace", "--duration", "soon"}, `--duration "soon": want a duration with a unit`},
		{[]string{"trace", "--port", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17"}, "at most 16 ports"},
		{[]string{"trace", "--uid", "root"}, `--uid "root" is not a user id`},
		{[]string{"trace", "--uid", "-1"}, `--uid "-1"`},
		{[]string{"trace", "--uid", "4294967295"}, `--uid "4294967295"`},
		{[]string{"trace", "--uid", "1,2,3,4,5,6,7,8,9"}, "at most 8 uids"},
		{[]string{"serve", "--metrics-addr", "9464"}, `--metrics-addr "9464": want host:port`},
		{[]string{"serve", "--log-format", "xml"}, `--log-format "xml": want text or json`},
		{[]string{"serve", "--by-netns", "--by-container"}, "--by-netns and --by-container exclude each other"},
		{[]string{"serve", "--top-ports", "0"}, "--top-ports 0: want a number from 1 to 1000"},
		{[]string{"serve", "--top-destinations", "1001"}, "--top-destinations 1001: want a number from 1 to 1000"},
		{[]string{"serve", "--max-label-values", "5000"}, "--max-label-values 5000: want a number from 1 to 1024"},
		{[]string{"serve", "--ring-size", "3M"}, "power of two"},
		{[]string{"serve", "extra"}, "unknown command"},
	} {
		code, _, stderr := runCLI(tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("twtrace %v: exit %d, stderr %q; want exit 2 mentioning %q", tc.args, code, stderr, tc.want)
		}
	}
}

// Each bad flag value is one sentence that says what is wrong and what is
// accepted, never strconv's or time's words; the usage hint follows errors
// of usage only, not a file that exists or a capture that is damaged.
func TestErrorSentences(t *testing.T) {
	const hint = "Run 'twtrace --help' for usage.\n"
	dir := t.TempDir()
	existing := filepath.Join(dir, "cap.jsonl")
	if err := os.WriteFile(existing, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	damaged := filepath.Join(dir, "damaged.jsonl")
	if err := os.WriteFile(damaged, []byte("{garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.jsonl")
	states := "want one of ss's (established, syn-sent, syn-recv, fin-wait-1, fin-wait-2, time-wait, closed, " +
		"close-wait, last-ack, listening, closing), a kernel name such as TIME_WAIT, or tw, estab"
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"trace", "--pid", "abc"}, `twtrace: --pid "abc" is not a process id: want a number from 1 to 4294967295` + "\n" + hint},
		{[]string{"trace", "--pid", "0"}, `twtrace: --pid "0" is not a process id: want a number from 1 to 4294967295` + "\n" + hint},
		{[]string{"trace", "--netns", "abc"}, `twtrace: --netns "abc" is not a network namespace inode: want the number ls -Li /proc/PID/ns/net prints` + "\n" + hint},
		{[]string{"trace", "--duration", "5"}, `twtrace: --duration "5": want a duration with a unit, such as 30s or 5m` + "\n" + hint},
		{[]string{"trace", "--duration", "-5s"}, `twtrace: --duration -5s cannot be negative: want a duration such as 30s or 5m` + "\n" + hint},
		{[]string{"trace", "--comm", ""}, `twtrace: --comm "" is not a task name: want the name ps -o comm shows (its first 15 bytes are compared)` + "\n" + hint},
		{[]string{"trace", "--state", "time_wiat"}, `twtrace: --state "time_wiat" is not a TCP state: ` + states + "\n" + hint},
		{[]string{"trace", "--sport", "70000"}, `twtrace: --sport "70000" is not a port: want a number from 1 to 65535` + "\n" + hint},
		{[]string{"trace", "--dport", "https"}, `twtrace: --dport "https" is not a port: want a number from 1 to 65535` + "\n" + hint},
		{[]string{"trace", "--count", "many"}, `twtrace: --count "many": want a number of events, or 0 for no limit` + "\n" + hint},
		{[]string{"trace", "--wakeup", "50"}, `twtrace: --wakeup "50": want a duration with a unit, such as 50ms, or 0 to wake the reader for every event` + "\n" + hint},
		{[]string{"trace", "--json=maybe"}, `twtrace: --json "maybe": want true or false` + "\n" + hint},
		{[]string{"--log-size", "0"}, `twtrace: --log-size "0": want a number of events from 1 to 50000` + "\n" + hint},
		{[]string{"--log-size", "1e6"}, `twtrace: --log-size "1e6": want a number of events from 1 to 50000` + "\n" + hint},
		{[]string{"replay", "--log-size", "50001", existing}, `twtrace: --log-size "50001": want a number of events from 1 to 50000` + "\n" + hint},
		{[]string{"replay", "--speed", "fast", existing}, `twtrace: --speed "fast": want a factor such as 1 or 0.5, or 0 for as fast as possible` + "\n" + hint},
		{[]string{"record"}, "twtrace: record needs -o FILE, the capture to write\n" + hint},
		// Files: the command line was right, no hint.
		{[]string{"record", "-o", existing}, "twtrace: " + existing + " exists: choose another file, or add --force to replace it\n"},
		{[]string{"record", "-o", existing + "/x"}, "twtrace: -o " + existing + "/x: " + existing + " is not a directory\n"},
		{[]string{"replay", "--json", damaged}, "twtrace: capture " + damaged + ": line 1: not a twtrace capture: the first line is not a JSON header record\n"},
		{[]string{"replay", missing}, "twtrace: open capture: open " + missing + ": no such file or directory\n"},
		{[]string{"advise", "--sysctl-file", existing}, "twtrace: --sysctl-file " + existing + " exists: choose another file, or add --force to replace it\n"},
		{[]string{"why", "8080", "--wait", "90"}, `twtrace: --wait "90": want a duration with a unit, such as 30s or 5m` + "\n" + hint},
	} {
		code, _, stderr := runCLI(tc.args...)
		if code != exitUsage || stderr != tc.stderr {
			t.Errorf("twtrace %q: exit %d, stderr\n%s\nwant exit 2 and\n%s", tc.args, code, stderr, tc.stderr)
		}
	}
}

func TestHelp(t *testing.T) {
	code, out, _ := runCLI("trace", "--help")
	if code != 0 || !strings.Contains(out, "--port") || !strings.Contains(out, "--json") {
		t.Errorf("help: exit %d\n%s", code, out)
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		msg  string
	}{
		{nil, 0, ""},
		{&tracer.FeatureError{Missing: "CAP_BPF", Reason: "twtrace needs CAP_BPF", Fix: "run as root"}, 3,
			"twtrace: twtrace needs CAP_BPF: run as root\n"},
		// The sentence alone: not what wrapped it, no usage hint.
		{fmt.Errorf("open: %w", &tracer.FeatureError{Missing: "kernel BTF", Reason: "this kernel has no BTF", Fix: "use another"}), 3,
			"twtrace: this kernel has no BTF: use another\n"},
		{usagef("bad"), 2, "bad"},
		{fmt.Errorf("write output: %w", syscall.EPIPE), 0, ""},
		{errors.New("read ring buffer: boom"), 1, "boom"},
	} {
		var stderr bytes.Buffer
		got := exitCode(tc.err, &stderr)
		whole := tc.code == exitFeature // feature errors are checked whole
		if got != tc.code || !strings.Contains(stderr.String(), tc.msg) || (whole && stderr.String() != tc.msg) {
			t.Errorf("exitCode(%v) = %d, %q; want %d, %q", tc.err, got, stderr.String(), tc.code, tc.msg)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int{"4096": 4096, "4K": 4096, "4k": 4096, "1M": 1 << 20, "16MiB": 16 << 20, "1G": 1 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "M", "-1", "0", "4X", "3G"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

// The live view covers stderr: -v, which logs there, is refused for it.
func TestLiveViewRefusesVerbose(t *testing.T) {
	var out, errb bytes.Buffer
	err := runUI(context.Background(), &traceOptions{verbose: true}, &out, &errb)
	if code := exitCode(err, &errb); code != exitUsage || !strings.Contains(errb.String(), "use --log-file") {
		t.Errorf("live view with -v: exit %d, stderr %q; want exit 2 mentioning --log-file", code, errb.String())
	}
}

func TestPlural(t *testing.T) {
	for n, want := range map[int]string{0: "0 events", 1: "1 event", 17: "17 events"} {
		if got := plural(n, "event", "events"); got != want {
			t.Errorf("plural(%d) = %q, want %q", n, got, want)
		}
	}
}

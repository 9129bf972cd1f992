package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
		{[]string{"trace", "--duration", "soon"}, "invalid argument"},
		{[]string{"trace", "--port", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17"}, "at most 16 ports"},
		{[]string{"trace", "--uid", "root"}, `--uid "root": want a user id`},
		{[]string{"trace", "--uid", "-1"}, `--uid "-1"`},
		{[]string{"trace", "--uid", "4294967295"}, `--uid "4294967295"`},
		{[]string{"trace", "--uid", "1,2,3,4,5,6,7,8,9"}, "at most 8 uids"},
	} {
		code, _, stderr := runCLI(tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("twtrace %v: exit %d, stderr %q; want exit 2 mentioning %q", tc.args, code, stderr, tc.want)
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

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Record's checks that need no privilege: they come before anything loads.
func TestRecordUsage(t *testing.T) {
	existing := filepath.Join(t.TempDir(), "cap.jsonl")
	if err := os.WriteFile(existing, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"record"}, "record needs -o FILE"},
		{[]string{"record", "-o", existing}, existing + " exists: choose another file, or add --force"},
		{[]string{"record", "-o", existing, "--port", "http"}, `--port "http"`},
		{[]string{"record", "-o", existing, "--json"}, "unknown flag: --json"},
		{[]string{"record", "-o", existing, "extra"}, "unknown command"},
		{[]string{"record", "-o", existing + "/cap.jsonl"}, "is not a directory"},
		{[]string{"record", "-o", "/nonexistent/dir/cap.jsonl"}, "-o /nonexistent/dir/cap.jsonl: stat /nonexistent/dir: no such file or directory"},
	} {
		code, _, stderr := runCLI(tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("twtrace %v: exit %d, stderr %q; want exit 2 mentioning %q", tc.args, code, stderr, tc.want)
		}
	}
	if b, _ := os.ReadFile(existing); string(b) != "precious" {
		t.Errorf("the existing file changed: %q", b)
	}
}

func TestGivenFilters(t *testing.T) {
	cmd := newRecordCmd(nil, nil)
	if err := cmd.ParseFlags([]string{"-o", "x", "--port", "8080,9090", "--port", "443", "-4", "--state", "TIME_WAIT", "--duration", "1s"}); err != nil {
		t.Fatal(err)
	}
	got := givenFilters(cmd.Flags())
	want := map[string][]string{"port": {"8080", "9090", "443"}, "ipv4": {"true"}, "state": {"TIME_WAIT"}}
	if len(got) != len(want) || strings.Join(got["port"], ",") != "8080,9090,443" || got["ipv4"][0] != "true" ||
		got["state"][0] != "TIME_WAIT" {
		t.Errorf("givenFilters = %v, want %v", got, want)
	}
}

func TestByteSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := byteSize(n); got != want {
			t.Errorf("byteSize(%d) = %q, want %q", n, got, want)
		}
	}
}

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The sample capture, as a newcomer runs it without root: replay, report
// in every format, advise.
const sampleCapture = "../../testdata/incident.jsonl.zst"

func TestSampleReplayAndReport(t *testing.T) {
	code, out, stderr := runCLI("replay", sampleCapture)
	if code != exitOK || stderr != "" || !strings.Contains(out, "!bind EADDRINUSE") || !strings.Contains(out, "!connect EADDRNOTAVAIL") {
		t.Errorf("replay: exit %d, stderr %q, output:\n%s", code, stderr, out)
	}
	code, out, stderr = runCLI("report", sampleCapture)
	if code != exitOK || stderr != "" || !strings.Contains(out, "bind() 0.0.0.0:8080 EADDRINUSE") ||
		!strings.Contains(out, "Cause (TW101)") || !strings.Contains(out, "Held by: ") {
		t.Errorf("report: exit %d, stderr %q, output:\n%s", code, stderr, out)
	}
	code, out, _ = runCLI("report", sampleCapture, "--format", "json", "--port", "9000")
	var rep struct {
		Failures []struct {
			Kind, Target, Code string
		} `json:"failures"`
		Selected []string `json:"selected"`
	}
	if err := json.Unmarshal([]byte(out), &rep); code != exitOK || err != nil || len(rep.Failures) != 1 ||
		rep.Failures[0].Code != "TW201" || len(rep.Selected) != 1 || rep.Selected[0] != "--port 9000" {
		t.Errorf("report --format json --port 9000: exit %d, %v: %+v", code, err, rep)
	}
	code, out, _ = runCLI("advise", sampleCapture)
	if code != exitOK || !strings.Contains(out, "TW101 port 8080") || !strings.Contains(out, "TW201") {
		t.Errorf("advise: exit %d:\n%s", code, out)
	}
}

// -o: the format from the extension, a file of mode 0600, never over an
// existing one without --force.
func TestReportToFile(t *testing.T) {
	dir := t.TempDir()
	page := filepath.Join(dir, "incident.html")
	if code, _, stderr := runCLI("report", sampleCapture, "-o", page); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b, _ := os.ReadFile(page)
	fi, _ := os.Stat(page)
	if !strings.HasPrefix(string(b), "<!DOCTYPE html>") || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, starts %q", fi.Mode().Perm(), b[:min(len(b), 20)])
	}
	if code, _, stderr := runCLI("report", sampleCapture, "-o", page); code != exitUsage || !strings.Contains(stderr, "exists") || strings.Contains(stderr, "--help") {
		t.Errorf("over an existing file: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runCLI("report", sampleCapture, "-o", page, "--force", "--format", "md"); code != exitOK {
		t.Errorf("--force: exit %d, %s", code, stderr)
	}
	if b, _ := os.ReadFile(page); !strings.HasPrefix(string(b), "# twtrace report") {
		t.Errorf("--force --format md wrote %q", b[:min(len(b), 20)])
	}
	link := filepath.Join(dir, "link.md")
	os.Symlink(page, link)
	if code, _, stderr := runCLI("report", sampleCapture, "-o", link, "--force"); code != exitUsage || !strings.Contains(stderr, "symbolic link") {
		t.Errorf("through a link: exit %d, %s", code, stderr)
	}
}

func TestReportUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"report"}, "report needs one capture FILE"},
		{[]string{"report", sampleCapture, "--format", "pdf"}, `--format "pdf": want one of text, md, json, html`},
		{[]string{"report", sampleCapture, "--from", "yesterday"}, `--from "yesterday": want a time of day such as 10:31:05`},
		{[]string{"report", sampleCapture, "--from", "10:00", "--to", "09:00"}, "--to 09:00 is before --from 10:00"},
		{[]string{"report", sampleCapture, "--force"}, "--force replaces the -o FILE: give one"},
		{[]string{"report", "/nonexistent.jsonl"}, "no such file"},
	} {
		code, _, stderr := runCLI(c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %q; want exit 2 saying %q", c.args, code, stderr, c.want)
		}
	}
}

// --from/--to select the span: before the first failure, none is reported.
func TestReportSpan(t *testing.T) {
	code, out, stderr := runCLI("report", sampleCapture, "--format", "json", "--to", "2000-01-01T00:00:00Z")
	var rep struct {
		Events   int   `json:"events"`
		Failures []any `json:"failures"`
	}
	if err := json.Unmarshal([]byte(out), &rep); code != exitOK || err != nil || rep.Events != 0 || len(rep.Failures) != 0 {
		t.Errorf("--to before the capture: exit %d %s, %+v", code, stderr, rep)
	}
}

// docs/incident-report.html is the report of the sample capture as this
// twtrace writes it (times in UTC): a change of the report's words makes
// it stale, and make testdata writes it again.
func TestSampleReportPageIsCurrent(t *testing.T) {
	local := time.Local
	time.Local = time.UTC
	defer func() { time.Local = local }()
	page := filepath.Join(t.TempDir(), "incident.html")
	t.Chdir("../..") // the page names the capture as make testdata does
	if code, _, stderr := runCLI("report", "testdata/incident.jsonl.zst", "--format", "html", "-o", page); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got, _ := os.ReadFile(page)
	want, err := os.ReadFile("docs/incident-report.html")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("docs/incident-report.html is not the sample's report as twtrace writes it now: run make testdata")
	}
}

package stream

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/advice"
	"github.com/twtrace/twtrace/tracer/event"
)

// timeWaitReport is why's report for a plain bind() of a port that a
// TIME_WAIT left by a SO_REUSEADDR socket blocks.
func timeWaitReport() advice.PortReport {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f := &advice.PortFacts{Port: 9000, Now: now, Sockets: []advice.Socket{{
		State: event.StateTimeWait, Family: event.FamilyIPv4,
		Local:  netip.MustParseAddrPort("127.0.0.1:9000"),
		Remote: netip.MustParseAddrPort("127.0.0.1:41000"),
		Reuse:  event.ReuseKnown | event.ReuseAddr, Expires: now.Add(42 * time.Second),
	}}}
	return advice.DiagnosePort(f, advice.Attempt{Addr: netip.MustParseAddrPort("127.0.0.1:9000")})
}

func TestWriteVerdict(t *testing.T) {
	r := timeWaitReport()
	var b bytes.Buffer
	if err := WriteVerdict(&b, &r, "   ", false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if want := "   port 9000: BLOCKED for a plain bind() to 127.0.0.1 as uid 0"; lines[0] != want {
		t.Errorf("verdict line %q, want %q", lines[0], want)
	}
	if len(lines) != 1+len(r.Findings) || len(r.Findings) == 0 {
		t.Fatalf("%d lines for %d findings:\n%s", len(lines), len(r.Findings), b.String())
	}
	if want := "     " + r.Findings[0].Line(); lines[1] != want {
		t.Errorf("finding line %q, want %q", lines[1], want)
	}
	b.Reset()
	if err := WriteVerdict(&b, &r, "", true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), ansiRed+"BLOCKED"+ansiOff) {
		t.Errorf("coloured verdict without red BLOCKED: %q", b.String())
	}
}

// The full report begins with the verdict, then lists the sockets, the
// holders, every attempt and the findings with their fixes.
func TestWritePortReport(t *testing.T) {
	r := timeWaitReport()
	var full, head bytes.Buffer
	if err := WritePortReport(&full, &r, false); err != nil {
		t.Fatal(err)
	}
	if err := WriteVerdict(&head, &r, "", false); err != nil {
		t.Fatal(err)
	}
	out := full.String()
	if !strings.HasPrefix(out, head.String()) {
		t.Errorf("report does not begin with its verdict:\n%s", out)
	}
	for _, want := range []string{
		"Sockets on port 9000\n  TIME_WAIT        1  options SO_REUSEADDR   the last ends in 42.0 s",
		"Held by\n  no process: TIME_WAIT sockets belong to the kernel\n",
		"A new bind() to port 9000 (as uid 0) would get\n",
		"  127.0.0.1            EADDRINUSE    ok",
		"\n" + r.Findings[0].Code + " " + r.Findings[0].Summary + "\n",
		"  fix: " + r.Fixes[0].Text + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestPrintable(t *testing.T) {
	if got := Printable("a\x1b[2Jb", 10); got != "a?[2Jb" {
		t.Errorf("Printable = %q", got)
	}
	if got := Printable("abcdef", 3); got != "abc…" {
		t.Errorf("Printable cut = %q", got)
	}
}

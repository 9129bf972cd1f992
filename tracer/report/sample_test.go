package report

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/twtrace/twtrace/tracer/capture"
)

// The sample capture of testdata/ (make testdata: a real run of a scripted
// incident): its report names each failure, its port and its cause, and
// what held the port — sockets the capture's starting snapshot had among them.
func TestSampleCapture(t *testing.T) {
	r, err := capture.Open("../../testdata/incident.jsonl.zst")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rep, err := Build(context.Background(), r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Cut != "" || rep.Lossy() || rep.Ended != capture.EndSignal || rep.Snapshot < 4 || rep.Host != "web-1" {
		t.Errorf("cut %q, lost %d, ended %q, %d sockets in the snapshot, host %q", rep.Cut, rep.Lost, rep.Ended, rep.Snapshot, rep.Host)
	}
	var bind, conn *Group
	for i := range rep.Failures {
		g := &rep.Failures[i]
		switch {
		case g.Kind == "bind" && g.Target == "0.0.0.0:8080" && g.Errno == "EADDRINUSE":
			bind = g
		case g.Kind == "connect" && g.Target == "127.0.0.1:9000" && g.Errno == "EADDRNOTAVAIL":
			conn = g
		}
	}
	if bind == nil || bind.Count != 3 || bind.Code != "TW101" || !strings.Contains(bind.Cause, "TIME_WAIT without SO_REUSEADDR") ||
		len(bind.Held) != 1 || bind.Held[0].Comm != "web" || bind.Held[0].States[0] != "TIME_WAIT" {
		t.Errorf("the refused restart: %+v", bind)
	}
	if conn == nil || conn.Count < 1 || conn.Code != "TW201" || !strings.Contains(conn.Summary, "ip_local_port_range has 50 ports") {
		t.Errorf("the client out of ports: %+v", conn)
	}
	for _, format := range []string{"text", "md"} {
		out := string(write(t, rep, format))
		for _, want := range []string{"0.0.0.0:8080 EADDRINUSE", "TW101", "TIME_WAIT without SO_REUSEADDR",
			"127.0.0.1:9000 EADDRNOTAVAIL", "TW201", "no local port left for 127.0.0.1:9000"} {
			if !strings.Contains(out, want) {
				t.Errorf("the %s report lacks %q", format, want)
			}
		}
	}
	page := write(t, rep, "html")
	if svgs := checkHTML(t, page); len(svgs) < 2 {
		t.Errorf("%d timelines, want port 8080's and connect()'s", len(svgs))
	}
	if !bytes.Contains(page, []byte("bind 0.0.0.0:8080 EADDRINUSE by")) {
		t.Error("no failure tooltip on the timeline")
	}
}

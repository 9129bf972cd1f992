package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/twtrace/twtrace/internal/tracertest"
	"github.com/twtrace/twtrace/tracer/capture"
	"github.com/twtrace/twtrace/tracer/event"
)

// The script re-records a sample like the committed one: the restart's
// three refused binds, connect()s refused for want of a port, and a
// snapshot with the listener and the TIME_WAITs older than the recording.
func TestIncident(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "twtrace")
	if out, err := exec.Command("go", "build", "-o", bin, "../../../cmd/twtrace").CombinedOutput(); err != nil {
		t.Fatalf("build twtrace: %v\n%s", err, out)
	}
	self := filepath.Join(dir, "twincident")
	if out, err := exec.Command("go", "build", "-o", self, ".").CombinedOutput(); err != nil {
		t.Fatalf("build twincident: %v\n%s", err, out)
	}
	path := filepath.Join(dir, "incident.jsonl.zst")
	cmd := exec.Command(self, "-twtrace", bin, "-o", path)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	r, err := capture.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	socks, _ := r.Snapshot()
	var listen, tw int
	for _, s := range socks {
		switch {
		case s.State == event.StateListen && s.Src.Port() == webPort && s.OwnerComm.String() == "web" && s.Reuse == event.ReuseKnown:
			listen++
		case s.State == event.StateTimeWait && s.Src.Port() == webPort:
			tw++
		}
	}
	if listen != 1 || tw != 3 || r.Header().Host != "web-1" {
		t.Errorf("snapshot %+v, host %q: want web's listener without options and 3 TIME_WAITs", socks, r.Header().Host)
	}
	var binds, connects int
	var ev event.Event
	for r.Next(&ev) == nil {
		switch {
		case ev.Kind == event.KindBind && ev.Ret == -98 && ev.Src.Port() == webPort && ev.Comm.String() == "web":
			binds++
		case ev.Kind == event.KindConnect && ev.Ret == -99 && ev.Dst.Port() == apiPort && ev.Comm.String() == "loadgen":
			connects++
		}
	}
	if end, ok := r.End(); !ok || end.Reason != capture.EndSignal || binds != 3 || connects < 1 {
		t.Errorf("end %+v (%v), %d refused binds, %d refused connects", end, ok, binds, connects)
	}
}

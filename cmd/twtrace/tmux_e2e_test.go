package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/hostcheck"
	"github.com/twtrace/twtrace/internal/tracertest"
)

// sampleIncident is what the replay controls' test reads off the sample capture
// (make testdata records it again): the time and the task of its first
// refused bind(), when the recording began, and a whole second between its
// last refused bind() and its first refused connect(); in UTC, the time
// zone the test gives the twtrace it runs in tmux.
type sampleIncident struct{ bindAt, bindBy, started, between string }

func sampleFacts(t *testing.T) sampleIncident {
	t.Helper()
	code, out, stderr := runCLI("replay", "../../testdata/incident.jsonl.zst", "--json")
	if code != exitOK {
		t.Fatalf("replay the sample: exit %d: %s", code, stderr)
	}
	var f sampleIncident
	_, page, _ := runCLI("report", "../../testdata/incident.jsonl.zst", "--format", "json")
	var rep struct {
		Started time.Time `json:"started"`
	}
	if err := json.Unmarshal([]byte(page), &rep); err == nil && !rep.Started.IsZero() {
		f.started = rep.Started.UTC().Format("15:04:05.000")
	}
	var lastBind, firstConnect time.Time
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r struct {
			Kind string    `json:"kind"`
			TS   time.Time `json:"ts"`
			PID  int       `json:"pid"`
			Comm string    `json:"comm"`
			Ret  int       `json:"ret"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("the sample's replay: %v: %s", err, l)
		}
		switch {
		case r.Kind == "bind" && r.Ret < 0:
			if f.bindAt == "" {
				f.bindAt, f.bindBy = r.TS.UTC().Format("15:04:05.000"), fmt.Sprintf("%d %s", r.PID, r.Comm)
			}
			lastBind = r.TS
		case r.Kind == "connect" && r.Ret < 0 && firstConnect.IsZero():
			firstConnect = r.TS
		}
	}
	at := firstConnect.Truncate(time.Second)
	if f.bindAt == "" || f.started == "" || !at.After(lastBind) {
		t.Fatalf("the sample capture is not the scripted incident (a second between the binds and the connects): %+v", f)
	}
	f.between = at.UTC().Format("15:04:05")
	return f
}

// The replay's live view as a person sees it, in tmux: the sample capture
// plays, pauses, jumps to its first refused bind() with the diagnosis on
// screen, goes back to the start, and q restores the terminal with exit 0.
func TestTmuxReplayControls(t *testing.T) {
	f := sampleFacts(t)
	bin := buildBinary(t)
	x := tracertest.StartTmux(t, 120, 40, []string{"TZ=UTC"}, bin, "replay", "../../testdata/incident.jsonl.zst", "--speed", "0.125")
	x.WaitFor(10*time.Second, "twtrace replay", "host web-1", "replay ▶ ×0.125", "event ", "/608", "failure 0/9")
	x.Keys("Space")
	x.WaitFor(5*time.Second, " PAUSED ", "space play")
	x.Keys("]")
	s := x.WaitFor(5*time.Second, "failure 1/9", f.bindAt, "!bind 0.0.0.0:8080 by "+f.bindBy+": EADDRINUSE")
	if !strings.Contains(s, "TIME_WAIT without SO_REUSEADDR") {
		t.Errorf("the refused bind's alert has no cause:\n%s", s)
	}
	x.Keys("5")
	x.WaitFor(5*time.Second, "Failures 1 refused syscall", "bind    0.0.0.0:8080")
	x.Keys("]", "]")
	x.WaitFor(5*time.Second, "failure 3/9")
	x.Keys("[")
	x.WaitFor(5*time.Second, "failure 2/9", "Failures 2 refused syscalls")
	x.Keys("t")
	x.WaitFor(5*time.Second, "go to ")
	x.Type("start")
	x.Keys("Enter")
	x.WaitFor(5*time.Second, "event 0/608", "failure 0/9", f.started)
	x.Keys("t")
	x.Type(f.between)
	x.Keys("Enter")
	s = x.WaitFor(5*time.Second, " PAUSED ", f.between+".000", "failure 3/9")
	x.Keys("3")
	x.WaitFor(5*time.Second, "Events last")
	x.Keys("+", "+")
	x.WaitFor(5*time.Second, "replay ×0.5")
	x.Keys("q")
	if st := x.Exit(5 * time.Second); st != 0 {
		t.Errorf("q: exit status %d, want 0", st)
	}
	if s := x.Screen(); strings.Contains(s, "twtrace replay") {
		t.Errorf("after q the terminal still shows the view (not restored):\n%s", s)
	}
}

// The live view as a person sees it during an incident, in tmux: a server
// that did not set SO_REUSEADDR restarts while its TIME_WAIT sockets last;
// the refused bind() is on screen with its cause and fix, the Advice view
// names the rule, the Sockets view shows the TIME_WAIT and its timer, and q
// gives the terminal back with exit 0 and every program detached.
func TestTmuxLiveIncident(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	bin := buildBinary(t)
	port := freePort(t)
	ready := filepath.Join(t.TempDir(), "ready")
	x := tracertest.StartTmux(t, 140, 40, nil, bin, "--port", strconv.Itoa(port), "--ready-file", ready)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("twtrace not ready in 10 s; its screen:\n%s", x.Screen())
		}
	}
	x.WaitFor(10*time.Second, "twtrace  only port:"+strconv.Itoa(port), "TIME_WAIT 0", "Ports 0 shown")

	// The server: a listener without SO_REUSEADDR, one connection it
	// closes first, then it stops; its restart's bind() is refused.
	addr := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
	lfd, err := makeSocket(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lfd, 4); err != nil {
		t.Fatal(err)
	}
	if err := tracertest.CloseFirstFD(lfd, addr); err != nil {
		t.Fatal(err)
	}
	unix.Close(lfd)
	if _, err := makeSocket(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)), 0, false); err != unix.EADDRINUSE {
		t.Fatalf("the restart's bind(): %v, want EADDRINUSE", err)
	}
	p := strconv.Itoa(port)
	s := x.WaitFor(10*time.Second, "!bind 127.0.0.1:"+p, "EADDRINUSE", "1 TIME_WAIT without SO_REUSEADDR", "fix: wait")
	t.Logf("the view after the refused bind():\n%s", s)
	x.Keys("6")
	x.WaitFor(5*time.Second, "TW101")
	x.Keys("2")
	s = x.WaitFor(5*time.Second, "Sockets 1", "TIME_WAIT   127.0.0.1:"+p)
	if !regexp.MustCompile(`TIME_WAIT +127\.0\.0\.1:` + p + ` .* [1-6]?[0-9]\.[0-9]s +[1-6]?[0-9]\.[0-9]s`).MatchString(s) {
		t.Errorf("the TIME_WAIT socket has no age and timer:\n%s", s)
	}
	pids := hostcheck.Children(x.PanePID())
	if len(pids) != 1 {
		t.Fatalf("the pane's shell runs %v, want twtrace alone", pids)
	}
	progs := bpfProgIDs(t, pids[0])
	if len(progs) == 0 {
		t.Fatal("twtrace holds no BPF program")
	}
	x.Keys("q")
	if st := x.Exit(10 * time.Second); st != 0 {
		t.Errorf("q: exit status %d, want 0", st)
	}
	if s := x.Screen(); strings.Contains(s, "TIME_WAIT") {
		t.Errorf("after q the terminal still shows the view (not restored):\n%s", s)
	}
	for _, id := range progs {
		if programExists(id) {
			t.Errorf("BPF program %d still loaded after q", id)
		}
	}
}

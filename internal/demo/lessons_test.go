package demo

// Every lesson for real, as root: the kernel events its narration claims
// were observed (checked here with predicates of their own over everything
// the tracer delivered, not the lesson's), every quoted line is an event
// the tracer delivered, and the host is as it was.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"

	"github.com/twtrace/twtrace/internal/hostcheck"
	"github.com/twtrace/twtrace/internal/nsthread"
	"github.com/twtrace/twtrace/internal/tracertest"
	"github.com/twtrace/twtrace/tracer/event"
)

func TestMain(m *testing.M) {
	if IsAgent() { // the lessons' processes are this test binary, re-executed
		os.Exit(Agent())
	}
	os.Exit(m.Run())
}

// hostSysctls are the settings lessons change in their namespaces.
var hostSysctls = []string{"ipv4/ip_local_port_range", "ipv4/tcp_tw_reuse", "ipv4/tcp_migrate_req", "ipv4/tcp_fin_timeout"}

// lessonPort selects the sockets a lesson makes, in its namespace: every one
// is on the service's port or connected to it. (The client-churn range is
// part of the host's ephemeral range: the host's own connections use it.)
func lessonPort(local, remote uint16) bool {
	return local == service.Port() || remote == service.Port()
}

// claim is something a lesson's narration says the kernel did: at least n
// events match, given the lesson's processes in the order it starts them.
type claim struct {
	what string
	n    int
	m    func(ev *event.Event, agents []int) bool
}

func bindOK(agent int, reuse func(ev *event.Event) bool) func(*event.Event, []int) bool {
	return func(ev *event.Event, a []int) bool {
		return ev.Kind == event.KindBind && int(ev.PID) == a[agent] && ev.Src.Port() == 9000 && ev.Ret == 0 && reuse(ev)
	}
}

func bindRefused(agent int, reuse func(ev *event.Event) bool) func(*event.Event, []int) bool {
	return func(ev *event.Event, a []int) bool {
		return ev.Kind == event.KindBind && int(ev.PID) == a[agent] && ev.Src.Port() == 9000 && ev.Ret == -98 && reuse(ev)
	}
}

func plain(ev *event.Event) bool     { return !ev.ReuseAddr && !ev.ReusePort }
func reuseaddr(ev *event.Event) bool { return ev.ReuseAddr && !ev.ReusePort }
func reuseport(ev *event.Event) bool { return ev.ReusePort && !ev.ReuseAddr }

func tw(op event.TimeWaitOp, local, remote func(uint16) bool) func(*event.Event, []int) bool {
	return func(ev *event.Event, _ []int) bool {
		return ev.Kind == event.KindTimeWait && ev.TimeWait == op && local(ev.Src.Port()) && remote(ev.Dst.Port())
	}
}

func port9000(p uint16) bool  { return p == 9000 }
func ephemeral(p uint16) bool { return p != 9000 }
func inRange(p uint16) bool   { return p >= churnLow && p <= churnHigh }

func state(old, new event.State, local, remote func(uint16) bool) func(*event.Event, []int) bool {
	return func(ev *event.Event, _ []int) bool {
		return ev.Kind == event.KindState && ev.Old == old && ev.New == new && local(ev.Src.Port()) && remote(ev.Dst.Port())
	}
}

func any16(uint16) bool { return true }

var lessonClaims = map[string]struct {
	claims    []claim
	narration []string
}{
	"restart-too-fast": {[]claim{
		{"the old server's bind() with SO_REUSEADDR", 1, bindOK(0, reuseaddr)},
		{"the server's TIME_WAIT", 1, tw(event.TimeWaitEnter, port9000, ephemeral)},
		{"the new server's plain bind() refused", 1, bindRefused(2, plain)},
		{"the new server's bind() with SO_REUSEADDR", 1, bindOK(2, reuseaddr)},
	}, []string{"!bind EADDRINUSE no reuseaddr", "port 9000: BLOCKED for a plain bind() to 127.0.0.1 as uid 0",
		"first fix: set SO_REUSEADDR", "TIME_WAIT on the server's side"}},
	"old-version-without-reuseaddr": {[]claim{
		{"the old server's plain bind()", 1, bindOK(0, plain)},
		{"the server's TIME_WAIT", 1, tw(event.TimeWaitEnter, port9000, ephemeral)},
		{"the new server's bind() with SO_REUSEADDR refused", 1, bindRefused(2, reuseaddr)},
		{"the TIME_WAIT killed, as sock_diag shows", 1, func(ev *event.Event, a []int) bool {
			return tw(event.TimeWaitKill, port9000, ephemeral)(ev, a) && ev.Source == event.SourceSockDiag
		}},
		{"the new server's bind() with SO_REUSEADDR", 1, bindOK(2, reuseaddr)},
	}, []string{"BLOCKED for a reuseaddr bind()", "fix: wait", "--skip-wait", "SOCK_DESTROY", "TIME_WAIT kill (sock_diag)"}},
	"port-held": {[]claim{
		{"the old server's listener", 1, func(ev *event.Event, a []int) bool {
			return ev.Kind == event.KindState && ev.New == event.StateListen && int(ev.PID) == a[0]
		}},
		{"the new server's bind() refused", 1, bindRefused(1, reuseaddr)},
		{"the old listener's close", 1, func(ev *event.Event, a []int) bool {
			return ev.Kind == event.KindState && ev.Old == event.StateListen && int(ev.PID) == a[0]
		}},
		{"the new server's listener", 1, func(ev *event.Event, a []int) bool {
			return ev.Kind == event.KindState && ev.New == event.StateListen && int(ev.PID) == a[1]
		}},
	}, []string{"held by", "old-server — fix: stop", "The holder:"}},
	"who-closes-first": {[]claim{
		{"the client's TIME_WAIT", 1, tw(event.TimeWaitEnter, ephemeral, port9000)},
		{"the server's TIME_WAIT", 1, tw(event.TimeWaitEnter, port9000, ephemeral)},
		{"the server's passive close", 1, state(event.StateLastAck, event.StateClose, port9000, any16)},
		{"the client's passive close", 1, state(event.StateLastAck, event.StateClose, ephemeral, port9000)},
	}, []string{"TIME_WAIT on the client's side", "TIME_WAIT on the server's side"}},
	"client-churn": {[]claim{
		{"a TIME_WAIT on every port of the range", churnHigh - churnLow + 1, tw(event.TimeWaitEnter, inRange, port9000)},
		{"connect() refused with EADDRNOTAVAIL", 1, func(ev *event.Event, a []int) bool {
			return ev.Kind == event.KindConnect && int(ev.PID) == a[1] && ev.Ret == -99 && ev.Dst.Port() == 9000
		}},
		{"TIME_WAITs taken over", 12, tw(event.TimeWaitReuse, inRange, port9000)},
	}, []string{"ip_local_port_range = 40000 40015 in the lesson's namespace", "TW201",
		"tcp_tw_reuse = 1 in the lesson's namespace", "no connect() refused"}},
	"close-wait-leak": {[]claim{
		{"CLOSE_WAIT under the server", 20, func(ev *event.Event, a []int) bool {
			return state(event.StateEstablished, event.StateCloseWait, port9000, any16)(ev, a) && int(ev.Owner) == a[0]
		}},
		{"the CLOSE_WAITs closed by the exit", 20, state(event.StateCloseWait, event.StateLastAck, port9000, any16)},
	}, []string{"TW302", "not a fix: no sysctl shortens CLOSE_WAIT", "20 of them owned by pid"}},
	"zero-downtime-restart": {[]claim{
		{"the old server's bind() with SO_REUSEPORT", 1, bindOK(0, reuseport)},
		{"the new server's bind() with SO_REUSEPORT", 1, bindOK(2, reuseport)},
		{"the old listener's close", 1, func(ev *event.Event, a []int) bool {
			return ev.Kind == event.KindState && ev.Old == event.StateListen && int(ev.PID) == a[0]
		}},
		{"the other user's bind() refused", 1, func(ev *event.Event, a []int) bool {
			return bindRefused(3, reuseport)(ev, a) && ev.UIDKnown && ev.UID == 65534
		}},
	}, []string{"0 failed", "0 refused or reset", "as uid 65534.", "as uid 65534",
		"SO_REUSEPORT of another user"}},
}

func TestLessonsObserved(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	for _, l := range Lessons() {
		t.Run(l.Name, func(t *testing.T) {
			want, ok := lessonClaims[l.Name]
			if !ok {
				t.Fatal("no claims to check")
			}
			before, err := hostcheck.Take(hostSysctls, lessonPort)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			n := NewTextNarrator(&out, TextOptions{Location: time.UTC})
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			start := time.Now()
			res, err := Run(ctx, l, Config{Narrator: n, SkipWait: true})
			took := time.Since(start)
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			t.Logf("%s: %v, %d events", l.Name, took.Round(time.Millisecond), len(res.Events))
			checkClaims(t, res, want.claims)
			narration := out.String()
			for _, s := range append(want.narration, "What it shows: "+l.Moral) {
				if !strings.Contains(narration, s) {
					t.Errorf("the narration lacks %q:\n%s", s, narration)
				}
			}
			checkQuotes(t, n, narration, res.Events)
			checkGone(t, res, before)
		})
	}
}

func checkClaims(t *testing.T, res *Result, claims []claim) {
	t.Helper()
	for _, c := range claims {
		got := 0
		for i := range res.Events {
			if c.m(&res.Events[i], res.Agents) {
				got++
			}
		}
		if got < c.n {
			t.Errorf("%s: %d events, want at least %d", c.what, got, c.n)
		}
	}
}

// checkQuotes: every event the narration quotes is one the tracer
// delivered from the lesson's namespace.
func checkQuotes(t *testing.T, n *TextNarrator, narration string, evs []event.Event) {
	t.Helper()
	delivered := map[string]bool{}
	for i := range evs {
		delivered[n.quote(&evs[i])] = true
	}
	quotes := 0
	for _, line := range strings.SplitAfter(narration, "\n") {
		if strings.HasPrefix(line, indent+"> ") {
			quotes++
			if !delivered[line] {
				t.Errorf("the narration quotes an event the tracer did not deliver: %q", line)
			}
		}
	}
	if quotes == 0 {
		t.Error("the narration quotes no event")
	}
}

// checkGone: no process of the lesson runs, nothing holds its namespace,
// and the host's settings, named namespaces and sockets are unchanged.
func checkGone(t *testing.T, res *Result, before hostcheck.State) {
	t.Helper()
	if alive := hostcheck.Alive(res.Agents); len(alive) > 0 {
		t.Errorf("processes of the lesson still run: %v", alive)
	}
	if h := hostcheck.NetNSGone(res.NetNS, append([]int{os.Getpid()}, res.Agents...)); len(h) > 0 {
		t.Errorf("the lesson's namespace %d is still held by %v", res.NetNS, h)
	}
	after, err := hostcheck.Take(hostSysctls, lessonPort)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range before.Diff(after) {
		t.Errorf("the host changed: %s", d)
	}
}

// An interrupted lesson leaves nothing behind either: its processes are
// killed and its namespace goes.
func TestLessonInterrupted(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	before, err := hostcheck.Take(hostSysctls, lessonPort)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := &cancelAt{TextNarrator: NewTextNarrator(&bytes.Buffer{}, TextOptions{}), cancel: cancel}
	start := time.Now()
	res, err := Run(ctx, closeWaitLeak, Config{Narrator: n})
	if err != context.Canceled {
		t.Fatalf("Run of a cancelled lesson: %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the cancelled lesson took %v to end", took)
	}
	if len(res.Agents) < 2 {
		t.Fatalf("the lesson was cancelled before it started its processes (%d)", len(res.Agents))
	}
	checkGone(t, res, before)
}

// cancelAt cancels the lesson when it shows its third step, with a server
// full of CLOSE_WAIT connections running.
type cancelAt struct {
	*TextNarrator
	cancel func()
}

func (c *cancelAt) Show(l Line) error {
	if l.Kind == LineStep && l.Step == 3 {
		c.cancel()
	}
	return c.TextNarrator.Show(l)
}

func hostNetNS(t *testing.T) uint32 {
	ino, err := nsthread.ThreadNetNS()
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

// The agent refuses to run outside a lesson: a variable set by mistake
// does not turn twtrace into one.
func TestAgentOutsideALesson(t *testing.T) {
	for _, env := range [][]string{
		{AgentEnv + "=server"},
		{AgentEnv + "=server", netnsEnv + "=1", parentEnv + "=1"},
		{AgentEnv + "=server", netnsEnv + "=" + fmt.Sprint(hostNetNS(t)), parentEnv + "=" + fmt.Sprint(os.Getpid())},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(slices.Clone(os.Environ()), env...)
		cmd.Stdin = strings.NewReader("listen L 127.0.0.1:9000 plain\n")
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "was not started by twtrace demo") {
			t.Errorf("agent with %v: %v\n%s", env, err, out)
		}
	}
}

// Lessons in the live view, --step, driven by space on a terminal: the
// same events observed, the same host afterwards. In
// old-version-without-reuseaddr a space ends the countdown: the TIME_WAIT
// killed, as its claims say, not expired 60 s later.
func TestLessonLive(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	for _, l := range []*Lesson{restartTooFast, oldVersion} {
		t.Run(l.Name, func(t *testing.T) { lessonLive(t, l) })
	}
}

func lessonLive(t *testing.T, l *Lesson) {
	before, err := hostcheck.Take(hostSysctls, lessonPort)
	if err != nil {
		t.Fatal(err)
	}
	term, tty := tracertest.PTY(t, 160, 40)
	n, ctx := NewLiveNarrator(context.Background(), LiveOptions{Step: true, Input: tty, Output: tty,
		Profile: colorprofile.ASCII})
	done := make(chan struct{})
	go func() { // space, now and then, as someone stepping through
		for {
			select {
			case <-done:
				return
			case <-time.After(150 * time.Millisecond):
				term.Type(" ")
			}
		}
	}()
	start := time.Now()
	res, err := Run(ctx, l, Config{Narrator: n})
	close(done)
	if cerr := n.Close(); cerr != nil {
		t.Errorf("live view: %v", cerr)
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, ansi.Strip(term.Output()))
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the lesson took %v: space did not end its wait", took)
	}
	if n.Quit() {
		t.Error("Quit after a lesson nobody quit")
	}
	checkClaims(t, res, lessonClaims[l.Name].claims)
	checkGone(t, res, before)
	shown := ansi.Strip(term.Output())
	for _, s := range []string{"Sockets", "space: next step", "What it shows", "space: close"} {
		if !strings.Contains(shown, s) {
			t.Errorf("the live view never showed %q", s)
		}
	}
}

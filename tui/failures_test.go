package tui

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/golden"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/table"
)

// restartTooFast is a server (pid 4120) whose listener lacked SO_REUSEADDR
// closing first, then its restart (pid 4312) refused: the stream a live
// session delivers, the options read from the sockets.
func restartTooFast() *testFeed {
	at := func(ms int) time.Time { return testNow.Add(time.Duration(ms-2000) * time.Millisecond) }
	srv := netip.MustParseAddrPort("127.0.0.1:8080")
	cli := netip.MustParseAddrPort("127.0.0.1:51234")
	app := event.MakeComm("myapp")
	none := event.ReuseKnown
	st := func(ms int, cookie uint64, src, dst netip.AddrPort, old, new event.State) event.Event {
		return event.Event{Kind: event.KindState, Time: at(ms), PID: 4120, Comm: app, NetNS: sampleNetNS,
			Family: event.FamilyIPv4, Src: src, Dst: dst, Cookie: cookie, Old: old, New: new,
			Owner: 4120, OwnerComm: app, SockReuse: none}
	}
	lst := netip.MustParseAddrPort("0.0.0.0:8080")
	evs := []event.Event{
		st(0, 1, lst, netip.AddrPortFrom(netip.IPv4Unspecified(), 0), event.StateClose, event.StateListen),
		st(10, 2, srv, cli, event.StateListen, event.StateSynRecv),
		st(10, 2, srv, cli, event.StateSynRecv, event.StateEstablished),
		st(20, 2, srv, cli, event.StateEstablished, event.StateFinWait1),
		st(21, 2, srv, cli, event.StateFinWait1, event.StateFinWait2),
		st(22, 2, srv, cli, event.StateFinWait2, event.StateClose),
	}
	var tw event.Event
	event.InferTimeWait(&evs[len(evs)-1], &tw)
	evs = append(evs, tw,
		st(30, 1, lst, netip.AddrPortFrom(netip.IPv4Unspecified(), 0), event.StateListen, event.StateClose),
		event.Event{Kind: event.KindBind, Time: at(1000), PID: 4312, TID: 4312, Comm: app, NetNS: sampleNetNS,
			Family: event.FamilyIPv4, Src: lst, FD: 3, Ret: -98},
	)
	return &testFeed{tab: table.New(table.Config{}), events: evs, more: make(chan []event.Event)}
}

func failureOptions() Options {
	o := testOptions()
	o.Sysctls = func(uint32) *kstat.Sysctls {
		return &kstat.Sysctls{PortRange: [2]int{32768, 60999}, UnprivPortStart: 1024, TWReuse: 2, TWReuseDelayMs: 1000, Timestamps: 1, FinTimeout: 60}
	}
	return o
}

// The first screen, right after a refused bind(): the failure, its cause
// and its fix, without a key press; the port's row says why too.
func TestFirstScreenAfterRefusedBind(t *testing.T) {
	tm := startUIWith(t, restartTooFast(), failureOptions(), 120, 24)
	waitFor(t, tm, "!bind 0.0.0.0:8080 by 4312 myapp: EADDRINUSE", "set SO_REUSEADDR")
	screen := finalScreen(t, tm)
	requireScreen(t, screen, 120, 24)
	requireLine(t, screen, "!bind 0.0.0.0:8080 by 4312 myapp: EADDRINUSE",
		"1 TIME_WAIT without SO_REUSEADDR", "fix: wait 59 s; set SO_REUSEADDR")
	requireLine(t, screen, "8080", "!1", "1 TIME_WAIT without SO_REUSEADDR")
	golden.RequireEqual(t, screen)
}

// The Failures view lists each refused syscall with the holder at that
// moment; the Advice view its finding with the evidence and every fix.
func TestFailuresAndAdviceViews(t *testing.T) {
	m := headlessWith(t, restartTooFast(), failureOptions(), 120, 30)
	m = keys(m, "5")
	m = m.Refresh()
	screen := stripView(m)
	requireLine(t, screen, "Failures 1 refused syscall")
	requireLine(t, screen, "bind", "0.0.0.0:8080", "4312 myapp", "EADDRINUSE", "1 TIME_WAIT without SO_REUSEADDR")
	m = keys(m, "6")
	m = m.Refresh()
	screen = stripView(m)
	requireLine(t, screen, "Advice 1 finding")
	requireLine(t, screen, "TW101", "1 TIME_WAIT socket on port 8080 was left by a socket without SO_REUSEADDR")
	requireLine(t, screen, "fix", "wait: the last TIME_WAIT ends in")
	requireLine(t, screen, "not a fix", "tcp_tw_reuse (now 2)")
	// A connect() refused for want of a port: the exhaustion finding.
	fail := event.Event{Kind: event.KindConnect, Time: testNow, PID: 6000, Comm: event.MakeComm("loadgen"),
		NetNS: sampleNetNS, Family: event.FamilyIPv4, Dst: netip.MustParseAddrPort("10.0.0.9:5432"), Ret: -99}
	m = step(m, EventsMsg([]event.Event{fail}))
	m = m.Refresh() // diagnoses it
	m = m.Refresh() // the advice with its diagnosis
	screen = stripView(m)
	requireLine(t, screen, "!connect 10.0.0.9:5432 by 6000 loadgen: EADDRNOTAVAIL", "no local port left for")
	requireLine(t, screen, "TW201")
	if !strings.Contains(screen, "2 refused (view 5), newest: !connect") {
		t.Errorf("the failure line does not say how many were refused and where to see them:\n%s", screen)
	}
}

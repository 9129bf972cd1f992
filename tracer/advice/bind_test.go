package advice

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/twtrace/twtrace/tracer/event"
)

func reuse(o Options) event.Reuse {
	r := event.ReuseKnown
	if o&ReuseAddr != 0 {
		r |= event.ReuseAddr
	}
	if o&ReusePort != 0 {
		r |= event.ReusePort
	}
	return r
}

func sock(state event.State, bound bool, addr string, o Options, uid uint32) Socket {
	ap := netip.MustParseAddrPort(addr)
	s := Socket{State: state, Bound: bound, Local: ap, Reuse: reuse(o), UID: uid, UIDKnown: state != event.StateTimeWait}
	s.Family = event.FamilyIPv4
	if ap.Addr().Is6() {
		s.Family = event.FamilyIPv6
	}
	return s
}

// The conflict table, cell by cell, on the same IPv4 address: "ok", "x"
// (EADDRINUSE), "uid" (ok for the same user only). Rows: the old socket's
// kind and options; columns: the new socket's plain, SO_REUSEADDR,
// SO_REUSEPORT, both.
func TestPredictTable(t *testing.T) {
	type row struct {
		kind string
		old  Options
		want [4]string
	}
	rows := []row{
		{"listen", 0, [4]string{"x", "x", "x", "x"}},
		{"listen", ReuseAddr, [4]string{"x", "x", "x", "x"}},
		{"listen", ReusePort, [4]string{"x", "x", "uid", "uid"}},
		{"listen", ReuseAddr | ReusePort, [4]string{"x", "x", "uid", "uid"}},
		{"bound", 0, [4]string{"x", "x", "x", "x"}},
		{"bound", ReuseAddr, [4]string{"x", "ok", "x", "ok"}},
		{"bound", ReusePort, [4]string{"x", "x", "uid", "uid"}},
		{"bound", ReuseAddr | ReusePort, [4]string{"x", "ok", "uid", "ok"}},
		{"child", 0, [4]string{"x", "x", "x", "x"}},
		{"child", ReuseAddr, [4]string{"x", "ok", "x", "ok"}},
		{"child", ReusePort, [4]string{"x", "x", "uid", "uid"}},
		{"child", ReuseAddr | ReusePort, [4]string{"x", "ok", "uid", "ok"}},
		{"timewait", 0, [4]string{"x", "x", "x", "x"}},
		{"timewait", ReuseAddr, [4]string{"x", "ok", "x", "ok"}},
		{"timewait", ReusePort, [4]string{"x", "x", "ok", "ok"}},
		{"timewait", ReuseAddr | ReusePort, [4]string{"x", "ok", "ok", "ok"}},
	}
	for _, r := range rows {
		var s Socket
		switch r.kind {
		case "listen":
			s = sock(event.StateListen, false, "127.0.0.1:8080", r.old, 1000)
		case "bound":
			s = sock(event.StateClose, true, "127.0.0.1:8080", r.old, 1000)
		case "child":
			s = sock(event.StateEstablished, false, "127.0.0.1:8080", r.old, 1000)
		case "timewait":
			s = sock(event.StateTimeWait, false, "127.0.0.1:8080", r.old, 0)
		}
		for k, o := range AllOptions {
			for _, uid := range []uint32{1000, 2000} {
				a := Attempt{Addr: netip.MustParseAddrPort("127.0.0.1:8080"), Options: o, UID: uid}
				got := Predict([]Socket{s}, a)
				want := r.want[k] == "ok" || (r.want[k] == "uid" && uid == 1000)
				if (got.Result == OK) != want || !got.Certain {
					t.Errorf("old %s %s, new %s as uid %d: %s (certain %v), want ok=%v",
						r.kind, r.old, o, uid, got.Result, got.Certain, want)
				}
			}
		}
	}
}

// Address overlap: which pairs of addresses meet at all.
func TestPredictOverlap(t *testing.T) {
	for _, tc := range []struct {
		old       string
		oldV6Only bool
		new       string
		newV6Only bool
		conflict  bool
	}{
		{"0.0.0.0:80", false, "127.0.0.1:80", false, true},
		{"127.0.0.1:80", false, "0.0.0.0:80", false, true},
		{"127.0.0.1:80", false, "127.0.0.2:80", false, false},
		{"[::]:80", false, "0.0.0.0:80", false, true},                 // an old dual-stack [::] covers IPv4
		{"[::]:80", true, "0.0.0.0:80", false, false},                 // ... unless V6ONLY
		{"[::]:80", true, "[::]:80", true, true},                      // [::] meets [::] whatever V6ONLY says
		{"[::]:80", false, "[::]:80", true, true},                     //
		{"0.0.0.0:80", false, "[::]:80", false, true},                 // a new dual-stack [::] covers IPv4
		{"0.0.0.0:80", false, "[::]:80", true, false},                 // ... unless V6ONLY
		{"127.0.0.1:80", false, "[::]:80", false, true},               //
		{"[::1]:80", false, "0.0.0.0:80", false, false},               // a specific IPv6 address is V6ONLY
		{"[::1]:80", false, "[::]:80", true, true},                    //
		{"[::1]:80", false, "[::2]:80", false, false},                 //
		{"[::ffff:127.0.0.1]:80", false, "127.0.0.1:80", false, true}, // v4-mapped is IPv4
		{"127.0.0.1:80", false, "[::ffff:127.0.0.1]:80", false, true},
		{"127.0.0.1:80", false, "127.0.0.1:81", false, false}, // another port
	} {
		s := sock(event.StateListen, false, tc.old, 0, 0)
		s.V6Only = tc.oldV6Only
		a := Attempt{Addr: netip.MustParseAddrPort(tc.new), V6Only: tc.newV6Only}
		got := Predict([]Socket{s}, a)
		if (got.Result != OK) != tc.conflict {
			t.Errorf("old %s (v6only %v), new %s (v6only %v): %s, want conflict %v",
				tc.old, tc.oldV6Only, tc.new, tc.newV6Only, got.Result, tc.conflict)
		}
		if tc.conflict && got.Conflicts[0].Cause != CauseListener && got.Conflicts[0].Cause != CauseV6Wildcard {
			t.Errorf("old %s, new %s: cause %s", tc.old, tc.new, got.Conflicts[0].Cause)
		}
	}
}

// Unknown options or uids make an answer uncertain exactly when it
// depends on them: a plain bind is refused whatever they are.
func TestPredictUncertain(t *testing.T) {
	tw := sock(event.StateTimeWait, false, "127.0.0.1:80", 0, 0)
	tw.Reuse = 0
	a := Attempt{Addr: netip.MustParseAddrPort("0.0.0.0:80")}
	if o := Predict([]Socket{tw}, a); o.Result != EADDRINUSE || !o.Certain {
		t.Errorf("plain beside a TIME_WAIT of unknown options: %+v, want a certain EADDRINUSE", o)
	}
	a.Options = ReuseAddr
	if o := Predict([]Socket{tw}, a); o.Certain {
		t.Errorf("SO_REUSEADDR beside a TIME_WAIT of unknown options: %+v, want uncertain", o)
	}
	l := sock(event.StateListen, false, "127.0.0.1:80", ReusePort, 0)
	l.UIDKnown = false
	a.Options = ReusePort
	if o := Predict([]Socket{l}, a); o.Certain {
		t.Errorf("SO_REUSEPORT beside a listener of unknown uid: %+v, want uncertain", o)
	}
	// A certain refusal wins over an uncertain one.
	l0 := sock(event.StateListen, false, "127.0.0.1:80", 0, 0)
	if o := Predict([]Socket{l, l0}, a); o.Result != EADDRINUSE || !o.Certain {
		t.Errorf("a certain refusal beside an uncertain one: %+v", o)
	}
}

func TestOptionsNames(t *testing.T) {
	for _, o := range AllOptions {
		if back, ok := ParseOptions(o.String()); !ok || back != o {
			t.Errorf("%s does not parse back", o)
		}
	}
	if _, ok := ParseOptions("reuse"); ok {
		t.Error("accepted an unknown option set")
	}
	if !strings.Contains(Options(ReuseAddr|ReusePort).String(), "+") {
		t.Error("both options")
	}
}

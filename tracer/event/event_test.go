package event

import (
	"net/netip"
	"testing"
	"time"
)

func TestStateNames(t *testing.T) {
	want := map[State]string{
		1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
		6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
		11: "CLOSING", 12: "NEW_SYN_RECV",
	}
	for s, name := range want {
		if s.String() != name {
			t.Errorf("State(%d) = %q, want %q", s, s.String(), name)
		}
		for _, in := range []string{name, "TCP_" + name, "tcp_" + name} {
			if got, ok := ParseState(in); !ok || got != s {
				t.Errorf("ParseState(%q) = %v, %v", in, got, ok)
			}
		}
	}
	if State(0).String() != "UNKNOWN" || State(200).String() != "UNKNOWN" {
		t.Error("out-of-range states must print UNKNOWN")
	}
	if _, ok := ParseState("ESTABLISH"); ok {
		t.Error("ParseState accepted a non-state")
	}
}

func TestErrnoNames(t *testing.T) {
	for ret, name := range map[int32]string{0: "", 5: "", -98: "EADDRINUSE", -99: "EADDRNOTAVAIL", -13: "EACCES", -22: "EINVAL"} {
		if got := ErrnoName(ret); got != name {
			t.Errorf("ErrnoName(%d) = %q, want %q", ret, got, name)
		}
		if ret <= 0 {
			if back, ok := ParseErrno(name); !ok || back != ret {
				t.Errorf("ParseErrno(%q) = %d, %v, want %d", name, back, ok, ret)
			}
		}
	}
	if _, ok := ParseErrno("ENOTANERRNO"); ok {
		t.Error("ParseErrno accepted an unknown name")
	}
}

func TestNamesRoundTrip(t *testing.T) {
	for k := KindState; k <= KindEnd; k++ {
		if got, ok := ParseKind(k.String()); !ok || got != k {
			t.Errorf("kind %d: %q does not parse back", k, k)
		}
	}
	for o := TimeWaitEnter; o <= TimeWaitKill; o++ {
		if got, ok := ParseTimeWaitOp(o.String()); !ok || got != o {
			t.Errorf("timewait op %d: %q does not parse back", o, o)
		}
	}
	for _, f := range []Family{FamilyIPv4, FamilyIPv6} {
		if got, ok := ParseFamily(f.String()); !ok || got != f {
			t.Errorf("family %d: %q", f, f)
		}
	}
	for _, s := range []Source{SourceInferred, SourceSockDiag} {
		if got, ok := ParseSource(s.String()); !ok || got != s {
			t.Errorf("source %d: %q", s, s)
		}
	}
}

func TestComm(t *testing.T) {
	if c := MakeComm("a-very-long-process-name"); c.String() != "a-very-long-pro" {
		t.Errorf("MakeComm truncates to 15 bytes like the kernel: %q", c)
	}
	var full Comm
	copy(full[:], "0123456789abcdef")
	if full.String() != "0123456789abcdef" {
		t.Errorf("unterminated comm %q", full)
	}
}

func TestFilterMatch(t *testing.T) {
	st := Event{Kind: KindState, Family: FamilyIPv4, PID: 0, Comm: MakeComm("swapper/1"),
		Owner: 42, OwnerComm: MakeComm("nginx"), NetNS: 7,
		Src: netip.MustParseAddrPort("127.0.0.1:80"), Dst: netip.MustParseAddrPort("127.0.0.1:5000"),
		Old: StateEstablished, New: StateFinWait1}
	bind := Event{Kind: KindBind, Family: FamilyIPv6, PID: 42, Comm: MakeComm("nginx"), NetNS: 7,
		Src: netip.MustParseAddrPort("[::]:80")}
	lost := Event{Kind: KindLost, Lost: 3}
	tw := Event{Kind: KindTimeWait, Family: FamilyIPv4, Src: st.Src, Dst: st.Dst, NetNS: 7}
	refused := bind
	refused.Ret = -98 // EADDRINUSE
	conn := Event{Kind: KindConnect, PID: 6, Ret: -99, Dst: netip.MustParseAddrPort("10.0.0.9:443")}
	for _, tc := range []struct {
		name string
		f    Filter
		ev   Event
		want bool
	}{
		{"empty", Filter{}, st, true},
		{"local port", Filter{Ports: []uint16{80}}, st, true},
		{"remote port", Filter{Ports: []uint16{5000}}, st, true},
		{"other port", Filter{Ports: []uint16{81, 82}}, st, false},
		{"owner pid in softirq", Filter{PID: 42}, st, true},
		{"other pid", Filter{PID: 43}, st, false},
		{"owner comm", Filter{Comm: "nginx"}, st, true},
		{"task comm", Filter{Comm: "swapper/1"}, st, true},
		{"other comm", Filter{Comm: "sshd"}, st, false},
		{"state old", Filter{States: []State{StateEstablished}}, st, true},
		{"state new", Filter{States: []State{StateFinWait1}}, st, true},
		{"state other", Filter{States: []State{StateListen}}, st, false},
		{"state excludes bind", Filter{States: []State{StateListen}}, bind, false},
		{"TIME_WAIT selects timewait", Filter{States: []State{StateTimeWait}}, tw, true},
		{"netns", Filter{NetNS: 7}, st, true},
		{"other netns", Filter{NetNS: 8}, st, false},
		{"family", Filter{Family: FamilyIPv6}, st, false},
		{"family bind", Filter{Family: FamilyIPv6}, bind, true},
		{"lost always passes", Filter{Ports: []uint16{1}, PID: 9, Family: FamilyIPv6}, lost, true},
		{"lost passes every part", Filter{LocalPorts: []uint16{1}, Failed: true, Comm: "x"}, lost, true},
		{"sport is local", Filter{LocalPorts: []uint16{80}}, st, true},
		{"sport is not remote", Filter{LocalPorts: []uint16{5000}}, st, false},
		{"dport is remote", Filter{RemotePorts: []uint16{5000}}, st, true},
		{"dport is not local", Filter{RemotePorts: []uint16{80}}, st, false},
		{"dport is a connect's destination", Filter{RemotePorts: []uint16{443}}, conn, true},
		{"sport of a bind", Filter{LocalPorts: []uint16{80}}, bind, true},
		{"kind", Filter{Kinds: []Kind{KindBind}}, bind, true},
		{"other kind", Filter{Kinds: []Kind{KindConnect}}, bind, false},
		{"kind excludes states", Filter{Kinds: []Kind{KindBind}}, st, false},
		{"fail excludes a bind that worked", Filter{Failed: true}, bind, false},
		{"fail", Filter{Failed: true}, refused, true},
		{"fail of a connect", Filter{Failed: true}, conn, true},
		{"fail excludes states", Filter{Failed: true}, st, false},
		{"fail excludes timewait", Filter{Failed: true}, tw, false},
		{"errno", Filter{Errnos: []int32{-98}}, refused, true},
		{"other errno", Filter{Errnos: []int32{-98}}, conn, false},
		{"failed binds", Filter{Failed: true, Kinds: []Kind{KindBind}}, refused, true},
		{"failed binds exclude connects", Filter{Failed: true, Kinds: []Kind{KindBind}}, conn, false},
		// States and syscalls are alternatives: the TIME_WAITs and the failures.
		{"state or fail: the state", Filter{States: []State{StateTimeWait}, Failed: true}, tw, true},
		{"state or fail: the failure", Filter{States: []State{StateTimeWait}, Failed: true}, refused, true},
		{"state or fail: neither", Filter{States: []State{StateTimeWait}, Failed: true}, bind, false},
		{"state or fail: another state", Filter{States: []State{StateTimeWait}, Failed: true}, st, false},
		{"lost passes a uid filter", Filter{UIDs: []uint32{5}}, lost, true},
		{"socket uid", Filter{UIDs: []uint32{7, 33}}, withUID(st, 33), true},
		{"other socket uid", Filter{UIDs: []uint32{7}}, withUID(st, 33), false},
		{"task uid", Filter{UIDs: []uint32{0}}, withUID(bind, 0), true},
		{"unknown uid", Filter{UIDs: []uint32{0}}, st, false},
	} {
		if got := tc.f.Match(&tc.ev); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func withUID(ev Event, uid uint32) Event {
	ev.UID, ev.UIDKnown = uid, true
	return ev
}

func TestFilterValidate(t *testing.T) {
	if f := (Filter{Family: 7}); f.Validate() == nil {
		t.Error("accepted an unknown address family")
	}
	if f := (Filter{Ports: []uint16{1, 2}, PID: 3, Family: FamilyIPv4}); f.Validate() != nil {
		t.Error("refused a valid filter")
	}
}

func TestReuseString(t *testing.T) {
	for r, want := range map[Reuse]string{
		0:                                  "?",
		ReuseAddr:                          "?", // not known: the bits mean nothing
		ReuseKnown:                         "-",
		ReuseKnown | ReuseAddr:             "addr",
		ReuseKnown | ReusePort:             "port",
		ReuseKnown | ReuseAddr | ReusePort: "addr,port",
	} {
		if got := r.String(); got != want {
			t.Errorf("%#x: %q, want %q", uint8(r), got, want)
		}
	}
}

func TestInferTimeWait(t *testing.T) {
	base := Event{Kind: KindState, New: StateClose, Cookie: 5, Family: FamilyIPv4,
		Src: netip.MustParseAddrPort("127.0.0.1:80"), Dst: netip.MustParseAddrPort("127.0.0.1:5000"), NetNS: 3,
		UID: 33, UIDKnown: true}
	for _, tc := range []struct {
		old   State
		reset bool
		want  bool
	}{
		{StateFinWait2, false, true},
		{StateClosing, false, true},
		{StateFinWait2, true, false}, // reset: no TIME_WAIT
		{StateLastAck, false, false}, // the passive closer has none
		{StateSynSent, false, false},
		{StateListen, false, false},
		{StateEstablished, false, false},
	} {
		st := base
		st.Old, st.Reset = tc.old, tc.reset
		var tw Event
		got := InferTimeWait(&st, &tw)
		if got != tc.want {
			t.Errorf("%v->CLOSE reset=%v: inferred %v, want %v", tc.old, tc.reset, got, tc.want)
			continue
		}
		if got && (tw.Kind != KindTimeWait || tw.TimeWait != TimeWaitEnter || tw.Source != SourceInferred ||
			tw.Remaining != 60*time.Second || tw.Src != st.Src || tw.Dst != st.Dst || tw.Cookie != 5 || tw.NetNS != 3 || tw.UID != 33 || !tw.UIDKnown) {
			t.Errorf("inferred %+v", tw)
		}
	}
}

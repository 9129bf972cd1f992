package tracer

import (
	"errors"
	"net/netip"
	"testing"
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
	for k := KindState; k <= KindHeader; k++ {
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
	} {
		if got := tc.f.Match(&tc.ev); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestFilterValidate(t *testing.T) {
	f := Filter{Ports: make([]uint16, MaxPorts+1)}
	if f.Validate() == nil {
		t.Error("accepted more ports than the kernel filter holds")
	}
	f = Filter{Ports: []uint16{1, 2}, PID: 3, Family: FamilyIPv4}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	c := f.kernelConfig()
	if c.Nports != 2 || c.Ports[0] != 1 || c.Ports[1] != 2 || c.Pid != 3 || c.Family != 2 {
		t.Errorf("kernel config %+v", c)
	}
}

func TestParseKernelRelease(t *testing.T) {
	for in, want := range map[string]KernelVersion{
		"6.18.44-fc-v657":     {6, 18, 44},
		"5.15.0-91-generic":   {5, 15, 0},
		"5.8":                 {5, 8, 0},
		"4.19.0+":             {4, 19, 0},
		"6.1.0-rc3":           {6, 1, 0},
		"5.4.0-1103-aws":      {5, 4, 0},
		"6.12.1.el9.x86_64":   {6, 12, 1},
		"3.10.0-1160.el7.x86": {3, 10, 0},
	} {
		got, err := ParseKernelRelease(in)
		if err != nil || got != want {
			t.Errorf("ParseKernelRelease(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "linux", "6"} {
		if _, err := ParseKernelRelease(bad); err == nil {
			t.Errorf("ParseKernelRelease(%q) accepted", bad)
		}
	}
}

func TestCheckFeatures(t *testing.T) {
	ok := Host{Release: "6.1.0", EUID: 0, HasCap: func(int) bool { return false }, LoadBTF: func() error { return nil }}
	if err := CheckFeatures(ok); err != nil {
		t.Fatalf("root on 6.1 with BTF: %v", err)
	}
	caps := ok
	caps.EUID = 1000
	caps.HasCap = func(c int) bool { return c == capBPF || c == capPerfmon }
	if err := CheckFeatures(caps); err != nil {
		t.Fatalf("non-root with CAP_BPF+CAP_PERFMON: %v", err)
	}
	for _, tc := range []struct {
		name    string
		mutate  func(h *Host)
		missing string
	}{
		{"old kernel", func(h *Host) { h.Release = "5.4.0-150-generic" }, "kernel 5.4.0 is older than 5.8.0"},
		{"no privilege", func(h *Host) { h.EUID = 1000 }, "CAP_BPF and CAP_PERFMON"},
		{"only CAP_BPF", func(h *Host) { h.EUID = 1000; h.HasCap = func(c int) bool { return c == capBPF } }, "CAP_BPF and CAP_PERFMON"},
		{"no BTF", func(h *Host) { h.LoadBTF = func() error { return errors.New("no such file") } }, "kernel BTF (/sys/kernel/btf/vmlinux)"},
	} {
		h := ok
		tc.mutate(&h)
		err := CheckFeatures(h)
		var fe *FeatureError
		if !errors.As(err, &fe) {
			t.Errorf("%s: error %v is not a FeatureError", tc.name, err)
			continue
		}
		if fe.Missing != tc.missing || fe.Fix == "" {
			t.Errorf("%s: missing %q fix %q; want missing %q and a fix", tc.name, fe.Missing, fe.Fix, tc.missing)
		}
	}
}

package advice

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/kstat"
)

var now = time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)

func sysctls() *kstat.Sysctls {
	return &kstat.Sysctls{PortRange: [2]int{32768, 60999}, UnprivPortStart: 1024, TWReuse: 2,
		TWReuseDelayMs: 1000, Timestamps: 1, FinTimeout: 60, MaxTWBuckets: 262144}
}

func timeWaits(n int, o Options, port uint16) []Socket {
	var out []Socket
	for i := range n {
		s := sock(event.StateTimeWait, false, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String(), o, 0)
		s.Remote = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(40000+i))
		s.Expires = now.Add(time.Duration(20+i) * time.Second)
		out = append(out, s)
	}
	return out
}

func diagnose(socks []Socket, want Attempt) PortReport {
	f := &PortFacts{Port: 8080, NetNS: 1, Sockets: socks, Sysctls: sysctls(), Now: now}
	if want.Addr.Addr() == (netip.Addr{}) {
		want.Addr = netip.MustParseAddrPort("0.0.0.0:8080")
	}
	return DiagnosePort(f, want)
}

func codes(r PortReport) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Code)
	}
	return out
}

func hasCode(r PortReport, code string) bool { return slices.Contains(codes(r), code) }

func TestTimeWaitWithoutReuseAddr(t *testing.T) {
	r := diagnose(timeWaits(12, 0, 8080), Attempt{Options: ReuseAddr})
	if r.Verdict != "blocked" || !r.Certain || !hasCode(r, CodeTimeWaitNoReuse) || hasCode(r, CodeTimeWaitReuseNew) {
		t.Fatalf("verdict %s certain %v findings %v", r.Verdict, r.Certain, codes(r))
	}
	f := r.Findings[0]
	if !strings.Contains(f.Summary, "even one that sets SO_REUSEADDR") || f.Fixes[0].Kind != FixWait {
		t.Errorf("finding %+v", f)
	}
	if f.Fixes[0].Until == nil || !f.Fixes[0].Until.Equal(now.Add(31*time.Second)) {
		t.Errorf("wait until %v, want the last TIME_WAIT's end", f.Fixes[0].Until)
	}
	if r.TimeWaitUntil == nil || !r.TimeWaitUntil.Equal(now.Add(31*time.Second)) || r.Sockets["TIME_WAIT"] != 12 {
		t.Errorf("sockets %v until %v", r.Sockets, r.TimeWaitUntil)
	}
	// A view that shows the finding later counts the wait down, and says
	// when it is over; the one-line form too.
	wait := &f.Fixes[0]
	if got := wait.TextAt(now.Add(11 * time.Second)); !strings.Contains(got, "ends in 20 s") || !strings.Contains(got, "why 8080 --wait 21s") {
		t.Errorf("11 s later: %q", got)
	}
	if got := wait.TextAt(now.Add(40 * time.Second)); !strings.HasPrefix(got, "wait: the last TIME_WAIT ended at ") {
		t.Errorf("after its end: %q", got)
	}
	if got, want := wait.TextAt(time.Time{}), wait.Text; got != want || !strings.Contains(got, "ends in 31 s") {
		t.Errorf("at the finding's moment: %q, want %q", got, want)
	}
	if got := f.LineAt(now.Add(40 * time.Second)); !strings.Contains(got, "fix: the wait is over; set SO_REUSEADDR for next time") {
		t.Errorf("line after the end: %q", got)
	}
	// The popular advice is named as no fix, with the current values.
	if len(f.NotFixes) != 2 || !strings.Contains(f.NotFixes[0], "tcp_tw_reuse (now 2)") ||
		!strings.Contains(f.NotFixes[1], "tcp_fin_timeout (now 60)") {
		t.Errorf("not fixes %q", f.NotFixes)
	}
	for _, fx := range r.Fixes {
		if fx.Kind == FixSysctl {
			t.Errorf("a sysctl offered for a TIME_WAIT-blocked bind(): %+v", fx)
		}
	}
}

// The look-alike: TIME_WAIT from a socket WITH SO_REUSEADDR; the new socket
// lacks it. Setting it is the fix, and it works now.
func TestTimeWaitReuseAddrNewLacksIt(t *testing.T) {
	r := diagnose(timeWaits(3, ReuseAddr, 8080), Attempt{})
	if !hasCode(r, CodeTimeWaitReuseNew) || hasCode(r, CodeTimeWaitNoReuse) {
		t.Fatalf("findings %v", codes(r))
	}
	fx := r.Findings[0].Fixes[0]
	if fx.Kind != FixSocketOption || !strings.Contains(fx.Text, "lets it bind now") {
		t.Errorf("first fix %+v", fx)
	}
	// And with SO_REUSEADDR the same port is free.
	if r2 := diagnose(timeWaits(3, ReuseAddr, 8080), Attempt{Options: ReuseAddr}); r2.Verdict != "free" {
		t.Errorf("SO_REUSEADDR beside TIME_WAIT with it: %s", r2.Verdict)
	}
}

func TestTimeWaitUnknownOptions(t *testing.T) {
	tws := timeWaits(2, 0, 8080)
	for i := range tws {
		tws[i].Reuse = 0
	}
	f := &PortFacts{Port: 8080, Sockets: tws, Sysctls: sysctls(), Now: now, ReuseUnknown: "reading them needs CAP_BPF and CAP_PERFMON"}
	r := DiagnosePort(f, Attempt{Addr: netip.MustParseAddrPort("0.0.0.0:8080"), Options: ReuseAddr})
	if r.Certain || !hasCode(r, CodeTimeWaitUnknown) || hasCode(r, CodeTimeWaitNoReuse) || len(r.Notes) == 0 {
		t.Errorf("certain %v findings %v notes %v", r.Certain, codes(r), r.Notes)
	}
	// A plain bind is refused whatever the options: certain.
	r = DiagnosePort(f, Attempt{Addr: netip.MustParseAddrPort("0.0.0.0:8080")})
	if !r.Certain || r.Verdict != "blocked" {
		t.Errorf("plain: certain %v verdict %s", r.Certain, r.Verdict)
	}
}

func holderOf(s Socket, pid uint32, comm, unit string, uid uint32) Socket {
	s.Holders = []Holder{{PID: pid, Comm: comm, UID: uid, User: "app", Unit: unit}}
	return s
}

func TestLiveHolder(t *testing.T) {
	l := holderOf(sock(event.StateListen, false, "0.0.0.0:8080", ReuseAddr, 1000), 4312, "myapp", "myapp.service", 1000)
	r := diagnose([]Socket{l}, Attempt{UID: 1000})
	if !hasCode(r, CodeLiveHolder) || r.Causes[0] != CauseListener || len(r.Holders) != 1 || r.Holders[0].PID != 4312 {
		t.Fatalf("findings %v causes %v holders %+v", codes(r), r.Causes, r.Holders)
	}
	f := r.Findings[0]
	if f.Fixes[0].Kind != FixProcess || !strings.Contains(f.Fixes[0].Text, "systemctl stop myapp.service") {
		t.Errorf("first fix %+v", f.Fixes[0])
	}
	if strings.Contains(f.Fixes[1].Text, "binds beside it now") {
		t.Errorf("a SO_REUSEPORT handoff offered for a listener without SO_REUSEPORT: %+v", f.Fixes[1])
	}
	// The holder has SO_REUSEPORT: the handoff works now, as its user.
	l.Reuse = reuse(ReusePort)
	r = diagnose([]Socket{l}, Attempt{UID: 1000})
	if !slices.ContainsFunc(r.Findings[0].Fixes, func(x Fix) bool { return strings.Contains(x.Text, "binds beside it now") }) {
		t.Errorf("no SO_REUSEPORT handoff beside a SO_REUSEPORT listener: %+v", r.Findings[0].Fixes)
	}
}

func TestReusePortOtherUser(t *testing.T) {
	l := holderOf(sock(event.StateListen, false, "0.0.0.0:8080", ReusePort, 1000), 10, "web", "", 1000)
	r := diagnose([]Socket{l}, Attempt{Options: ReusePort, UID: 2000})
	if r.Verdict != "blocked" || !hasCode(r, CodeReusePortUser) || !slices.Contains(r.Causes, CauseReusePortUser) {
		t.Fatalf("verdict %s findings %v causes %v", r.Verdict, codes(r), r.Causes)
	}
	if fx := r.Findings[0].Fixes; len(fx) == 0 || !strings.Contains(fx[0].Text, "uid 1000") {
		t.Errorf("fixes %+v", fx)
	}
	// Same user: free, no finding.
	if r := diagnose([]Socket{l}, Attempt{Options: ReusePort, UID: 1000}); r.Verdict != "free" || hasCode(r, CodeReusePortUser) {
		t.Errorf("same user: %s %v", r.Verdict, codes(r))
	}
}

func TestV6WildcardOverlap(t *testing.T) {
	dual := sock(event.StateListen, false, "[::]:8080", 0, 0)
	r := diagnose([]Socket{dual}, Attempt{})
	if !hasCode(r, CodeV6Wildcard) || !strings.Contains(r.Findings[0].Summary, "dual-stack") {
		t.Fatalf("findings %v", codes(r))
	}
	// The reverse: IPv4 taken, a new dual-stack [::]; V6ONLY fixes it.
	four := sock(event.StateListen, false, "0.0.0.0:8080", 0, 0)
	r = diagnose([]Socket{four}, Attempt{Addr: netip.MustParseAddrPort("[::]:8080")})
	if !hasCode(r, CodeV6Wildcard) || r.Findings[0].Fixes[0].Brief != "set IPV6_V6ONLY" {
		t.Fatalf("findings %+v", r.Findings)
	}
	// Not for a V6ONLY [::] beside IPv4: no conflict at all.
	dual.V6Only = true
	if r := diagnose([]Socket{dual}, Attempt{}); r.Verdict != "free" || len(r.Findings) != 0 {
		t.Errorf("V6ONLY [::] beside IPv4: %s %v", r.Verdict, codes(r))
	}
}

func TestSecondListen(t *testing.T) {
	b := holderOf(sock(event.StateClose, true, "0.0.0.0:8080", ReuseAddr, 0), 77, "old", "", 0)
	r := diagnose([]Socket{b}, Attempt{Options: ReuseAddr})
	if r.Verdict != "free" || !hasCode(r, CodeSecondListen) {
		t.Fatalf("verdict %s findings %v", r.Verdict, codes(r))
	}
	if r := diagnose([]Socket{b}, Attempt{}); hasCode(r, CodeSecondListen) || !hasCode(r, CodeLiveHolder) {
		t.Errorf("plain beside a bound socket: %v", codes(r))
	}
}

func TestEphemeralPortTaken(t *testing.T) {
	c := sock(event.StateEstablished, false, "127.0.0.1:40000", 0, 1000)
	c.Remote = netip.MustParseAddrPort("127.0.0.1:5432")
	f := &PortFacts{Port: 40000, Sockets: []Socket{c}, Sysctls: sysctls(), Now: now}
	r := DiagnosePort(f, Attempt{Addr: netip.MustParseAddrPort("0.0.0.0:40000")})
	if !hasCode(r, CodeEphemeralTaken) || hasCode(r, CodeLiveHolder) {
		t.Fatalf("findings %v", codes(r))
	}
	fx := r.Findings[0].Fixes[0]
	if fx.Kind != FixSysctl || fx.Name != "net.ipv4.ip_local_reserved_ports" || fx.Suggested != "40000" || fx.Current != "" {
		t.Errorf("fix %+v", fx)
	}
	// Outside the range: a connection that bound the port itself, not an
	// ephemeral pick: no reservation offered.
	c.Local = netip.MustParseAddrPort("127.0.0.1:8080")
	if r := diagnose([]Socket{c}, Attempt{}); hasCode(r, CodeEphemeralTaken) {
		t.Errorf("port outside the range: %v", codes(r))
	}
}

func TestPrivilegedPort(t *testing.T) {
	f := &PortFacts{Port: 80, Sysctls: sysctls(), Now: now}
	r := DiagnosePort(f, Attempt{Addr: netip.MustParseAddrPort("0.0.0.0:80"), UID: 1000})
	if r.Verdict != "blocked" || r.Certain || !hasCode(r, CodePrivilegedPort) {
		t.Errorf("uid 1000 on port 80: %s certain %v %v", r.Verdict, r.Certain, codes(r))
	}
	if r := DiagnosePort(f, Attempt{Addr: netip.MustParseAddrPort("0.0.0.0:80")}); r.Verdict != "free" {
		t.Errorf("root on port 80: %s", r.Verdict)
	}
}

func TestAttemptsTable(t *testing.T) {
	r := diagnose(timeWaits(1, ReuseAddr, 8080), Attempt{})
	if len(r.Attempts) != 12 {
		t.Fatalf("%d attempts, want 3 addresses x 4 option sets", len(r.Attempts))
	}
	want := []string{"0.0.0.0 plain EADDRINUSE", "0.0.0.0 reuseaddr ok", "0.0.0.0 reuseport EADDRINUSE",
		"0.0.0.0 reuseaddr+reuseport ok", ":: plain EADDRINUSE", ":: reuseaddr ok"}
	for i, w := range want {
		a := r.Attempts[i]
		if got := a.Addr + " " + a.Options + " " + string(a.Result); got != w {
			t.Errorf("attempt %d: %s, want %s", i, got, w)
		}
	}
	if r.Attempts[4].Stack != "dualstack" || r.Attempts[8].Stack != "v6only" || r.Attempts[8].Result != OK {
		t.Errorf("IPv6 rows: %+v %+v", r.Attempts[4], r.Attempts[8])
	}
	if !strings.Contains(r.Attempts[0].BlockedBy, "1 TIME_WAIT with SO_REUSEADDR") {
		t.Errorf("blocked by %q", r.Attempts[0].BlockedBy)
	}
}

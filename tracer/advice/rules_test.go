package advice

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/table"
)

func facts(s *kstat.Sysctls) *Facts {
	return &Facts{Now: now, Namespaces: map[uint32]*NetNS{1: {Sysctls: s, FinWait2Orphans: -1}}}
}

func fired(fs []Finding, code string) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Code == code {
			out = append(out, f)
		}
	}
	return out
}

func fixNamed(f Finding, name string) (Fix, bool) {
	for _, fx := range f.Fixes {
		if fx.Name == name {
			return fx, true
		}
	}
	return Fix{}, false
}

func connectFail(dst string) Failure {
	return Failure{Event: event.Event{Kind: event.KindConnect, Ret: -99, NetNS: 1, Dst: netip.MustParseAddrPort(dst),
		PID: 6000, Comm: event.MakeComm("loadgen")}}
}

func TestPortExhaustion(t *testing.T) {
	s := sysctls()
	f := facts(s)
	f.Failures = []Failure{connectFail("10.0.0.9:5432"), connectFail("10.0.0.9:5432")}
	f.Remotes = []table.RemoteSummary{{NetNS: 1, Remote: netip.MustParseAddrPort("10.0.0.9:5432"), TimeWait: 28000}}
	got := fired(Advise(f), CodePortExhaustion)
	if len(got) != 1 || !strings.Contains(got[0].Summary, "failed 2 times with EADDRNOTAVAIL") {
		t.Fatalf("findings %+v", got)
	}
	// tcp_tw_reuse=2 is loopback only: towards 10.0.0.9 the fix is 1, named with its current value.
	fx, ok := fixNamed(got[0], "net.ipv4.tcp_tw_reuse")
	if !ok || fx.Current != "2" || fx.Suggested != "1" || !strings.Contains(fx.Text, "never helps bind()") {
		t.Errorf("tcp_tw_reuse fix %+v", fx)
	}
	if fx, ok := fixNamed(got[0], "net.ipv4.ip_local_port_range"); !ok || fx.Current != "32768 60999" {
		t.Errorf("range fix %+v", fx)
	}
	// Towards loopback, tcp_tw_reuse=2 already applies: no tcp_tw_reuse fix.
	f.Failures = []Failure{connectFail("127.0.0.1:8080")}
	f.Remotes = nil
	got = fired(Advise(f), CodePortExhaustion)
	if _, ok := fixNamed(got[0], "net.ipv4.tcp_tw_reuse"); ok {
		t.Errorf("tcp_tw_reuse suggested towards loopback with tcp_tw_reuse=2: %+v", got[0].Fixes)
	}
	// Without timestamps, tcp_tw_reuse cannot work: timestamps come first.
	s.Timestamps = 0
	f.Failures = []Failure{connectFail("10.0.0.9:5432")}
	got = fired(Advise(f), CodePortExhaustion)
	if _, ok := fixNamed(got[0], "net.ipv4.tcp_tw_reuse"); ok {
		t.Errorf("tcp_tw_reuse suggested with tcp_timestamps=0")
	}
	if _, ok := fixNamed(got[0], "net.ipv4.tcp_timestamps"); !ok {
		t.Errorf("no tcp_timestamps fix: %+v", got[0].Fixes)
	}
	// The look-alike: TIME_WAIT towards one destination far below the range.
	f = facts(sysctls())
	f.Remotes = []table.RemoteSummary{{NetNS: 1, Remote: netip.MustParseAddrPort("10.0.0.9:5432"), TimeWait: 900}}
	if got := fired(Advise(f), CodePortExhaustion); len(got) != 0 {
		t.Errorf("900 of 28232 ports: %+v", got)
	}
	// ... and near it: a warning before the failures.
	f.Remotes[0].TimeWait = 20000
	if got := fired(Advise(f), CodePortExhaustion); len(got) != 1 || !strings.Contains(got[0].Summary, "will soon fail") {
		t.Errorf("20000 of 28232 ports: %+v", got)
	}
}

func TestAutobindExhausted(t *testing.T) {
	f := facts(sysctls())
	f.Failures = []Failure{{Event: event.Event{Kind: event.KindBind, Ret: -98, NetNS: 1,
		Src: netip.MustParseAddrPort("0.0.0.0:0"), PID: 5, Comm: event.MakeComm("worker")}}}
	got := fired(Advise(f), CodeAutobindExhausted)
	if len(got) != 1 {
		t.Fatalf("findings %+v", got)
	}
	if fx, ok := fixNamed(got[0], "net.ipv4.ip_autobind_reuse"); !ok || fx.Current != "0" || !strings.Contains(fx.Text, "trade-off") {
		t.Errorf("ip_autobind_reuse fix %+v", fx)
	}
	// A refused bind() of a named port is no autobind exhaustion.
	f.Failures[0].Event.Src = netip.MustParseAddrPort("0.0.0.0:8080")
	if got := fired(Advise(f), CodeAutobindExhausted); len(got) != 0 {
		t.Errorf("bind(8080) taken for autobind: %+v", got)
	}
}

func TestSecondListenObserved(t *testing.T) {
	f := facts(sysctls())
	ev := event.Event{Kind: event.KindListen, Ret: -98, NetNS: 1, Src: netip.AddrPortFrom(netip.Addr{}, 8080), PID: 9}
	f.Failures = []Failure{{Event: ev}}
	if got := fired(Advise(f), CodeSecondListen); len(got) != 1 || got[0].Port != 8080 {
		t.Errorf("findings %+v", got)
	}
	ev.Ret = 0
	f.Failures = []Failure{{Event: ev}}
	if got := fired(Advise(f), CodeSecondListen); len(got) != 0 {
		t.Errorf("a successful listen: %+v", got)
	}
}

func TestCloseWaitLeak(t *testing.T) {
	f := facts(sysctls())
	p := table.ProcessSummary{Owner: table.Owner{PID: 77, Comm: event.MakeComm("leaky")}}
	p.States[event.StateCloseWait] = 40
	f.Processes = []table.ProcessSummary{p}
	got := fired(Advise(f), CodeCloseWaitLeak)
	if len(got) != 1 || got[0].PID != 77 || !strings.Contains(got[0].Summary, "no sysctl helps") {
		t.Fatalf("findings %+v", got)
	}
	for _, fx := range got[0].Fixes {
		if fx.Kind == FixSysctl {
			t.Errorf("a sysctl for CLOSE_WAIT: %+v", fx)
		}
	}
	// Many ESTABLISHED, few CLOSE_WAIT: nothing.
	p.States[event.StateCloseWait] = 3
	p.States[event.StateEstablished] = 500
	f.Processes = []table.ProcessSummary{p}
	if got := fired(Advise(f), CodeCloseWaitLeak); len(got) != 0 {
		t.Errorf("3 CLOSE_WAIT: %+v", got)
	}
}

func TestFinWait2Orphans(t *testing.T) {
	f := facts(sysctls())
	f.Namespaces[1].FinWait2Orphans = 500
	got := fired(Advise(f), CodeFinWait2Orphans)
	if len(got) != 1 {
		t.Fatalf("findings %+v", got)
	}
	fx, ok := fixNamed(got[0], "net.ipv4.tcp_fin_timeout")
	if !ok || fx.Current != "60" || !strings.Contains(fx.Text, "does not touch TIME_WAIT") {
		t.Errorf("fix %+v", fx)
	}
	f.Namespaces[1].FinWait2Orphans = 10
	if got := fired(Advise(f), CodeFinWait2Orphans); len(got) != 0 {
		t.Errorf("10 orphans: %+v", got)
	}
}

func TestTimeWaitBuckets(t *testing.T) {
	s := sysctls()
	s.MaxTWBuckets = 1000
	f := facts(s)
	f.Namespaces[1].TimeWait = 950
	if got := fired(Advise(f), CodeTimeWaitBuckets); len(got) != 1 || !strings.Contains(got[0].Summary, "skips TIME_WAIT") {
		t.Fatalf("near the limit: %+v", got)
	}
	f.Namespaces[1].TimeWait = 100
	if got := fired(Advise(f), CodeTimeWaitBuckets); len(got) != 0 {
		t.Errorf("far from the limit: %+v", got)
	}
	f.Namespaces[1].Rates = &kstat.Rates{TCPTimeWaitOverflow: 3}
	if got := fired(Advise(f), CodeTimeWaitBuckets); len(got) != 1 {
		t.Errorf("overflow rising: %+v", got)
	}
}

func TestTWRecycleConfig(t *testing.T) {
	f := facts(sysctls())
	f.SysctlFiles = ParseSysctlFile("/etc/sysctl.d/90-tune.conf", []byte(
		"# tuning\nnet.ipv4.tcp_tw_reuse = 1\n net/ipv4/tcp_tw_recycle=1 \n;comment\n-net.ipv4.tcp_fin_timeout=30\n"))
	got := fired(Advise(f), CodeTWRecycleConfig)
	if len(got) != 1 || !strings.Contains(got[0].Evidence[0], "90-tune.conf:3") {
		t.Fatalf("findings %+v", got)
	}
	f.SysctlFiles = ParseSysctlFile("/etc/sysctl.conf", []byte("net.ipv4.tcp_tw_reuse = 1\n# net.ipv4.tcp_tw_recycle = 1\n"))
	if got := fired(Advise(f), CodeTWRecycleConfig); len(got) != 0 {
		t.Errorf("a commented line: %+v", got)
	}
}

// Every rule has a code of its own and a section in docs/advice.md.
func TestRulesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/advice.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{CodeTimeWaitNoReuse, CodeTimeWaitReuseNew, CodeLiveHolder, CodeReusePortUser,
		CodeV6Wildcard, CodeSecondListen, CodeEphemeralTaken, CodePrivilegedPort, CodeTimeWaitUnknown,
		CodePortExhaustion, CodeAutobindExhausted, CodeFinWait2Orphans, CodeCloseWaitLeak, CodeTimeWaitBuckets,
		CodeTWRecycleConfig} {
		if !strings.Contains(string(doc), "\n## "+code+" ") {
			t.Errorf("docs/advice.md has no section for %s", code)
		}
	}
	seen := map[string]bool{}
	for _, r := range Rules {
		if seen[r.Code] {
			t.Errorf("code %s used twice", r.Code)
		}
		seen[r.Code] = true
		if r.Name == "" || r.Title == "" || r.Check == nil {
			t.Errorf("rule %s incomplete", r.Code)
		}
	}
}

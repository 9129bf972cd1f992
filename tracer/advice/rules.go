package advice

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/table"
)

// Facts is what the advisor reasons from after watching a host for a while,
// live or from a capture: the socket table's summaries, the failures seen
// (each diagnosed at its moment), and each namespace's settings.
type Facts struct {
	Now        time.Time
	Namespaces map[uint32]*NetNS
	Ports      []table.PortSummary
	Processes  []table.ProcessSummary
	Remotes    []table.RemoteSummary
	Failures   []Failure
	// SysctlFiles are the settings /etc/sysctl.conf and /etc/sysctl.d
	// make, for the ones that no longer exist.
	SysctlFiles []FileSetting
}

// NetNS is what the advisor knows of one network namespace.
// NetNSes lists the network namespaces the facts are about: those of the
// ports, the remote endpoints and the failures, each once.
func (f *Facts) NetNSes() []uint32 {
	var out []uint32
	add := func(n uint32) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	for i := range f.Ports {
		add(f.Ports[i].NetNS)
	}
	for i := range f.Remotes {
		add(f.Remotes[i].NetNS)
	}
	for i := range f.Failures {
		add(f.Failures[i].Event.NetNS)
	}
	return out
}

type NetNS struct {
	Sysctls *kstat.Sysctls // nil: unknown
	Rates   *kstat.Rates   // the TIME_WAIT counters' rates; nil: unknown
	// FinWait2Orphans counts connections closed by their program and
	// waiting for the peer's FIN (timewait sockets in substate FIN_WAIT2);
	// -1 when not counted.
	FinWait2Orphans int
	TimeWait        int // TIME_WAIT sockets now
}

// Failure is a refused bind(), connect() or listen() and its diagnosis at
// that moment: its port's, for a bind or listen; for a connect(), what the
// exhaustion rule finds.
type Failure struct {
	Event   event.Event
	Port    *PortReport // nil for connect()
	Connect *Finding    // connect(): the exhaustion finding; nil when none
}

// Headline is the finding that explains the failure, nil when none does.
func (fl *Failure) Headline() *Finding {
	switch {
	case fl.Port != nil && len(fl.Port.Findings) > 0:
		return &fl.Port.Findings[0]
	case fl.Connect != nil:
		return fl.Connect
	}
	return nil
}

// FileSetting is one line of a sysctl configuration file.
type FileSetting struct {
	File  string
	Line  int
	Name  string // dotted: net.ipv4.tcp_tw_recycle
	Value string
}

// Rule is one of the advisor's checks: a stable code, what it is about, and
// the function that finds it in the facts. Each rule names its evidence and
// the current value of every sysctl its fixes mention.
type Rule struct {
	Code  string
	Name  string
	Title string
	Check func(*Facts) []Finding
}

// Rules are the advisor's checks over a span of observation. The port
// rules (TW101-TW109) run inside DiagnosePort, for each refused bind.
var Rules = []Rule{
	{CodePortExhaustion, "port-exhaustion", "connect() runs out of local ports towards a destination", checkPortExhaustion},
	{CodeAutobindExhausted, "autobind-exhausted", "bind(0) or listen()'s autobind finds no free port", checkAutobind},
	{CodeSecondListen, "second-listen", "two SO_REUSEADDR sockets bound: the second listen() fails", checkSecondListen},
	{CodeFinWait2Orphans, "fin-wait2-orphans", "orphaned FIN_WAIT2 connections pile up", checkFinWait2},
	{CodeCloseWaitLeak, "close-wait-leak", "CLOSE_WAIT sockets pile up under one process", checkCloseWait},
	{CodeTimeWaitBuckets, "timewait-buckets", "TIME_WAIT near or past tcp_max_tw_buckets", checkTWBuckets},
	{CodeTWRecycleConfig, "tw-recycle-config", "a sysctl file still sets tcp_tw_recycle", checkTWRecycle},
}

// Thresholds of the rules that count sockets (docs/advice.md says why).
const (
	exhaustionShare = 0.5 // TIME_WAIT towards one destination, as a share of the port range
	closeWaitMany   = 16  // CLOSE_WAIT sockets of one process
	finWait2Many    = 64  // orphaned FIN_WAIT2 connections in a namespace
	twBucketsShare  = 0.8 // TIME_WAIT as a share of tcp_max_tw_buckets
)

// Advise runs every rule and gathers the failures' port findings, one per
// code and port (the first time it was seen), in order of severity.
func Advise(f *Facts) []Finding {
	var out []Finding
	seen := map[string]bool{}
	add := func(fd Finding) {
		k := fmt.Sprintf("%s %d %d %d", fd.Code, fd.NetNS, fd.Port, fd.PID)
		if !seen[k] {
			seen[k] = true
			out = append(out, fd)
		}
	}
	for _, fl := range f.Failures {
		if fl.Port != nil {
			for _, fd := range fl.Port.Findings {
				add(fd)
			}
		}
	}
	for _, r := range Rules {
		for _, fd := range r.Check(f) {
			add(fd)
		}
	}
	slices.SortStableFunc(out, func(a, b Finding) int { return cmp.Compare(a.Code, b.Code) })
	return out
}

func (f *Facts) sysctls(netns uint32) *kstat.Sysctls {
	if n := f.Namespaces[netns]; n != nil {
		return n.Sysctls
	}
	return nil
}

// rangeSize is the number of ports of ip_local_port_range, 0 when unknown.
func rangeSize(s *kstat.Sysctls) int {
	if s == nil || s.PortRange[0] <= 0 {
		return 0
	}
	return s.PortRange[1] - s.PortRange[0] + 1
}

func checkPortExhaustion(f *Facts) []Finding {
	type dest struct {
		netns uint32
		addr  string
	}
	fails := map[dest]int{}
	var order []dest
	for _, fl := range f.Failures {
		ev := &fl.Event
		if ev.Kind == event.KindConnect && ev.Ret == -99 { // EADDRNOTAVAIL
			d := dest{ev.NetNS, ev.Dst.String()}
			if fails[d] == 0 {
				order = append(order, d)
			}
			fails[d]++
		}
	}
	tws := map[dest]int{}
	for _, r := range f.Remotes {
		d := dest{r.NetNS, r.Remote.String()}
		tws[d] = r.TimeWait
		size := rangeSize(f.sysctls(r.NetNS))
		if fails[d] == 0 && size > 0 && float64(r.TimeWait) >= exhaustionShare*float64(size) {
			order = append(order, d)
		}
	}
	var out []Finding
	for _, d := range order {
		s := f.sysctls(d.netns)
		size := rangeSize(s)
		fd := Finding{Code: CodePortExhaustion, Name: "port-exhaustion", NetNS: d.netns}
		switch {
		case fails[d] > 0:
			fd.Summary = fmt.Sprintf("connect() to %s failed %s with EADDRNOTAVAIL: no local port was free for that destination",
				d.addr, times(fails[d]))
			fd.Cause = "no local port left for " + d.addr
			fd.Evidence = append(fd.Evidence, fmt.Sprintf("%s refused with EADDRNOTAVAIL", plural(fails[d], "connect()", "connect() calls")))
		default:
			fd.Summary = fmt.Sprintf("TIME_WAIT sockets towards %s hold %d of the %d local ports: connect() to it will soon fail with EADDRNOTAVAIL",
				d.addr, tws[d], size)
			fd.Cause = fmt.Sprintf("%d of %d local ports in TIME_WAIT towards %s", tws[d], size, d.addr)
		}
		if size > 0 {
			fd.Evidence = append(fd.Evidence, fmt.Sprintf("%d TIME_WAIT sockets towards %s; ip_local_port_range has %d ports (%d-%d)",
				tws[d], d.addr, size, s.PortRange[0], s.PortRange[1]))
		}
		fd.Fixes = append(fd.Fixes, exhaustionFixes(s, d.addr)...)
		fd.NotFixes = []string{notFinTimeout(s)}
		out = append(out, fd)
	}
	return out
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return strconv.Itoa(n) + " times"
}

// exhaustionFixes: what lets connect() find ports again, given the
// namespace's settings. tcp_tw_reuse needs TCP timestamps and applies to
// connect() only; 2 (the default) reuses towards loopback only.
func exhaustionFixes(s *kstat.Sysctls, dst string) []Fix {
	var out []Fix
	loop := strings.HasPrefix(dst, "127.") || strings.HasPrefix(dst, "[::1]") || strings.HasPrefix(dst, "[::ffff:127.")
	if s != nil {
		delay := ""
		if s.Has("net.ipv4.tcp_tw_reuse_delay") {
			delay = fmt.Sprintf(" once a TIME_WAIT is %d ms old (tcp_tw_reuse_delay)", s.TWReuseDelayMs)
		}
		switch {
		case s.Timestamps == 0:
			out = append(out, Fix{Kind: FixSysctl, Name: "net.ipv4.tcp_timestamps", Current: "0", Suggested: "1",
				Brief: "tcp_timestamps=1, then tcp_tw_reuse",
				Text: "set net.ipv4.tcp_timestamps = 1 (now 0): tcp_tw_reuse, which lets connect() take a TIME_WAIT 4-tuple, " +
					"works only on connections with TCP timestamps"})
		case s.TWReuse == 1 || (s.TWReuse == 2 && loop):
			// Already on for this destination: reuse happens; the range is the limit.
		default:
			suggested := "1"
			if loop && s.TWReuse == 0 {
				suggested = "2"
			}
			out = append(out, sysctlFix(s, "net.ipv4.tcp_tw_reuse", suggested,
				"connect() may then take the 4-tuple of a TIME_WAIT socket"+delay+" (it never helps bind())",
				"tcp_tw_reuse="+suggested))
		}
		if s.PortRange[0] > 10000 || s.PortRange[1] < 65535 {
			out = append(out, sysctlFix(s, "net.ipv4.ip_local_port_range", "10000 65535",
				fmt.Sprintf("%d local ports per destination instead of %d; keep the service ports below 10000 or list them in ip_local_reserved_ports",
					65535-10000+1, rangeSize(s)), "widen ip_local_port_range"))
		}
	}
	out = append(out,
		Fix{Kind: FixCode, Brief: "reuse connections",
			Text: "reuse connections (HTTP keep-alive, a connection pool) instead of one connection per request: each closed connection holds a port for 60 s"},
		Fix{Kind: FixSocketOption, Brief: "IP_BIND_ADDRESS_NO_PORT",
			Text: "a client that bind()s a source address before connect() should set IP_BIND_ADDRESS_NO_PORT, so that connect() picks the port per destination"})
	return out
}

func checkAutobind(f *Facts) []Finding {
	var out []Finding
	counted := map[uint32]int{}
	for _, fl := range f.Failures {
		ev := &fl.Event
		auto := (ev.Kind == event.KindBind || ev.Kind == event.KindListen) && ev.Ret == -98 && ev.Src.Port() == 0
		if !auto {
			continue
		}
		counted[ev.NetNS]++
		if counted[ev.NetNS] > 1 {
			continue
		}
		s := f.sysctls(ev.NetNS)
		fd := Finding{Code: CodeAutobindExhausted, Name: "autobind-exhausted", NetNS: ev.NetNS, PID: ev.PID,
			Summary: "bind() to port 0 (or listen() on an unbound socket) failed with EADDRINUSE: every port of ip_local_port_range is taken",
			Cause:   "no free port for bind(0)",
		}
		if size := rangeSize(s); size > 0 {
			fd.Evidence = append(fd.Evidence, fmt.Sprintf("%s by %d %s; the range has %d ports", ev.Kind, ev.PID, ev.Comm.String(), size))
			fd.Fixes = append(fd.Fixes, sysctlFix(s, "net.ipv4.ip_local_port_range", "10000 65535",
				"more ports to pick from", "widen ip_local_port_range"))
		}
		if s != nil && s.AutobindReuse == 0 {
			fd.Fixes = append(fd.Fixes, sysctlFix(s, "net.ipv4.ip_autobind_reuse", "1",
				"bind(0) may then pick a port that SO_REUSEADDR sockets already share; the trade-off: two such sockets "+
					"cannot both connect() to the same destination", "ip_autobind_reuse=1"))
		}
		out = append(out, fd)
	}
	return out
}

func checkSecondListen(f *Facts) []Finding {
	var out []Finding
	for _, fl := range f.Failures {
		ev := &fl.Event
		if ev.Kind != event.KindListen || ev.Ret != -98 || ev.Src.Port() == 0 {
			continue
		}
		out = append(out, Finding{Code: CodeSecondListen, Name: "second-listen", Port: ev.Src.Port(), NetNS: ev.NetNS, PID: ev.PID,
			Summary: fmt.Sprintf("listen() on port %d by %d %s failed with EADDRINUSE after its bind() succeeded: "+
				"another socket with SO_REUSEADDR was bound to the port too and listened first", ev.Src.Port(), ev.PID, ev.Comm.String()),
			Cause:    "a second SO_REUSEADDR socket's listen() is refused",
			Evidence: []string{fmt.Sprintf("listen() EADDRINUSE at %s", ev.Time.Format(time.RFC3339))},
			Fixes: []Fix{{Kind: FixSocketOption, Brief: "SO_REUSEPORT, or one socket",
				Text: "to share the port, set SO_REUSEPORT on both (same user); otherwise bind it in one place only"}},
		})
	}
	return out
}

func checkFinWait2(f *Facts) []Finding {
	var out []Finding
	for ino, n := range f.Namespaces {
		if n.FinWait2Orphans < finWait2Many {
			continue
		}
		fd := Finding{Code: CodeFinWait2Orphans, Name: "fin-wait2-orphans", NetNS: ino,
			Summary:  fmt.Sprintf("%d connections wait in FIN_WAIT2 for the peer's FIN after their program closed them: peers that never close", n.FinWait2Orphans),
			Cause:    fmt.Sprintf("%d orphaned FIN_WAIT2", n.FinWait2Orphans),
			Evidence: []string{fmt.Sprintf("%d timewait sockets in substate FIN_WAIT2 (sock_diag)", n.FinWait2Orphans)},
		}
		if n.Sysctls != nil && n.Sysctls.FinTimeout > 15 {
			fd.Fixes = append(fd.Fixes, sysctlFix(n.Sysctls, "net.ipv4.tcp_fin_timeout", "15",
				"orphaned FIN_WAIT2 connections then go after 15 s; it does not touch TIME_WAIT, which always lasts 60 s",
				"tcp_fin_timeout=15"))
		}
		out = append(out, fd)
	}
	slices.SortFunc(out, func(a, b Finding) int { return cmp.Compare(a.NetNS, b.NetNS) })
	return out
}

func checkCloseWait(f *Facts) []Finding {
	var out []Finding
	for _, p := range f.Processes {
		n := p.States[event.StateCloseWait]
		if n < closeWaitMany {
			continue
		}
		out = append(out, Finding{Code: CodeCloseWaitLeak, Name: "close-wait-leak", PID: p.PID,
			Summary: fmt.Sprintf("%d %s holds %d connections in CLOSE_WAIT: their peers closed, and the program never called close(); no sysctl helps",
				p.PID, p.Comm.String(), n),
			Cause:    fmt.Sprintf("%d CLOSE_WAIT under %d %s", n, p.PID, p.Comm.String()),
			Evidence: []string{fmt.Sprintf("%d sockets in CLOSE_WAIT owned by %d %s", n, p.PID, p.Comm.String())},
			Fixes: []Fix{
				{Kind: FixCode, Brief: "close sockets on EOF",
					Text: "fix the program: when read() returns 0 (the peer closed), close the socket; look for a missing close() on error paths"},
				{Kind: FixProcess, Brief: "restart to free them",
					Text: fmt.Sprintf("until then, restarting %d %s frees the sockets (the kernel never times CLOSE_WAIT out)", p.PID, p.Comm.String())},
			},
			NotFixes: []string{"no sysctl shortens CLOSE_WAIT: tcp_fin_timeout and tcp_tw_reuse apply to other states"},
		})
	}
	return out
}

func checkTWBuckets(f *Facts) []Finding {
	var out []Finding
	for ino, n := range f.Namespaces {
		s := n.Sysctls
		overflow := n.Rates != nil && n.Rates.TCPTimeWaitOverflow > 0
		near := s != nil && s.MaxTWBuckets > 0 && float64(n.TimeWait) >= twBucketsShare*float64(s.MaxTWBuckets)
		if !overflow && !near {
			continue
		}
		fd := Finding{Code: CodeTimeWaitBuckets, Name: "timewait-buckets", NetNS: ino,
			Summary: "past net.ipv4.tcp_max_tw_buckets the kernel skips TIME_WAIT: a closing connection just vanishes " +
				"(\"TCP: time wait bucket table overflow\"), and a late segment of it may be taken for part of a new connection on the same 4-tuple",
			Cause: "TIME_WAIT at the tcp_max_tw_buckets limit",
		}
		if s != nil {
			fd.Evidence = append(fd.Evidence, fmt.Sprintf("%d TIME_WAIT sockets; tcp_max_tw_buckets is %d", n.TimeWait, s.MaxTWBuckets))
		}
		if overflow {
			fd.Evidence = append(fd.Evidence, fmt.Sprintf("TCPTimeWaitOverflow rises by %.1f/s", n.Rates.TCPTimeWaitOverflow))
		}
		if s != nil {
			fd.Fixes = append(fd.Fixes, sysctlFix(s, "net.ipv4.tcp_max_tw_buckets", strconv.Itoa(max(2*s.MaxTWBuckets, 262144)),
				"more TIME_WAIT sockets are kept (about 200 bytes each); the trade-off is memory, against connections closed without TIME_WAIT's protection",
				"raise tcp_max_tw_buckets"))
		}
		fd.Fixes = append(fd.Fixes, Fix{Kind: FixCode, Brief: "fewer short connections",
			Text: "make fewer short connections (keep-alive, pooling): each one leaves a TIME_WAIT on the side that closes first"})
		out = append(out, fd)
	}
	slices.SortFunc(out, func(a, b Finding) int { return cmp.Compare(a.NetNS, b.NetNS) })
	return out
}

func checkTWRecycle(f *Facts) []Finding {
	var out []Finding
	for _, fs := range f.SysctlFiles {
		if fs.Name != "net.ipv4.tcp_tw_recycle" {
			continue
		}
		out = append(out, Finding{Code: CodeTWRecycleConfig, Name: "tw-recycle-config",
			Summary: fmt.Sprintf("%s:%d sets net.ipv4.tcp_tw_recycle = %s, which Linux removed in 4.12: the line does nothing "+
				"(sysctl -p reports it cannot stat /proc/sys/net/ipv4/tcp_tw_recycle)", fs.File, fs.Line, fs.Value),
			Cause:    "tcp_tw_recycle is still configured",
			Evidence: []string{fmt.Sprintf("%s:%d: net.ipv4.tcp_tw_recycle = %s", fs.File, fs.Line, fs.Value)},
			Fixes: []Fix{{Kind: FixSysctl, Name: "net.ipv4.tcp_tw_recycle", Brief: "remove the line",
				Text: fmt.Sprintf("remove the line from %s; never set tcp_tw_recycle (it broke clients behind NAT, and is gone)", fs.File)}},
		})
	}
	return out
}

// ParseSysctlFile reads the settings of a sysctl.d(5) file: "key = value"
// lines, keys with dots or slashes, '#' and ';' comments, and a leading '-'
// (ignore errors) dropped.
func ParseSysctlFile(name string, data []byte) []FileSetting {
	var out []FileSetting
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		key, val, ok := strings.Cut(strings.TrimPrefix(line, "-"), "=")
		if !ok {
			continue
		}
		key = strings.ReplaceAll(strings.TrimSpace(key), "/", ".")
		out = append(out, FileSetting{File: name, Line: i + 1, Name: key, Value: strings.TrimSpace(val)})
	}
	return out
}

package advice

import (
	"net/netip"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/table"
)

// TableFacts builds a port's facts from the socket table: what the live
// view and a replayed capture know at a moment. The table has each socket's
// options (from its transitions or the iterator) and owner, but not its
// owner uid, IPV6_V6ONLY, nor sockets that are bound and nothing else:
// answers that depend on those are uncertain, or say less than `why` does.
func TableFacts(tab *table.Table, netns uint32, port uint16, sysctls *kstat.Sysctls, now time.Time) *PortFacts {
	f := &PortFacts{Port: port, NetNS: netns, Sysctls: sysctls, Now: now}
	socks, _ := tab.Sockets(table.Query{Ports: []uint16{port}, NetNS: netns}, now)
	unknown := false
	for i := range socks {
		s := &socks[i]
		if s.Src.Port() != port || s.NetNS != netns {
			continue // a connection to the port, not on it
		}
		if !s.Reuse.Known() {
			unknown = true
		}
		f.Sockets = append(f.Sockets, SocketFromTable(s))
	}
	if unknown {
		f.ReuseUnknown = "the options of sockets older than the trace are read only with BPF privilege"
	}
	return f
}

// SocketFromTable converts a socket of the table: its options as the table
// has them, its owner as its holder; no uid, no IPV6_V6ONLY.
func SocketFromTable(s *table.Socket) Socket {
	as := Socket{
		Cookie: s.Cookie, State: s.State, Family: s.Family, Local: s.Src, Remote: s.Dst,
		Reuse: s.Reuse, Expires: s.Expires,
	}
	if s.Owner != 0 {
		as.Holders = []Holder{{PID: s.Owner, Comm: s.OwnerComm.String(), Container: s.Container}}
	}
	return as
}

// FailedBind is the attempt a refused bind() or listen() event describes.
func FailedBind(ev *event.Event) Attempt {
	a := Attempt{Addr: ev.Src}
	if !a.Addr.Addr().IsValid() {
		// listen() reports only the port: its socket's address is not in
		// the event; the wildcard of its family is the usual one.
		ip := netip.IPv4Unspecified()
		if ev.Family == event.FamilyIPv6 {
			ip = netip.IPv6Unspecified()
		}
		a.Addr = netip.AddrPortFrom(ip, ev.Src.Port())
	}
	if ev.ReuseAddr {
		a.Options |= ReuseAddr
	}
	if ev.ReusePort {
		a.Options |= ReusePort
	}
	return a
}

// DiagnoseFailure diagnoses a refused bind() or listen() from the socket
// table as it is now (the moment of the failure, for a caller that applies
// events in order); a refused connect() needs no port diagnosis.
func DiagnoseFailure(tab *table.Table, ev *event.Event, sysctls *kstat.Sysctls) Failure {
	fl := Failure{Event: *ev}
	if (ev.Kind == event.KindBind || ev.Kind == event.KindListen) && ev.Ret < 0 && ev.Src.Port() != 0 {
		want := FailedBind(ev)
		want.UID = ev.UID
		r := DiagnosePort(TableFacts(tab, ev.NetNS, ev.Src.Port(), sysctls, ev.Time), want)
		fl.Port = &r
	}
	if ev.Kind == event.KindConnect && ev.Ret < 0 {
		f := &Facts{Now: ev.Time, Failures: []Failure{fl}, Remotes: tab.Remotes(),
			Namespaces: map[uint32]*NetNS{ev.NetNS: {Sysctls: sysctls, FinWait2Orphans: -1}}}
		if fs := checkPortExhaustion(f); len(fs) > 0 {
			fl.Connect = &fs[0]
		}
	}
	return fl
}

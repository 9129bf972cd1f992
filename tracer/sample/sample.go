// Package sample holds a realistic, fixed stream of events for the tests of
// every sink (text, JSON Lines, captures, the TUI).
package sample

import (
	"net/netip"
	"time"

	"github.com/twtrace/twtrace/tracer"
)

// The sample stream: one client/server exchange on port 8080 with the
// server closing first, a client of a database that closes first, a restart
// that fails with EADDRINUSE, a connect() that runs out of ports, loss, and a
// task name chosen to break naive output.

// Start is the time of the first sample event.
var Start = time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)

// Events returns the sample stream; every call returns a fresh slice.
func Events() []tracer.Event {
	at := func(ms int) time.Time { return Start.Add(time.Duration(ms) * time.Millisecond) }
	srv := netip.MustParseAddrPort("127.0.0.1:8080")
	cli := netip.MustParseAddrPort("127.0.0.1:51234")
	const ns = 4026531840
	nginx, curl := tracer.MakeComm("nginx"), tracer.MakeComm("curl")
	state := func(ms int, pid uint32, comm tracer.Comm, cookie uint64, src, dst netip.AddrPort, old, new tracer.State, oldMS float64, owner uint32, ownerComm tracer.Comm) tracer.Event {
		e := tracer.Event{
			Kind: tracer.KindState, Time: at(ms), PID: pid, TID: pid, Comm: comm, NetNS: ns,
			Family: tracer.FamilyIPv4, Src: src, Dst: dst, Cookie: cookie, Old: old, New: new,
			Owner: owner, OwnerComm: ownerComm,
		}
		if oldMS >= 0 {
			e.OldKnown = true
			e.OldDur = time.Duration(oldMS * float64(time.Millisecond))
		}
		return e
	}
	var swapper = tracer.MakeComm("swapper/1")
	listen := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	evs := []tracer.Event{
		{Kind: tracer.KindBind, Time: at(0), PID: 4120, TID: 4120, Comm: nginx, NetNS: ns, Family: tracer.FamilyIPv4,
			Src: netip.MustParseAddrPort("0.0.0.0:8080"), FD: 6, ReuseAddr: true},
		state(1, 4120, nginx, 0x2a01, netip.MustParseAddrPort("0.0.0.0:8080"), listen, tracer.StateClose, tracer.StateListen, -1, 4120, nginx),
		state(10, 5001, curl, 0x2a02, netip.AddrPortFrom(cli.Addr(), 0), srv, tracer.StateClose, tracer.StateSynSent, -1, 5001, curl),
		state(10, 5001, curl, 0x2a03, srv, cli, tracer.StateListen, tracer.StateSynRecv, -1, 4120, nginx),
		state(10, 5001, curl, 0x2a03, srv, cli, tracer.StateSynRecv, tracer.StateEstablished, 0.012, 4120, nginx),
		state(10, 5001, curl, 0x2a02, cli, srv, tracer.StateSynSent, tracer.StateEstablished, 0.061, 5001, curl),
		state(35, 4120, nginx, 0x2a03, srv, cli, tracer.StateEstablished, tracer.StateFinWait1, 25.004, 4120, nginx),
		state(35, 0, swapper, 0x2a02, cli, srv, tracer.StateEstablished, tracer.StateCloseWait, 25.03, 5001, curl),
		state(36, 0, swapper, 0x2a03, srv, cli, tracer.StateFinWait1, tracer.StateFinWait2, 1.2, 4120, nginx),
		state(36, 0, swapper, 0x2a03, srv, cli, tracer.StateFinWait2, tracer.StateClose, 0.003, 4120, nginx),
	}
	var tw tracer.Event
	tracer.InferTimeWait(&evs[len(evs)-1], &tw)
	evs = append(evs, tw,
		state(40, 5001, curl, 0x2a02, cli, srv, tracer.StateCloseWait, tracer.StateLastAck, 5.1, 5001, curl),
		state(40, 0, swapper, 0x2a02, cli, srv, tracer.StateLastAck, tracer.StateClose, 0.05, 5001, curl),
		state(900, 4120, nginx, 0x2a01, netip.MustParseAddrPort("0.0.0.0:8080"), listen, tracer.StateListen, tracer.StateClose, 899, 4120, nginx),
	)
	// A client of a database: one connection stays, one it closes first,
	// which leaves the TIME_WAIT on the client's side, holding a local port.
	db := netip.MustParseAddrPort("10.0.0.9:5432")
	lg := tracer.MakeComm("loadgen")
	c1, c2 := netip.MustParseAddrPort("10.0.0.5:40001"), netip.MustParseAddrPort("10.0.0.5:40002")
	evs = append(evs,
		state(950, 6000, lg, 0x3001, netip.AddrPortFrom(c1.Addr(), 0), db, tracer.StateClose, tracer.StateSynSent, -1, 6000, lg),
		state(951, 0, swapper, 0x3001, c1, db, tracer.StateSynSent, tracer.StateEstablished, 0.9, 6000, lg),
		state(960, 6000, lg, 0x3002, netip.AddrPortFrom(c2.Addr(), 0), db, tracer.StateClose, tracer.StateSynSent, -1, 6000, lg),
		state(961, 0, swapper, 0x3002, c2, db, tracer.StateSynSent, tracer.StateEstablished, 0.8, 6000, lg),
		state(1000, 6000, lg, 0x3002, c2, db, tracer.StateEstablished, tracer.StateFinWait1, 39, 6000, lg),
		state(1001, 0, swapper, 0x3002, c2, db, tracer.StateFinWait1, tracer.StateFinWait2, 0.7, 6000, lg),
		state(1002, 0, swapper, 0x3002, c2, db, tracer.StateFinWait2, tracer.StateClose, 0.4, 6000, lg),
	)
	tracer.InferTimeWait(&evs[len(evs)-1], &tw)
	evs = append(evs, tw,
		// The restarted server lacks SO_REUSEADDR: refused by the TIME_WAIT.
		tracer.Event{Kind: tracer.KindBind, Time: at(1200), PID: 4300, TID: 4300, Comm: nginx, NetNS: ns,
			Family: tracer.FamilyIPv4, Src: netip.MustParseAddrPort("0.0.0.0:8080"), FD: 6, Ret: -98},
		tracer.Event{Kind: tracer.KindListen, Time: at(1300), PID: 4301, TID: 4301, Comm: tracer.MakeComm("backup"),
			NetNS: ns, Family: tracer.FamilyIPv6, Src: netip.AddrPortFrom(netip.Addr{}, 8080), FD: 3, Ret: -98},
		tracer.Event{Kind: tracer.KindConnect, Time: at(1500), PID: 6000, TID: 6001, Comm: tracer.MakeComm("loadgen"),
			NetNS: ns, Family: tracer.FamilyIPv6, Dst: netip.MustParseAddrPort("[2001:db8::1]:443"), FD: 9, Ret: -99},
		tracer.Event{Kind: tracer.KindLost, Time: at(1600), Lost: 17},
		// A task may name itself anything, quotes and escape sequences included.
		state(1700, 7, tracer.MakeComm("evil\"\x1b[2J\\"), 0x2b00, netip.MustParseAddrPort("[::1]:8080"),
			netip.MustParseAddrPort("[::1]:40000"), tracer.StateSynSent, tracer.StateClose, 3000, 0, tracer.Comm{}),
		tracer.Event{Kind: tracer.KindTimeWait, Time: at(60036), Family: tracer.FamilyIPv4, Src: srv, Dst: cli, NetNS: ns,
			Cookie: 0x2a03, TimeWait: tracer.TimeWaitExpire, Source: tracer.SourceSockDiag},
	)
	evs[len(evs)-2].Family = tracer.FamilyIPv6
	evs[len(evs)-2].Reset = true
	return evs
}

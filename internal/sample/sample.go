// Package sample holds a realistic, fixed stream of events for the tests of
// every sink (text, JSON Lines, captures, the TUI).
package sample

import (
	"net/netip"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// The sample stream: one client/server exchange on port 8080 with the
// server closing first, a client of a database that closes first, a restart
// that fails with EADDRINUSE, a connect() that runs out of ports, loss, and a
// task name chosen to break naive output.

// Start is the time of the first sample event.
var Start = time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)

// Events returns the sample stream; every call returns a fresh slice.
func Events() []event.Event {
	at := func(ms int) time.Time { return Start.Add(time.Duration(ms) * time.Millisecond) }
	srv := netip.MustParseAddrPort("127.0.0.1:8080")
	cli := netip.MustParseAddrPort("127.0.0.1:51234")
	const ns = 4026531840
	nginx, curl := event.MakeComm("nginx"), event.MakeComm("curl")
	state := func(ms int, pid uint32, comm event.Comm, cookie uint64, src, dst netip.AddrPort, old, new event.State, oldMS float64, owner uint32, ownerComm event.Comm) event.Event {
		e := event.Event{
			Kind: event.KindState, Time: at(ms), PID: pid, TID: pid, Comm: comm, NetNS: ns,
			Family: event.FamilyIPv4, Src: src, Dst: dst, Cookie: cookie, Old: old, New: new,
			Owner: owner, OwnerComm: ownerComm,
		}
		if oldMS >= 0 {
			e.OldKnown = true
			e.OldDur = time.Duration(oldMS * float64(time.Millisecond))
		}
		return e
	}
	var swapper = event.MakeComm("swapper/1")
	listen := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	evs := []event.Event{
		{Kind: event.KindBind, Time: at(0), PID: 4120, TID: 4120, Comm: nginx, NetNS: ns, Family: event.FamilyIPv4,
			Src: netip.MustParseAddrPort("0.0.0.0:8080"), FD: 6, ReuseAddr: true},
		state(1, 4120, nginx, 0x2a01, netip.MustParseAddrPort("0.0.0.0:8080"), listen, event.StateClose, event.StateListen, -1, 4120, nginx),
		state(10, 5001, curl, 0x2a02, netip.AddrPortFrom(cli.Addr(), 0), srv, event.StateClose, event.StateSynSent, -1, 5001, curl),
		state(10, 5001, curl, 0x2a03, srv, cli, event.StateListen, event.StateSynRecv, -1, 4120, nginx),
		state(10, 5001, curl, 0x2a03, srv, cli, event.StateSynRecv, event.StateEstablished, 0.012, 4120, nginx),
		state(10, 5001, curl, 0x2a02, cli, srv, event.StateSynSent, event.StateEstablished, 0.061, 5001, curl),
		state(35, 4120, nginx, 0x2a03, srv, cli, event.StateEstablished, event.StateFinWait1, 25.004, 4120, nginx),
		state(35, 0, swapper, 0x2a02, cli, srv, event.StateEstablished, event.StateCloseWait, 25.03, 5001, curl),
		state(36, 0, swapper, 0x2a03, srv, cli, event.StateFinWait1, event.StateFinWait2, 1.2, 4120, nginx),
		state(36, 0, swapper, 0x2a03, srv, cli, event.StateFinWait2, event.StateClose, 0.003, 4120, nginx),
	}
	var tw event.Event
	event.InferTimeWait(&evs[len(evs)-1], &tw)
	evs = append(evs, tw,
		state(40, 5001, curl, 0x2a02, cli, srv, event.StateCloseWait, event.StateLastAck, 5.1, 5001, curl),
		state(40, 0, swapper, 0x2a02, cli, srv, event.StateLastAck, event.StateClose, 0.05, 5001, curl),
		state(900, 4120, nginx, 0x2a01, netip.MustParseAddrPort("0.0.0.0:8080"), listen, event.StateListen, event.StateClose, 899, 4120, nginx),
	)
	// A client of a database: one connection stays, one it closes first,
	// which leaves the TIME_WAIT on the client's side, holding a local port.
	db := netip.MustParseAddrPort("10.0.0.9:5432")
	lg := event.MakeComm("loadgen")
	c1, c2 := netip.MustParseAddrPort("10.0.0.5:40001"), netip.MustParseAddrPort("10.0.0.5:40002")
	evs = append(evs,
		state(950, 6000, lg, 0x3001, netip.AddrPortFrom(c1.Addr(), 0), db, event.StateClose, event.StateSynSent, -1, 6000, lg),
		state(951, 0, swapper, 0x3001, c1, db, event.StateSynSent, event.StateEstablished, 0.9, 6000, lg),
		state(960, 6000, lg, 0x3002, netip.AddrPortFrom(c2.Addr(), 0), db, event.StateClose, event.StateSynSent, -1, 6000, lg),
		state(961, 0, swapper, 0x3002, c2, db, event.StateSynSent, event.StateEstablished, 0.8, 6000, lg),
		state(1000, 6000, lg, 0x3002, c2, db, event.StateEstablished, event.StateFinWait1, 39, 6000, lg),
		state(1001, 0, swapper, 0x3002, c2, db, event.StateFinWait1, event.StateFinWait2, 0.7, 6000, lg),
		state(1002, 0, swapper, 0x3002, c2, db, event.StateFinWait2, event.StateClose, 0.4, 6000, lg),
	)
	event.InferTimeWait(&evs[len(evs)-1], &tw)
	evs = append(evs, tw,
		// The restarted server lacks SO_REUSEADDR: refused by the TIME_WAIT.
		event.Event{Kind: event.KindBind, Time: at(1200), PID: 4300, TID: 4300, Comm: nginx, NetNS: ns,
			Family: event.FamilyIPv4, Src: netip.MustParseAddrPort("0.0.0.0:8080"), FD: 6, Ret: -98},
		event.Event{Kind: event.KindListen, Time: at(1300), PID: 4301, TID: 4301, Comm: event.MakeComm("backup"),
			NetNS: ns, Family: event.FamilyIPv6, Src: netip.AddrPortFrom(netip.Addr{}, 8080), FD: 3, Ret: -98},
		event.Event{Kind: event.KindConnect, Time: at(1500), PID: 6000, TID: 6001, Comm: event.MakeComm("loadgen"),
			NetNS: ns, Family: event.FamilyIPv6, Dst: netip.MustParseAddrPort("[2001:db8::1]:443"), FD: 9, Ret: -99},
		event.Event{Kind: event.KindLost, Time: at(1600), Lost: 17},
		// A task may name itself anything, quotes and escape sequences included.
		state(1700, 7, event.MakeComm("evil\"\x1b[2J\\"), 0x2b00, netip.MustParseAddrPort("[::1]:8080"),
			netip.MustParseAddrPort("[::1]:40000"), event.StateSynSent, event.StateClose, 3000, 0, event.Comm{}),
		event.Event{Kind: event.KindTimeWait, Time: at(60036), Family: event.FamilyIPv4, Src: srv, Dst: cli, NetNS: ns,
			Cookie: 0x2a03, TimeWait: event.TimeWaitExpire, Source: event.SourceSockDiag},
	)
	evs[len(evs)-2].Family = event.FamilyIPv6
	evs[len(evs)-2].Reset = true
	return evs
}

package table

import (
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// initial loads the first snapshot of a session: sockets that predate the tracer.
func initial(tab *Table, socks ...KernelSocket) {
	s := &Snapshot{NetNS: ns, Start: at(0), End: at(1), Complete: true, Initial: true, Sockets: socks}
	tab.Load(s, nil)
}

func sock(cookie uint64, state event.State, src, dst string) KernelSocket {
	return KernelSocket{Cookie: cookie, Family: event.FamilyIPv4, State: state, Src: ap(src), Dst: ap(dst), Inode: uint32(cookie)}
}

// wantSides checks the sides of sockets by cookie.
func wantSides(t *testing.T, tab *Table, now time.Time, want map[uint64]Side) {
	t.Helper()
	for c, w := range want {
		if s, _ := tab.Socket(c, now); s.Side != w {
			t.Errorf("socket %d on %v: %v, want %v", c, s.Src, s.Side, w)
		}
	}
}

// port returns the summary of a port (0: the clients' row), or nil.
func port(tab *Table, p uint16) *PortSummary {
	ports := tab.Ports()
	for i := range ports {
		if ports[i].Port == p {
			return &ports[i]
		}
	}
	return nil
}

// The TIME_WAITs of a server that closed first and then stopped, found by
// the first snapshot with no listener: their port is outside
// ip_local_port_range, so they are the server's, on its row, and not
// remote endpoints. (The table took them for a client's.)
func TestStoppedServerTimeWaitOutsideRange(t *testing.T) {
	tab := New(Config{Derive: true})
	initial(tab,
		twSock(1, "127.0.0.1:18090", "127.0.0.1:50001", 40*time.Second),
		twSock(2, "127.0.0.1:18090", "127.0.0.1:50002", 41*time.Second),
		twSock(3, "127.0.0.1:18090", "127.0.0.1:50003", 42*time.Second))
	p := port(tab, 18090)
	if p == nil || p.TimeWait != 3 || p.Service {
		t.Fatalf("port 18090: %+v, want its 3 TIME_WAIT", p)
	}
	if c := port(tab, 0); c != nil {
		t.Errorf("clients' row %+v, want none", c)
	}
	if r := tab.Remotes(); len(r) != 0 {
		t.Errorf("remotes %+v, want none: these are a server's TIME_WAITs", r)
	}
	wantSides(t, tab, at(2), map[uint64]Side{1: SideServer})
}

// In the port range and with no other evidence, they are taken for a
// client's, and the rows say it is a guess. A failed restart (bind() on the
// port, EADDRINUSE) is evidence: they move to the port's row, beside the
// failure.
func TestStoppedServerTimeWaitInRange(t *testing.T) {
	tab := New(Config{Derive: true})
	initial(tab,
		twSock(1, "127.0.0.1:40000", "127.0.0.1:50001", 40*time.Second),
		twSock(2, "127.0.0.1:40000", "127.0.0.1:50002", 41*time.Second))
	c := port(tab, 0)
	if c == nil || c.Clients != 2 || c.Guessed != 2 || c.TimeWait != 2 {
		t.Fatalf("clients' row %+v, want 2 guessed TIME_WAIT", c)
	}
	r := tab.Remotes()
	if len(r) != 2 || r[0].Guessed != 1 || r[0].TimeWait != 1 {
		t.Fatalf("remotes %+v, want two, each a guess", r)
	}
	wantSides(t, tab, at(2), map[uint64]Side{1: SideClientGuess})

	tab.Apply(&event.Event{Kind: event.KindBind, Time: at(5000), NetNS: ns, Family: event.FamilyIPv4,
		Src: ap("127.0.0.1:40000"), Ret: -98, PID: 77}, nil)
	p := port(tab, 40000)
	if p == nil || p.TimeWait != 2 || p.BindFailures != 1 || !p.Service {
		t.Fatalf("port 40000 after the failed bind: %+v, want the failure beside 2 TIME_WAIT", p)
	}
	if c := port(tab, 0); c != nil {
		t.Errorf("clients' row %+v, want none", c)
	}
	if r := tab.Remotes(); len(r) != 0 {
		t.Errorf("remotes %+v, want none", r)
	}
}

// A listener the table saw, even one closed since, makes its port a
// service port; so does a namespace's own port range.
func TestServicePortEvidence(t *testing.T) {
	tab := New(Config{Derive: true})
	initial(tab,
		sock(10, event.StateListen, "0.0.0.0:45000", "0.0.0.0:0"),
		twSock(11, "127.0.0.1:45000", "127.0.0.1:50001", 40*time.Second))
	tab.Apply(ptr(st(100, 10, "0.0.0.0:45000", "0.0.0.0:0", event.StateListen, event.StateClose, 5)), nil)
	tab.Tick(at(100+int(DefaultLinger/time.Millisecond)+10), nil) // the listener's entry goes
	if _, ok := tab.Socket(10, at(6000)); ok {
		t.Fatal("the closed listener is still there")
	}
	// A TIME_WAIT the next dump finds on its port is the server's.
	tab.Load(&Snapshot{NetNS: ns, Start: at(7000), End: at(7001), Complete: true, TimeWaitOnly: true, Sockets: []KernelSocket{
		twSock(11, "127.0.0.1:45000", "127.0.0.1:50001", 33*time.Second),
		twSock(12, "127.0.0.1:45000", "127.0.0.1:50002", 34*time.Second),
	}}, nil)
	if p := port(tab, 45000); p == nil || p.TimeWait != 2 || !p.Service {
		t.Errorf("port 45000: %+v, want 2 TIME_WAIT on a service port", p)
	}

	// In a namespace whose range is 40000-40009, port 45000 is no client's.
	const other = ns + 1
	tab.SetPortRange(other, PortRange{40000, 40009})
	tab.Load(&Snapshot{NetNS: other, Start: at(8000), End: at(8001), Complete: true, Initial: true, Sockets: []KernelSocket{
		twSock(20, "10.1.0.1:45001", "10.1.0.2:50001", 33*time.Second),
		twSock(21, "10.1.0.1:40003", "10.1.0.2:80", 33*time.Second),
	}}, nil)
	// 45001 is outside the namespace's range; 40003 in it.
	wantSides(t, tab, at(8002), map[uint64]Side{20: SideServer, 21: SideClientGuess})
	r := tab.Remotes()
	if len(r) != 1 || r[0].NetNS != other || r[0].PortRange != (PortRange{40000, 40009}) || r[0].Guessed != 1 {
		t.Errorf("remotes %+v, want one in the namespace, with its range", r)
	}
}

// Both ends of a loopback connection are in the same dump: the peer of the
// accepted socket (on the listener's port) is a client's for certain, and a
// request socket is the accepting side.
func TestSidesFromPeers(t *testing.T) {
	tab := New(Config{Derive: true})
	initial(tab,
		sock(1, event.StateListen, "127.0.0.1:41000", "0.0.0.0:0"),
		sock(2, event.StateEstablished, "127.0.0.1:41000", "127.0.0.1:42000"),
		sock(3, event.StateEstablished, "127.0.0.1:42000", "127.0.0.1:41000"),
		sock(4, event.StateEstablished, "127.0.0.1:43000", "10.0.0.9:5432"), // no peer here
		sock(5, event.StateSynRecv, "127.0.0.1:44000", "127.0.0.1:50000"),
		// An orphan (the server closed, the client did not): its peer lives on.
		sock(6, event.StateListen, "127.0.0.1:45000", "0.0.0.0:0"),
		KernelSocket{Cookie: 7, Family: event.FamilyIPv4, State: event.StateTimeWait, FinWait2: true,
			Src: ap("127.0.0.1:45000"), Dst: ap("127.0.0.1:46000"), Expires: 50 * time.Second},
		sock(8, event.StateCloseWait, "127.0.0.1:46000", "127.0.0.1:45000"))
	wantSides(t, tab, at(2), map[uint64]Side{1: SideServer, 2: SideServer, 3: SideClient, 4: SideClientGuess, 5: SideServer,
		7: SideServer, 8: SideClient})
	if s, _ := tab.Socket(7, at(2)); !s.FinWait2 || s.KernelState() != event.StateFinWait2 || s.State != event.StateTimeWait {
		t.Errorf("orphan %+v: want TIME_WAIT in the table, FIN_WAIT2 for the kernel", s)
	}
	cl := port(tab, 0)
	if cl == nil || cl.Clients != 3 || cl.Guessed != 1 {
		t.Errorf("clients' row %+v, want 3 of which 1 guessed", cl)
	}
}

// The stream says which side a socket is from its first transitions.
func TestSidesFromStream(t *testing.T) {
	tab := New(Config{Derive: true})
	tab.ApplyBatch([]event.Event{
		st(0, 1, "127.0.0.1:0", "127.0.0.1:80", event.StateClose, event.StateSynSent, 9),
		st(1, 2, "127.0.0.1:80", "127.0.0.1:40001", event.StateListen, event.StateSynRecv, 9),
		// Seen mid-life: SYN_SENT->ESTABLISHED is still connect()'s.
		st(2, 3, "127.0.0.1:40002", "127.0.0.1:81", event.StateSynSent, event.StateEstablished, 9),
		// Seen at its close only, on a port in the range: a guess.
		st(3, 4, "127.0.0.1:40003", "127.0.0.1:82", event.StateEstablished, event.StateFinWait1, 9),
	}, nil)
	wantSides(t, tab, at(5), map[uint64]Side{1: SideClient, 2: SideServer, 3: SideClient, 4: SideClientGuess})
}

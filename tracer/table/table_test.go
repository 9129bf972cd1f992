package table

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/twtrace/twtrace/internal/sample"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

const ns = 4026531840

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// st builds a state event.
func st(ms int, cookie uint64, src, dst string, old, new event.State, owner uint32) event.Event {
	return event.Event{
		Kind: event.KindState, Time: at(ms), Cookie: cookie, NetNS: ns, Family: event.FamilyIPv4,
		Src: ap(src), Dst: ap(dst), Old: old, New: new, Owner: owner, OwnerComm: event.MakeComm("proc"),
	}
}

func states(tl []Step) []event.State {
	var out []event.State
	for _, s := range tl {
		out = append(out, s.State)
	}
	return out
}

func TestNormalLife(t *testing.T) {
	tab := New(Config{Derive: true})
	evs := sample.Events()
	last := evs[len(evs)-1] // a recorded TIME_WAIT expire, applied below
	if derived := tab.ApplyBatch(evs[:len(evs)-1], nil); len(derived) != 0 {
		t.Errorf("derived %v from a normal life", derived)
	}
	now := sample.Start.Add(2 * time.Second)
	client, ok := tab.Socket(0x2a02, now)
	if !ok {
		t.Fatal("client missing")
	}
	if client.State != event.StateClose || client.Closed.IsZero() || client.Src != ap("127.0.0.1:51234") ||
		client.Owner != 5001 || client.OwnerComm.String() != "curl" || client.Source != "trace" {
		t.Errorf("client %+v", client)
	}
	if got, want := states(client.Timeline), []event.State{event.StateSynSent, event.StateEstablished,
		event.StateCloseWait, event.StateLastAck, event.StateClose}; !slices.Equal(got, want) {
		t.Errorf("client timeline %v, want %v", got, want)
	}
	if d := client.Timeline[1].Dur; d != 25*time.Millisecond {
		t.Errorf("client ESTABLISHED for %v, want 25ms", d)
	}

	server, _ := tab.Socket(0x2a03, now)
	if server.State != event.StateTimeWait || server.Owner != 4120 || !server.Closed.IsZero() {
		t.Errorf("server socket %+v: want TIME_WAIT owned by nginx", server)
	}
	if got, want := states(server.Timeline), []event.State{event.StateSynRecv, event.StateEstablished,
		event.StateFinWait1, event.StateFinWait2, event.StateTimeWait}; !slices.Equal(got, want) {
		t.Errorf("server timeline %v, want %v", got, want)
	}
	if got, want := server.Remaining(now), 60*time.Second-(2*time.Second-36*time.Millisecond); got != want {
		t.Errorf("remaining %v, want %v", got, want)
	}
	// The sample ends with a recorded expire (a replayed capture): applied, not derived.
	if last.Kind != event.KindTimeWait || last.TimeWait != event.TimeWaitExpire || last.Cookie != 0x2a03 {
		t.Fatalf("the sample no longer ends with the server's TIME_WAIT expiry: %+v", last)
	}
	if d := tab.Apply(&last, nil); len(d) != 0 {
		t.Errorf("applying a recorded expire derived %v", d)
	}
	if s, _ := tab.Socket(0x2a03, now); s.State != event.StateClose {
		t.Errorf("after expire: %v", s.State)
	}

	ports := tab.Ports()
	var p8080 *PortSummary
	for i := range ports {
		if ports[i].Port == 8080 {
			p8080 = &ports[i]
		}
	}
	if p8080 == nil || p8080.Binds != 2 || p8080.BindFailures != 1 || p8080.ListenFailures != 1 || p8080.TimeWaitEnters != 1 {
		t.Errorf("port 8080 summary %+v", p8080)
	}
	if s := tab.Stats(); s.Lost != 17 || s.TimeWait != 1 || s.TimeWaitEnded[event.TimeWaitExpire] != 1 {
		t.Errorf("stats %+v", s)
	}
}

// Kernel addresses are reused; cookies are not. Two sockets with the same
// 4-tuple one after the other are two entries.
func TestSameTupleDifferentCookies(t *testing.T) {
	tab := New(Config{Derive: true})
	tab.ApplyBatch([]event.Event{
		st(0, 1, "10.0.0.1:5000", "10.0.0.2:80", event.StateSynSent, event.StateEstablished, 7),
		st(5, 1, "10.0.0.1:5000", "10.0.0.2:80", event.StateEstablished, event.StateCloseWait, 7),
		st(6, 1, "10.0.0.1:5000", "10.0.0.2:80", event.StateCloseWait, event.StateLastAck, 7),
		st(7, 1, "10.0.0.1:5000", "10.0.0.2:80", event.StateLastAck, event.StateClose, 7),
		st(9, 2, "10.0.0.1:5000", "10.0.0.2:80", event.StateSynSent, event.StateEstablished, 8),
	}, nil)
	a, _ := tab.Socket(1, at(10))
	b, _ := tab.Socket(2, at(10))
	if a.State != event.StateClose || b.State != event.StateEstablished || a.Owner != 7 || b.Owner != 8 {
		t.Errorf("first %v/%d, second %v/%d", a.State, a.Owner, b.State, b.Owner)
	}
	if _, n := tab.Sockets(Query{}, at(10)); n != 1 {
		t.Errorf("%d open sockets, want 1", n)
	}
}

// tcp_tw_reuse: a new connection reaches ESTABLISHED on the 4-tuple of a
// live TIME_WAIT. The table reports the reuse and ends the TIME_WAIT.
func TestTimeWaitReuse(t *testing.T) {
	tab := New(Config{Derive: true})
	closeFirst := []event.Event{
		st(0, 10, "127.0.0.1:40000", "127.0.0.1:80", event.StateEstablished, event.StateFinWait1, 9),
		st(1, 10, "127.0.0.1:40000", "127.0.0.1:80", event.StateFinWait1, event.StateFinWait2, 9),
		st(2, 10, "127.0.0.1:40000", "127.0.0.1:80", event.StateFinWait2, event.StateClose, 9),
	}
	var tw event.Event
	event.InferTimeWait(&closeFirst[2], &tw)
	closeFirst = append(closeFirst, tw)
	tab.ApplyBatch(closeFirst, nil)
	if s := tab.Stats(); s.TimeWait != 1 {
		t.Fatalf("TIME_WAIT entries %d, want 1", s.TimeWait)
	}
	derived := tab.ApplyBatch([]event.Event{
		st(3000, 11, "127.0.0.1:0", "127.0.0.1:80", event.StateClose, event.StateSynSent, 9),
		st(3001, 11, "127.0.0.1:40000", "127.0.0.1:80", event.StateSynSent, event.StateEstablished, 9),
	}, nil)
	if len(derived) != 1 {
		t.Fatalf("derived %d events, want one reuse", len(derived))
	}
	r := derived[0]
	if r.Kind != event.KindTimeWait || r.TimeWait != event.TimeWaitReuse || r.Cookie != 10 ||
		r.Src != ap("127.0.0.1:40000") || r.Dst != ap("127.0.0.1:80") || r.Source != event.SourceInferred || !r.Time.Equal(at(3001)) {
		t.Errorf("reuse event %+v", r)
	}
	old, _ := tab.Socket(10, at(3002))
	if old.State != event.StateClose {
		t.Errorf("old TIME_WAIT now %v, want CLOSE", old.State)
	}
	if s := tab.Stats(); s.TimeWait != 0 || s.TimeWaitEnded[event.TimeWaitReuse] != 1 {
		t.Errorf("stats %+v", s)
	}
	// Without Derive (replay), nothing is derived: the capture has its own events.
	replay := New(Config{})
	replay.ApplyBatch(closeFirst, nil)
	if d := replay.ApplyBatch([]event.Event{st(3001, 11, "127.0.0.1:40000", "127.0.0.1:80", event.StateSynSent, event.StateEstablished, 9)}, nil); len(d) != 0 {
		t.Errorf("replay derived %v", d)
	}
}

func TestEvictionUnderCap(t *testing.T) {
	tab := New(Config{MaxSockets: 10})
	// Five closed sockets, then fifteen open ones.
	for c := uint64(1); c <= 5; c++ {
		tab.Apply(ptr(st(int(c), c, "10.0.0.1:1000", "10.0.0.2:80", event.StateLastAck, event.StateClose, 1)), nil)
	}
	for c := uint64(6); c <= 20; c++ {
		tab.Apply(ptr(st(100+int(c), c, "10.0.0.1:1000", "10.0.0.2:80", event.StateSynSent, event.StateEstablished, 1)), nil)
	}
	s := tab.Stats()
	if s.Sockets != 10 || s.Evicted != 10 {
		t.Fatalf("sockets %d evicted %d, want 10 and 10", s.Sockets, s.Evicted)
	}
	// Closed entries go first: all five of them are gone.
	for c := uint64(1); c <= 5; c++ {
		if _, ok := tab.Socket(c, at(200)); ok {
			t.Errorf("closed socket %d survived while open ones were evicted", c)
		}
	}
	// The newest socket is always kept.
	if _, ok := tab.Socket(20, at(200)); !ok {
		t.Error("the socket just inserted was evicted")
	}
}

func ptr(e event.Event) *event.Event { return &e }

func TestOutOfOrderEvents(t *testing.T) {
	tab := New(Config{})
	tab.ApplyBatch([]event.Event{
		st(10, 5, "10.0.0.1:80", "10.0.0.2:999", event.StateFinWait1, event.StateFinWait2, 3),
		st(5, 5, "10.0.0.1:80", "10.0.0.2:999", event.StateEstablished, event.StateFinWait1, 3),
	}, nil)
	s, _ := tab.Socket(5, at(20))
	if s.State != event.StateFinWait2 {
		t.Errorf("state %v, want FIN_WAIT2 (the newer event)", s.State)
	}
	if got := states(s.Timeline); !slices.Equal(got, []event.State{event.StateFinWait1, event.StateFinWait2}) {
		t.Errorf("timeline %v not in time order", got)
	}
	if tab.Stats().OutOfOrder != 1 {
		t.Errorf("out-of-order count %d", tab.Stats().OutOfOrder)
	}
}

func TestTimelineBounded(t *testing.T) {
	tab := New(Config{})
	flip := []event.State{event.StateEstablished, event.StateCloseWait}
	for i := range 10 {
		tab.Apply(ptr(st(i, 1, "10.0.0.1:80", "10.0.0.2:1", flip[(i+1)%2], flip[i%2], 1)), nil)
	}
	s, _ := tab.Socket(1, at(20))
	if len(s.Timeline) != TimelineLen || tab.Stats().TimelineDropped != 10-TimelineLen {
		t.Errorf("timeline %d steps, dropped %d", len(s.Timeline), tab.Stats().TimelineDropped)
	}
	if !s.Timeline[len(s.Timeline)-1].At.Equal(at(9)) {
		t.Errorf("the newest step was dropped")
	}
}

// An accepted socket of a listener that predates the tracer has no owner in
// its events; it inherits the listener's, which the snapshot resolved.
func TestListenerOwnerFromSnapshot(t *testing.T) {
	tab := New(Config{Derive: true})
	tab.Load(&Snapshot{NetNS: ns, Start: at(0), End: at(1), Complete: true, Initial: true, Sockets: []KernelSocket{
		{Cookie: 100, Family: event.FamilyIPv4, State: event.StateListen, Src: ap("0.0.0.0:8080"), Dst: ap("0.0.0.0:0"), Inode: 555},
	}}, nil)
	// Known by inode: /proc can tell its owner; no full dump needed.
	if u := tab.Unresolved(); u != 0 {
		t.Errorf("unresolved %d before any trace-only socket", u)
	}
	n := tab.ResolveOwners(func(inode uint32) (uint32, event.Comm, bool) {
		return 4120, event.MakeComm("nginx"), inode == 555
	})
	if n != 1 {
		t.Fatalf("resolved %d owners", n)
	}
	child := st(10, 101, "127.0.0.1:8080", "127.0.0.1:5000", event.StateListen, event.StateSynRecv, 0)
	child.OwnerComm = event.Comm{}
	tab.Apply(&child, nil)
	s, _ := tab.Socket(101, at(11))
	if s.Owner != 4120 || s.OwnerComm.String() != "nginx" {
		t.Errorf("accepted socket owner %d %q, want the listener's", s.Owner, s.OwnerComm)
	}
	l, _ := tab.Socket(100, at(11))
	if l.Source != "sock_diag" || l.Inode != 555 || !l.Since.IsZero() {
		t.Errorf("listener %+v", l)
	}
	// A socket the stream shows with no owner and no inode needs a full dump.
	tab.Apply(ptr(st(12, 102, "127.0.0.1:9000", "127.0.0.1:5001", event.StateEstablished, event.StateCloseWait, 0)), nil)
	if u := tab.Unresolved(); u != 1 {
		t.Errorf("unresolved %d, want the trace-only socket", u)
	}
}

func TestProcessesAndRemotes(t *testing.T) {
	tab := New(Config{})
	// Five clients closed first (TIME_WAIT), one is connected; all made by connect().
	for c := range uint64(5) {
		src := "10.0.0.1:" + itoa(40000+int(c))
		e := st(int(c), 200+c, src, "10.0.0.9:5432", event.StateFinWait2, event.StateClose, 77)
		var tw event.Event
		event.InferTimeWait(&e, &tw)
		tab.ApplyBatch([]event.Event{st(0, 200+c, src, "10.0.0.9:5432", event.StateClose, event.StateSynSent, 77), e, tw}, nil)
	}
	tab.Apply(ptr(st(9, 300, "10.0.0.1:41000", "10.0.0.9:5432", event.StateClose, event.StateSynSent, 77)), nil)
	tab.Apply(ptr(st(9, 300, "10.0.0.1:41000", "10.0.0.9:5432", event.StateSynSent, event.StateEstablished, 77)), nil)
	// An accepted socket's remote end is a client's port: not a remote endpoint.
	tab.Apply(ptr(st(9, 400, "10.0.0.1:80", "10.0.0.7:50000", event.StateListen, event.StateSynRecv, 77)), nil)
	rem := tab.Remotes()
	if len(rem) != 1 || rem[0].Remote != ap("10.0.0.9:5432") || rem[0].TimeWait != 5 || rem[0].Established != 1 {
		t.Fatalf("remotes %+v", rem)
	}
	if x := rem[0].Exhaustion(10); x != 0.5 {
		t.Errorf("exhaustion %v, want 0.5", x)
	}
	procs := tab.Processes()
	if len(procs) != 1 || procs[0].PID != 77 || procs[0].TimeWait != 5 || procs[0].States[event.StateEstablished] != 1 {
		t.Errorf("processes %+v", procs)
	}
	if q, n := tab.Sockets(Query{States: []event.State{event.StateTimeWait}}, at(10)); len(q) != 5 || n != 5 || q[0].Timeline != nil {
		t.Errorf("TIME_WAIT query: %d of %d, timeline %v", len(q), n, q[0].Timeline)
	}
	if q, _ := tab.Sockets(Query{Ports: []uint16{41000}}, at(10)); len(q) != 1 || q[0].Cookie != 300 {
		t.Errorf("port query %+v", q)
	}
	// Client sockets are one row per namespace in Ports, not one per ephemeral port.
	var clients, p80 *PortSummary
	ports := tab.Ports()
	for i := range ports {
		switch ports[i].Port {
		case 0:
			clients = &ports[i]
		case 80:
			p80 = &ports[i]
		}
	}
	if len(ports) != 2 || clients == nil || clients.Clients != 6 || clients.TimeWait != 5 || p80 == nil || p80.Total() != 1 {
		t.Errorf("ports %+v", ports)
	}
}

// A limited query returns the first sockets of the full order, and the count of all.
func TestSocketsLimit(t *testing.T) {
	tab := New(Config{})
	for c := range uint64(300) {
		port := 1000 + int(c*7919%300) // scrambled insertion order
		tab.Apply(ptr(st(int(c), c+1, "10.0.0.1:"+itoa(port), "10.0.0.2:80", event.StateListen, event.StateSynRecv, 1)), nil)
	}
	all, n := tab.Sockets(Query{}, at(1000))
	if n != 300 || len(all) != 300 {
		t.Fatalf("all: %d of %d", len(all), n)
	}
	for _, limit := range []int{1, 10, 299, 300, 500} {
		top, m := tab.Sockets(Query{Limit: limit}, at(1000))
		want := all[:min(limit, 300)]
		if m != 300 || len(top) != len(want) {
			t.Fatalf("limit %d: %d of %d", limit, len(top), m)
		}
		for i := range top {
			if top[i].Cookie != want[i].Cookie {
				t.Fatalf("limit %d: position %d is %x, want %x", limit, i, top[i].Cookie, want[i].Cookie)
			}
		}
	}
}

func itoa(n int) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(n)).String()[len("0.0.0.0:"):]
}

// A flood on one port evicts its own sockets, not the few on another port.
func TestEvictionSparesSmallGroups(t *testing.T) {
	tab := New(Config{MaxSockets: 1000})
	// Twelve TIME_WAIT on the watched port.
	for c := range uint64(12) {
		enterTW(tab, int(c), 1+c, "10.0.0.1:8080", "10.0.0.2:"+itoa(5000+int(c)))
	}
	// A flood: ten thousand TIME_WAIT on port 9999, the table ticking as it would.
	for c := range uint64(10000) {
		enterTW(tab, 100+int(c), 1000+c, "10.0.0.1:9999", "10.0.0.3:"+itoa(1024+int(c%60000)))
		if c%500 == 0 {
			tab.Tick(at(100+int(c)), nil)
		}
	}
	kept := 0
	for c := range uint64(12) {
		if _, ok := tab.Socket(1+c, at(20000)); ok {
			kept++
		}
	}
	if kept != 12 {
		t.Errorf("%d of the 12 TIME_WAIT on port 8080 survived a flood on port 9999", kept)
	}
	if st := tab.Stats(); st.Evicted < 9000 {
		t.Errorf("evicted %d", st.Evicted)
	}
}

// A socket's reuse options come from its state events or from the iterator
// (SetReuse); an event that does not know them (a replayed capture) keeps
// what the table knows.
func TestReuseOptions(t *testing.T) {
	tab := New(Config{})
	l := st(0, 0x10, "0.0.0.0:8080", "0.0.0.0:0", event.StateClose, event.StateListen, 7)
	l.SockReuse = event.ReuseKnown | event.ReuseAddr
	old := st(0, 0x11, "0.0.0.0:9090", "0.0.0.0:0", event.StateClose, event.StateListen, 7) // from a capture
	tab.ApplyBatch([]event.Event{l, old}, nil)
	now := at(2)
	get := func(cookie uint64) event.Reuse {
		s, ok := tab.Socket(cookie, now)
		if !ok {
			t.Fatalf("socket %x missing", cookie)
		}
		return s.Reuse
	}
	if r := get(0x10); r != event.ReuseKnown|event.ReuseAddr {
		t.Errorf("from its event: %v, want addr", r)
	}
	if r := get(0x11); r.Known() {
		t.Errorf("from a capture: %v, want unknown", r)
	}
	if n := tab.SetReuse([]SocketReuse{{0x11, event.ReuseKnown | event.ReusePort}, {0x99, event.ReuseKnown}}); n != 1 {
		t.Errorf("SetReuse recorded %d, want 1 (0x99 is not in the table)", n)
	}
	if r := get(0x11); r != event.ReuseKnown|event.ReusePort {
		t.Errorf("from the iterator: %v, want port", r)
	}
	again := st(1, 0x11, "0.0.0.0:9090", "0.0.0.0:0", event.StateListen, event.StateClose, 7)
	tab.ApplyBatch([]event.Event{again}, nil)
	if r := get(0x11); r != event.ReuseKnown|event.ReusePort {
		t.Errorf("after an event without options: %v, want port kept", r)
	}
}

// An owner's container, from /proc, shows on its sockets; the map of them
// starts anew past its bound instead of growing.
func TestContainers(t *testing.T) {
	tab := New(Config{})
	tab.ApplyBatch([]event.Event{
		st(0, 0x10, "0.0.0.0:8080", "0.0.0.0:0", event.StateClose, event.StateListen, 7),
		st(0, 0x11, "0.0.0.0:9090", "0.0.0.0:0", event.StateClose, event.StateListen, 8),
	}, nil)
	tab.SetContainers(map[uint32]string{7: "abc"})
	now := at(1)
	if s, _ := tab.Socket(0x10, now); s.Container != "abc" {
		t.Errorf("owner 7's socket: container %q, want abc", s.Container)
	}
	if s, _ := tab.Socket(0x11, now); s.Container != "" {
		t.Errorf("owner 8's socket: container %q, want none", s.Container)
	}
	if socks, _ := tab.Sockets(Query{Ports: []uint16{8080}}, now); len(socks) != 1 || socks[0].Container != "abc" {
		t.Errorf("Sockets: %+v, want the container", socks)
	}
	big := make(map[uint32]string, maxContainers)
	for pid := range uint32(maxContainers) {
		big[pid+100] = "x"
	}
	tab.SetContainers(big)
	if n := len(tab.containers); n != maxContainers {
		t.Errorf("after overflowing: %d entries, want %d (started anew)", n, maxContainers)
	}
}

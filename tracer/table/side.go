package table

import "github.com/twtrace/twtrace/tracer/event"

// Side says which end of its connection a socket is: the server's (accepted,
// or a listener) or the client's (made by connect()). The stream shows it
// (SYN_SENT, SYN_RECV); for a socket that predates the tracer the table
// decides by evidence, and says when it could only guess.
type Side uint8

// Sides.
const (
	// SideServer: accepted or listening, or on a local port that a
	// listener had (the table remembers the ones it saw, closed ones too)
	// or a bind() named, or outside the namespace's ip_local_port_range
	// (connect() never picks such a port), or the peer of a client's socket.
	SideServer Side = iota
	// SideClient: made by connect(), or the peer of an accepted socket.
	SideClient
	// SideClientGuess: taken for a client's because its local port lies in
	// ip_local_port_range and nothing says otherwise.
	SideClientGuess
)

// Client reports whether the side is a client's, known or guessed.
func (s Side) Client() bool { return s != SideServer }

func (s Side) String() string {
	switch s {
	case SideServer:
		return "server"
	case SideClient:
		return "client"
	case SideClientGuess:
		return "client?"
	}
	return "unknown"
}

// ParseSide is the inverse of Side.String.
func ParseSide(s string) (Side, bool) {
	for _, v := range []Side{SideServer, SideClient, SideClientGuess} {
		if v.String() == s {
			return v, true
		}
	}
	return 0, false
}

// PortRange is a namespace's net.ipv4.ip_local_port_range, both ends
// included: the ports connect() and bind(port 0) pick from.
type PortRange [2]uint16

// DefaultPortRange is the kernel's default range, assumed for a namespace
// whose range the table was not told.
var DefaultPortRange = PortRange{32768, 60999}

// Size is how many ports the range holds.
func (r PortRange) Size() int { return int(r[1]) - int(r[0]) + 1 }

// Contains reports whether port lies in the range.
func (r PortRange) Contains(port uint16) bool { return port >= r[0] && port <= r[1] }

// maxServed bounds the remembered service ports (4 bytes each and a map
// slot): past it, new ports are not remembered, and sockets on them are
// judged by the port range alone.
const maxServed = 1 << 16

// SetPortRange records a namespace's ip_local_port_range, read in that
// namespace: it decides which sockets are taken for a client's, and the
// Remotes view measures port exhaustion against it.
func (t *Table) SetPortRange(netns uint32, r PortRange) {
	if r[0] == 0 || r[0] > r[1] {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ranges[netns] = r
}

// portRange returns a namespace's range, and whether it is known.
func (t *Table) portRange(netns uint32) (PortRange, bool) {
	r, ok := t.ranges[netns]
	if !ok {
		return DefaultPortRange, false
	}
	return r, true
}

// serve remembers a service port of a namespace: a listener had it, or a
// bind() named it.
func (t *Table) serve(netns uint32, port uint16) {
	if port == 0 || len(t.served) >= maxServed {
		return
	}
	t.served[portKey{netns, port}] = struct{}{}
}

// side decides an entry's side by the evidence the table holds now; see Side.
func (t *Table) side(e *entry) Side {
	switch {
	case e.flags&flagClient != 0:
		return SideClient
	case e.flags&flagServer != 0 || e.state == event.StateListen || e.sport == 0:
		return SideServer
	}
	if _, ok := t.served[portKey{e.netns, e.sport}]; ok {
		return SideServer
	}
	if r, _ := t.portRange(e.netns); !r.Contains(e.sport) {
		return SideServer
	}
	return SideClientGuess
}

// pairPeers decides the side of sockets a dump showed without the stream
// having shown how they began, by their peers: on loopback both ends of a
// connection are in the same dump, and the peer of a socket known to be a
// client's (or a server's) is the other side. fresh are the entries the
// dump added, and the reverse 4-tuple is looked up among them.
func (t *Table) pairPeers(fresh []freshEntry) {
	type end struct {
		src, dst     [16]byte
		sport, dport uint16
	}
	var byTuple map[end]int32
	for _, f := range fresh {
		e := t.slots.at(f.slot)
		if e.cookie != f.cookie || e.state == event.StateListen ||
			(e.state == event.StateTimeWait && e.flags&flagFinWait2 == 0) {
			continue // a listener has no peer; a TIME_WAIT's has closed (an orphan's has not)
		}
		if byTuple == nil {
			byTuple = make(map[end]int32)
		}
		byTuple[end{e.src, e.dst, e.sport, e.dport}] = f.slot
	}
	for _, i := range byTuple {
		e := t.slots.at(i)
		if t.side(e) != SideClientGuess {
			continue
		}
		j, ok := byTuple[end{e.dst, e.src, e.dport, e.sport}]
		if !ok {
			continue
		}
		switch t.side(t.slots.at(j)) {
		case SideServer:
			e.flags |= flagClient
		case SideClient:
			e.flags |= flagServer
		}
	}
}

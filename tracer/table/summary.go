package table

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// numStates sizes the per-state counters (TCP states are 1..13).
const numStates = 14

// PortSummary aggregates one local port of one namespace. The sockets
// connect() made are not counted under their ephemeral local ports: one row
// per namespace, with Port 0 and Clients set, stands for all of them.
type PortSummary struct {
	NetNS   uint32
	Port    uint16
	Clients int // the row of connect()-made sockets: how many
	// Guessed: how many of Clients are taken for a client's by their port
	// alone (SideClientGuess): sockets older than the tracer, in the port
	// range, on a port no listener or bind() was seen on.
	Guessed int
	// Service: a listener had the port (now or before), or a bind() named
	// it; its sockets are a server's even with no listener now.
	Service    bool
	PortRange  PortRange      // the namespace's ip_local_port_range; zero when unknown
	States     [numStates]int // open sockets by state
	TimeWait   int
	LastExpiry time.Time // when the last TIME_WAIT on the port ends
	Owners     []Owner   // distinct owners of the port's open sockets
	// TimeWaitOwners are the processes whose sockets left the TIME_WAITs
	// (a TIME_WAIT belongs to the kernel, but someone closed it first).
	TimeWaitOwners []Owner
	PortCounters
}

// Owner is a process that owns sockets.
type Owner struct {
	PID  uint32
	Comm event.Comm
}

// addOwner adds an entry's owner to a short list of distinct owners.
func addOwner(os []Owner, e *entry) []Owner {
	const most = 8 // a port shared by more processes is summed up by the first few
	if e.owner == 0 || len(os) >= most || slices.ContainsFunc(os, func(o Owner) bool { return o.PID == e.owner }) {
		return os
	}
	return append(os, Owner{e.owner, e.comm})
}

// Total is the number of sockets on the port.
func (p *PortSummary) Total() int {
	n := 0
	for _, c := range p.States {
		n += c
	}
	return n
}

// Ports aggregates sockets and counters by local port, busiest first.
func (t *Table) Ports() []PortSummary {
	t.mu.RLock()
	m := make(map[portKey]*PortSummary)
	get := func(k portKey) *PortSummary {
		p := m[k]
		if p == nil {
			p = &PortSummary{NetNS: k.netns, Port: k.port}
			m[k] = p
		}
		return p
	}
	for i := range t.slots.len() {
		e := t.slots.at(int32(i))
		if e.cookie == 0 || e.closed != 0 {
			continue
		}
		var p *PortSummary
		switch side := t.side(e); {
		case side.Client():
			p = get(portKey{e.netns, 0})
			p.Clients++
			if side == SideClientGuess {
				p.Guessed++
			}
		case e.sport == 0:
			continue
		default:
			p = get(portKey{e.netns, e.sport})
		}
		if int(e.state) < numStates {
			p.States[e.state]++
		}
		if e.state == event.StateTimeWait {
			p.TimeWait++
			if exp := unixTime(e.expires); exp.After(p.LastExpiry) {
				p.LastExpiry = exp
			}
			p.TimeWaitOwners = addOwner(p.TimeWaitOwners, e)
		} else {
			p.Owners = addOwner(p.Owners, e)
		}
	}
	for k, c := range t.ports {
		get(k).PortCounters = *c
	}
	for k, p := range m {
		_, p.Service = t.served[k]
		p.PortRange = t.ranges[k.netns]
	}
	t.mu.RUnlock()

	out := make([]PortSummary, 0, len(m))
	for _, p := range m {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b PortSummary) int {
		return cmp.Or(cmp.Compare(b.Total(), a.Total()), cmp.Compare(a.NetNS, b.NetNS), cmp.Compare(a.Port, b.Port))
	})
	return out
}

// ProcessSummary aggregates the sockets of one owner; TIME_WAIT sockets
// count for the process that left them behind.
type ProcessSummary struct {
	Owner
	States   [numStates]int
	TimeWait int
}

// Processes aggregates sockets by owner, most sockets first. Sockets with no
// known owner are not included.
func (t *Table) Processes() []ProcessSummary {
	t.mu.RLock()
	m := make(map[uint32]*ProcessSummary)
	for i := range t.slots.len() {
		e := t.slots.at(int32(i))
		if e.cookie == 0 || e.closed != 0 || e.owner == 0 {
			continue
		}
		p := m[e.owner]
		if p == nil {
			p = &ProcessSummary{Owner: Owner{e.owner, e.comm}}
			m[e.owner] = p
		}
		if int(e.state) < numStates {
			p.States[e.state]++
		}
		if e.state == event.StateTimeWait {
			p.TimeWait++
		}
	}
	t.mu.RUnlock()
	out := make([]ProcessSummary, 0, len(m))
	for _, p := range m {
		out = append(out, *p)
	}
	total := func(p ProcessSummary) int {
		n := 0
		for _, c := range p.States {
			n += c
		}
		return n
	}
	slices.SortFunc(out, func(a, b ProcessSummary) int {
		return cmp.Or(cmp.Compare(total(b), total(a)), cmp.Compare(a.PID, b.PID))
	})
	return out
}

// RemoteSummary aggregates the sockets connect() made towards one remote
// endpoint. Each of them in TIME_WAIT holds a local port that connect()
// cannot use for that endpoint until it ends: compared with the size of
// ip_local_port_range, TimeWait is the port-exhaustion signal.
type RemoteSummary struct {
	NetNS       uint32
	Remote      netip.AddrPort
	TimeWait    int
	Established int
	Total       int
	// Guessed: how many of Total are taken for a client's by their local
	// port alone (SideClientGuess).
	Guessed int
	// PortRange is the namespace's ip_local_port_range, the ports its
	// connect() picks from; zero when the table was not told it.
	PortRange PortRange
}

// Exhaustion is the share of the local port range that TIME_WAIT sockets
// towards this endpoint hold (rangeSize = high - low + 1: PortRange.Size,
// or the host's range when PortRange is unknown).
func (r *RemoteSummary) Exhaustion(rangeSize int) float64 {
	if rangeSize <= 0 {
		return 0
	}
	return float64(r.TimeWait) / float64(rangeSize)
}

// Remotes aggregates the open sockets connect() made by remote endpoint, most
// TIME_WAIT first. A server's sockets are left out (see Side), TIME_WAITs
// included: their remote ends are the clients' ephemeral ports.
func (t *Table) Remotes() []RemoteSummary {
	type key struct {
		netns uint32
		addr  [16]byte
		port  uint16
		fam   event.Family
	}
	t.mu.RLock()
	m := make(map[key]*RemoteSummary)
	for i := range t.slots.len() {
		e := t.slots.at(int32(i))
		if e.cookie == 0 || e.closed != 0 || e.dport == 0 {
			continue
		}
		side := t.side(e)
		if !side.Client() {
			continue
		}
		k := key{e.netns, e.dst, e.dport, e.family}
		r := m[k]
		if r == nil {
			r = &RemoteSummary{NetNS: e.netns, Remote: netip.AddrPortFrom(addrFrom(e.family, &e.dst), e.dport),
				PortRange: t.ranges[e.netns]}
			m[k] = r
		}
		r.Total++
		if side == SideClientGuess {
			r.Guessed++
		}
		switch e.state {
		case event.StateTimeWait:
			r.TimeWait++
		case event.StateEstablished:
			r.Established++
		}
	}
	t.mu.RUnlock()
	out := make([]RemoteSummary, 0, len(m))
	for _, r := range m {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b RemoteSummary) int {
		return cmp.Or(cmp.Compare(b.TimeWait, a.TimeWait), cmp.Compare(b.Total, a.Total), a.Remote.Compare(b.Remote))
	})
	return out
}

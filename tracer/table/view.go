package table

import (
	"bytes"
	"cmp"
	"net/netip"
	"slices"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// Socket is a copy of one entry, safe to keep.
type Socket struct {
	Cookie    uint64
	Family    event.Family
	Src, Dst  netip.AddrPort
	NetNS     uint32
	Inode     uint32 // 0 when unknown (TIME_WAIT sockets have none)
	State     event.State
	Since     time.Time // when it entered State; zero when unknown
	Owner     uint32    // 0 when unknown
	OwnerComm event.Comm
	Expires   time.Time // TIME_WAIT: when its timer runs out
	Confirmed bool      // TIME_WAIT: the kernel's table has it (sock_diag)
	Closed    time.Time // when it closed; zero while open
	Source    string    // "trace", "sock_diag" or "sock_diag+trace"
	Reuse     event.Reuse
	Container string // the owner's container id, when /proc showed one (SetContainers)
	Timeline  []Step
}

// Step is one state in a socket's timeline.
type Step struct {
	State event.State
	At    time.Time     // when it was entered; zero when unknown
	Dur   time.Duration // time spent in it; for the last step, until the socket closed or now
}

// Remaining returns the time left on a TIME_WAIT socket's timer.
func (s *Socket) Remaining(now time.Time) time.Duration {
	if s.State != event.StateTimeWait || s.Expires.IsZero() {
		return 0
	}
	return max(s.Expires.Sub(now), 0)
}

// Query selects sockets; zero fields select everything.
type Query struct {
	Ports         []uint16 // local or remote
	States        []event.State
	NetNS         uint32
	PID           uint32
	IncludeClosed bool // closed sockets still lingering
	Limit         int  // at most this many, the first in order; 0: all
}

func (q *Query) match(e *entry) bool {
	if e.cookie == 0 || (!q.IncludeClosed && e.closed != 0) {
		return false
	}
	if q.NetNS != 0 && e.netns != q.NetNS {
		return false
	}
	if q.PID != 0 && e.owner != q.PID {
		return false
	}
	if len(q.States) > 0 && !slices.Contains(q.States, e.state) {
		return false
	}
	if len(q.Ports) > 0 && !slices.Contains(q.Ports, e.sport) && !slices.Contains(q.Ports, e.dport) {
		return false
	}
	return true
}

// Sockets returns the sockets q selects, ordered by namespace, local port,
// state (listeners first) and remote end, and how many matched: with
// q.Limit set, only the first Limit of them are returned, and the table is
// scanned once without copying the rest. Bulk results carry no timeline;
// Socket(cookie) has it.
func (t *Table) Sockets(q Query, now time.Time) ([]Socket, int) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var idx []int32
	matched := 0
	if q.Limit > 0 {
		h := &entryHeap{t: t}
		for i := range int32(t.slots.len()) {
			e := t.slots.at(i)
			if !q.match(e) {
				continue
			}
			matched++
			h.offer(i, q.Limit)
		}
		idx = h.idx
	} else {
		for i := range int32(t.slots.len()) {
			if q.match(t.slots.at(i)) {
				idx = append(idx, i)
			}
		}
		matched = len(idx)
	}
	slices.SortFunc(idx, func(a, b int32) int { return compareEntries(t.slots.at(a), t.slots.at(b)) })
	out := make([]Socket, len(idx))
	for k, i := range idx {
		out[k] = t.view(t.slots.at(i), now, false)
	}
	return out, matched
}

// compareEntries orders sockets for display, as Sockets documents.
func compareEntries(a, b *entry) int {
	return cmp.Or(
		cmp.Compare(a.netns, b.netns),
		cmp.Compare(a.sport, b.sport),
		cmp.Compare(stateOrder(a.state), stateOrder(b.state)),
		cmp.Compare(a.family, b.family),
		bytes.Compare(a.dst[:], b.dst[:]),
		cmp.Compare(a.dport, b.dport),
		bytes.Compare(a.src[:], b.src[:]),
		cmp.Compare(a.cookie, b.cookie),
	)
}

// entryHeap keeps the first n entries in display order: a max-heap whose
// top is the last of them, so most candidates cost one comparison.
type entryHeap struct {
	t   *Table
	idx []int32
}

func (h *entryHeap) less(i, j int) bool {
	return compareEntries(h.t.slots.at(h.idx[i]), h.t.slots.at(h.idx[j])) > 0
}

func (h *entryHeap) offer(i int32, n int) {
	if len(h.idx) < n {
		h.idx = append(h.idx, i)
		for c := len(h.idx) - 1; c > 0; {
			p := (c - 1) / 2
			if !h.less(c, p) {
				break
			}
			h.idx[c], h.idx[p] = h.idx[p], h.idx[c]
			c = p
		}
		return
	}
	if compareEntries(h.t.slots.at(i), h.t.slots.at(h.idx[0])) >= 0 {
		return
	}
	h.idx[0] = i
	for p := 0; ; {
		l, r, m := 2*p+1, 2*p+2, p
		if l < len(h.idx) && h.less(l, m) {
			m = l
		}
		if r < len(h.idx) && h.less(r, m) {
			m = r
		}
		if m == p {
			return
		}
		h.idx[p], h.idx[m] = h.idx[m], h.idx[p]
		p = m
	}
}

// stateOrder lists listeners first, then the states in the kernel's order.
func stateOrder(s event.State) int {
	if s == event.StateListen {
		return 0
	}
	return int(s)
}

// Socket returns one socket by cookie.
func (t *Table) Socket(cookie uint64, now time.Time) (Socket, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	i := t.lookup(cookie)
	if i < 0 {
		return Socket{}, false
	}
	return t.view(t.slots.at(i), now, true), true
}

// view is e.view with the owner's container.
func (t *Table) view(e *entry, now time.Time, timeline bool) Socket {
	s := e.view(now, timeline)
	if s.Owner != 0 {
		s.Container = t.containers[s.Owner]
	}
	return s
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func (e *entry) view(now time.Time, timeline bool) Socket {
	src, dst := e.addrPorts()
	s := Socket{
		Cookie: e.cookie, Family: e.family, Src: src, Dst: dst, NetNS: e.netns, Inode: e.inode,
		State: e.state, Since: unixTime(e.since), Owner: e.owner, OwnerComm: e.comm,
		Expires: unixTime(e.expires), Confirmed: e.flags&flagTWConfirmed != 0,
		Closed: unixTime(e.closed), Source: sourceName(e.source), Reuse: e.reuse,
	}
	if e.state != event.StateTimeWait {
		s.Expires = time.Time{}
	}
	if !timeline {
		return s
	}
	end := now
	if e.closed != 0 {
		end = s.Closed
	}
	s.Timeline = make([]Step, e.nsteps)
	for k := range int(e.nsteps) {
		st := e.steps[k]
		s.Timeline[k] = Step{State: st.state(), At: unixTime(st.at())}
		next := end
		if k+1 < int(e.nsteps) {
			next = unixTime(e.steps[k+1].at())
		}
		if st.at() != 0 && !next.IsZero() && next.After(s.Timeline[k].At) {
			s.Timeline[k].Dur = next.Sub(s.Timeline[k].At)
		}
	}
	return s
}

func sourceName(src uint8) string {
	switch src {
	case fromTrace:
		return "trace"
	case fromDiag:
		return "sock_diag"
	case fromTrace | fromDiag:
		return "sock_diag+trace"
	}
	return ""
}

// numStates sizes the per-state counters (TCP states are 1..13).
const numStates = 14

// PortSummary aggregates one local port of one namespace. The sockets
// connect() made are not counted under their ephemeral local ports: one row
// per namespace, with Port 0 and Clients set, stands for all of them.
type PortSummary struct {
	NetNS      uint32
	Port       uint16
	Clients    int            // the row of connect()-made sockets: how many
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
		switch {
		case e.flags&flagClient != 0:
			p = get(portKey{e.netns, 0})
			p.Clients++
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
}

// Exhaustion is the share of the local port range that TIME_WAIT sockets
// towards this endpoint hold (rangeSize = high - low + 1).
func (r *RemoteSummary) Exhaustion(rangeSize int) float64 {
	if rangeSize <= 0 {
		return 0
	}
	return float64(r.TimeWait) / float64(rangeSize)
}

// Remotes aggregates the open sockets connect() made by remote endpoint, most
// TIME_WAIT first. Accepted sockets are left out: their remote ends are the
// clients' ephemeral ports.
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
		if e.cookie == 0 || e.closed != 0 || e.dport == 0 || e.flags&flagClient == 0 {
			continue
		}
		k := key{e.netns, e.dst, e.dport, e.family}
		r := m[k]
		if r == nil {
			r = &RemoteSummary{NetNS: e.netns, Remote: netip.AddrPortFrom(addrFrom(e.family, &e.dst), e.dport)}
			m[k] = r
		}
		r.Total++
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

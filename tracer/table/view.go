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
	Side      Side   // the server's or the client's end, and whether that is a guess
	// FinWait2: a TIME_WAIT whose mini-socket sock_diag last showed in
	// substate FIN_WAIT2 (see KernelState).
	FinWait2 bool
	// Detail is what a one-shot listing adds (queues, timer, every holder);
	// nil in the live table.
	Detail   *Detail
	Timeline []Step
}

// KernelState is the state as the kernel reports it, as ss shows it: a
// TIME_WAIT mini-socket still in substate FIN_WAIT2 (an orphan waiting for
// the peer's FIN) is FIN_WAIT2. The table keeps it in TIME_WAIT, which holds
// its 4-tuple the same way.
func (s *Socket) KernelState() event.State {
	if s.State == event.StateTimeWait && s.FinWait2 {
		return event.StateFinWait2
	}
	return s.State
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
	s.Side = t.side(e)
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
		FinWait2: e.state == event.StateTimeWait && e.flags&flagFinWait2 != 0,
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

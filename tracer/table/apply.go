package table

import (
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// PortCounters accumulate what happened on one local port of one namespace.
type PortCounters struct {
	Transitions    uint64 // state transitions of sockets on the port
	Binds          uint64 // bind() calls to the port
	BindFailures   uint64 // ... that failed (EADDRINUSE mostly)
	ListenFailures uint64
	TimeWaitEnters uint64 // TIME_WAIT enters the stream showed
}

// ApplyBatch applies events in order and returns the events the table
// derived from them (reuse of a TIME_WAIT 4-tuple), appended to out.
func (t *Table) ApplyBatch(batch []event.Event, out []event.Event) []event.Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range batch {
		out = t.apply(&batch[i], out)
	}
	return out
}

// Apply applies one event; see ApplyBatch.
func (t *Table) Apply(ev *event.Event, out []event.Event) []event.Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.apply(ev, out)
}

func (t *Table) apply(ev *event.Event, out []event.Event) []event.Event {
	if at := ev.Time.UnixNano(); at > t.streamAt && ev.Kind != event.KindLost {
		t.streamAt = at
		out = t.endPending(out)
	}
	switch ev.Kind {
	case event.KindState:
		return t.applyState(ev, out)
	case event.KindTimeWait:
		out = t.applyTimeWait(ev, out)
	case event.KindBind:
		// A bind() to port 0 asks for an ephemeral port: its failures
		// (EADDRINUSE when the range is exhausted) land on port 0, the row
		// of the namespace's ephemeral sockets. One to a port names a
		// service port, refused or not.
		port := ev.Src.Port()
		c := t.counters(ev.NetNS, port)
		c.Binds++
		if ev.Ret < 0 {
			c.BindFailures++
		}
		t.serve(ev.NetNS, port)
	case event.KindListen:
		t.counters(ev.NetNS, ev.Src.Port()).ListenFailures++
		t.serve(ev.NetNS, ev.Src.Port())
	case event.KindLost:
		t.stats.Lost += ev.Lost
	}
	return out
}

// Drained tells the table that the stream has delivered everything the
// kernel did before now (the ring buffer was found empty), and returns the
// TIME_WAIT ends that waited for it (see endPending), appended to out.
func (t *Table) Drained(now time.Time, out []event.Event) []event.Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	if at := now.UnixNano(); at > t.streamAt {
		t.streamAt = at
		out = t.endPending(out)
	}
	return out
}

func (t *Table) counters(netns uint32, port uint16) *PortCounters {
	k := portKey{netns, port}
	if t.lastPort != nil && t.lastKey == k {
		return t.lastPort
	}
	c := t.ports[k]
	if c == nil {
		c = &PortCounters{}
		t.ports[k] = c
	}
	t.lastKey, t.lastPort = k, c
	return c
}

func (t *Table) applyState(ev *event.Event, out []event.Event) []event.Event {
	now := ev.Time.UnixNano()
	i := t.lookup(ev.Cookie)
	fresh := i < 0
	if fresh {
		i = t.insert(ev.Cookie, now)
	}
	e := t.slots.at(i)
	e.source |= fromTrace
	e.netns = ev.NetNS
	e.setEndpoints(ev.Family, ev.Src, ev.Dst)
	if ev.OwnerKnown() {
		e.owner, e.comm = ev.Owner, ev.OwnerComm
	}
	if ev.SockReuse.Known() {
		e.reuse = ev.SockReuse
	}
	history := !fresh && e.older(now)
	if e.touched < now {
		e.touched = now
	}
	switch {
	case ev.New == event.StateSynSent || ev.Old == event.StateSynSent:
		e.flags |= flagClient
	case ev.New == event.StateSynRecv || ev.Old == event.StateSynRecv || ev.New == event.StateListen:
		e.flags |= flagServer
	}
	if fresh {
		t.joinGroup(e)
	}
	// Per-port activity is about service ports: a client's local port is
	// ephemeral, and counting it would grow a counter per connection.
	if e.sport != 0 && t.side(e) == SideServer {
		t.counters(e.netns, e.sport).Transitions++
	}

	if history {
		// Older than what the table already knows: history, not news. A
		// dump may have shown this connection already, but not the
		// TIME_WAIT it took over when it was established.
		t.stats.OutOfOrder++
		t.push(e, ev.New, now)
		if ev.New == event.StateEstablished {
			out = t.takeOver(e, now, t.cfg.Derive, out)
		}
		return out
	}
	if e.nsteps == 0 && ev.OldKnown {
		// The old state's start is known from the kernel's duration.
		t.push(e, ev.Old, now-int64(ev.OldDur))
	}
	t.push(e, ev.New, now)
	t.setState(e, ev.New, now)

	switch ev.New {
	case event.StateListen:
		t.indexListener(e, i)
	case event.StateSynRecv:
		if e.owner == 0 {
			// The listener predates the tracer: take its owner from the table.
			if j, ok := t.listeners[portKey{e.netns, e.sport}]; ok {
				e.owner, e.comm = t.slots.at(j).owner, t.slots.at(j).comm
			}
		}
	case event.StateEstablished:
		out = t.takeOver(e, now, t.cfg.Derive, out)
	case event.StateClose:
		e.closed = now
	}
	return out
}

// older reports whether an event at ns is older than the entry's state: the
// state was entered later, or (when it came from a dump, which does not say
// when) the dump that showed it began later. Such an event is history.
func (e *entry) older(ns int64) bool {
	return e.since > ns || (e.since == 0 && e.source&fromDiag != 0 && e.touched > ns)
}

// setState moves an entry to a state, keeping the indexes and the TIME_WAIT
// count in step: every change of state goes through it, so Stats.TimeWait
// is always the number of entries in TIME_WAIT.
func (t *Table) setState(e *entry, s event.State, at int64) {
	if e.state == event.StateListen && s != event.StateListen {
		t.unindexListener(e)
	}
	switch {
	case e.state == event.StateTimeWait && s != event.StateTimeWait:
		t.unindexTW(e)
		e.flags &^= flagTWConfirmed | flagGone | flagFinWait2
		t.stats.TimeWait--
	case e.state != event.StateTimeWait && s == event.StateTimeWait:
		t.stats.TimeWait++
	}
	e.state = s
	e.since = at
	if s != event.StateClose && s != event.StateTimeWait {
		e.closed = 0
	}
}

// takeOver ends the TIME_WAIT entry that holds e's 4-tuple, if another
// does: the kernel holds one socket per 4-tuple, so a connection
// established on it (tcp_tw_reuse on the client, or a new SYN accepted by
// the server's TIME_WAIT), or a newer TIME_WAIT on it, took it over. at is
// when e took it; a TIME_WAIT that began later is not the one it took.
// With derive, the reuse is reported. A table that does not derive (a
// replay) leaves it to the reuse events the capture holds.
func (t *Table) takeOver(e *entry, at int64, derive bool, out []event.Event) []event.Event {
	if !t.cfg.Derive {
		return out
	}
	h := e.tuple()
	if !t.mayBeTimeWait(h) {
		return out
	}
	old, ok := t.tw[h]
	if !ok || old == e.cookie {
		return out
	}
	j := t.lookup(old)
	if j < 0 {
		delete(t.tw, h)
		return out
	}
	tw := t.slots.at(j)
	if tw.netns != e.netns || tw.src != e.src || tw.dst != e.dst || tw.sport != e.sport || tw.dport != e.dport {
		return out // a hash collision, not the same 4-tuple
	}
	if tw.state != event.StateTimeWait || tw.since > at {
		return out
	}
	if derive {
		out = t.releaseEnter(tw, min(at, tw.expires-int64(event.TimeWaitLen)), out)
		out = append(out, t.twEvent(tw, event.TimeWaitReuse, event.SourceInferred, unixTime(at)))
	}
	t.endTimeWait(tw, event.TimeWaitReuse, at)
	return out
}

func (t *Table) applyTimeWait(ev *event.Event, out []event.Event) []event.Event {
	now := ev.Time.UnixNano()
	i := t.lookup(ev.Cookie)
	if ev.TimeWait != event.TimeWaitEnter {
		if i >= 0 && t.slots.at(i).state == event.StateTimeWait {
			t.endTimeWait(t.slots.at(i), ev.TimeWait, now)
		}
		return out
	}
	fresh := i < 0
	if fresh {
		i = t.insert(ev.Cookie, now)
	}
	e := t.slots.at(i)
	if ev.OwnerKnown() && e.owner == 0 {
		e.owner, e.comm = ev.Owner, ev.OwnerComm
	}
	// The stream shows the enter a dump found first: it is reported here,
	// not again by the table, and counted as the stream's.
	shown := e.flags&flagEnterPending != 0
	e.flags &^= flagEnterPending
	if !fresh && e.older(now) {
		// A dump already showed the TIME_WAIT, or its end, after this enter
		// (the reconciler runs ahead of the stream): nothing new.
		t.stats.OutOfOrder++
		if shown && e.state == event.StateTimeWait {
			if t.side(e) == SideServer {
				t.counters(e.netns, e.sport).TimeWaitEnters++
			}
			if e.since > now {
				e.since = now // it entered when the stream says
			}
		}
		return out
	}
	e.netns = ev.NetNS
	e.setEndpoints(ev.Family, ev.Src, ev.Dst)
	if fresh {
		t.joinGroup(e)
	}
	if ev.Source == event.SourceSockDiag {
		e.source |= fromDiag
		e.flags |= flagTWConfirmed
	} else {
		e.source |= fromTrace
	}
	if e.state != event.StateTimeWait && t.side(e) == SideServer {
		t.counters(e.netns, e.sport).TimeWaitEnters++
	}
	out = t.takeOver(e, now, t.cfg.Derive, out)
	t.enterTimeWait(e, now, now+int64(ev.Remaining))
	return out
}

// enterTimeWait moves an entry to TIME_WAIT. (TimeWaitEnters counts the
// stream's enters only: a snapshot's are state, not activity.)
func (t *Table) enterTimeWait(e *entry, at, expires int64) {
	if e.state != event.StateTimeWait {
		if n := e.nsteps; n > 0 && e.steps[n-1] == mkStep(at, event.StateClose) {
			// FIN_WAIT2->CLOSE and the TIME_WAIT it implies are one step.
			e.steps[n-1] = mkStep(at, event.StateTimeWait)
		} else {
			t.push(e, event.StateTimeWait, at)
		}
		t.setState(e, event.StateTimeWait, at)
	}
	e.closed = 0
	e.expires = expires
	t.indexTW(e)
}

// endTimeWait closes a TIME_WAIT entry; it lingers, then goes.
func (t *Table) endTimeWait(e *entry, why event.TimeWaitOp, at int64) {
	if e.state != event.StateTimeWait {
		return
	}
	if int(why) < len(t.stats.TimeWaitEnded) {
		t.stats.TimeWaitEnded[why]++
	}
	t.push(e, event.StateClose, at)
	t.setState(e, event.StateClose, at)
	e.closed = at
	e.expires = 0
}

// twEvent builds a timewait event about an entry.
func (t *Table) twEvent(e *entry, op event.TimeWaitOp, src event.Source, at time.Time) event.Event {
	s, d := e.addrPorts()
	ev := event.Event{
		Kind: event.KindTimeWait, Time: at, NetNS: e.netns, Family: e.family,
		Src: s, Dst: d, Cookie: e.cookie, Owner: e.owner, OwnerComm: e.comm,
		TimeWait: op, Source: src,
	}
	if rem := e.expires - at.UnixNano(); op == event.TimeWaitEnter && rem > 0 {
		ev.Remaining = time.Duration(rem)
	}
	return ev
}

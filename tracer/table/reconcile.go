package table

import (
	"net/netip"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// KernelSocket is a socket as the kernel's own table (sock_diag) reports it.
type KernelSocket struct {
	Cookie   uint64
	Family   event.Family
	State    event.State
	Src, Dst netip.AddrPort
	Inode    uint32        // 0 for TIME_WAIT sockets
	Expires  time.Duration // TIME_WAIT: time left on its timer
	// FinWait2: a TIME_WAIT mini-socket still in substate FIN_WAIT2, an
	// orphaned connection waiting for the peer's FIN (its timer is
	// tcp_fin_timeout). It holds the 4-tuple as a TIME_WAIT does.
	FinWait2 bool
}

// Snapshot is one dump of a namespace's sockets from the kernel.
type Snapshot struct {
	NetNS      uint32
	Start, End time.Time // when the dump began and ended
	Sockets    []KernelSocket
	// Complete: the dump was not interrupted, so a socket missing from it
	// is gone from the kernel.
	Complete bool
	// TimeWaitOnly: only TIME_WAIT sockets were asked for (the periodic
	// reconciliation); other entries are not judged by it.
	TimeWaitOnly bool
	// Initial: the first snapshot at start. What it finds already existed;
	// it is state, not news, and derives no events.
	Initial bool
}

// expiryTolerance: a TIME_WAIT that disappears this close to its expected
// end expired; earlier, it was killed (RST, a new SYN, tcp_tw_reuse).
const expiryTolerance = time.Second

// Load merges a whole snapshot into the table and returns the TIME_WAIT
// events it reveals (appended to out); see Reconcile, which it wraps.
func (t *Table) Load(s *Snapshot, out []event.Event) []event.Event {
	r := t.Reconcile(s.NetNS, s.Start, s.TimeWaitOnly, s.Initial)
	out = r.Add(s.Sockets, s.End, out)
	return r.End(s.End, s.Complete, out)
}

// A Reconciliation merges one dump of a namespace's sockets into the table
// as the dump is read, chunk by chunk: a namespace can hold millions of
// TIME_WAIT sockets, and neither the whole dump in memory nor the table's
// lock for all of it would do. It reveals TIME_WAIT sockets the stream did
// not show (enter, source sock_diag) and, at the end, TIME_WAIT entries the
// kernel no longer has (expire or kill, source sock_diag).
type Reconciliation struct {
	t            *Table
	netns        uint32
	start        int64
	timeWaitOnly bool
	derive       bool
	fresh        []freshEntry // entries the dump added, classified at the end
}

type freshEntry struct {
	slot   int32
	cookie uint64 // the slot may be reused meanwhile: check
}

// Reconcile starts merging a dump of a namespace that began at start.
func (t *Table) Reconcile(netns uint32, start time.Time, timeWaitOnly, initial bool) *Reconciliation {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	t.stats.Reconciliations++
	t.stats.Untracked = 0
	return &Reconciliation{
		t: t, netns: netns, start: start.UnixNano(), timeWaitOnly: timeWaitOnly,
		derive: t.cfg.Derive && !initial,
	}
}

// Add merges a chunk of the dump, read at time at (a TIME_WAIT's timer is
// as the kernel reported it then).
func (r *Reconciliation) Add(socks []KernelSocket, at time.Time, out []event.Event) []event.Event {
	t := r.t
	t.mu.Lock()
	defer t.mu.Unlock()
	now := at.UnixNano()
	for k := range socks {
		ks := &socks[k]
		i := t.lookup(ks.Cookie)
		if i < 0 {
			if len(t.byCookie) >= t.cfg.MaxSockets {
				// What the stream shows matters more than what a dump
				// finds: never evict for a snapshot.
				t.stats.Untracked++
				continue
			}
			// Touched when the dump began: what the stream shows from
			// before is history (see entry.older).
			i = t.insert(ks.Cookie, r.start)
			r.fresh = append(r.fresh, freshEntry{i, ks.Cookie})
			e := t.slots.at(i)
			e.netns = r.netns
			e.source |= fromDiag
			e.setEndpoints(ks.Family, ks.Src, ks.Dst)
			if ks.State == event.StateSynRecv || ks.State == event.StateNewSynRecv {
				e.flags |= flagServer // sock_diag shows it accepting
			}
			if ks.State == event.StateTimeWait {
				out = t.takeOver(e, r.start, r.derive, out)
				t.enterTimeWait(e, 0, now+int64(ks.Expires))
				e.flags |= flagTWConfirmed
				if r.derive {
					t.deferEnter(e, now)
				}
			} else {
				t.setState(e, ks.State, 0)
				if ks.State == event.StateListen {
					t.indexListener(e, i)
				}
			}
		}
		e := t.slots.at(i)
		e.source |= fromDiag
		e.gen = t.gen
		e.flags &^= flagGone // there after all
		if ks.Inode != 0 {
			e.inode = ks.Inode
		}
		if e.since > r.start {
			continue // the stream knows better: it changed after the dump began
		}
		switch {
		case ks.State == event.StateTimeWait:
			if e.state != event.StateTimeWait {
				// The enter was not seen (lost, or an orphan the stream could not show).
				out = t.takeOver(e, r.start, r.derive, out)
				t.enterTimeWait(e, now, now+int64(ks.Expires))
				if r.derive {
					t.deferEnter(e, now)
				}
			}
			// The kernel's timer is the truth: it restarts on in-window segments.
			e.expires = now + int64(ks.Expires)
			e.flags |= flagTWConfirmed
			e.flags &^= flagFinWait2
			if ks.FinWait2 {
				e.flags |= flagFinWait2
			}
		case e.state != ks.State && e.state != event.StateClose:
			// Transitions were missed (events lost): adopt the kernel's
			// state, as of when the dump began.
			t.setState(e, ks.State, 0)
			e.touched = max(e.touched, r.start)
			if ks.State == event.StateListen {
				t.indexListener(e, i)
			}
		}
	}
	return out
}

// End finishes the merge of a dump that ended at end. Complete: the dump
// was not interrupted, so what it did not list is gone from the kernel.
func (r *Reconciliation) End(end time.Time, complete bool, out []event.Event) []event.Event {
	t := r.t
	t.mu.Lock()
	defer t.mu.Unlock()
	// A socket the stream never showed: whether connect() made it is not
	// in the dump. Its peer may say (pairPeers); otherwise its port (side).
	t.pairPeers(r.fresh)
	for _, f := range r.fresh {
		if e := t.slots.at(f.slot); e.cookie == f.cookie { // not evicted since
			t.joinGroup(e)
		}
	}
	if complete {
		out = t.sweep(r.netns, r.timeWaitOnly, r.start, end.UnixNano(), r.derive, end, out)
		t.reconciled[r.netns] = end.UnixNano()
		out = t.endPending(out)
	}
	return out
}

// handshakeSlack: a new SYN ends a server's TIME_WAIT a round trip before
// the connection it opens reaches ESTABLISHED, where the stream shows the
// reuse. A TIME_WAIT a dump no longer has is not ended before the stream
// has delivered this much past the dump's start: the reuse, if it was one,
// is seen first.
const handshakeSlack = 250 * time.Millisecond

// pendingEnd is a TIME_WAIT that a complete dump no longer found.
type pendingEnd struct {
	cookie uint64
	start  int64 // when the dump began
	at     int64 // when it ended: the end's time
	op     event.TimeWaitOp
	derive bool
}

// pendingEnter is a TIME_WAIT a dump found before the stream showed it.
type pendingEnter struct {
	cookie uint64
	at     int64 // when the dump read it
}

// deferEnter holds back the enter of a TIME_WAIT a dump found that the
// table did not have in TIME_WAIT: the stream may still carry the
// transitions that made it (the reader is woken in batches, and the
// reconciler runs ahead of it), and then the stream's own enter, inferred
// with its owner, is the one to report. The dump's is reported once the
// stream has delivered past the moment the dump read the socket without
// showing it: an enter that was lost, or an orphan's the stream cannot see.
func (t *Table) deferEnter(e *entry, at int64) {
	if e.flags&flagEnterPending != 0 {
		return // waiting already
	}
	e.flags |= flagEnterPending
	t.enters = append(t.enters, pendingEnter{e.cookie, at})
}

// releaseEnter reports the enter a dump found, still waiting, of a
// TIME_WAIT that is about to end (killed, expired or taken over), so that
// no end is reported without its enter; at is when it was seen, at the
// latest.
func (t *Table) releaseEnter(e *entry, at int64, out []event.Event) []event.Event {
	if e.flags&flagEnterPending == 0 {
		return out
	}
	e.flags &^= flagEnterPending
	if e.state != event.StateTimeWait {
		return out
	}
	t.stats.TimeWaitObserved++
	return append(out, t.twEvent(e, event.TimeWaitEnter, event.SourceSockDiag, unixTime(at)))
}

// endPending ends the TIME_WAIT entries complete dumps no longer found, once
// the stream has caught up with the dump (streamAt, handshakeSlack). The
// reconciler runs ahead of the stream: ending them at once would report as
// killed a TIME_WAIT that a new connection took over (and whose ESTABLISHED
// is still on its way), and miss the reuse. Those the stream ended meanwhile
// are dropped. Pending ends are in the order of their dumps.
func (t *Table) endPending(out []event.Event) []event.Event {
	caught := t.streamAt - int64(handshakeSlack)
	// The enters dumps found, once the stream is past the read without
	// having shown them (applyTimeWait clears the flag of one it shows):
	// first, as they were read before any end that follows.
	n := 0
	for ; n < len(t.enters) && t.enters[n].at <= caught; n++ {
		p := &t.enters[n]
		if i := t.lookup(p.cookie); i >= 0 {
			out = t.releaseEnter(t.slots.at(i), p.at, out)
		}
	}
	if n > 0 {
		t.enters = append(t.enters[:0], t.enters[n:]...)
	}
	n = 0
	for ; n < len(t.pending) && t.pending[n].start <= caught; n++ {
		p := &t.pending[n]
		i := t.lookup(p.cookie)
		if i < 0 {
			continue // evicted or removed
		}
		e := t.slots.at(i)
		if e.state != event.StateTimeWait || e.flags&flagGone == 0 {
			continue // ended by the stream, or found again
		}
		if p.derive {
			out = t.releaseEnter(e, min(p.start, p.at), out)
			out = append(out, t.twEvent(e, p.op, event.SourceSockDiag, unixTime(p.at)))
		}
		t.endTimeWait(e, p.op, p.at)
	}
	if n > 0 {
		t.pending = append(t.pending[:0], t.pending[n:]...)
	}
	return out
}

// sweep ends the entries of a dumped namespace that the kernel no longer
// has and that existed before the dump began.
func (t *Table) sweep(netns uint32, timeWaitOnly bool, start, end int64, derive bool, at time.Time, out []event.Event) []event.Event {
	for i := range t.slots.len() {
		e := t.slots.at(int32(i))
		if e.cookie == 0 || e.netns != netns || e.gen == t.gen || e.closed != 0 {
			continue
		}
		if e.since > start || (e.since == 0 && e.touched > start) {
			continue // newer than the dump
		}
		if e.state == event.StateTimeWait {
			if e.flags&flagGone != 0 {
				continue // pending already
			}
			op := event.TimeWaitKill
			if end >= e.expires-int64(expiryTolerance) {
				op = event.TimeWaitExpire
			}
			e.flags |= flagGone
			t.pending = append(t.pending, pendingEnd{cookie: e.cookie, start: start, at: end, op: op, derive: derive})
			continue
		}
		if !timeWaitOnly {
			// Gone without a CLOSE the stream showed: events were lost.
			t.push(e, event.StateClose, end)
			t.setState(e, event.StateClose, end)
			e.closed = end
		}
	}
	return out
}

// reconcileStale: a namespace whose last complete dump is older than this is
// no longer reconciled, and its TIME_WAIT entries expire by their timers.
const reconcileStale = 5 * time.Second

// Tick does the table's periodic work at now: it expires TIME_WAIT entries
// whose timer ran out in namespaces that sock_diag does not reconcile (source
// inferred), and drops closed entries after their linger. It returns the
// derived events, appended to out.
func (t *Table) Tick(now time.Time, out []event.Event) []event.Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := now.UnixNano()
	linger := int64(t.cfg.Linger)
	for i := range t.slots.len() {
		e := t.slots.at(int32(i))
		if e.cookie == 0 {
			continue
		}
		if e.state == event.StateTimeWait && n >= e.expires && n-t.reconciled[e.netns] > int64(reconcileStale) {
			if t.cfg.Derive {
				out = t.releaseEnter(e, e.expires-int64(event.TimeWaitLen), out)
				out = append(out, t.twEvent(e, event.TimeWaitExpire, event.SourceInferred, now))
			}
			t.endTimeWait(e, event.TimeWaitExpire, e.expires)
		}
		if e.closed != 0 && n-e.closed > linger {
			t.remove(int32(i))
		}
	}
	return out
}

// StopReconciling tells the table that sock_diag no longer confirms the
// TIME_WAIT sockets of a namespace: their timers take over.
func (t *Table) StopReconciling(netns uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.reconciled, netns)
}

// ResolveOwners asks find for the owner of every open socket whose owner is
// unknown and whose inode is known (from sock_diag), and returns how many it found.
func (t *Table) ResolveOwners(find func(inode uint32) (pid uint32, comm event.Comm, ok bool)) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	found := 0
	for i := range t.slots.len() {
		e := t.slots.at(int32(i))
		if !e.unowned() || e.inode == 0 {
			continue
		}
		if pid, comm, ok := find(e.inode); ok {
			e.owner, e.comm = pid, comm
			found++
		}
	}
	return found
}

// maxContainers bounds the owner → container map: past it, it starts anew
// (owners that exited leave entries behind).
const maxContainers = 1 << 14

// SetContainers records the container of owners, by pid, as /proc showed
// them (owner.Process.Container); sockets of those owners show it.
func (t *Table) SetContainers(byPID map[uint32]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.containers == nil || len(t.containers)+len(byPID) > maxContainers {
		t.containers = make(map[uint32]string, len(byPID))
	}
	for pid, id := range byPID {
		t.containers[pid] = id
	}
}

// SocketReuse is one socket's address-reuse options, as a BPF iterator
// reads them (tracer.ReuseReader).
type SocketReuse struct {
	Cookie uint64
	Reuse  event.Reuse
}

// SetReuse records sockets' address-reuse options; sockets the table does
// not hold are ignored. It returns how many it recorded.
func (t *Table) SetReuse(rs []SocketReuse) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, r := range rs {
		if i := t.lookup(r.Cookie); i >= 0 {
			t.slots.at(i).reuse = r.Reuse
			n++
		}
	}
	return n
}

// ListenerWithoutInode reports whether a listener of the namespace has no
// inode yet: the stream showed it, and only a dump gives its inode.
func (t *Table) ListenerWithoutInode(netns uint32) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for k, i := range t.listeners {
		if k.netns == netns && t.slots.at(i).inode == 0 {
			return true
		}
	}
	return false
}

// Unresolved counts open sockets with neither owner nor inode: ones the
// stream showed without an owner (they predate the tracer). A full dump
// gives their inodes, and /proc then their owners.
func (t *Table) Unresolved() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	n := 0
	for i := range t.slots.len() {
		if e := t.slots.at(int32(i)); e.unowned() && e.inode == 0 {
			n++
		}
	}
	return n
}

// UnownedInodes lists the inodes of open sockets with no owner yet.
func (t *Table) UnownedInodes() []uint32 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []uint32
	for i := range t.slots.len() {
		if e := t.slots.at(int32(i)); e.unowned() && e.inode != 0 {
			out = append(out, e.inode)
		}
	}
	return out
}

func (e *entry) unowned() bool {
	return e.cookie != 0 && e.owner == 0 && e.closed == 0 && e.state != event.StateTimeWait
}

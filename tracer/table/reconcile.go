package table

import (
	"net/netip"
	"time"

	"github.com/twtrace/twtrace/tracer"
)

// KernelSocket is a socket as the kernel's own table (sock_diag) reports it.
type KernelSocket struct {
	Cookie   uint64
	Family   tracer.Family
	State    tracer.State
	Src, Dst netip.AddrPort
	Inode    uint32        // 0 for TIME_WAIT sockets
	Expires  time.Duration // TIME_WAIT: time left on its timer
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

// Load merges a snapshot into the table and returns the TIME_WAIT events it
// reveals (appended to out): TIME_WAIT sockets the stream did not show
// (enter, source sock_diag) and TIME_WAIT entries the kernel no longer has
// (expire or kill, source sock_diag).
func (t *Table) Load(s *Snapshot, out []tracer.Event) []tracer.Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	t.stats.Reconciliations++
	start, end := s.Start.UnixNano(), s.End.UnixNano()
	derive := t.cfg.Derive && !s.Initial
	t.stats.Untracked = 0

	fresh := t.fresh[:0]
	for k := range s.Sockets {
		ks := &s.Sockets[k]
		i := t.lookup(ks.Cookie)
		if i < 0 {
			if len(t.byCookie) >= t.cfg.MaxSockets {
				// What the stream shows matters more than what a dump
				// finds: never evict for a snapshot.
				t.stats.Untracked++
				continue
			}
			i = t.insert(ks.Cookie, end)
			fresh = append(fresh, i)
			e := t.slots.at(i)
			e.netns = s.NetNS
			e.setEndpoints(ks.Family, ks.Src, ks.Dst)
			if ks.State == tracer.StateTimeWait {
				t.enterTimeWait(e, 0, end+int64(ks.Expires))
				e.flags |= flagTWConfirmed
				if derive {
					t.stats.TimeWaitObserved++
					out = append(out, t.twEvent(e, tracer.TimeWaitEnter, tracer.SourceSockDiag, s.End))
				}
			} else {
				t.setState(e, ks.State, 0)
				if ks.State == tracer.StateListen {
					t.indexListener(e, i)
				}
			}
		}
		e := t.slots.at(i)
		e.source |= fromDiag
		e.gen = t.gen
		if ks.Inode != 0 {
			e.inode = ks.Inode
		}
		if e.since > start {
			continue // the stream knows better: it changed after the dump began
		}
		switch {
		case ks.State == tracer.StateTimeWait:
			if e.state != tracer.StateTimeWait {
				// The enter was not seen (lost, or an orphan the stream could not show).
				t.enterTimeWait(e, end, end+int64(ks.Expires))
				if derive {
					t.stats.TimeWaitObserved++
					out = append(out, t.twEvent(e, tracer.TimeWaitEnter, tracer.SourceSockDiag, s.End))
				}
			}
			// The kernel's timer is the truth: it restarts on in-window segments.
			e.expires = end + int64(ks.Expires)
			e.flags |= flagTWConfirmed
		case e.state != ks.State && e.state != tracer.StateClose:
			// Transitions were missed (events lost): adopt the kernel's state.
			t.setState(e, ks.State, 0)
		}
	}

	// A socket the stream never showed: whether connect() made it is not
	// in the dump. One on a port nothing listens on is taken for a client's.
	for _, i := range fresh {
		e := t.slots.at(i)
		if e.state != tracer.StateListen {
			if _, ok := t.listeners[portKey{e.netns, e.sport}]; !ok {
				e.flags |= flagClient
			}
		}
		t.joinGroup(e)
	}
	t.fresh = fresh
	if s.Complete {
		out = t.sweep(s, start, end, derive, out)
	}
	if s.Complete {
		t.reconciled[s.NetNS] = end
	}
	return out
}

// sweep ends the entries of the snapshot's namespace that the kernel no
// longer has and that existed before the dump began.
func (t *Table) sweep(s *Snapshot, start, end int64, derive bool, out []tracer.Event) []tracer.Event {
	for i := range t.slots.len() {
		e := t.slots.at(int32(i))
		if e.cookie == 0 || e.netns != s.NetNS || e.gen == t.gen || e.closed != 0 {
			continue
		}
		if e.since > start || (e.since == 0 && e.touched > start) {
			continue // newer than the dump
		}
		if e.state == tracer.StateTimeWait {
			op := tracer.TimeWaitKill
			if end >= e.expires-int64(expiryTolerance) {
				op = tracer.TimeWaitExpire
			}
			if derive {
				out = append(out, t.twEvent(e, op, tracer.SourceSockDiag, s.End))
			}
			t.endTimeWait(e, op, end)
			continue
		}
		if !s.TimeWaitOnly {
			// Gone without a CLOSE the stream showed: events were lost.
			t.push(e, tracer.StateClose, end)
			t.setState(e, tracer.StateClose, end)
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
func (t *Table) Tick(now time.Time, out []tracer.Event) []tracer.Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := now.UnixNano()
	linger := int64(t.cfg.Linger)
	for i := range t.slots.len() {
		e := t.slots.at(int32(i))
		if e.cookie == 0 {
			continue
		}
		if e.state == tracer.StateTimeWait && n >= e.expires && n-t.reconciled[e.netns] > int64(reconcileStale) {
			if t.cfg.Derive {
				out = append(out, t.twEvent(e, tracer.TimeWaitExpire, tracer.SourceInferred, now))
			}
			t.endTimeWait(e, tracer.TimeWaitExpire, e.expires)
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
func (t *Table) ResolveOwners(find func(inode uint32) (pid uint32, comm tracer.Comm, ok bool)) int {
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

// Unowned counts open sockets with no owner yet (TIME_WAIT sockets have
// none to find).
func (t *Table) Unowned() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	n := 0
	for i := range t.slots.len() {
		if e := t.slots.at(int32(i)); e.unowned() {
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
	return e.cookie != 0 && e.owner == 0 && e.closed == 0 && e.state != tracer.StateTimeWait
}

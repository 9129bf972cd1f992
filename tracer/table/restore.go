package table

import (
	"strings"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// Restore loads sockets as a listing of the table described them (the
// starting snapshot a capture holds), taken at time at: each one the table
// does not hold yet is added with everything the listing knows — owner,
// container, inode, options, TIME_WAIT timer, when it entered its state and
// where the table had it from. Like a first snapshot, it is state, not news:
// it derives no events, and never evicts (past MaxSockets, sockets are
// counted as Untracked). It returns how many it added.
func (t *Table) Restore(socks []Socket, at time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := at.UnixNano()
	fresh := make([]int32, 0, len(socks))
	var sides []Side
	for k := range socks {
		s := &socks[k]
		if s.Cookie == 0 || t.lookup(s.Cookie) >= 0 {
			continue
		}
		if len(t.byCookie) >= t.cfg.MaxSockets {
			t.stats.Untracked++
			continue
		}
		i := t.insert(s.Cookie, now)
		t.restoreEntry(t.slots.at(i), i, s, now)
		if s.Owner != 0 && s.Container != "" {
			if t.containers == nil {
				t.containers = make(map[uint32]string)
			}
			t.containers[s.Owner] = s.Container
		}
		fresh = append(fresh, i)
		sides = append(sides, s.Side)
	}
	// The side the listing gives; a guess is decided again by this table's
	// evidence, as a snapshot's sockets are.
	for k, i := range fresh {
		e := t.slots.at(i)
		switch sides[k] {
		case SideClient:
			e.flags |= flagClient
		case SideServer:
			e.flags |= flagServer
		}
		t.joinGroup(e)
	}
	return len(fresh)
}

func (t *Table) restoreEntry(e *entry, i int32, s *Socket, now int64) {
	e.netns = s.NetNS
	e.setEndpoints(s.Family, s.Src, s.Dst)
	e.inode, e.owner, e.comm, e.reuse = s.Inode, s.Owner, s.OwnerComm, s.Reuse
	if strings.Contains(s.Source, "sock_diag") {
		e.source |= fromDiag
	}
	if strings.Contains(s.Source, "trace") {
		e.source |= fromTrace
	}
	since := int64(0)
	if !s.Since.IsZero() {
		since = s.Since.UnixNano()
	}
	if s.State == event.StateTimeWait {
		expires := now // a timer the listing did not give: ended
		if !s.Expires.IsZero() {
			expires = s.Expires.UnixNano()
		}
		t.enterTimeWait(e, since, expires)
		if s.Confirmed {
			e.flags |= flagTWConfirmed
		}
		return
	}
	if since != 0 {
		t.push(e, s.State, since)
	}
	t.setState(e, s.State, since)
	if s.State == event.StateListen {
		t.indexListener(e, i)
	}
}

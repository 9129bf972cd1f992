package session

import (
	"fmt"
	"slices"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/owner"
	"github.com/twtrace/twtrace/tracer/sockdiag"
	"github.com/twtrace/twtrace/tracer/table"
)

// snapshotMax bounds a one-shot listing: 2^20 sockets are about 230 MiB.
// Past it, sockets are counted (table.Stats.Untracked), not listed.
const snapshotMax = 1 << 20

// A Listing is one snapshot of a namespace's sockets, what `twtrace
// sockets` shows: a table, and for each full socket what ss -tanpo shows
// beyond it (its queues, its timer, every process holding it and their fds).
type Listing struct {
	Table   *table.Table
	NetNS   uint32
	details map[uint64]*table.Detail // by cookie; TIME_WAITs have none
}

// Snapshot reads the sockets of the caller's network namespace (or of
// netnsFD when >= 0) once, with their owners from /proc, into a new table:
// what `twtrace sockets` shows. It needs no BPF.
func Snapshot(procRoot string, netnsFD int, flt *event.Filter) (*Listing, error) {
	c, err := sockdiag.Dial(netnsFD)
	if err != nil {
		return nil, fmt.Errorf("open sock_diag: %w", err)
	}
	defer c.Close()
	var ino uint32
	if netnsFD >= 0 {
		ino, err = fdInode(netnsFD)
	} else {
		ino, err = hostNetNS()
	}
	if err != nil {
		return nil, fmt.Errorf("read the network namespace: %w", err)
	}
	l := &Listing{Table: table.New(table.Config{MaxSockets: snapshotMax}), NetNS: ino, details: map[uint64]*table.Detail{}}
	// The range decides which sockets are a client's (Listing.Ports); it is
	// the namespace's own.
	n := &netns{inode: ino, fd: netnsFD, host: netnsFD < 0}
	if sc, err := n.sysctls(procRoot); err == nil && sc.PortRange[0] > 0 {
		l.Table.SetPortRange(ino, table.PortRange{uint16(sc.PortRange[0]), uint16(sc.PortRange[1])})
	}
	byInode := map[uint32]*table.Detail{}
	req := dumpReq{netns: ino, kind: dumpAll, initial: true, flt: flt, seen: func(s *sockdiag.Socket) {
		if s.TimeWaitSock() {
			return // the table has its timer; it has no queues nor holders
		}
		d := &table.Detail{RecvQ: s.RQueue, SendQ: s.WQueue, Timer: table.Timer(s.Timer), Retrans: s.Retrans}
		if d.Timer != table.TimerNone {
			d.TimerLeft = s.Expires
		}
		l.details[s.Cookie] = d
		if s.Inode != 0 {
			byInode[s.Inode] = d
		}
	}}
	if _, err := reconcile(c, l.Table, req, make([]table.KernelSocket, 0, chunkLen), nil); err != nil {
		return nil, err
	}
	res, err := owner.NewResolver(procRoot)
	if err != nil {
		return nil, err
	}
	l.resolveHolders(res, byInode)
	return l, nil
}

// resolveHolders finds every holder of the listing's sockets in one scan
// of /proc: the first is the socket's owner, all are in its Detail.
func (l *Listing) resolveHolders(res *owner.Resolver, byInode map[uint32]*table.Detail) {
	inodes := l.Table.UnownedInodes()
	if len(inodes) == 0 {
		return
	}
	found := res.LookupHolders(inodes)
	for ino, hs := range found {
		d := byInode[ino]
		if d == nil {
			continue
		}
		for _, h := range hs {
			d.Holders = append(d.Holders, table.Holder{PID: h.PID, Comm: event.MakeComm(h.Comm), FDs: h.FDs, Container: h.Container})
		}
	}
	setOwners(l.Table, func(inode uint32) (owner.Process, bool) {
		if hs := found[inode]; len(hs) > 0 {
			return hs[0].Process, true
		}
		return owner.Process{}, false
	})
}

// Sockets returns the sockets q selects, as Table.Sockets orders them, with
// their details. States select by the state the kernel reports
// (Socket.KernelState), as ss does: FIN_WAIT2 includes the orphans whose
// TIME_WAIT mini-socket is still in that substate, and TIME_WAIT leaves
// them out.
func (l *Listing) Sockets(q table.Query, now time.Time) []table.Socket {
	want := q.States
	if len(want) > 0 && slices.Contains(want, event.StateFinWait2) && !slices.Contains(want, event.StateTimeWait) {
		q.States = append(slices.Clone(want), event.StateTimeWait)
	}
	socks, _ := l.Table.Sockets(q, now)
	n := 0
	for i := range socks {
		s := &socks[i]
		if len(want) > 0 && !slices.Contains(want, s.KernelState()) {
			continue
		}
		s.Detail = l.details[s.Cookie]
		socks[n] = *s
		n++
	}
	return socks[:n]
}

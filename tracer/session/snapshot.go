package session

import (
	"errors"
	"fmt"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer/owner"
	"github.com/twtrace/twtrace/tracer/sockdiag"
	"github.com/twtrace/twtrace/tracer/table"
)

// timeWaitMask asks for timewait mini-sockets: the kernel filters them by
// substate, and an orphaned connection waiting for the peer's FIN is a
// timewait socket in substate FIN_WAIT2 (with tcp_fin_timeout on its timer).
var timeWaitMask = sockdiag.StateMask(sockdiag.StateTimeWait, sockdiag.StateFinWait2)

// chunkLen is how many sockets of a dump are merged into the table at once:
// the dump is never held whole (a namespace may have millions of TIME_WAIT
// sockets), nor the table's lock for long.
const chunkLen = 8192

// dumpKind is what a dump asks the kernel for.
type dumpKind uint8

const (
	dumpAll       dumpKind = iota // every socket: the first snapshot, the owner refresh
	dumpTimeWait                  // the timewait mini-sockets: the periodic reconciliation
	dumpListeners                 // the listeners: their inodes (the stream has none); judges nothing
)

// dumpReq is one dump of a namespace into the table.
type dumpReq struct {
	netns   uint32
	kind    dumpKind
	initial bool // the first snapshot: state, not news
	flt     *event.Filter
	// seen, when set, is called with each socket merged (a listing keeps
	// what the table does not).
	seen func(*sockdiag.Socket)
}

// reconcile reads one namespace's TCP sockets through an open sock_diag
// connection and merges them into the table as they come. Sockets the
// filter rejects (ports, family) are left out, as the kernel-side filter
// leaves out their events. It returns the events the table derives,
// appended to out.
func reconcile(c *sockdiag.Conn, tab *table.Table, req dumpReq, scratch []table.KernelSocket, out []event.Event) ([]event.Event, error) {
	states := sockdiag.AllStates
	switch req.kind {
	case dumpTimeWait:
		states = timeWaitMask
	case dumpListeners:
		states = sockdiag.StateMask(sockdiag.StateListen)
	}
	rec := tab.Reconcile(req.netns, time.Now(), req.kind != dumpAll, req.initial)
	buf := scratch[:0]
	err := c.Dump(unix.AF_UNSPEC, states, func(s *sockdiag.Socket) error {
		ks, ok := kernelSocket(s)
		if !ok || !matchSnapshot(req.flt, &ks) {
			return nil
		}
		if req.seen != nil {
			req.seen(s)
		}
		buf = append(buf, ks)
		if len(buf) == chunkLen {
			out = rec.Add(buf, time.Now(), out)
			buf = buf[:0]
		}
		return nil
	})
	out = rec.Add(buf, time.Now(), out)
	switch {
	case err == nil:
		// A listeners' dump proves nothing about the absence of the rest.
		return rec.End(time.Now(), req.kind != dumpListeners, out), nil
	case errors.Is(err, sockdiag.ErrInterrupted):
		// Delivered in full but not consistent: usable, but proves no absence.
		return rec.End(time.Now(), false, out), nil
	default:
		rec.End(time.Now(), false, nil)
		return out, fmt.Errorf("sock_diag dump of netns %d: %w", req.netns, err)
	}
}

// kernelSocket converts a sock_diag socket. A timewait socket in substate
// FIN_WAIT2 is shown as TIME_WAIT: it holds the 4-tuple the same way, and its
// timer says when it ends.
func kernelSocket(s *sockdiag.Socket) (table.KernelSocket, bool) {
	ks := table.KernelSocket{
		Cookie: s.Cookie, Family: event.Family(s.Family), State: event.State(s.State),
		Src: s.Src, Dst: s.Dst, Inode: s.Inode,
	}
	if s.TimeWaitSock() {
		ks.State = event.StateTimeWait
		ks.Expires = s.Expires
		ks.FinWait2 = s.State == sockdiag.StateFinWait2
	}
	if ks.Cookie == 0 || (ks.Family != event.FamilyIPv4 && ks.Family != event.FamilyIPv6) {
		return ks, false
	}
	return ks, true
}

// matchSnapshot applies the parts of a filter a kernel socket can be judged by.
func matchSnapshot(f *event.Filter, ks *table.KernelSocket) bool {
	if f == nil {
		return true
	}
	if f.Family != 0 && ks.Family != f.Family {
		return false
	}
	if len(f.Ports) > 0 {
		for _, p := range f.Ports {
			if ks.Src.Port() == p || ks.Dst.Port() == p {
				return true
			}
		}
		return false
	}
	return true
}

// resolveOwners finds, through /proc, the owners of sockets known by inode.
// It scans /proc at most once, outside the table's lock.
func resolveOwners(tab *table.Table, res *owner.Resolver) {
	inodes := tab.UnownedInodes()
	if len(inodes) == 0 {
		return
	}
	found := res.LookupAll(inodes)
	setOwners(tab, func(inode uint32) (owner.Process, bool) {
		ps := found[inode]
		if len(ps) == 0 {
			return owner.Process{}, false
		}
		return ps[0], true
	})
}

// setOwners gives the table's unowned sockets the holder first finds by
// inode, and their containers.
func setOwners(tab *table.Table, first func(inode uint32) (owner.Process, bool)) {
	containers := map[uint32]string{}
	tab.ResolveOwners(func(inode uint32) (uint32, event.Comm, bool) {
		p, ok := first(inode)
		if !ok {
			return 0, event.Comm{}, false
		}
		if p.Container != "" {
			containers[p.PID] = p.Container
		}
		return p.PID, event.MakeComm(p.Comm), true
	})
	if len(containers) > 0 {
		tab.SetContainers(containers)
	}
}

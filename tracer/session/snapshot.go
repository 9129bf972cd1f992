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

// reconcile reads one namespace's TCP sockets through an open sock_diag
// connection and merges them into the table as they come. With
// timeWaitOnly it reads only the timewait sockets (the periodic
// reconciliation). Sockets the filter rejects (ports, family) are left out,
// as the kernel-side filter leaves out their events. It returns the events
// the table derives, appended to out.
func reconcile(c *sockdiag.Conn, tab *table.Table, netns uint32, timeWaitOnly, initial bool,
	flt *event.Filter, scratch []table.KernelSocket, out []event.Event) ([]event.Event, error) {
	states := sockdiag.AllStates
	if timeWaitOnly {
		states = timeWaitMask
	}
	rec := tab.Reconcile(netns, time.Now(), timeWaitOnly, initial)
	buf := scratch[:0]
	err := c.Dump(unix.AF_UNSPEC, states, func(s *sockdiag.Socket) error {
		ks, ok := kernelSocket(s)
		if !ok || !matchSnapshot(flt, &ks) {
			return nil
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
		return rec.End(time.Now(), true, out), nil
	case errors.Is(err, sockdiag.ErrInterrupted):
		// Delivered in full but not consistent: usable, but proves no absence.
		return rec.End(time.Now(), false, out), nil
	default:
		rec.End(time.Now(), false, nil)
		return out, fmt.Errorf("sock_diag dump of netns %d: %w", netns, err)
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

// snapshotMax bounds a one-shot listing: 2^20 sockets are about 230 MiB.
// Past it, sockets are counted (table.Stats.Untracked), not listed.
const snapshotMax = 1 << 20

// Snapshot reads the sockets of the caller's network namespace (or of
// netnsFD when >= 0) once, with their owners from /proc, into a new table:
// what `twtrace sockets` shows. It needs no BPF.
func Snapshot(procRoot string, netnsFD int, flt *event.Filter) (*table.Table, error) {
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
	tab := table.New(table.Config{MaxSockets: snapshotMax})
	if _, err := reconcile(c, tab, ino, false, true, flt, make([]table.KernelSocket, 0, chunkLen), nil); err != nil {
		return nil, err
	}
	res, err := owner.NewResolver(procRoot)
	if err != nil {
		return nil, err
	}
	resolveOwners(tab, res)
	return tab, nil
}

// resolveOwners finds, through /proc, the owners of sockets known by inode.
// It scans /proc at most once, outside the table's lock.
func resolveOwners(tab *table.Table, res *owner.Resolver) {
	inodes := tab.UnownedInodes()
	if len(inodes) == 0 {
		return
	}
	found := res.LookupAll(inodes)
	containers := map[uint32]string{}
	tab.ResolveOwners(func(inode uint32) (uint32, event.Comm, bool) {
		ps := found[inode]
		if len(ps) == 0 {
			return 0, event.Comm{}, false
		}
		if ps[0].Container != "" {
			containers[ps[0].PID] = ps[0].Container
		}
		return ps[0].PID, event.MakeComm(ps[0].Comm), true
	})
	if len(containers) > 0 {
		tab.SetContainers(containers)
	}
}

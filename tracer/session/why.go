package session

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer"
	"github.com/twtrace/twtrace/tracer/advice"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/owner"
	"github.com/twtrace/twtrace/tracer/sockdiag"
)

// PortProbe reads, on demand, what the kernel shows about one port: the
// facts `twtrace why` and the live diagnosis reason from. It keeps the BPF
// iterator that reads SO_REUSEADDR/SO_REUSEPORT loaded between calls (a
// --wait loop asks many times); without BPF privilege it answers from
// sock_diag and /proc alone and says why the options are unknown.
type PortProbe struct {
	netnsFD  int // -1: the caller's namespace
	procRoot string
	reuse    *tracer.ReuseReader
	reuseErr error
}

// NewPortProbe prepares a probe of the namespace netnsFD (-1: the caller's).
func NewPortProbe(netnsFD int, procRoot string) *PortProbe {
	if procRoot == "" {
		procRoot = "/proc"
	}
	p := &PortProbe{netnsFD: netnsFD, procRoot: procRoot}
	p.reuse, p.reuseErr = tracer.OpenReuseReader()
	return p
}

// Close unloads the iterator.
func (p *PortProbe) Close() error {
	if p.reuse != nil {
		return p.reuse.Close()
	}
	return nil
}

// boundMask asks sock_diag for every socket that holds a port: the hash
// tables' sockets (request sockets aside, which hold none of their own) and
// bound-only sockets, which `ss` cannot show.
var boundMask = sockdiag.AllStates&^sockdiag.StateMask(sockdiag.StateSynRecv, sockdiag.StateNewSynRecv) |
	sockdiag.StateMask(sockdiag.StateBoundInactive)

// Facts reads the port's sockets, their options and holders, and the
// namespace's sysctls, at one moment.
func (p *PortProbe) Facts(port uint16) (*advice.PortFacts, error) {
	f := &advice.PortFacts{Port: port, Now: time.Now()}
	c, err := sockdiag.Dial(p.netnsFD)
	if err != nil {
		return nil, fmt.Errorf("open sock_diag: %w", err)
	}
	defer c.Close()
	if f.NetNS, err = p.inode(); err != nil {
		return nil, err
	}
	var inodes []uint32 // of each socket, 0 for none
	byCookie := map[uint64]int{}
	err = c.Dump(unix.AF_UNSPEC, boundMask, func(s *sockdiag.Socket) error {
		if s.Src.Port() != port {
			return nil
		}
		as := portSocket(s, f.Now)
		byCookie[as.Cookie] = len(f.Sockets)
		f.Sockets = append(f.Sockets, as)
		inodes = append(inodes, s.Inode)
		return nil
	})
	if err != nil && !errors.Is(err, sockdiag.ErrInterrupted) {
		return nil, fmt.Errorf("read the sockets of port %d: %w", port, err)
	}
	p.readHolders(f, inodes)
	p.readReuse(f, byCookie, inodes)
	f.Sysctls = p.sysctls()
	return f, nil
}

func (p *PortProbe) inode() (uint32, error) {
	if p.netnsFD >= 0 {
		return fdInode(p.netnsFD)
	}
	return hostNetNS()
}

// portSocket converts a sock_diag socket. A timewait mini-socket is
// TIME_WAIT for bind(), whatever its substate (an orphaned FIN_WAIT2 too).
func portSocket(s *sockdiag.Socket, now time.Time) advice.Socket {
	as := advice.Socket{
		Cookie: s.Cookie, State: event.State(s.State), Family: event.Family(s.Family),
		Local: s.Src, Remote: s.Dst, V6Only: s.V6Only, IfIndex: s.IfIndex,
	}
	switch {
	case s.TimeWaitSock():
		as.State = event.StateTimeWait
		as.Expires = now.Add(s.Expires)
	case s.State == sockdiag.StateClose:
		as.Bound = true // only bound-only sockets are reported in CLOSE
	}
	if !s.TimeWaitSock() {
		as.UID, as.UIDKnown = s.UID, true
	}
	return as
}

// readReuse fills in the options from the iterator and, for the sockets it
// does not reach, from their holders' fds; f.ReuseUnknown says why any is
// left unknown.
func (p *PortProbe) readReuse(f *advice.PortFacts, byCookie map[uint64]int, inodes []uint32) {
	iterErr := p.reuseErr
	if p.reuse != nil {
		iterErr = p.reuse.Read(p.netnsFD, func(cookie uint64, r event.Reuse) {
			if i, ok := byCookie[cookie]; ok {
				f.Sockets[i].Reuse = r
			}
		})
	}
	// Bound-only sockets are in neither of the tables the iterator walks,
	// and without BPF privilege it reaches none: a duplicate of a holder's
	// fd (pidfd_getfd, which needs ptrace access to the holder, as root has)
	// tells their options. The duplicate is closed at once.
	for i := range f.Sockets {
		if s := &f.Sockets[i]; !s.Reuse.Known() && s.State != event.StateTimeWait {
			if r, ok := p.reuseOfFD(s.Holders, inodes[i]); ok {
				s.Reuse = r
			}
		}
	}
	for i := range f.Sockets {
		s := &f.Sockets[i]
		switch {
		case s.Reuse.Known():
		case s.State == event.StateTimeWait && iterErr != nil:
			f.ReuseUnknown = reuseWhy(iterErr) // only the iterator reads a TIME_WAIT's
			return
		default:
			f.ReuseUnknown = "the socket iterator does not reach them and their holders' fds could not be read"
		}
	}
}

// reuseOfFD reads SO_REUSEADDR and SO_REUSEPORT through a duplicate of the
// fd one of the holders has on the socket inode.
func (p *PortProbe) reuseOfFD(hs []advice.Holder, inode uint32) (event.Reuse, bool) {
	if inode == 0 {
		return 0, false
	}
	for _, h := range hs {
		fd, ok := socketFD(p.procRoot, h.PID, inode)
		if !ok {
			continue
		}
		pidfd, err := unix.PidfdOpen(int(h.PID), 0)
		if err != nil {
			continue
		}
		dup, err := unix.PidfdGetfd(pidfd, fd, 0)
		unix.Close(pidfd)
		if err != nil {
			continue
		}
		addr, err1 := unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_REUSEADDR)
		port, err2 := unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_REUSEPORT)
		unix.Close(dup)
		if err1 != nil || err2 != nil {
			continue
		}
		r := event.ReuseKnown
		if addr != 0 {
			r |= event.ReuseAddr
		}
		if port != 0 {
			r |= event.ReusePort
		}
		return r, true
	}
	return 0, false
}

// socketFD finds the fd of pid whose link is socket:[inode].
func socketFD(procRoot string, pid, inode uint32) (int, bool) {
	dir := fmt.Sprintf("%s/%d/fd", procRoot, pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, false
	}
	want := fmt.Sprintf("socket:[%d]", inode)
	for _, e := range ents {
		if target, err := os.Readlink(dir + "/" + e.Name()); err == nil && target == want {
			if fd, err := strconv.Atoi(e.Name()); err == nil {
				return fd, true
			}
		}
	}
	return 0, false
}

func reuseWhy(err error) string {
	if errors.Is(err, unix.EPERM) {
		return "reading them needs CAP_BPF and CAP_PERFMON"
	}
	return strings.TrimPrefix(err.Error(), "load ")
}

// readHolders finds the processes behind the sockets' inodes (inodes[i] is
// the inode of f.Sockets[i], 0 for none), in one scan of /proc.
func (p *PortProbe) readHolders(f *advice.PortFacts, inodes []uint32) {
	want := slices.DeleteFunc(slices.Clone(inodes), func(ino uint32) bool { return ino == 0 })
	if len(want) == 0 {
		return
	}
	res, err := owner.NewResolver(p.procRoot)
	if err != nil {
		return
	}
	found := res.LookupAll(want)
	for i, ino := range inodes {
		for _, pr := range found[ino] {
			f.Sockets[i].Holders = append(f.Sockets[i].Holders, holder(pr))
		}
	}
}

func (p *PortProbe) sysctls() *kstat.Sysctls {
	read := func(r *kstat.Reader) (*kstat.Sysctls, error) {
		s, err := r.Sysctls()
		return &s, err
	}
	if p.netnsFD < 0 {
		r, err := kstat.NewReader(p.procRoot)
		if err != nil {
			return nil
		}
		s, err := read(r)
		if err != nil {
			return nil
		}
		return s
	}
	var out *kstat.Sysctls
	_ = kstat.InNetNS(p.netnsFD, func(r *kstat.Reader) error {
		s, err := read(r)
		if err == nil {
			out = s
		}
		return err
	})
	return out
}

// holder converts an owner.Process, naming its systemd unit when the cgroup
// path ends in one.
func holder(pr owner.Process) advice.Holder {
	return advice.Holder{
		PID: pr.PID, Comm: pr.Comm, Cmdline: pr.Cmdline, UID: pr.UID, User: pr.User,
		Container: pr.Container, Unit: systemdUnit(pr.Cgroup),
	}
}

// systemdUnit is the unit a cgroup path names ("/system.slice/nginx.service"
// → "nginx.service"), or "". A process in a unit's sub-cgroup
// ("/system.slice/x.service/worker") belongs to that unit too.
func systemdUnit(cgroup string) string {
	parts := strings.Split(cgroup, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		p := parts[i]
		if strings.HasSuffix(p, ".service") || strings.HasSuffix(p, ".scope") {
			return p
		}
	}
	return ""
}

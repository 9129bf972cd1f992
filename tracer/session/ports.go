package session

import (
	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer/kstat"
)

// EphemeralPorts returns how many local ports connect() can choose from in
// a network namespace (kstat.Sysctls.EphemeralPorts), read in that
// namespace: pods set ip_local_port_range for themselves. A namespace other
// than the host's is found through a process in it, and joined on a
// discarded thread, which needs CAP_SYS_ADMIN. ok is false when it cannot
// be read. Callers cache the answer: finding a namespace scans /proc.
func (s *Session) EphemeralPorts(netns uint32) (int, bool) {
	var sys kstat.Sysctls
	read := func(r *kstat.Reader) error {
		var err error
		sys, err = r.Sysctls()
		return err
	}
	if netns == s.hostNS {
		r, err := kstat.NewReader(s.cfg.ProcRoot)
		if err != nil || read(r) != nil {
			return 0, false
		}
		return sys.EphemeralPorts()
	}
	for _, fd := range s.cfg.Namespaces { // the caller's, kept open
		if ino, err := fdInode(fd); err == nil && ino == netns {
			if kstat.InNetNS(fd, read) != nil {
				return 0, false
			}
			return sys.EphemeralPorts()
		}
	}
	path, ok := findNetNS(s.cfg.ProcRoot, netns, 0)
	if !ok {
		return 0, false
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	if ino, err := fdInode(fd); err != nil || ino != netns {
		return 0, false // the process left, and the path names another
	}
	if kstat.InNetNS(fd, read) != nil {
		return 0, false
	}
	return sys.EphemeralPorts()
}

package session

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/sockdiag"
)

// A netns is a network namespace the session reconciles. Other than the
// host's, it is not held open between rounds: an open fd or socket would keep
// a namespace alive after its last process left, and twtrace must leave the
// system as it found it. Each round re-opens it by path and checks the inode.
type netns struct {
	inode uint32
	fd    int    // a namespace the caller gave (and keeps open); -1 otherwise
	path  string // /run/netns/NAME or /proc/PID/task/TID/ns/net; "" for fd or host
	host  bool
	next  time.Time // when its next reconciliation is due
	// sysctlsAt is when its sysctls were last read (readSysctls).
	sysctlsAt time.Time
}

// netnsInode returns the inode of a namespace file.
func netnsInode(path string) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return uint32(st.Ino), nil
}

func fdInode(fd int) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	return uint32(st.Ino), nil
}

// hostNetNS is the namespace of the calling thread. /proc/self would name the
// main thread's, which is not always the process's (see package nsthread).
func hostNetNS() (uint32, error) {
	return netnsInode("/proc/thread-self/ns/net")
}

// dial opens a sock_diag connection in the namespace, or fails if the
// namespace is gone (its path now names another, or nothing).
func (n *netns) dial(host *sockdiag.Conn) (c *sockdiag.Conn, closeAfter bool, err error) {
	switch {
	case n.host:
		return host, false, nil
	case n.fd >= 0:
		c, err = sockdiag.Dial(n.fd)
		return c, true, err
	}
	fd, err := n.open()
	if err != nil {
		return nil, false, err
	}
	defer unix.Close(fd)
	c, err = sockdiag.Dial(fd)
	return c, true, err
}

// open opens a namespace known by path, or fails if the path now names
// another namespace, or nothing. The caller closes the fd.
func (n *netns) open() (int, error) {
	fd, err := unix.Open(n.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if ino, err := fdInode(fd); err != nil || ino != n.inode {
		unix.Close(fd)
		return -1, fmt.Errorf("netns %d: %s now names another namespace", n.inode, n.path)
	}
	return fd, nil
}

// sysctls reads the namespace's sysctls in the namespace: most of
// net.ipv4 is per namespace, ip_local_port_range included.
func (n *netns) sysctls(procRoot string) (kstat.Sysctls, error) {
	var sc kstat.Sysctls
	read := func(r *kstat.Reader) (err error) {
		sc, err = r.Sysctls()
		return err
	}
	switch {
	case n.host:
		r, err := kstat.NewReader(procRoot)
		if err != nil {
			return sc, err
		}
		return sc, read(r)
	case n.fd >= 0:
		return sc, kstat.InNetNS(n.fd, read)
	}
	fd, err := n.open()
	if err != nil {
		return sc, err
	}
	defer unix.Close(fd)
	return sc, kstat.InNetNS(fd, read)
}

// findNetNS looks for a path that names the namespace: a thread of the
// process that made an event in it, a named namespace (ip netns add), or
// any process in it.
func findNetNS(procRoot string, inode uint32, pid uint32) (string, bool) {
	if pid != 0 {
		tasks, _ := filepath.Glob(filepath.Join(procRoot, strconv.Itoa(int(pid)), "task", "*", "ns", "net"))
		for _, p := range tasks {
			if ino, err := netnsInode(p); err == nil && ino == inode {
				return p, true
			}
		}
	}
	named, _ := filepath.Glob("/run/netns/*")
	for _, p := range named {
		if ino, err := netnsInode(p); err == nil && ino == inode {
			return p, true
		}
	}
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return "", false
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		p := filepath.Join(procRoot, e.Name(), "ns", "net")
		if ino, err := netnsInode(p); err == nil && ino == inode {
			return p, true
		}
	}
	return "", false
}

// nsRetry bounds how often a namespace that could not be found is looked for.
const nsRetry = 30 * time.Second

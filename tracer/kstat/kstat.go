// Package kstat reads the kernel's own evidence about TIME_WAIT — the TcpExt
// counters of /proc/net/netstat and the tw gauge of /proc/net/sockstat — and
// the sysctls that advice depends on. All of them belong to a network
// namespace: a Reader reads its caller's, InNetNS and ReadNetNS another's.
package kstat

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/prometheus/procfs"
)

// Reader reads one network namespace's counters and sysctls from a proc tree.
type Reader struct {
	sysFS  procfs.FS // holds sys/net/…
	sysDir string    // its sys directory
	netFS  procfs.FS // holds net/netstat and net/sockstat
	netDir string    // its net directory
}

// NewReader returns a Reader of procRoot: "/proc" in production, a fixture
// tree in tests. It reads the namespace of the calling thread, which for a
// goroutine not locked into another namespace is the process's.
//
// The net files are read from <procRoot>/thread-self/net, not /proc/net:
// /proc/net is /proc/self/net, the namespace of the thread group leader,
// and the leader can be left in another namespace for good — a goroutine
// that exits locked to the main thread wedges it instead of ending it, so
// one that joined a namespace there (InNetNS, privtest) keeps it there.
// A fixture tree has no thread-self; its net files are <procRoot>/net.
func NewReader(procRoot string) (*Reader, error) {
	netRoot := procRoot
	if fi, err := os.Stat(filepath.Join(procRoot, "thread-self")); err == nil && fi.IsDir() {
		netRoot = filepath.Join(procRoot, "thread-self")
	}
	return newReader(procRoot, netRoot)
}

// newReader reads sysctls under sysRoot/sys and counters under netRoot/net.
func newReader(sysRoot, netRoot string) (*Reader, error) {
	sys, err := procfs.NewFS(sysRoot)
	if err != nil {
		return nil, fmt.Errorf("open proc tree: %w", err)
	}
	netFS := sys
	if netRoot != sysRoot {
		if netFS, err = procfs.NewFS(netRoot); err != nil {
			return nil, fmt.Errorf("open proc tree: %w", err)
		}
	}
	return &Reader{
		sysFS: sys, sysDir: filepath.Join(sysRoot, "sys"),
		netFS: netFS, netDir: filepath.Join(netRoot, "net"),
	}, nil
}

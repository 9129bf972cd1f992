// Package tracertest helps the tests that need root: loading BPF programs,
// private network namespaces, sysctls. A privileged test calls Require
// first; it skips without root unless TWTRACE_REQUIRE_BPF=1, which CI sets,
// so that a privileged test can never pass by silently not running.
package tracertest

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/nsthread"
)

// RequireEnv is the variable that turns skips into failures.
const RequireEnv = "TWTRACE_REQUIRE_BPF"

// Required reports whether privileged tests must run.
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// Require skips t when not root (or fails it when privileged tests are required).
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if Required() {
		t.Fatalf("%s=1 but the test is not running as root: run it with sudo", RequireEnv)
	}
	t.Skip("needs root (set " + RequireEnv + "=1 to make this a failure)")
}

// Unavailable fails or skips t for a missing kernel feature, per Require's rule.
func Unavailable(t testing.TB, err error) {
	t.Helper()
	if Required() {
		t.Fatalf("privileged test cannot run: %v", err)
	}
	t.Skipf("privileged test cannot run: %v", err)
}

// NetNS is a private network namespace with loopback up. It lives until the
// test ends; nothing of it is visible from the host.
type NetNS struct {
	fd    int
	inode uint64
}

// NewNetNS creates a network namespace for t.
func NewNetNS(t testing.TB) *NetNS {
	t.Helper()
	Require(t)
	fd, ino, err := nsthread.NewNetNS()
	if err != nil {
		Unavailable(t, err)
	}
	ns := &NetNS{fd: fd, inode: uint64(ino)}
	t.Cleanup(func() { unix.Close(ns.fd) })
	return ns
}

// FD is a file descriptor of the namespace, for setns(2) or a netlink dial.
func (n *NetNS) FD() int { return n.fd }

// Inode is the namespace's inode number, as events report it in netns.
func (n *NetNS) Inode() uint32 { return uint32(n.inode) }

// Do runs fn on an OS thread inside the namespace: sockets it creates belong
// to the namespace, and /proc/sys/net is the namespace's.
func (n *NetNS) Do(fn func() error) error {
	return nsthread.InNetNS(n.fd, fn)
}

// Sysctl writes a sysctl of the namespace, e.g. "net/ipv4/tcp_tw_reuse".
func (n *NetNS) Sysctl(name, value string) error {
	return n.Do(func() error {
		return os.WriteFile("/proc/sys/"+name, []byte(value), 0o644)
	})
}

// bpfMu serialises tests that attach twtrace's programs: they share the
// tracepoints and each asserts exact kernel-side counters.
var bpfMu sync.Mutex

// lockPath is the file LockBPF locks (a test of LockBPF points it elsewhere).
var lockPath = filepath.Join(os.TempDir(), "twtrace-bpf-test.lock")

// LockBPF holds a lock until the test ends, in this process and, through
// an flock(2) on a file, against the test binaries of other packages that
// go test runs at the same time: every program of every tracer runs for
// every TCP transition on the host, and a run nested in another on one CPU
// is skipped and counted as lost, so one package's load test would make
// another's exact counts fail. A load generator's tests take it too. Without
// root no test attaches programs, and only this process is locked.
func LockBPF(t testing.TB) {
	t.Helper()
	bpfMu.Lock()
	if os.Geteuid() != 0 {
		t.Cleanup(bpfMu.Unlock)
		return
	}
	path := lockPath
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		bpfMu.Unlock()
		t.Fatalf("lock %s: %v", path, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		bpfMu.Unlock()
		t.Fatalf("lock %s: %v", path, err)
	}
	t.Cleanup(func() {
		unix.Close(fd) // releases the flock
		bpfMu.Unlock()
	})
}

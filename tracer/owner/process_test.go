package owner

import (
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/twtrace/twtrace/internal/tracertest"
)

func TestProcessDetails(t *testing.T) {
	f := newFakeProc(t)
	f.add(proc{pid: 2, comm: "kthreadd", uids: "0\t0\t0\t0", cgroup: "0::/\n"})
	f.add(proc{pid: 555, comm: "sudo-ed", cmdline: "python3\x00-m\x00http.server\x008080\x00",
		uids: "1000\t0\t0\t0"}) // setuid: real 1000, effective 0; no cgroup file
	r, _ := newTestResolver(t, f.root)

	k, err := r.Process(2)
	if err != nil {
		t.Fatal(err)
	}
	if k.Cmdline != "" || k.Comm != "kthreadd" || k.Cgroup != "/" || k.Container != "" {
		t.Errorf("kernel thread = %+v", k)
	}
	p, err := r.Process(555)
	if err != nil {
		t.Fatal(err)
	}
	want := Process{PID: 555, Comm: "sudo-ed", Cmdline: "python3 -m http.server 8080", UID: 0, User: "root"}
	if p != want {
		t.Errorf("Process(555) =\n %+v\nwant %+v", p, want)
	}
	if _, err := r.Process(9999); err == nil {
		t.Error("Process of a missing pid: want an error")
	}
}

func TestLookupUser(t *testing.T) {
	if got := lookupUser(0); got != "root" {
		t.Errorf("lookupUser(0) = %q, want root", got)
	}
	// A uid no one named, as processes in user namespaces often have.
	if got := lookupUser(3999999999); got != "3999999999" {
		t.Errorf("lookupUser(3999999999) = %q, want the number", got)
	}
}

// TestLookupRealListener finds the test's own listener through the real /proc.
func TestLookupRealListener(t *testing.T) {
	tracertest.Require(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	inode := socketInodeOf(t, l.(*net.TCPListener))

	r, err := NewResolver("/proc")
	if err != nil {
		t.Fatal(err)
	}
	got, ok := r.Lookup(inode)
	st, _ := r.Stats()
	t.Logf("scan: %+v", st)
	if !ok || len(got) != 1 {
		t.Fatalf("Lookup(%d) = %+v, %v; want this test process", inode, got, ok)
	}
	p := got[0]
	if p.PID != uint32(os.Getpid()) || p.UID != uint32(os.Geteuid()) || p.User != "root" || p.Comm == "" {
		t.Errorf("holder = %+v; want pid %d, uid %d", p, os.Getpid(), os.Geteuid())
	}
	if st.Skipped > st.Procs/2 {
		t.Errorf("as root, %d of %d processes could not be read", st.Skipped, st.Procs)
	}
}

// socketInodeOf returns the inode of a listener's socket, as sock_diag
// reports it, from fstat on its fd.
func socketInodeOf(t *testing.T, l *net.TCPListener) uint32 {
	t.Helper()
	rc, err := l.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.Fstat(int(fd), &st) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFSOCK {
		t.Fatalf("fd mode %o is not a socket", st.Mode)
	}
	// Cross-check with the fd link, which is what the scan reads.
	link, err := os.Readlink("/proc/self/fd/" + fdOf(t, rc))
	if err != nil || link != "socket:["+strconv.FormatUint(st.Ino, 10)+"]" {
		t.Fatalf("fd link %q (%v) does not name inode %d", link, err, st.Ino)
	}
	return uint32(st.Ino)
}

func fdOf(t *testing.T, rc syscall.RawConn) string {
	var s string
	if err := rc.Control(func(fd uintptr) { s = strconv.Itoa(int(fd)) }); err != nil {
		t.Fatal(err)
	}
	return s
}

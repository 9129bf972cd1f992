package tracertest

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func readSysctl(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestNetNSIsPrivate(t *testing.T) {
	const knob = "net/ipv4/tcp_fin_timeout"
	host := readSysctl(t, knob)
	ns := NewNetNS(t)
	if err := ns.Sysctl(knob, "17"); err != nil {
		t.Fatal(err)
	}
	var inside string
	err := ns.Do(func() error {
		inside = readSysctl(t, knob)
		// Loopback is up: a connection works.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer l.Close()
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside != "17" {
		t.Errorf("sysctl inside the namespace = %q, want 17", inside)
	}
	if got := readSysctl(t, knob); got != host {
		t.Errorf("host sysctl changed from %q to %q", host, got)
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	if ns.Inode() == 0 || uint64(ns.Inode()) == st.Ino {
		t.Errorf("namespace inode %d, host's %d: want a new namespace", ns.Inode(), st.Ino)
	}
}

func TestPTY(t *testing.T) {
	term, tty := PTY(t, 132, 43)
	ws, err := unix.IoctlGetWinsize(int(tty.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col != 132 || ws.Row != 43 {
		t.Fatalf("the program's side: %+v, %v; want a terminal of 132x43", ws, err)
	}
	if _, err := tty.WriteString("hello\n"); err != nil {
		t.Fatal(err)
	}
	if err := term.Type("typed\n"); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64)
	n, err := tty.Read(b)
	if err != nil || string(b[:n]) != "typed\n" {
		t.Errorf("the program read %q, %v", b[:n], err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(term.Output(), "hello") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.HasPrefix(term.Output(), "hello") {
		t.Errorf("the terminal got %q", term.Output())
	}
}

// LockBPF holds a lock another process cannot take (flock locks belong to
// an open file, so a second open stands for another test binary), and
// gives it back when the test ends. The test locks a file of its own: the
// real one is other packages' to take meanwhile.
func TestLockBPFExcludesOtherProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	defer func(p string) { lockPath = p }(lockPath)
	lockPath = path
	try := func() error {
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	}
	t.Run("held", func(t *testing.T) {
		LockBPF(t)
		if err := try(); !errors.Is(err, unix.EWOULDBLOCK) {
			t.Errorf("flock while held: %v, want EWOULDBLOCK", err)
		}
	})
	if err := try(); err != nil {
		t.Errorf("flock after the test: %v", err)
	}
}

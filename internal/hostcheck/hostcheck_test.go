package hostcheck

import (
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/nsthread"
	"github.com/twtrace/twtrace/internal/tracertest"
)

// A new socket on a watched port shows in the diff; one elsewhere does not.
func TestDiffSeesANewSocket(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	watch := func(local, _ uint16) bool { return local == port }
	before, err := Take([]string{"ipv4/tcp_fin_timeout"}, watch)
	if err != nil {
		t.Fatal(err)
	}
	other, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if d := before.Diff(mustTake(t, watch)); d != nil {
		t.Errorf("a socket on another port made a diff: %v", d)
	}
	l, err = net.Listen("tcp4", l.Addr().String())
	if err != nil {
		t.Skipf("port %d taken in between: %v", port, err)
	}
	defer l.Close()
	d := before.Diff(mustTake(t, watch))
	if len(d) != 1 || !strings.HasPrefix(d[0], "new host socket: 10 127.0.0.1:") {
		t.Errorf("diff after a listen() on the watched port: %v", d)
	}
	changed := before
	changed.Sysctls = map[string]string{"ipv4/tcp_fin_timeout": "1"}
	if d := changed.Diff(before); len(d) != 1 || !strings.Contains(d[0], "net.ipv4.tcp_fin_timeout changed") {
		t.Errorf("diff of a sysctl: %v", d)
	}
}

func mustTake(t *testing.T, ports func(local, remote uint16) bool) State {
	t.Helper()
	s, err := Take([]string{"ipv4/tcp_fin_timeout"}, ports)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestProcesses(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if !slices.Contains(Children(os.Getpid()), pid) {
		t.Errorf("Children(%d) = %v, want %d among them", os.Getpid(), Children(os.Getpid()), pid)
	}
	if got := Alive([]int{pid}); !slices.Equal(got, []int{pid}) {
		t.Errorf("Alive = %v while it runs", got)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if got := Alive([]int{pid}); len(got) != 0 {
		t.Errorf("Alive = %v after it ended", got)
	}
}

func TestNetNSHolders(t *testing.T) {
	tracertest.Require(t)
	fd, ino, err := nsthread.NewNetNS()
	if err != nil {
		t.Fatal(err)
	}
	if h := NetNSHolders(ino, []int{os.Getpid()}); !slices.ContainsFunc(h, func(s string) bool {
		return strings.HasPrefix(s, strconv.Itoa(os.Getpid())+" fd ")
	}) {
		t.Errorf("holders of a namespace only an fd keeps: %v", h)
	}
	unix.Close(fd)
	if h := NetNSGone(ino, []int{os.Getpid()}); len(h) != 0 {
		t.Errorf("holders after the fd closed: %v", h)
	}
}

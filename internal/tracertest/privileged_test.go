package tracertest

import (
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
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

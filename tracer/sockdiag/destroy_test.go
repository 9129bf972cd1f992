package sockdiag

import (
	"errors"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/tracertest"
)

// A TIME_WAIT socket ended by Destroy is gone from the kernel's table at
// once, and the bind() it blocked succeeds; one with a wrong cookie leaves
// it alone, and a second Destroy finds nothing.
func TestDestroyTimeWait(t *testing.T) {
	ns := tracertest.NewNetNS(t)
	c, err := Dial(ns.FD())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	port := netip.MustParseAddrPort("127.0.0.1:9000")
	var lfd int
	err = ns.Do(func() error {
		var err error
		if lfd, _, err = listenTCP(port, 4); err != nil {
			return err
		}
		p, err := dialPair(lfd, port, netip.AddrPort{})
		if err != nil {
			return err
		}
		return activeClose(p.server, p.client) // TIME_WAIT on 127.0.0.1:9000
	})
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(lfd)
	tw := collect(t, c, unix.AF_INET, StateMask(StateTimeWait))
	if len(tw) != 1 {
		t.Fatalf("%d TIME_WAIT sockets, want 1", len(tw))
	}
	var s Socket
	for _, s = range tw { // the only one
	}
	if s.Src != port {
		t.Fatalf("TIME_WAIT on %v, want %v", s.Src, port)
	}
	bindErr := func() error {
		return ns.Do(func() error {
			fd, err := tcpSocket(unix.AF_INET, port)
			if err == nil {
				unix.Close(fd)
			}
			return err
		})
	}
	if err := bindErr(); !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("bind before Destroy: %v, want EADDRINUSE", err)
	}
	stale := s
	stale.Cookie++
	if err := c.Destroy(&stale); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Destroy with a wrong cookie: %v, want ENOENT", err)
	}
	if n := len(collect(t, c, unix.AF_INET, StateMask(StateTimeWait))); n != 1 {
		t.Fatalf("a Destroy with a wrong cookie removed the TIME_WAIT socket (%d left)", n)
	}
	if err := c.Destroy(&s); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if n := len(collect(t, c, unix.AF_INET, StateMask(StateTimeWait))); n != 0 {
		t.Errorf("%d TIME_WAIT sockets after Destroy, want 0", n)
	}
	if err := bindErr(); err != nil {
		t.Errorf("bind after Destroy: %v", err)
	}
	if err := c.Destroy(&s); !errors.Is(err, unix.ENOENT) {
		t.Errorf("second Destroy: %v, want ENOENT", err)
	}
	bad := s
	bad.Family = 99
	if err := c.Destroy(&bad); err == nil {
		t.Error("Destroy of family 99: no error")
	}
}

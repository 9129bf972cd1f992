package kstat

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/tracertest"
)

// TestReadNetNSSeesItsOwnSysctls sets sysctls in a private namespace to
// values the host does not have, and reads both.
func TestReadNetNSSeesItsOwnSysctls(t *testing.T) {
	tracertest.Require(t)
	host, err := NewReader("/proc")
	if err != nil {
		t.Fatal(err)
	}
	before, err := host.Sysctls()
	if err != nil {
		t.Fatal(err)
	}
	want := Sysctls{TWReuse: 1, FinTimeout: 17, PortRange: [2]int{40000, 40999}}
	if before.TWReuse == 1 {
		want.TWReuse = 0
	}
	if before.FinTimeout == 17 {
		want.FinTimeout = 18
	}
	if before.PortRange[0] == 40000 {
		want.PortRange = [2]int{41000, 41999}
	}
	ns := tracertest.NewNetNS(t)
	for name, v := range map[string]string{
		"net/ipv4/tcp_tw_reuse":        fmt.Sprint(want.TWReuse),
		"net/ipv4/tcp_fin_timeout":     fmt.Sprint(want.FinTimeout),
		"net/ipv4/ip_local_port_range": fmt.Sprintf("%d %d", want.PortRange[0], want.PortRange[1]),
	} {
		if err := ns.Sysctl(name, v); err != nil {
			t.Fatal(err)
		}
	}

	c, s, err := ReadNetNS(ns.FD())
	if err != nil {
		t.Fatal(err)
	}
	if s.TWReuse != want.TWReuse || s.FinTimeout != want.FinTimeout || s.PortRange != want.PortRange {
		t.Errorf("namespace sysctls: tw_reuse %d, fin_timeout %d, port range %v; want %d, %d, %v",
			s.TWReuse, s.FinTimeout, s.PortRange, want.TWReuse, want.FinTimeout, want.PortRange)
	}
	if c.TimeWait != 0 || c.TW != 0 || c.InUse != 0 {
		t.Errorf("a new namespace has counters %+v; want zeros", c)
	}
	after, err := host.Sysctls()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(after.Missing, before.Missing) || after.TWReuse != before.TWReuse ||
		after.FinTimeout != before.FinTimeout || after.PortRange != before.PortRange {
		t.Errorf("host sysctls changed from %+v to %+v", before, after)
	}
}

// TestReadNetNSCountsTimeWait makes TIME_WAIT and FIN_WAIT2 timewait
// sockets inside a namespace and watches the namespace's counters follow.
func TestReadNetNSCountsTimeWait(t *testing.T) {
	ns := tracertest.NewNetNS(t)
	var l net.Listener
	var clientPorts []int
	err := ns.Do(func() error {
		var err error
		if l, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			return err
		}
		for range 3 {
			port, err := closeClientFirst(l, 0)
			if err != nil {
				return err
			}
			clientPorts = append(clientPorts, port)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	// The active closer, the client, is the side left in TIME_WAIT.
	c := waitCounters(t, ns, "3 TIME_WAIT sockets", func(c Counters) bool { return c.TimeWait == 3 })
	if c.TW != 3 || c.TWKilled != 0 || c.TWRecycled != 0 {
		t.Errorf("after 3 TIME_WAIT entries: %+v; want TW 3 (counted on entry)", c)
	}
	if got := timeWaitPorts(t, ns); !slices.Equal(got, sorted(clientPorts)) {
		t.Errorf("TIME_WAIT local ports %v, want the clients' %v", got, sorted(clientPorts))
	}

	// connect() from a TIME_WAIT socket's own port to the same peer takes
	// the 4-tuple over: both sockets have SO_REUSEADDR, so bind() passes,
	// and with timestamps connect() may reuse an explicitly bound tuple.
	var kept []net.Conn
	defer func() {
		for _, k := range kept {
			k.Close()
		}
	}()
	err = ns.Do(func() error {
		c, s, err := dialAccept(l, clientPorts[0])
		kept = append(kept, c, s)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	c = waitCounters(t, ns, "a recycled TIME_WAIT", func(c Counters) bool { return c.TWRecycled == 1 })
	if c.TimeWait != 2 {
		t.Errorf("after reuse: %d timewait sockets, want 2", c.TimeWait)
	}

	// A client that closes while the server never does is an orphaned
	// FIN_WAIT2; with tcp_fin_timeout at 3 s its timewait form is armed
	// for at most 4 s, which the kernel counts in TWKilled.
	if err := ns.Sysctl("net/ipv4/tcp_fin_timeout", "3"); err != nil {
		t.Fatal(err)
	}
	err = ns.Do(func() error {
		c, s, err := dialAccept(l, 0)
		if err != nil {
			return err
		}
		kept = append(kept, s)
		return c.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	c = waitCounters(t, ns, "an orphaned FIN_WAIT2", func(c Counters) bool { return c.TWKilled == 1 })
	if c.TW != 3 {
		t.Errorf("TW %d after a FIN_WAIT2 timewait socket, want still 3", c.TW)
	}
}

// closeClientFirst opens a connection to l from localPort (0: any), closes
// the client, then the server once it has read the FIN.
func closeClientFirst(l net.Listener, localPort int) (int, error) {
	c, s, err := dialAccept(l, localPort)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	port := c.LocalAddr().(*net.TCPAddr).Port
	if err := c.Close(); err != nil {
		return 0, err
	}
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, s); err != nil {
		return 0, fmt.Errorf("server waiting for the client's FIN: %w", err)
	}
	return port, nil
}

// dialAccept connects to l with SO_REUSEADDR, from localPort if not 0.
func dialAccept(l net.Listener, localPort int) (client, server net.Conn, err error) {
	d := net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: localPort},
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if client, err = d.DialContext(ctx, "tcp4", l.Addr().String()); err != nil {
		return nil, nil, fmt.Errorf("dial from port %d: %w", localPort, err)
	}
	if server, err = l.Accept(); err != nil {
		client.Close()
		return nil, nil, err
	}
	return client, server, nil
}

// waitCounters polls the namespace's counters until ok, for at most 5 s.
func waitCounters(t *testing.T, ns *tracertest.NetNS, what string, ok func(Counters) bool) Counters {
	t.Helper()
	var c Counters
	for range 250 {
		var err error
		if c, _, err = ReadNetNS(ns.FD()); err != nil {
			t.Fatal(err)
		}
		if ok(c) {
			return c
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("waiting for %s: counters %+v", what, c)
	return c
}

// timeWaitPorts lists the local ports of the namespace's TIME_WAIT sockets.
func timeWaitPorts(t *testing.T, ns *tracertest.NetNS) []int {
	t.Helper()
	const tcpTimeWait = 6
	var ports []int
	err := ns.Do(func() error {
		fs, err := procfs.NewFS("/proc/thread-self")
		if err != nil {
			return err
		}
		lines, err := fs.NetTCP()
		if err != nil {
			return err
		}
		for _, l := range lines {
			if l.St == tcpTimeWait {
				ports = append(ports, int(l.LocalPort))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sorted(ports)
}

func sorted(s []int) []int {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

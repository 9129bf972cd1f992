package session

import (
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/tracertest"
	"github.com/twtrace/twtrace/tracer"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/table"
)

// dialIn connects from inside ns.
func dialIn(t *testing.T, ns *tracertest.NetNS, addr string) (net.Conn, error) {
	t.Helper()
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = net.Dial("tcp4", addr)
		return err
	})
	return c, err
}

// listenIn listens on 127.0.0.1:port inside ns (SO_REUSEADDR, as Go does).
func listenIn(t *testing.T, ns *tracertest.NetNS, port uint16) net.Listener {
	t.Helper()
	var l net.Listener
	if err := ns.Do(func() error {
		var err error
		l, err = net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(int(port)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return l
}

// closeFirst makes one connection to l from inside ns; closer closes first
// (the server, or the client) and keeps the TIME_WAIT.
func closeFirst(t *testing.T, ns *tracertest.NetNS, l net.Listener, server bool) error {
	t.Helper()
	_, err := tracertest.CloseFirst(l, func(addr string) (net.Conn, error) { return dialIn(t, ns, addr) }, server)
	return err
}

// plainBind binds a socket without SO_REUSEADDR to 127.0.0.1:port inside
// ns, as a restarted server that does not set it would, and returns the error.
func plainBind(t *testing.T, ns *tracertest.NetNS, port uint16) error {
	t.Helper()
	return ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		return unix.Bind(fd, &unix.SockaddrInet4{Port: int(port), Addr: [4]byte{127, 0, 0, 1}})
	})
}

func portRow(tab *table.Table, netns uint32, port uint16) *table.PortSummary {
	ports := tab.Ports()
	for i := range ports {
		if ports[i].NetNS == netns && ports[i].Port == port {
			return &ports[i]
		}
	}
	return nil
}

// A server that closed first is stopped, and only then does the session
// start, as when one starts twtrace because the restart failed: its
// TIME_WAITs come from the snapshot alone. On 18090, outside the port
// range, they are the server's: on its row, not under the clients', not
// remote endpoints. On 40005, inside the range, they can only be guessed a
// client's, and the row says so; the failed restart (a real EADDRINUSE)
// names the port, and its row then shows the failure beside them.
func TestStoppedServerTimeWaits(t *testing.T) {
	ns := tracertest.NewNetNS(t)
	const outside, inside = 18090, 40005
	for _, port := range []uint16{outside, inside} {
		l := listenIn(t, ns, port)
		for range 3 {
			if err := closeFirst(t, ns, l, true); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
	}
	r := start(t, Config{
		Tracer:     tracer.Config{Filter: event.Filter{Ports: []uint16{outside, inside}}},
		Namespaces: []int{ns.FD()},
	})
	tab := r.s.Table()
	if p := portRow(tab, ns.Inode(), outside); p == nil || p.TimeWait != 3 {
		t.Errorf("port %d: %+v, want its 3 TIME_WAIT", outside, p)
	}
	c := portRow(tab, ns.Inode(), 0)
	if c == nil || c.Clients != 3 || c.Guessed != 3 || c.TimeWait != 3 {
		t.Errorf("clients' row %+v, want the 3 TIME_WAIT of %d, guessed", c, inside)
	}
	// The guesses are remotes (their remote ends are the clients' ports);
	// nothing else is.
	rem, guessed := tab.Remotes(), 0
	for _, x := range rem {
		if x.Guessed != x.Total {
			t.Errorf("remote %+v: only the guesses on %d may be remotes", x, inside)
		}
		guessed += x.Guessed
	}
	if guessed != 3 {
		t.Errorf("remotes %+v, want the 3 guesses", rem)
	}

	for _, port := range []uint16{outside, inside} {
		if err := plainBind(t, ns, port); !errors.Is(err, unix.EADDRINUSE) {
			t.Fatalf("restart on %d: %v, want EADDRINUSE", port, err)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		po, pi := portRow(tab, ns.Inode(), outside), portRow(tab, ns.Inode(), inside)
		if po != nil && pi != nil && po.BindFailures == 1 && pi.BindFailures == 1 {
			for _, p := range []*table.PortSummary{po, pi} {
				if p.TimeWait != 3 || !p.Service {
					t.Errorf("port %d after the failed restart: %+v, want the failure beside 3 TIME_WAIT", p.Port, p)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no bind failure on the ports' rows: %+v, %+v", po, pi)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c := portRow(tab, ns.Inode(), 0); c != nil && c.TimeWait != 0 {
		t.Errorf("clients' row %+v after the failure named the port", c)
	}
	if rem := tab.Remotes(); len(rem) != 0 {
		t.Errorf("remotes %+v, want none: every TIME_WAIT is a server's", rem)
	}
}

// Port exhaustion is measured against the namespace's own range: with
// 40000-40009 and tcp_tw_reuse off, ten connections that close first use
// it up (the eleventh gets EADDRNOTAVAIL), and the Remotes summary says 10
// of 10, not 10 of the host's range.
func TestExhaustionInNamespaceRange(t *testing.T) {
	ns := tracertest.NewNetNS(t)
	for k, v := range map[string]string{
		"net/ipv4/tcp_tw_reuse":        "0",
		"net/ipv4/ip_local_port_range": "40000 40009",
	} {
		if err := ns.Sysctl(k, v); err != nil {
			t.Fatal(err)
		}
	}
	const port = 7020
	r := start(t, Config{
		Tracer:     tracer.Config{Filter: event.Filter{Ports: []uint16{port}}},
		Namespaces: []int{ns.FD()},
	})
	l := listenIn(t, ns, port)
	defer l.Close()
	for i := range 10 {
		if err := closeFirst(t, ns, l, false); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	if _, err := dialIn(t, ns, l.Addr().String()); !errors.Is(err, unix.EADDRNOTAVAIL) {
		t.Fatalf("the eleventh connect(): %v, want EADDRNOTAVAIL", err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		rem := r.s.Table().Remotes()
		if len(rem) == 1 && rem[0].TimeWait == 10 {
			x := rem[0]
			if x.NetNS != ns.Inode() || x.PortRange != (table.PortRange{40000, 40009}) || x.Guessed != 0 ||
				x.Exhaustion(x.PortRange.Size()) != 1 {
				t.Errorf("remote %+v: want 10 TIME_WAIT of the namespace's 10 ports", x)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("remotes %+v, want 10 TIME_WAIT towards %v", rem, l.Addr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

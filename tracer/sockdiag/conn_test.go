package sockdiag

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/twtrace/twtrace/internal/tracertest"
	"golang.org/x/sys/unix"
)

// world is what a test built in its namespace, by cookie (SO_COOKIE).
type world struct {
	listeners   map[uint64]netip.AddrPort // cookie → listening address
	established map[uint64][2]netip.AddrPort
	timeWait    map[uint64][2]netip.AddrPort // cookie of the closed socket → its tuple
	closedAt    time.Time                    // when the last TIME_WAIT began
}

// build makes, in family's loopback, a listener, one established pair and
// nTW TIME_WAIT sockets (the client closes first). Call it inside NetNS.Do.
func (w *world) build(t *testing.T, loopback netip.Addr, nTW int) error {
	lfd, laddr, err := listenTCP(netip.AddrPortFrom(loopback, 0), 16)
	if err != nil {
		return err
	}
	t.Cleanup(func() { unix.Close(lfd) })
	lc, err := cookie(lfd)
	if err != nil {
		return err
	}
	w.listeners[lc] = laddr

	est, err := dialPair(lfd, laddr, netip.AddrPort{})
	if err != nil {
		return err
	}
	t.Cleanup(func() { unix.Close(est.client); unix.Close(est.server) })
	cc, err := cookie(est.client)
	if err != nil {
		return err
	}
	sc, err := cookie(est.server)
	if err != nil {
		return err
	}
	w.established[cc] = [2]netip.AddrPort{est.local, laddr}
	w.established[sc] = [2]netip.AddrPort{laddr, est.local}

	for range nTW {
		p, err := dialPair(lfd, laddr, netip.AddrPort{})
		if err != nil {
			return err
		}
		// Asking for the cookie generates it, so the TIME_WAIT socket
		// inherits it, as it does once twtrace's BPF program has asked.
		c, err := cookie(p.client)
		if err != nil {
			return err
		}
		if err := activeClose(p.client, p.server); err != nil {
			return err
		}
		w.timeWait[c] = [2]netip.AddrPort{p.local, laddr}
	}
	w.closedAt = time.Now()
	return nil
}

// collect dumps into a map by cookie, failing t on error.
func collect(t testing.TB, c *Conn, family uint8, states uint32) map[uint64]Socket {
	t.Helper()
	got := map[uint64]Socket{}
	err := c.Dump(family, states, func(s *Socket) error {
		if _, dup := got[s.Cookie]; dup {
			t.Errorf("cookie %x reported twice", s.Cookie)
		}
		got[s.Cookie] = *s
		return nil
	})
	if err != nil {
		t.Fatalf("Dump(family %d, states %#x): %v", family, states, err)
	}
	return got
}

func TestDumpNamespace(t *testing.T) {
	ns := tracertest.NewNetNS(t)
	w4 := &world{map[uint64]netip.AddrPort{}, map[uint64][2]netip.AddrPort{}, map[uint64][2]netip.AddrPort{}, time.Time{}}
	w6 := &world{map[uint64]netip.AddrPort{}, map[uint64][2]netip.AddrPort{}, map[uint64][2]netip.AddrPort{}, time.Time{}}
	err := ns.Do(func() error {
		if err := w4.build(t, netip.MustParseAddr("127.0.0.1"), 3); err != nil {
			return err
		}
		return w6.build(t, netip.IPv6Loopback(), 2)
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Dial(ns.FD())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nTW := len(w4.timeWait) + len(w6.timeWait)
	settle(t, c, unix.AF_UNSPEC, StateMask(StateTimeWait), func(m map[uint64]Socket) bool { return len(m) == nTW })
	var ss []ssTimeWait
	if err := ns.Do(func() error { ss, err = runSS(); return err }); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		family uint8
		w      *world
	}{{"ipv4", unix.AF_INET, w4}, {"ipv6", unix.AF_INET6, w6}} {
		t.Run(tc.name, func(t *testing.T) {
			got := collect(t, c, tc.family, AllStates)
			checkWorld(t, got, tc.family, tc.w)
			if want := 3 + len(tc.w.timeWait); len(got) != want {
				t.Errorf("%d sockets in the namespace, want %d: %v", len(got), want, got)
			}
		})
	}

	t.Run("state filter", func(t *testing.T) {
		tw := collect(t, c, unix.AF_INET, StateMask(StateTimeWait))
		if len(tw) != len(w4.timeWait) {
			t.Errorf("TIME_WAIT dump: %d sockets, want %d", len(tw), len(w4.timeWait))
		}
		for k, s := range tw {
			if s.State != StateTimeWait {
				t.Errorf("TIME_WAIT dump returned %x in state %d", k, s.State)
			}
		}
		l := collect(t, c, unix.AF_INET6, StateMask(StateListen))
		if len(l) != 1 || l[firstKey(w6.listeners)].State != StateListen {
			t.Errorf("LISTEN dump of IPv6: %v, want the one listener", l)
		}
	})

	t.Run("both families", func(t *testing.T) {
		got := collect(t, c, unix.AF_UNSPEC, AllStates)
		checkWorld(t, got, unix.AF_INET, w4)
		checkWorld(t, got, unix.AF_INET6, w6)
		if want := 6 + nTW; len(got) != want {
			t.Errorf("%d sockets, want %d", len(got), want)
		}
	})

	t.Run("agrees with ss", func(t *testing.T) {
		got := collect(t, c, unix.AF_UNSPEC, StateMask(StateTimeWait))
		if len(ss) != len(got) {
			t.Errorf("ss saw %d TIME_WAIT sockets, sockdiag %d", len(ss), len(got))
		}
		for _, tw := range ss {
			s, ok := got[tw.cookie]
			if !ok {
				t.Errorf("ss's sk:%x %v→%v missing from the dump", tw.cookie, tw.src, tw.dst)
				continue
			}
			if s.Src != tw.src || s.Dst != tw.dst {
				t.Errorf("sk:%x: ss %v→%v, sockdiag %v→%v", tw.cookie, tw.src, tw.dst, s.Src, s.Dst)
			}
			// ss ran first and truncates to whole seconds from 10 s up:
			// it may show up to 1 s less than the kernel had, and ours
			// was read a moment later.
			if d := tw.left - s.Expires; d < -time.Second || d > 2*time.Second {
				t.Errorf("sk:%x: ss says %v left, sockdiag %v", tw.cookie, tw.left, s.Expires)
			}
		}
	})

	t.Run("host namespace", func(t *testing.T) {
		host, err := Dial(-1)
		if err != nil {
			t.Fatal(err)
		}
		defer host.Close()
		got := collect(t, host, unix.AF_UNSPEC, AllStates)
		for _, w := range []*world{w4, w6} {
			for _, m := range []map[uint64][2]netip.AddrPort{w.established, w.timeWait} {
				for k := range m {
					if _, ok := got[k]; ok {
						t.Errorf("the host's dump shows the private namespace's socket %x", k)
					}
				}
			}
			for k := range w.listeners {
				if _, ok := got[k]; ok {
					t.Errorf("the host's dump shows the private namespace's listener %x", k)
				}
			}
		}
	})
}

// checkWorld checks that got holds w's sockets of family, as built.
func checkWorld(t *testing.T, got map[uint64]Socket, family uint8, w *world) {
	t.Helper()
	for k, addr := range w.listeners {
		s, ok := got[k]
		switch {
		case !ok:
			t.Errorf("listener %v (cookie %x) missing", addr, k)
		case s.Family != family || s.State != StateListen || s.Src != addr || s.Inode == 0 || s.WQueue != 16:
			t.Errorf("listener %v: got %+v, want family %d, LISTEN, an inode, backlog 16", addr, s, family)
		}
	}
	for k, tu := range w.established {
		s, ok := got[k]
		switch {
		case !ok:
			t.Errorf("established %v→%v (cookie %x) missing", tu[0], tu[1], k)
		case s.State != StateEstablished || s.Src != tu[0] || s.Dst != tu[1] || s.Inode == 0 || s.TimeWaitSock():
			t.Errorf("established %v→%v: got %+v", tu[0], tu[1], s)
		}
	}
	for k, tu := range w.timeWait {
		s, ok := got[k]
		if !ok {
			t.Errorf("TIME_WAIT %v→%v: no socket with the closed socket's cookie %x", tu[0], tu[1], k)
			continue
		}
		if s.State != StateTimeWait || !s.TimeWaitSock() || s.Src != tu[0] || s.Dst != tu[1] || s.Inode != 0 || s.UID != 0 {
			t.Errorf("TIME_WAIT %v→%v: got %+v", tu[0], tu[1], s)
		}
		// TCP_TIMEWAIT_LEN is 60 s, counted from the close; 1 s of slack
		// for the sockets closed before the last one, and for jiffies.
		minLeft := 60*time.Second - time.Since(w.closedAt) - time.Second
		if s.Expires > 60*time.Second || s.Expires < minLeft {
			t.Errorf("TIME_WAIT %v→%v: %v left, want between %v and 60s", tu[0], tu[1], s.Expires, minLeft)
		}
	}
}

// settle dumps until ok accepts the result, for at most 2 s: on loopback,
// close() returns before the peer has processed the FIN, so sockets reach
// their next state a moment later.
func settle(t testing.TB, c *Conn, family uint8, states uint32, ok func(map[uint64]Socket) bool) map[uint64]Socket {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		got := collect(t, c, family, states)
		if ok(got) || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func firstKey[V any](m map[uint64]V) uint64 {
	for k := range m {
		return k
	}
	return 0
}

// TestDumpOrphanFinWait2 checks the kernel fact twtrace's inference relies
// on: an orphaned FIN_WAIT2 connection is a timewait mini-socket in substate
// FIN_WAIT2 with tcp_fin_timeout on its timer, turned into TIME_WAIT with 60 s
// by the peer's FIN.
func TestDumpOrphanFinWait2(t *testing.T) {
	ns := tracertest.NewNetNS(t)
	if err := ns.Sysctl("net/ipv4/tcp_fin_timeout", "30"); err != nil {
		t.Fatal(err)
	}
	var orphan, halfClosed conn
	var orphanCookie, halfCookie uint64
	err := ns.Do(func() error {
		lfd, laddr, err := listenTCP(netip.MustParseAddrPort("127.0.0.1:0"), 4)
		if err != nil {
			return err
		}
		t.Cleanup(func() { unix.Close(lfd) })
		if orphan, err = dialPair(lfd, laddr, netip.AddrPort{}); err != nil {
			return err
		}
		if halfClosed, err = dialPair(lfd, laddr, netip.AddrPort{}); err != nil {
			return err
		}
		t.Cleanup(func() { unix.Close(halfClosed.client); unix.Close(halfClosed.server); unix.Close(orphan.server) })
		if orphanCookie, err = cookie(orphan.client); err != nil {
			return err
		}
		if halfCookie, err = cookie(halfClosed.client); err != nil {
			return err
		}
		// The peer acknowledges the FIN but does not close: the
		// orphan waits in FIN_WAIT2, the half-closed one too, as a full
		// socket its owner still holds.
		if err := unix.Close(orphan.client); err != nil {
			return err
		}
		return unix.Shutdown(halfClosed.client, unix.SHUT_WR)
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Dial(ns.FD())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// The orphan becomes a mini-socket when the peer's ACK of its FIN
	// arrives, a moment after close() returned.
	fw2 := settle(t, c, unix.AF_INET, StateMask(StateFinWait2), func(m map[uint64]Socket) bool {
		return m[orphanCookie].TimeWaitSock() && m[halfCookie].State == StateFinWait2
	})
	if s, ok := fw2[orphanCookie]; !ok || s.State != StateFinWait2 || !s.TimeWaitSock() || s.Inode != 0 ||
		s.Expires > 30*time.Second || s.Expires < 28*time.Second {
		t.Errorf("orphaned FIN_WAIT2: got %+v (found %v), want a timewait mini-socket in FIN_WAIT2 with about 30 s left", s, ok)
	}
	// The kernel's SEND_SHUTDOWN is 2, SHUT_WR+1.
	if s, ok := fw2[halfCookie]; !ok || s.State != StateFinWait2 || s.TimeWaitSock() || s.Inode == 0 || s.Shutdown != unix.SHUT_WR+1 {
		t.Errorf("half-closed FIN_WAIT2: got %+v (found %v), want a full socket with an inode, shut down for sending", s, ok)
	}
	if _, ok := collect(t, c, unix.AF_INET, StateMask(StateTimeWait))[orphanCookie]; ok {
		t.Error("a TIME_WAIT dump shows the FIN_WAIT2 mini-socket: the kernel filters by substate")
	}

	if err := ns.Do(func() error { return unix.Close(orphan.server) }); err != nil {
		t.Fatal(err)
	}
	tw := settle(t, c, unix.AF_INET, StateMask(StateTimeWait), func(m map[uint64]Socket) bool {
		_, ok := m[orphanCookie]
		return ok
	})
	if s, ok := tw[orphanCookie]; !ok || s.State != StateTimeWait || s.Expires > 60*time.Second || s.Expires < 58*time.Second {
		t.Errorf("after the peer's FIN: got %+v (found %v), want TIME_WAIT with the full 60 s again", s, ok)
	}
}

func TestDumpStopsEarly(t *testing.T) {
	ns := tracertest.NewNetNS(t)
	// Enough listeners for several datagrams, so that the rest of the
	// reply has to be read past the error.
	const n = 300
	err := ns.Do(func() error {
		for range n {
			fd, _, err := listenTCP(netip.MustParseAddrPort("127.0.0.1:0"), 1)
			if err != nil {
				return err
			}
			t.Cleanup(func() { unix.Close(fd) })
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Dial(ns.FD())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := errors.New("enough")
	calls := 0
	err = c.Dump(unix.AF_INET, AllStates, func(*Socket) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Dump = %v after %d calls, want fn's error after 1", err, calls)
	}
	if got := collect(t, c, unix.AF_INET, AllStates); len(got) != n {
		t.Errorf("the next dump got %d sockets, want %d", len(got), n)
	}
}

func TestDumpAllocs(t *testing.T) {
	ns := tracertest.NewNetNS(t)
	const n = 2000
	if _, err := makeTimeWaits(ns, n, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	c, err := Dial(ns.FD())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	settle(t, c, unix.AF_INET, StateMask(StateTimeWait), func(m map[uint64]Socket) bool { return len(m) == n })
	count := 0
	fn := func(*Socket) error { count++; return nil } // made once: a closure made per call would count
	allocs := testing.AllocsPerRun(5, func() {
		count = 0
		if err := c.Dump(unix.AF_INET, StateMask(StateTimeWait), fn); err != nil {
			t.Fatal(err)
		}
	})
	if count != n {
		t.Errorf("dumped %d TIME_WAIT sockets, want %d", count, n)
	}
	// None per socket, per datagram, or even per request.
	if allocs > 0 {
		t.Errorf("%v allocations per dump of %d sockets, want none", allocs, n)
	}
}

func TestDialAndDumpErrors(t *testing.T) {
	// Neither needs privilege: a dump of the caller's namespace does not.
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if c, err := Dial(p[0]); err == nil {
		c.Close()
		t.Error("Dial(a pipe) succeeded, want an error")
	}
	c, err := Dial(-1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Dump(unix.AF_UNIX, AllStates, func(*Socket) error { return nil }); err == nil {
		t.Error("Dump(AF_UNIX) succeeded, want an error")
	}
	if err := c.Dump(unix.AF_INET, AllStates, func(*Socket) error { return nil }); err != nil {
		t.Errorf("Dump after a refused family: %v", err)
	}
}

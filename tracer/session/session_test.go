package session

// Privileged tests: a real session (BPF programs, sock_diag, /proc) against
// real sockets on loopback and in private network namespaces.

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/twtrace/twtrace/internal/tracertest"
	"github.com/twtrace/twtrace/tracer"
	"github.com/twtrace/twtrace/tracer/table"
)

type running struct {
	s    *Session
	mu   sync.Mutex
	evs  []event.Event
	stop context.CancelFunc
	done chan error
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	tracertest.Require(t)
	tracertest.LockBPF(t)
	cfg.Tracer.WakeupEvery = 20 * time.Millisecond
	s, err := Start(cfg)
	if err != nil {
		var fe *tracer.FeatureError
		if errors.As(err, &fe) {
			tracertest.Unavailable(t, err)
		}
		t.Fatalf("start: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{s: s, stop: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- s.Run(ctx, func(b []event.Event) error {
			r.mu.Lock()
			r.evs = append(r.evs, b...)
			r.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("run: %v", err)
		}
		s.Close()
	})
	return r
}

// waitEvent waits (bounded) for an event that satisfies match.
func (r *running) waitEvent(t *testing.T, what string, limit time.Duration, match func(*event.Event) bool) event.Event {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for i := range r.evs {
			if match(&r.evs[i]) {
				e := r.evs[i]
				r.mu.Unlock()
				return e
			}
		}
		r.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t.Fatalf("no %s within %v; events: %+v", what, limit, r.evs)
	return event.Event{}
}

func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func listen(t *testing.T, port uint16) net.Listener {
	t.Helper()
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:"+strconv.Itoa(int(port)))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// serverClosesFirst leaves a TIME_WAIT on the server's side of a connection.
func serverClosesFirst(t *testing.T, l net.Listener) {
	t.Helper()
	if _, err := tracertest.CloseFirst(l, nil, true); err != nil {
		t.Fatal(err)
	}
}

// TIME_WAIT sockets made before the session starts come from its snapshot
// with their timers, which agree with ss; the owner of a pre-existing
// listener is found through /proc; the SO_REUSEADDR of both through the
// socket iterator.
func TestPreexistingSockets(t *testing.T) {
	tracertest.Require(t)
	port := freePort(t)
	l := listen(t, port)
	defer l.Close()
	for range 3 {
		serverClosesFirst(t, l)
	}
	time.Sleep(1200 * time.Millisecond) // timers well below 60 s, so a stale value shows

	r := start(t, Config{Tracer: tracer.Config{Filter: event.Filter{Ports: []uint16{port}}}})
	now := time.Now()
	out, err := exec.Command("ss", "-H", "-tan", "-o", "state", "time-wait", "sport", "=", ":"+strconv.Itoa(int(port))).Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	kernel := map[netip.AddrPort]time.Duration{}
	for _, line := range regexp.MustCompile(`\n`).Split(string(out), -1) {
		if m := regexp.MustCompile(`^\s*\d+\s+\d+\s+(\S+)\s+(\S+)\s+timer:\(timewait,(\d+)sec,\d+\)`).FindStringSubmatch(line); m != nil {
			secs, _ := strconv.Atoi(m[3])
			kernel[netip.MustParseAddrPort(m[2])] = time.Duration(secs) * time.Second
		}
	}
	if len(kernel) != 3 {
		t.Fatalf("ss shows %d TIME_WAIT sockets on port %d, want 3:\n%s", len(kernel), port, out)
	}
	tws, _ := r.s.Table().Sockets(table.Query{Ports: []uint16{port}, States: []event.State{event.StateTimeWait}}, now)
	if len(tws) != 3 {
		t.Fatalf("table has %d TIME_WAIT sockets on port %d, want 3: %+v", len(tws), port, tws)
	}
	for _, s := range tws {
		ss, ok := kernel[s.Dst]
		if !ok {
			t.Errorf("TIME_WAIT to %v not in ss", s.Dst)
			continue
		}
		// ss truncates to whole seconds.
		if d := s.Remaining(now) - ss; d < -500*time.Millisecond || d > 1500*time.Millisecond {
			t.Errorf("TIME_WAIT to %v: %v left, ss says %v", s.Dst, s.Remaining(now), ss)
		}
		if s.Remaining(now) > 59*time.Second || s.Source != "sock_diag" || !s.Confirmed {
			t.Errorf("TIME_WAIT %+v: want a confirmed snapshot entry with less than 59 s left", s)
		}
		// Go's listeners set SO_REUSEADDR; accepted sockets, and the
		// TIME_WAITs they leave, inherit it (read by the iterator).
		if s.Reuse != event.ReuseKnown|event.ReuseAddr {
			t.Errorf("TIME_WAIT to %v: reuse %v, want addr", s.Dst, s.Reuse)
		}
	}
	ls, _ := r.s.Table().Sockets(table.Query{Ports: []uint16{port}, States: []event.State{event.StateListen}}, now)
	if len(ls) != 1 || int(ls[0].Owner) != os.Getpid() || ls[0].Inode == 0 {
		t.Errorf("listener %+v: want owner %d (the test) found through /proc", ls, os.Getpid())
	} else if ls[0].Reuse != event.ReuseKnown|event.ReuseAddr {
		t.Errorf("listener: reuse %v, want addr", ls[0].Reuse)
	}
}

// A TIME_WAIT created while the session runs appears at once (inferred) and
// its end is reported from sock_diag: an orphaned FIN_WAIT2 under a short
// tcp_fin_timeout expires; one hit by a RST is killed.
func TestTimeWaitEnds(t *testing.T) {
	ns := tracertest.NewNetNS(t)
	if err := ns.Sysctl("net/ipv4/tcp_fin_timeout", "3"); err != nil {
		t.Fatal(err)
	}
	const port = 7001
	r := start(t, Config{
		Tracer:     tracer.Config{Filter: event.Filter{Ports: []uint16{port}}},
		Namespaces: []int{ns.FD()},
		// Rounds once a second whatever else is on the host: a dump walks
		// hash tables every namespace shares, and beside the 18 000
		// TIME_WAITs another package's load test leaves on the host for
		// 60 s, the default budget spaces rounds by 2-5 s (as it should).
		// This test is about how ends are found, not about the budget.
		ReconcileBudget: 10,
	})
	var l net.Listener
	var keep, reset net.Conn
	if err := ns.Do(func() error {
		var err error
		l, err = net.Listen("tcp4", "127.0.0.1:7001")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The server closes; the client neither reads nor closes: the server's
	// side becomes an orphaned FIN_WAIT2, a timewait socket with tcp_fin_timeout.
	orphan := func() (net.Conn, netip.AddrPort) {
		var c net.Conn
		if err := ns.Do(func() error {
			var err error
			c, err = net.Dial("tcp4", "127.0.0.1:7001")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		a, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		a.Close()
		return c, netip.MustParseAddrPort(c.LocalAddr().String())
	}
	keep, keepAddr := orphan()
	defer keep.Close()
	enter := r.waitEvent(t, "an inferred TIME_WAIT enter", 3*time.Second, func(e *event.Event) bool {
		return e.Kind == event.KindTimeWait && e.TimeWait == event.TimeWaitEnter && e.Dst == keepAddr
	})
	if enter.Source != event.SourceInferred || enter.NetNS != ns.Inode() || enter.Src != netip.MustParseAddrPort("127.0.0.1:7001") {
		t.Errorf("enter %+v", enter)
	}

	reset, resetAddr := orphan()
	r.waitEvent(t, "the second enter", 3*time.Second, func(e *event.Event) bool {
		return e.Kind == event.KindTimeWait && e.TimeWait == event.TimeWaitEnter && e.Dst == resetAddr
	})
	// SO_LINGER 0: close() sends a RST, which kills the peer's timewait socket.
	if err := reset.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	reset.Close()
	kill := r.waitEvent(t, "a kill", 4*time.Second, func(e *event.Event) bool {
		return e.Kind == event.KindTimeWait && e.Dst == resetAddr && e.TimeWait != event.TimeWaitEnter
	})
	if kill.TimeWait != event.TimeWaitKill || kill.Source != event.SourceSockDiag {
		t.Errorf("end of the reset TIME_WAIT: %v from %v, want kill from sock_diag", kill.TimeWait, kill.Source)
	}
	exp := r.waitEvent(t, "an expire", 8*time.Second, func(e *event.Event) bool {
		return e.Kind == event.KindTimeWait && e.Dst == keepAddr && e.TimeWait != event.TimeWaitEnter
	})
	if exp.TimeWait != event.TimeWaitExpire || exp.Source != event.SourceSockDiag {
		t.Errorf("end of the orphan: %v from %v, want expire from sock_diag", exp.TimeWait, exp.Source)
	}
	if d := exp.Time.Sub(enter.Time); d < 2*time.Second || d > 6*time.Second {
		t.Errorf("orphan ended %v after it began, want about tcp_fin_timeout (3 s)", d)
	}
}

// With tcp_tw_reuse=1 and two local ports, the third connection must take a
// TIME_WAIT's 4-tuple: the session reports the reuse.
func TestTimeWaitReuse(t *testing.T) {
	ns := tracertest.NewNetNS(t)
	for k, v := range map[string]string{
		"net/ipv4/tcp_tw_reuse":        "1",
		"net/ipv4/ip_local_port_range": "40000 40001",
	} {
		if err := ns.Sysctl(k, v); err != nil {
			t.Fatal(err)
		}
	}
	const port = 7002
	r := start(t, Config{Tracer: tracer.Config{Filter: event.Filter{Ports: []uint16{port}}}})
	var l net.Listener
	if err := ns.Do(func() error {
		var err error
		l, err = net.Listen("tcp4", "127.0.0.1:7002")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	clientClosesFirst := func() netip.AddrPort {
		var c net.Conn
		if err := ns.Do(func() error {
			var err error
			c, err = net.Dial("tcp4", "127.0.0.1:7002")
			return err
		}); err != nil {
			t.Fatalf("connect: %v", err)
		}
		a, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		local := netip.MustParseAddrPort(c.LocalAddr().String())
		c.Close()
		if _, err := a.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("server read: %v", err)
		}
		a.Close()
		return local
	}
	first := []netip.AddrPort{clientClosesFirst(), clientClosesFirst()}
	// tcp_tw_reuse waits for the TIME_WAIT to be a second old.
	time.Sleep(1500 * time.Millisecond)
	third := clientClosesFirst()
	if !slices.Contains(first, third) {
		t.Fatalf("third connection from %v, not a TIME_WAIT's port %v", third, first)
	}
	reuse := r.waitEvent(t, "a reuse", 3*time.Second, func(e *event.Event) bool {
		return e.Kind == event.KindTimeWait && e.TimeWait == event.TimeWaitReuse
	})
	if reuse.Src != third || reuse.Dst != netip.MustParseAddrPort("127.0.0.1:7002") || reuse.NetNS != ns.Inode() {
		t.Errorf("reuse %+v: want the 4-tuple %v -> 127.0.0.1:7002", reuse, third)
	}
}

package tracer

// End-to-end tests: they load the real programs into the running kernel and
// watch real sockets on loopback or in a private network namespace. They need
// root; without it they skip, unless TWTRACE_REQUIRE_BPF=1 (CI) makes them fail.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/tracertest"
)

// run is a tracer running in the background for one test.
type run struct {
	t    *Tracer
	mu   sync.Mutex
	evs  []event.Event
	stop context.CancelFunc
	done chan error
}

func startTracer(t *testing.T, flt event.Filter) *run {
	t.Helper()
	return startTracerWith(t, Config{Filter: flt, WakeupEvery: 20 * time.Millisecond})
}

// startTracerWith starts a tracer that must load whole: no part degraded.
func startTracerWith(t *testing.T, cfg Config) *run {
	t.Helper()
	tracertest.Require(t)
	tracertest.LockBPF(t)
	tr, err := Open(cfg)
	if err != nil {
		var fe *FeatureError
		if errors.As(err, &fe) {
			tracertest.Unavailable(t, err)
		}
		t.Fatalf("open tracer: %v", err)
	}
	if d := tr.Degraded(); len(d) > 0 {
		tr.Close()
		t.Fatalf("tracer loaded only partly: %v", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{t: tr, stop: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- tr.Run(ctx, func(b []event.Event) error {
			r.mu.Lock()
			r.evs = append(r.evs, b...)
			r.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() {
		r.finish(t)
		tr.Close()
	})
	return r
}

// finish stops the tracer and returns every event it delivered.
func (r *run) finish(t *testing.T) []event.Event {
	t.Helper()
	if r.stop != nil {
		r.stop()
		r.stop = nil
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("tracer run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("tracer did not stop within 10 s")
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

// waitFor polls until cond holds for the events so far (bounded: 5 s).
func (r *run) waitFor(t *testing.T, what string, cond func([]event.Event) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		ok := cond(r.evs)
		r.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// freePort returns a port nothing is bound to right now on addr.
func freePort(t *testing.T, network, addr string) uint16 {
	t.Helper()
	l, err := net.Listen(network, net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

type transition struct{ old, new event.State }

func (tr transition) String() string { return tr.old.String() + "->" + tr.new.String() }

// sequences groups state transitions by socket cookie, in order.
func sequences(evs []event.Event) map[uint64][]transition {
	m := map[uint64][]transition{}
	for _, e := range evs {
		if e.Kind == event.KindState {
			m[e.Cookie] = append(m[e.Cookie], transition{e.Old, e.New})
		}
	}
	return m
}

// listenTCP listens with plain TCP. Go 1.24+ listens with MPTCP by default:
// the fd is then an MPTCP socket whose cookie is not the TCP subflow's.
func listenTCP(t *testing.T, network, host string, port uint16) net.Listener {
	t.Helper()
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), network, net.JoinHostPort(host, strconv.Itoa(int(port))))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// exchange runs a listener, a client and the accepted socket through a full
// life with the server closing first, and returns the three cookies.
func exchange(t *testing.T, network, host string, port uint16) (listener, client, accepted uint64) {
	t.Helper()
	l := listenTCP(t, network, host, port)
	c, err := net.Dial(network, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	listener = cookieOf(t, l.(*net.TCPListener))
	client, accepted = cookieOf(t, c.(*net.TCPConn)), cookieOf(t, a.(*net.TCPConn))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(a, buf); err != nil {
		t.Fatal(err)
	}
	a.Close() // the server closes first: it will hold the TIME_WAIT
	if n, err := c.Read(buf); err != io.EOF {
		t.Fatalf("client read after server close = %d, %v; want EOF", n, err)
	}
	c.Close()
	l.Close()
	return
}

func cookieOf(t *testing.T, c syscall.Conn) uint64 {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var cookie uint64
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		cookie, gerr = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_COOKIE)
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatalf("SO_COOKIE: %v", gerr)
	}
	return cookie
}

func TestTransitionsServerClosesFirst(t *testing.T) {
	for _, tc := range []struct {
		name, network, host string
		family              event.Family
	}{
		{"ipv4", "tcp4", "127.0.0.1", event.FamilyIPv4},
		{"ipv6", "tcp6", "::1", event.FamilyIPv6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t, tc.network, tc.host)
			r := startTracer(t, event.Filter{Ports: []uint16{port}})
			lc, cc, ac := exchange(t, tc.network, tc.host, port)
			r.waitFor(t, "the client's LAST_ACK->CLOSE", func(evs []event.Event) bool {
				s := sequences(evs)[cc]
				return len(s) > 0 && s[len(s)-1].new == event.StateClose
			})
			evs := r.finish(t)
			seqs := sequences(evs)

			want := map[string]struct {
				cookie uint64
				seq    []transition
			}{
				"listener": {lc, []transition{{event.StateClose, event.StateListen}, {event.StateListen, event.StateClose}}},
				"client": {cc, []transition{
					{event.StateClose, event.StateSynSent}, {event.StateSynSent, event.StateEstablished},
					{event.StateEstablished, event.StateCloseWait}, {event.StateCloseWait, event.StateLastAck},
					{event.StateLastAck, event.StateClose}}},
				"accepted": {ac, []transition{
					{event.StateListen, event.StateSynRecv}, {event.StateSynRecv, event.StateEstablished},
					{event.StateEstablished, event.StateFinWait1}, {event.StateFinWait1, event.StateFinWait2},
					{event.StateFinWait2, event.StateClose}}},
			}
			for name, w := range want {
				if got := seqs[w.cookie]; !slices.Equal(got, w.seq) {
					t.Errorf("%s socket (cookie %x): transitions %v, want %v", name, w.cookie, got, w.seq)
				}
			}
			if len(seqs) != 3 {
				t.Errorf("saw %d sockets on port %d, want 3: %v", len(seqs), port, seqs)
			}

			pid := uint32(os.Getpid())
			ip := netip.MustParseAddr(tc.host)
			var tws []event.Event
			for _, e := range evs {
				switch e.Kind {
				case event.KindState:
					if e.Owner != pid || e.OwnerComm.String() == "" {
						t.Errorf("%s %v->%v: owner %d %q, want the test (pid %d)", kindOf(e, lc, cc, ac), e.Old, e.New, e.Owner, e.OwnerComm, pid)
					}
					if e.Family != tc.family || e.NetNS == 0 {
						t.Errorf("%v->%v: family %v netns %d", e.Old, e.New, e.Family, e.NetNS)
					}
					checkEndpoints(t, e, ip, port, lc, cc)
					// Go's listener has SO_REUSEADDR, its accepted socket
					// inherits it, the dialled socket has neither option.
					wantReuse := event.ReuseKnown | event.ReuseAddr
					if e.Cookie == cc {
						wantReuse = event.ReuseKnown
					}
					if e.SockReuse != wantReuse {
						t.Errorf("%s %v->%v: reuse %v, want %v", kindOf(e, lc, cc, ac), e.Old, e.New, e.SockReuse, wantReuse)
					}
					// Only a socket's first transition has no known time in the old state.
					first := e.Old == event.StateClose || (e.Old == event.StateListen && e.New == event.StateSynRecv)
					if e.OldKnown == first {
						t.Errorf("%s %v->%v: old state duration known = %v", kindOf(e, lc, cc, ac), e.Old, e.New, e.OldKnown)
					}
				case event.KindTimeWait:
					tws = append(tws, e)
				}
			}
			if len(tws) != 1 {
				t.Fatalf("timewait events: %d, want 1 (the accepted socket's)", len(tws))
			}
			tw := tws[0]
			if tw.TimeWait != event.TimeWaitEnter || tw.Source != event.SourceInferred || tw.Remaining != 60*time.Second ||
				tw.Cookie != ac || tw.Src != netip.AddrPortFrom(ip, port) || tw.Dst.Port() == 0 {
				t.Errorf("timewait event %+v: want an inferred enter of the accepted socket with 60 s", tw)
			}
		})
	}
}

func kindOf(e event.Event, lc, cc, ac uint64) string {
	switch e.Cookie {
	case lc:
		return "listener"
	case cc:
		return "client"
	case ac:
		return "accepted"
	}
	return fmt.Sprintf("socket %x", e.Cookie)
}

// checkEndpoints verifies ports: the client's source port is 0 only at
// CLOSE->SYN_SENT (DESIGN.md), the server's sockets are on port.
func checkEndpoints(t *testing.T, e event.Event, ip netip.Addr, port uint16, lc, cc uint64) {
	t.Helper()
	if e.Src.Addr() != ip {
		t.Errorf("%v->%v: source address %v, want %v", e.Old, e.New, e.Src.Addr(), ip)
	}
	switch e.Cookie {
	case lc:
		if e.Src.Port() != port {
			t.Errorf("listener %v->%v: port %d, want %d", e.Old, e.New, e.Src.Port(), port)
		}
	case cc:
		if e.Dst != netip.AddrPortFrom(ip, port) {
			t.Errorf("client %v->%v: destination %v, want %v", e.Old, e.New, e.Dst, netip.AddrPortFrom(ip, port))
		}
		if (e.Src.Port() == 0) != (e.New == event.StateSynSent) {
			t.Errorf("client %v->%v: source port %d", e.Old, e.New, e.Src.Port())
		}
	default:
		if e.Src.Port() != port || e.Dst.Port() == 0 {
			t.Errorf("accepted %v->%v: %v -> %v, want local port %d", e.Old, e.New, e.Src, e.Dst, port)
		}
	}
}

// The helper process for cross-process bind tests: the test binary re-runs
// itself with this variable set and does one bind(), then exits.
const helperEnv = "TWTRACE_TEST_BIND_HELPER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(bindHelper(spec))
	}
	os.Exit(m.Run())
}

// bindHelper binds a new TCP socket as spec says ("ADDR PORT reuseaddr|plain")
// and prints the errno name or "ok". "ADDR PORT listen" binds plainly, then
// with SO_REUSEADDR and listens, and prints both results.
func bindHelper(spec string) int {
	f := strings.Fields(spec)
	port, _ := strconv.Atoi(f[1])
	if f[2] == "listen" {
		fd, errno := bindOnce(netip.MustParseAddr(f[0]), uint16(port), false)
		unix.Close(fd)
		l, lerr := bindOnce(netip.MustParseAddr(f[0]), uint16(port), true)
		if lerr == 0 {
			lerr, _ = unix.Listen(l, 1).(unix.Errno)
		}
		unix.Close(l)
		fmt.Println(unix.ErrnoName(errno), unix.ErrnoName(lerr))
		return 0
	}
	fd, errno := bindOnce(netip.MustParseAddr(f[0]), uint16(port), f[2] == "reuseaddr")
	if fd >= 0 {
		unix.Close(fd)
	}
	if errno != 0 {
		fmt.Println(unix.ErrnoName(errno))
	} else {
		fmt.Println("ok")
	}
	return 0
}

// bindOnce creates a TCP socket, optionally with SO_REUSEADDR, and binds it.
func bindOnce(ip netip.Addr, port uint16, reuseaddr bool) (int, unix.Errno) {
	fam, sa := unix.AF_INET, unix.Sockaddr(&unix.SockaddrInet4{Port: int(port), Addr: ip.As4()})
	if ip.Is6() {
		fam, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: int(port), Addr: ip.As16()}
	}
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err.(unix.Errno)
	}
	if reuseaddr {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fd, err.(unix.Errno)
	}
	return fd, 0
}

// timeWaitOn leaves a TIME_WAIT socket on port: a listener (SO_REUSEADDR,
// as Go sets it) accepts a connection and closes it first.
func timeWaitOn(t *testing.T, host string, port uint16) {
	t.Helper()
	l := listenTCP(t, "tcp4", host, port)
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client read: %v, want EOF", err)
	}
}

// eachHooks runs a test once for each way of tracing bind/connect/listen:
// they must report the same.
func eachHooks(t *testing.T, test func(t *testing.T, hooks SyscallHooks)) {
	for _, h := range []SyscallHooks{HooksTracepoints, HooksRaw} {
		t.Run(strings.ReplaceAll(h.String(), " ", "_"), func(t *testing.T) { test(t, h) })
	}
}

// startHooks starts a tracer on a port filter with the given hooks.
func startHooks(t *testing.T, hooks SyscallHooks, port uint16) *run {
	t.Helper()
	r := startTracerWith(t, Config{Filter: event.Filter{Ports: []uint16{port}}, WakeupEvery: 20 * time.Millisecond, Hooks: hooks})
	if r.t.Hooks() != hooks {
		t.Fatalf("bind/connect/listen traced by %v, want %v", r.t.Hooks(), hooks)
	}
	return r
}

func TestBindOnTimeWaitPort(t *testing.T) { eachHooks(t, testBindOnTimeWaitPort) }

func testBindOnTimeWaitPort(t *testing.T, hooks SyscallHooks) {
	const host = "127.0.0.1"
	port := freePort(t, "tcp4", host)
	r := startHooks(t, hooks, port)
	timeWaitOn(t, host, port)
	ip := netip.MustParseAddr(host)

	// In this process: refused without SO_REUSEADDR, allowed with it
	// (the TIME_WAIT socket came from a SO_REUSEADDR listener).
	fd1, e1 := bindOnce(ip, port, false)
	defer unix.Close(fd1)
	fd2, e2 := bindOnce(ip, port, true)
	defer unix.Close(fd2)
	if e1 != unix.EADDRINUSE || e2 != 0 {
		t.Fatalf("bind results: plain %v, reuseaddr %v; want EADDRINUSE and success", e1, e2)
	}
	unix.Close(fd2)

	// In child processes, so the pid is not the tracer's host process.
	children := map[string]int{}
	for _, mode := range []string{"plain", "reuseaddr"} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %s", helperEnv, host, port, mode))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("helper %s: %v", mode, err)
		}
		want := map[string]string{"plain": "EADDRINUSE", "reuseaddr": "ok"}[mode]
		if got := strings.TrimSpace(string(out)); got != want {
			t.Fatalf("helper %s: bind %s, want %s", mode, got, want)
		}
		children[mode] = cmd.Process.Pid
	}

	r.waitFor(t, "five bind events", func(evs []event.Event) bool { return count(evs, event.KindBind) >= 5 })
	binds := filterKind(r.finish(t), event.KindBind)
	if len(binds) != 5 {
		t.Fatalf("bind events: %d, want 5: %+v", len(binds), binds)
	}
	// First the listener that left the TIME_WAIT behind.
	if l := binds[0]; int(l.PID) != os.Getpid() || !l.ReuseAddr || l.Ret != 0 {
		t.Errorf("listener bind %+v: want a successful SO_REUSEADDR bind by the test", l)
	}
	binds = binds[1:]
	type want struct {
		pid       int
		fd        int
		reuseaddr bool
		errno     string
	}
	wants := []want{
		{os.Getpid(), fd1, false, "EADDRINUSE"},
		{os.Getpid(), fd2, true, ""},
		{children["plain"], -1, false, "EADDRINUSE"},
		{children["reuseaddr"], -1, true, ""},
	}
	for i, w := range wants {
		b := binds[i]
		if int(b.PID) != w.pid || b.ReuseAddr != w.reuseaddr || b.Errno() != w.errno ||
			b.Src != netip.AddrPortFrom(ip, port) || b.Family != event.FamilyIPv4 || b.ReusePort || b.NetNS == 0 ||
			(w.fd >= 0 && int(b.FD) != w.fd) {
			t.Errorf("bind %d: pid %d fd %d %v reuseaddr=%v reuseport=%v errno %q; want pid %d fd %d reuseaddr=%v errno %q",
				i, b.PID, b.FD, b.Src, b.ReuseAddr, b.ReusePort, b.Errno(), w.pid, w.fd, w.reuseaddr, w.errno)
		}
		if b.UID != uint32(os.Getuid()) || !b.UIDKnown {
			t.Errorf("bind %d: uid %d (known %v), want %d", i, b.UID, b.UIDKnown, os.Getuid())
		}
		if b.Comm.String() != "tracer.test" {
			t.Errorf("bind %d: comm %q, want tracer.test", i, b.Comm)
		}
	}
}

func count(evs []event.Event, k event.Kind) int { return len(filterKind(evs, k)) }

func filterKind(evs []event.Event, k event.Kind) []event.Event {
	var out []event.Event
	for _, e := range evs {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// TestPortFilterInKernel checks that traffic on other ports never reaches
// the ring buffer: the kernel counts it as filtered, and what it emitted is
// exactly what was delivered.
func TestPortFilterInKernel(t *testing.T) {
	const host = "127.0.0.1"
	port := freePort(t, "tcp4", host)
	other := freePort(t, "tcp4", host)
	r := startTracer(t, event.Filter{Ports: []uint16{port}})
	before, err := r.t.Stats()
	if err != nil {
		t.Fatal(err)
	}
	const otherConns = 20
	for range otherConns {
		exchange(t, "tcp4", host, other)
	}
	exchange(t, "tcp4", host, port)
	_, cc, _ := exchange(t, "tcp4", host, port)
	r.waitFor(t, "the last client's close", func(evs []event.Event) bool {
		s := sequences(evs)[cc]
		return len(s) > 0 && s[len(s)-1].new == event.StateClose
	})
	evs := r.finish(t)
	after, err := r.t.Stats()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Kind == event.KindState && e.Src.Port() != port && e.Dst.Port() != port {
			t.Errorf("event for another port got through: %v -> %v", e.Src, e.Dst)
		}
	}
	states := uint64(count(evs, event.KindState))
	if states != 2*12 {
		t.Errorf("delivered %d state events, want 24 (two exchanges of 12 transitions)", states)
	}
	if got := after.StateEmitted - before.StateEmitted; got != states {
		t.Errorf("kernel emitted %d state events, delivered %d", got, states)
	}
	if got := after.StateFiltered - before.StateFiltered; got < otherConns*12 {
		t.Errorf("kernel filtered %d transitions, want at least %d from port %d", got, otherConns*12, other)
	}
	if after.Lost != before.Lost {
		t.Errorf("lost %d events", after.Lost-before.Lost)
	}
}

// TestConnectAddrNotAvail exhausts a two-port ephemeral range in a private
// namespace: the third connect() fails with EADDRNOTAVAIL.
func TestConnectAddrNotAvail(t *testing.T) { eachHooks(t, testConnectAddrNotAvail) }

// TestConnectAddrNotAvailAtEntry is the same with connect() remembered at
// its entry, as on kernels whose programs cannot read the saved registers.
func TestConnectAddrNotAvailAtEntry(t *testing.T) {
	eachHooks(t, func(t *testing.T, hooks SyscallHooks) { testConnectAddrNotAvailWith(t, hooks, true) })
}

func testConnectAddrNotAvail(t *testing.T, hooks SyscallHooks) {
	testConnectAddrNotAvailWith(t, hooks, false)
}

func testConnectAddrNotAvailWith(t *testing.T, hooks SyscallHooks, atEntry bool) {
	ns := tracertest.NewNetNS(t)
	if err := ns.Sysctl("net/ipv4/ip_local_port_range", "40000 40001"); err != nil {
		t.Fatal(err)
	}
	const port = 5555
	r := startTracerWith(t, Config{Filter: event.Filter{Ports: []uint16{port}}, WakeupEvery: 20 * time.Millisecond,
		Hooks: hooks, connectAtEntry: atEntry})
	if r.t.Hooks() != hooks || (atEntry && r.t.connectAtExit) {
		t.Fatalf("bind/connect/listen traced by %v (connect at its exit alone: %v), want %v",
			r.t.Hooks(), r.t.connectAtExit, hooks)
	}
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	failedFD := -1
	err := ns.Do(func() error {
		l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		fds = append(fds, l)
		sa := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
		if err := unix.Bind(l, sa); err != nil {
			return err
		}
		if err := unix.Listen(l, 16); err != nil {
			return err
		}
		for range 8 { // two ports: the third connect must fail
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			fds = append(fds, fd)
			err = unix.Connect(fd, sa)
			if errors.Is(err, unix.EADDRNOTAVAIL) {
				failedFD = fd
				return nil
			}
			if err != nil {
				return fmt.Errorf("connect: %w", err)
			}
		}
		return errors.New("no connect failed with EADDRNOTAVAIL")
	})
	if err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "a connect event", func(evs []event.Event) bool { return count(evs, event.KindConnect) > 0 })
	evs := r.finish(t)
	cs := filterKind(evs, event.KindConnect)
	if len(cs) != 1 {
		t.Fatalf("connect events: %d, want 1: %+v", len(cs), cs)
	}
	c := cs[0]
	if c.Errno() != "EADDRNOTAVAIL" || c.Ret != -int32(unix.EADDRNOTAVAIL) || int(c.PID) != os.Getpid() ||
		c.Dst != netip.MustParseAddrPort("127.0.0.1:5555") || c.NetNS != ns.Inode() || int(c.FD) != failedFD ||
		c.Family != event.FamilyIPv4 {
		t.Errorf("connect event %+v: want EADDRNOTAVAIL to 127.0.0.1:5555 from pid %d fd %d in netns %d",
			c, os.Getpid(), failedFD, ns.Inode())
	}
	// The failed attempt still went CLOSE->SYN_SENT->CLOSE, with source port 0.
	cookie, err := unix.GetsockoptUint64(failedFD, unix.SOL_SOCKET, unix.SO_COOKIE)
	if err != nil {
		t.Fatal(err)
	}
	var failed []transition
	for _, e := range evs {
		if e.Kind == event.KindState && e.Cookie == cookie {
			failed = append(failed, transition{e.Old, e.New})
			if e.Src.Port() != 0 || e.NetNS != ns.Inode() {
				t.Errorf("failed connect %v->%v: source %v netns %d", e.Old, e.New, e.Src, e.NetNS)
			}
		}
	}
	if want := []transition{{event.StateClose, event.StateSynSent}, {event.StateSynSent, event.StateClose}}; !slices.Equal(failed, want) {
		t.Errorf("failed connect transitions %v, want %v", failed, want)
	}
}

// TestMPTCPListener: Go listens with MPTCP by default. The bind of the MPTCP
// socket is reported (with its SO_REUSEADDR), and the TCP subflow that does
// the listening is traced like any TCP socket.
func TestMPTCPListener(t *testing.T) {
	const host = "127.0.0.1"
	port := freePort(t, "tcp4", host)
	r := startTracer(t, event.Filter{Ports: []uint16{port}})
	var lc net.ListenConfig
	lc.SetMultipathTCP(true)
	l, err := lc.Listen(context.Background(), "tcp4", net.JoinHostPort(host, strconv.Itoa(int(port))))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	proto := 0
	_ = raw.Control(func(fd uintptr) { proto, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PROTOCOL) })
	if proto != unix.IPPROTO_MPTCP {
		l.Close()
		tracertest.Unavailable(t, fmt.Errorf("the listener's protocol is %d, not MPTCP: is net.mptcp.enabled 0?", proto))
	}
	l.Close()
	r.waitFor(t, "LISTEN->CLOSE", func(evs []event.Event) bool {
		for _, e := range evs {
			if e.Kind == event.KindState && e.Old == event.StateListen && e.New == event.StateClose {
				return true
			}
		}
		return false
	})
	evs := r.finish(t)
	binds := filterKind(evs, event.KindBind)
	if len(binds) != 1 || binds[0].Src.Port() != port || !binds[0].ReuseAddr || binds[0].Ret != 0 {
		t.Errorf("bind events %+v: want one successful bind to %d with SO_REUSEADDR", binds, port)
	}
	var seq []transition
	for _, e := range filterKind(evs, event.KindState) {
		seq = append(seq, transition{e.Old, e.New})
	}
	if want := []transition{{event.StateClose, event.StateListen}, {event.StateListen, event.StateClose}}; !slices.Equal(seq, want) {
		t.Errorf("transitions %v, want %v", seq, want)
	}
}

// TestCloseDetachesEverything checks that no program or link of twtrace
// remains in the kernel after Close.
func TestCloseDetachesEverything(t *testing.T) {
	eachHooks(t, func(t *testing.T, hooks SyscallHooks) {
		// The state program, and six syscall tracepoints or two raw ones;
		// five tracepoints where connect() is traced at its exit alone.
		want := map[SyscallHooks]int{HooksTracepoints: 7, HooksRaw: 3}[hooks]
		if hooks == HooksTracepoints && ThisHost().Helper(ebpf.TracePoint, asm.FnTaskPtRegs) == nil {
			want = 6
		}
		testCloseDetaches(t, Config{Hooks: hooks}, want)
	})
}

func testCloseDetaches(t *testing.T, cfg Config, want int) {
	r := startTracerWith(t, cfg)
	var progIDs []ebpf.ProgramID
	for name, p := range r.t.progs {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, ok := info.ID()
		if !ok {
			t.Fatalf("no id for %s", name)
		}
		progIDs = append(progIDs, id)
	}
	var linkIDs []link.ID
	for _, l := range r.t.links {
		info, err := l.Info()
		if err != nil {
			t.Fatal(err)
		}
		linkIDs = append(linkIDs, info.ID)
	}
	if len(progIDs) != want || len(linkIDs) != want {
		t.Fatalf("attached %d programs with %d links, want %d and %d", len(progIDs), len(linkIDs), want, want)
	}
	r.finish(t)
	r.t.Close()

	// The kernel frees programs after an RCU grace period: poll, bounded.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var alive []string
		for _, id := range progIDs {
			if p, err := ebpf.NewProgramFromID(id); err == nil {
				p.Close()
				alive = append(alive, fmt.Sprintf("program %d", id))
			}
		}
		for _, id := range linkIDs {
			if l, err := link.NewFromID(id); err == nil {
				l.Close()
				alive = append(alive, fmt.Sprintf("link %d", id))
			}
		}
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still in the kernel 5 s after Close: %v", alive)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

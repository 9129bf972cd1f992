package session

// The bind prediction against the kernel itself. For every kind of old
// socket (listening, bound only, an accepted socket whose listener is gone,
// TIME_WAIT), every set of its options and every address it can have, the
// test sets the socket up for real in a private network namespace, reads
// the port's facts as `twtrace why` does, predicts each way of binding the
// port (six addresses, four sets of options, as root and as another user),
// then does each bind() for real and requires the kernel's answer.

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/tracertest"
	"github.com/twtrace/twtrace/tracer/advice"
	"github.com/twtrace/twtrace/tracer/event"
)

// bindHelperEnv makes the test binary a helper that binds as another user:
// it reads attempts ("ADDR PORT V6ONLY OPTIONS", one per line) from stdin
// and prints the errno name or "ok" for each.
const bindHelperEnv = "TWTRACE_ORACLE_BIND"

func TestMain(m *testing.M) {
	if os.Getenv(bindHelperEnv) != "" {
		os.Exit(bindHelper())
	}
	os.Exit(m.Run())
}

func bindHelper() int {
	// Started as root (the test binary is in a directory only root may
	// read), it becomes the user before any socket is made.
	uid, _ := strconv.Atoi(os.Getenv(bindHelperEnv))
	if err := syscall.Setgroups(nil); err != nil {
		fmt.Println("setgroups:", err)
		return 1
	}
	if err := syscall.Setgid(uid); err != nil {
		fmt.Println("setgid:", err)
		return 1
	}
	if err := syscall.Setuid(uid); err != nil {
		fmt.Println("setuid:", err)
		return 1
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		port, _ := strconv.Atoi(f[1])
		opts, _ := advice.ParseOptions(f[3])
		fmt.Println(tryBind(advice.Attempt{
			Addr: netip.AddrPortFrom(netip.MustParseAddr(f[0]), uint16(port)), V6Only: f[2] == "v6only", Options: opts,
		}))
	}
	return 0
}

// rawSocket makes a TCP socket of addr's family with the options set.
func rawSocket(addr netip.Addr, v6only bool, opts advice.Options) (int, error) {
	fam := unix.AF_INET
	if addr.Is6() {
		fam = unix.AF_INET6
	}
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	set := func(level, opt, v int) {
		if err == nil {
			err = unix.SetsockoptInt(fd, level, opt, v)
		}
	}
	if opts&advice.ReuseAddr != 0 {
		set(unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	}
	if opts&advice.ReusePort != 0 {
		set(unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}
	if addr.Is6() {
		v := 0
		if v6only {
			v = 1
		}
		set(unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is6() {
		return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
}

// tryBind does the attempt's bind() and closes the socket: "ok" or the errno.
func tryBind(a advice.Attempt) string {
	fd, err := rawSocket(a.Addr.Addr(), a.V6Only, a.Options)
	if err != nil {
		return "socket: " + err.Error()
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, sockaddr(a.Addr)); err != nil {
		if errno, ok := err.(unix.Errno); ok {
			return unix.ErrnoName(errno)
		}
		return err.Error()
	}
	return "ok"
}

// oldSocket is one setup: a kind of socket with its options on an address.
type oldSocket struct {
	kind   string // listen, bound, child, timewait
	addr   string // 0.0.0.0, 127.0.0.1, [::], [::]v6only, ::1
	opts   advice.Options
	closer []int // fds to close at the end
}

func (o *oldSocket) String() string { return fmt.Sprintf("%s %s %s", o.kind, o.addr, o.opts) }

func (o *oldSocket) ip() (netip.Addr, bool) {
	switch o.addr {
	case "[::]":
		return netip.IPv6Unspecified(), false
	case "[::]v6only":
		return netip.IPv6Unspecified(), true
	}
	a := netip.MustParseAddr(o.addr)
	return a, a.Is6()
}

// dialAddr is where a client connects to reach a listener on the address:
// through IPv4 for a dual-stack [::], so that the accepted socket has a
// v4-mapped address.
func (o *oldSocket) dialAddr() netip.Addr {
	switch o.addr {
	case "0.0.0.0", "127.0.0.1", "[::]":
		return netip.MustParseAddr("127.0.0.1")
	}
	return netip.IPv6Loopback()
}

// setup makes the socket on port; it runs inside the namespace.
func (o *oldSocket) setup(port uint16) error {
	ip, v6only := o.ip()
	ap := netip.AddrPortFrom(ip, port)
	fd, err := rawSocket(ip, v6only, o.opts)
	if err != nil {
		return err
	}
	o.closer = append(o.closer, fd)
	if err := unix.Bind(fd, sockaddr(ap)); err != nil {
		return fmt.Errorf("bind %s: %w", ap, err)
	}
	if o.kind == "bound" {
		return nil
	}
	if err := unix.Listen(fd, 8); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if o.kind == "listen" {
		return nil
	}
	dst := netip.AddrPortFrom(o.dialAddr(), port)
	cfd, err := rawSocket(dst.Addr(), false, 0)
	if err != nil {
		return err
	}
	o.closer = append(o.closer, cfd)
	if err := unix.Connect(cfd, sockaddr(dst)); err != nil {
		return fmt.Errorf("connect %s: %w", dst, err)
	}
	afd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	// The listener goes: what is left is the accepted socket (or its TIME_WAIT).
	unix.Close(fd)
	o.closer = o.closer[1:]
	if o.kind == "child" {
		o.closer = append(o.closer, afd)
		return nil
	}
	// The server closes first: the TIME_WAIT lands on its side, port `port`.
	unix.Close(afd)
	buf := make([]byte, 1)
	if _, err := unix.Read(cfd, buf); err != nil {
		return fmt.Errorf("client read of the FIN: %w", err)
	}
	return nil // the client closes at the end, completing the exchange
}

func (o *oldSocket) close() {
	for _, fd := range o.closer {
		unix.Close(fd)
	}
}

// newAttempts are the ways of binding the test tries: six addresses, four
// sets of options.
func newAttempts(port uint16, uid uint32) []advice.Attempt {
	type addr struct {
		ip     string
		v6only bool
	}
	var out []advice.Attempt
	for _, a := range []addr{{"0.0.0.0", false}, {"127.0.0.1", false}, {"::", false}, {"::", true},
		{"::1", false}, {"::ffff:127.0.0.1", false}} {
		for _, o := range advice.AllOptions {
			out = append(out, advice.Attempt{Addr: netip.AddrPortFrom(netip.MustParseAddr(a.ip), port),
				V6Only: a.v6only, Options: o, UID: uid})
		}
	}
	return out
}

func describe(a advice.Attempt) string {
	s := a.Addr.Addr().String()
	if a.Addr.Addr().Is6() && a.Addr.Addr().IsUnspecified() {
		if a.V6Only {
			s += "(v6only)"
		} else {
			s += "(dual)"
		}
	}
	return fmt.Sprintf("%s %s uid %d", s, a.Options, a.UID)
}

func TestBindPredictionMatchesKernel(t *testing.T) {
	tracertest.Require(t)
	ns := tracertest.NewNetNS(t)
	probe := NewPortProbe(ns.FD(), "/proc")
	defer probe.Close()
	if probe.reuse == nil {
		tracertest.Unavailable(t, probe.reuseErr)
	}
	const other = 65534 // nobody
	port := uint16(20000)
	checked, certain := 0, 0
	for _, kind := range []string{"listen", "bound", "child", "timewait"} {
		for _, addr := range []string{"0.0.0.0", "127.0.0.1", "[::]", "[::]v6only", "::1"} {
			for _, opts := range advice.AllOptions {
				port++
				old := &oldSocket{kind: kind, addr: addr, opts: opts}
				if err := ns.Do(func() error { return old.setup(port) }); err != nil {
					old.close()
					t.Fatalf("%s: %v", old, err)
				}
				facts := waitFacts(t, probe, port, kind)
				for _, uid := range []uint32{0, other} {
					atts := newAttempts(port, uid)
					got := kernelAnswers(t, ns, atts, uid)
					for i, a := range atts {
						pred := advice.Predict(facts.Sockets, a)
						checked++
						if !pred.Certain {
							t.Errorf("%s: %s: uncertain with every option readable (facts %+v)", old, describe(a), facts.Sockets)
							continue
						}
						certain++
						if string(pred.Result) != got[i] {
							t.Errorf("%s: bind %s: predicted %s, the kernel said %s", old, describe(a), pred.Result, got[i])
						}
					}
				}
				old.close()
			}
		}
	}
	t.Logf("%d predictions checked against the kernel, %d certain", checked, certain)
}

// waitFacts reads the port's facts once the setup shows: a TIME_WAIT
// appears when the client's ACK of the FIN arrives.
func waitFacts(t *testing.T, p *PortProbe, port uint16, kind string) *advice.PortFacts {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		f, err := p.Facts(port)
		if err != nil {
			t.Fatal(err)
		}
		ready := len(f.Sockets) > 0
		if kind == "timewait" {
			ready = false
			for _, s := range f.Sockets {
				ready = ready || s.State == event.StateTimeWait
			}
		}
		if ready || time.Now().After(deadline) {
			if !ready {
				t.Fatalf("port %d: the %s socket does not show: %+v", port, kind, f.Sockets)
			}
			return f
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kernelAnswers does each attempt for real, in the namespace: as root in
// this process, as another user in a helper process that setuid()s.
func kernelAnswers(t *testing.T, ns *tracertest.NetNS, atts []advice.Attempt, uid uint32) []string {
	t.Helper()
	out := make([]string, len(atts))
	if uid == 0 {
		err := ns.Do(func() error {
			for i, a := range atts {
				out[i] = tryBind(a)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var in bytes.Buffer
	for _, a := range atts {
		v6 := "dual"
		if a.V6Only {
			v6 = "v6only"
		}
		fmt.Fprintf(&in, "%s %d %s %s\n", a.Addr.Addr(), a.Addr.Port(), v6, a.Options)
	}
	var res []byte
	err := ns.Do(func() error {
		// Forked from this thread, the helper is in the namespace.
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", bindHelperEnv, uid))
		cmd.Stdin = &in
		var err error
		res, err = cmd.Output()
		return err
	})
	if err != nil {
		t.Fatalf("bind helper as uid %d: %v", uid, err)
	}
	lines := strings.Split(strings.TrimSpace(string(res)), "\n")
	if len(lines) != len(atts) {
		t.Fatalf("bind helper answered %d of %d attempts: %q", len(lines), len(atts), res)
	}
	copy(out, lines)
	return out
}

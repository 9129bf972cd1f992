package main

// `twtrace why` against real sockets in a private network namespace, one
// scenario per cause: the real binary names the cause, and applying the fix
// it gives first makes the real bind() succeed.

import (
	"bufio"
	"encoding/json"
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
)

// sockHelperEnv makes the test binary a process that holds a socket:
// "UID ADDR PORT OPTIONS V6ONLY listen|bound". It becomes UID, makes the
// socket, prints "ready", and holds it until killed or stdin closes.
const sockHelperEnv = "TWTRACE_CLI_TEST_SOCKET"

func init() {
	if spec := os.Getenv(sockHelperEnv); spec != "" {
		os.Exit(sockHelper(spec))
	}
}

func sockHelper(spec string) int {
	f := strings.Fields(spec)
	uid, _ := strconv.Atoi(f[0])
	if uid != 0 {
		if err := syscall.Setgroups(nil); err == nil {
			_ = syscall.Setgid(uid)
		}
		if err := syscall.Setuid(uid); err != nil {
			fmt.Println("setuid:", err)
			return 1
		}
	}
	port, _ := strconv.Atoi(f[2])
	opts, _ := advice.ParseOptions(f[3])
	ap := netip.AddrPortFrom(netip.MustParseAddr(f[1]), uint16(port))
	fd, err := makeSocket(ap, opts, f[4] == "v6only")
	if err == nil && f[5] == "listen" {
		err = unix.Listen(fd, 16)
	}
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("ready")
	buf := make([]byte, 1)
	os.Stdin.Read(buf)
	return 0
}

// makeSocket makes a bound TCP socket with the options.
func makeSocket(ap netip.AddrPort, opts advice.Options, v6only bool) (int, error) {
	fam := unix.AF_INET
	var sa unix.Sockaddr
	if ap.Addr().Is6() {
		fam, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	} else {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if opts&advice.ReuseAddr != 0 {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	}
	if opts&advice.ReusePort != 0 {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}
	if fam == unix.AF_INET6 {
		v := 0
		if v6only {
			v = 1
		}
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// whyEnv is a namespace and the binary to ask in it.
type whyEnv struct {
	t   *testing.T
	bin string
	ns  *tracertest.NetNS
}

func newWhyEnv(t *testing.T) *whyEnv {
	tracertest.Require(t)
	return &whyEnv{t: t, bin: buildBinary(t), ns: tracertest.NewNetNS(t)}
}

// why runs `twtrace why --json -N` in the namespace and returns its exit
// code and report.
func (e *whyEnv) why(args ...string) (int, advice.PortReport) {
	e.t.Helper()
	cmd := exec.Command(e.bin, append([]string{"why", "--json", "-N", "/proc/self/fd/3"}, args...)...)
	// A duplicate for the child: an *os.File of the namespace's own fd
	// would close it when collected, under the tests that follow.
	dup, err := unix.Dup(e.ns.FD())
	if err != nil {
		e.t.Fatal(err)
	}
	nsFile := os.NewFile(uintptr(dup), "netns")
	defer nsFile.Close()
	cmd.ExtraFiles = []*os.File{nsFile}
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	var r advice.PortReport
	if err := json.Unmarshal(out, &r); err != nil {
		e.t.Fatalf("why %v: exit %d, not JSON: %v\n%s", args, code, err, out)
	}
	return code, r
}

// hold starts a process that holds a socket in the namespace; it dies with the test.
func (e *whyEnv) hold(uid int, ap netip.AddrPort, opts advice.Options, v6only bool, listen bool) *exec.Cmd {
	e.t.Helper()
	what, v6 := "bound", "dual"
	if listen {
		what = "listen"
	}
	if v6only {
		v6 = "v6only"
	}
	var cmd *exec.Cmd
	var stdout *bufio.Reader
	err := e.ns.Do(func() error {
		cmd = exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %s %d %s %s %s", sockHelperEnv, uid, ap.Addr(), ap.Port(), opts, v6, what))
		cmd.Stderr = os.Stderr
		pipe, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if _, err := cmd.StdinPipe(); err != nil {
			return err
		}
		stdout = bufio.NewReader(pipe)
		return cmd.Start()
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := stdout.ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		e.t.Fatalf("socket holder: %q", line)
	}
	return cmd
}

// bind does a real bind() in the namespace, as root; the socket stays open
// (closed with the test) so that a listen() can follow.
func (e *whyEnv) bind(ap netip.AddrPort, opts advice.Options, v6only bool) (int, error) {
	var fd int
	err := e.ns.Do(func() error {
		var err error
		fd, err = makeSocket(ap, opts, v6only)
		return err
	})
	if err == nil {
		e.t.Cleanup(func() { unix.Close(fd) })
	}
	return fd, err
}

// timeWait leaves a TIME_WAIT on port's server side, from a listener with opts.
func (e *whyEnv) timeWait(port uint16, opts advice.Options) {
	e.t.Helper()
	err := e.ns.Do(func() error {
		ap := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", port))
		l, err := makeSocket(ap, opts, false)
		if err != nil {
			return err
		}
		defer unix.Close(l)
		if err := unix.Listen(l, 1); err != nil {
			return err
		}
		c, _ := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		defer unix.Close(c)
		if err := unix.Connect(c, &unix.SockaddrInet4{Port: int(port), Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			return err
		}
		a, _, err := unix.Accept(l)
		if err != nil {
			return err
		}
		unix.Close(a) // the server closes first
		_, err = unix.Read(c, make([]byte, 1))
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the client's close completes the exchange
}

func finding(r advice.PortReport, code string) (advice.Finding, bool) {
	for _, f := range r.Findings {
		if f.Code == code {
			return f, true
		}
	}
	return advice.Finding{}, false
}

func any4(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.IPv4Unspecified(), port) }

func TestWhyTimeWaitWithReuseAddr(t *testing.T) {
	e := newWhyEnv(t)
	e.timeWait(8080, advice.ReuseAddr)
	code, r := e.why("8080")
	f, ok := finding(r, advice.CodeTimeWaitReuseNew)
	if code != 1 || r.Verdict != "blocked" || !ok || r.Causes[0] != advice.CauseTimeWait || r.Sockets["TIME_WAIT"] != 1 {
		t.Fatalf("exit %d, report %+v", code, r)
	}
	if r.TimeWaitUntil == nil || time.Until(*r.TimeWaitUntil) < 50*time.Second {
		t.Errorf("timewait_until %v", r.TimeWaitUntil)
	}
	// The first fix: SO_REUSEADDR on the new socket. Applied, the bind succeeds.
	if f.Fixes[0].Kind != advice.FixSocketOption || !strings.Contains(f.Fixes[0].Text, "SO_REUSEADDR") {
		t.Fatalf("first fix %+v", f.Fixes[0])
	}
	if code, r := e.why("8080", "--with", "reuseaddr"); code != 0 || r.Verdict != "free" {
		t.Errorf("why --with reuseaddr: exit %d %s", code, r.Verdict)
	}
	if _, err := e.bind(any4(8080), advice.ReuseAddr, false); err != nil {
		t.Errorf("bind with SO_REUSEADDR as the fix says: %v", err)
	}
}

// The TIME_WAIT of a listener without SO_REUSEADDR: the first fix is to
// wait, and `why --wait` returns as soon as the kernel lets the bind through.
func TestWhyTimeWaitWithoutReuseAddr(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a TIME_WAIT to end (60 s)")
	}
	t.Parallel()
	e := newWhyEnv(t)
	e.timeWait(8081, 0)
	code, r := e.why("8081", "--with", "reuseaddr")
	f, ok := finding(r, advice.CodeTimeWaitNoReuse)
	if code != 1 || !ok || f.Fixes[0].Kind != advice.FixWait || f.Fixes[0].Until == nil {
		t.Fatalf("exit %d, findings %+v", code, r.Findings)
	}
	if _, err := e.bind(any4(8081), advice.ReuseAddr, false); err == nil {
		t.Fatal("SO_REUSEADDR got past a TIME_WAIT left without it: the kernel disagrees with the table")
	}
	code, r = e.why("8081", "--with", "reuseaddr", "--wait", "90s")
	if code != 0 || r.Verdict != "free" {
		t.Fatalf("why --wait 90s: exit %d %s", code, r.Verdict)
	}
	// The kernel's timer has a granularity; --wait polls every 250 ms.
	if late := time.Since(*f.Fixes[0].Until); late > 2*time.Second || late < -time.Second {
		t.Errorf("--wait returned %v after the predicted end", late)
	}
	if _, err := e.bind(any4(8081), advice.ReuseAddr, false); err != nil {
		t.Errorf("bind after the wait: %v", err)
	}
}

func TestWhyLiveHolder(t *testing.T) {
	e := newWhyEnv(t)
	holder := e.hold(0, any4(9090), 0, false, true)
	code, r := e.why("9090")
	f, ok := finding(r, advice.CodeLiveHolder)
	if code != 1 || !ok || len(r.Holders) != 1 || r.Holders[0].PID != uint32(holder.Process.Pid) {
		t.Fatalf("exit %d, holders %+v, findings %+v", code, r.Holders, r.Findings)
	}
	if h := r.Holders[0]; h.Comm == "" || !strings.Contains(h.Cmdline, "-test.run") || h.User != "root" || h.States[0] != "LISTEN" {
		t.Errorf("holder %+v", h)
	}
	if f.Fixes[0].Kind != advice.FixProcess || !strings.Contains(f.Fixes[0].Text, fmt.Sprintf("kill %d", holder.Process.Pid)) {
		t.Fatalf("first fix %+v", f.Fixes[0])
	}
	holder.Process.Kill()
	holder.Wait()
	if code, r := e.why("9090"); code != 0 {
		t.Errorf("after the holder stopped: exit %d %+v", code, r.Findings)
	}
	if _, err := e.bind(any4(9090), 0, false); err != nil {
		t.Errorf("bind after stopping the holder: %v", err)
	}
}

func TestWhyReusePortOtherUser(t *testing.T) {
	e := newWhyEnv(t)
	e.hold(65534, any4(9091), advice.ReusePort, false, true)
	code, r := e.why("9091", "--with", "reuseport")
	f, ok := finding(r, advice.CodeReusePortUser)
	if code != 1 || !ok || !strings.Contains(f.Fixes[0].Text, "uid 65534") {
		t.Fatalf("exit %d, findings %+v", code, r.Findings)
	}
	if code, _ := e.why("9091", "--with", "reuseport", "--user", "65534"); code != 0 {
		t.Errorf("as uid 65534: exit %d", code)
	}
	// Applied: a listener with SO_REUSEPORT as that user binds beside it.
	e.hold(65534, any4(9091), advice.ReusePort, false, true)
}

func TestWhyIPv6Wildcard(t *testing.T) {
	e := newWhyEnv(t)
	six := netip.AddrPortFrom(netip.IPv6Unspecified(), 9092)
	holder := e.hold(0, six, 0, false, true)
	code, r := e.why("9092")
	f, ok := finding(r, advice.CodeV6Wildcard)
	if code != 1 || !ok || r.Causes[0] != advice.CauseV6Wildcard || !strings.Contains(f.Fixes[0].Text, "IPV6_V6ONLY") {
		t.Fatalf("exit %d, causes %v, findings %+v", code, r.Causes, r.Findings)
	}
	// Applied: the [::] listener restarted with IPV6_V6ONLY leaves IPv4 free.
	holder.Process.Kill()
	holder.Wait()
	v6only := e.hold(0, six, 0, true, true)
	if _, err := e.bind(any4(9092), 0, false); err != nil {
		t.Errorf("IPv4 bind beside a V6ONLY [::]: %v", err)
	}
	// The reverse: IPv4 taken, a new dual-stack [::] is refused; V6ONLY fixes it.
	v6only.Process.Kill()
	v6only.Wait()
	code, r = e.why("9092", "-6")
	f, ok = finding(r, advice.CodeV6Wildcard)
	if code != 1 || !ok || f.Fixes[0].Brief != "set IPV6_V6ONLY" || !strings.Contains(f.Fixes[0].Text, "lets it bind") {
		t.Fatalf("-6: exit %d, findings %+v", code, r.Findings)
	}
	if _, err := e.bind(six, 0, true); err != nil {
		t.Errorf("[::] with IPV6_V6ONLY beside IPv4, as the fix says: %v", err)
	}
}

func TestWhySecondListen(t *testing.T) {
	e := newWhyEnv(t)
	e.hold(0, any4(9093), advice.ReuseAddr, false, false) // bound, not listening
	code, r := e.why("9093", "--with", "reuseaddr")
	if _, ok := finding(r, advice.CodeSecondListen); code != 0 || !ok || r.Sockets["BOUND"] != 1 {
		t.Fatalf("exit %d, sockets %v, findings %+v", code, r.Sockets, r.Findings)
	}
	// As predicted: the bind succeeds; the listen() after the other's fails.
	fd, err := e.bind(any4(9093), advice.ReuseAddr, false)
	if err != nil {
		t.Fatalf("bind: %v", err)
	}
	other, err := e.bind(any4(9093), advice.ReuseAddr, false)
	if err != nil {
		t.Fatalf("a third bind: %v", err)
	}
	e.ns.Do(func() error { return unix.Listen(other, 1) })
	if err := e.ns.Do(func() error { return unix.Listen(fd, 1) }); err != unix.EADDRINUSE {
		t.Errorf("the second listen(): %v, want EADDRINUSE", err)
	}
}

func TestWhyEphemeralPort(t *testing.T) {
	e := newWhyEnv(t)
	if err := e.ns.Sysctl("net/ipv4/ip_local_port_range", "40000 40001"); err != nil {
		t.Fatal(err)
	}
	e.hold(0, netip.MustParseAddrPort("127.0.0.1:5432"), 0, false, true)
	var conns []int
	e.ns.Do(func() error {
		for range 2 {
			c, _ := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err := unix.Connect(c, &unix.SockaddrInet4{Port: 5432, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	})
	code, r := e.why("40000")
	f, ok := finding(r, advice.CodeEphemeralTaken)
	if code != 1 || !ok || f.Fixes[0].Name != "net.ipv4.ip_local_reserved_ports" || f.Fixes[0].Suggested != "40000" {
		t.Fatalf("exit %d, findings %+v", code, r.Findings)
	}
	// Applied: the port reserved, the connections that had it closed, new
	// ones leave it alone.
	if err := e.ns.Sysctl("net/ipv4/ip_local_reserved_ports", f.Fixes[0].Suggested); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		// A reset, so that no TIME_WAIT of their own stays on the port.
		unix.SetsockoptLinger(c, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		unix.Close(c)
	}
	time.Sleep(50 * time.Millisecond)
	if code, r := e.why("40000"); code != 0 {
		t.Errorf("after reserving: exit %d %+v", code, r.Findings)
	}
	if _, err := e.bind(netip.MustParseAddrPort("127.0.0.1:40000"), 0, false); err != nil {
		t.Errorf("bind after reserving: %v", err)
	}
}

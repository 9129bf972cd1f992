package demo

// The agent: a lesson's server or client is twtrace itself, re-executed
// inside the lesson's namespace with AgentEnv set, so that it is a process
// of its own (a pid, a name, fds that `why` can find) and dies with the
// lesson: its parent death signal is SIGKILL, set before it runs a line of
// Go. It reads one command a line on stdin and answers each with one line
// on stdout, "ok ..." or "err SYSCALL ERRNO ...". It creates sockets and
// nothing else.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/nsthread"
	"github.com/twtrace/twtrace/tracer/advice"
)

// Environment of an agent. AgentEnv names its role; the others tie it to
// the lesson that started it, so that a stray variable in a shell never
// turns twtrace into an agent outside a lesson's namespace.
const (
	AgentEnv  = "TWTRACE_DEMO_AGENT"
	netnsEnv  = "TWTRACE_DEMO_NETNS"  // the lesson's namespace inode
	parentEnv = "TWTRACE_DEMO_PARENT" // the pid of the twtrace that runs the lesson
	uidEnv    = "TWTRACE_DEMO_UID"    // run as this user, when set
)

// IsAgent reports whether this process was started as a lesson's agent.
func IsAgent() bool { return os.Getenv(AgentEnv) != "" }

// Agent runs this process as a lesson's agent until stdin closes, and
// returns its exit code.
func Agent() int {
	a, err := startAgent()
	if err != nil {
		fmt.Fprintf(os.Stderr, "twtrace: %v\n", err)
		return 2
	}
	return a.serve(os.Stdin, os.Stdout)
}

// agentProc is the agent's state.
type agentProc struct {
	role  string
	mu    sync.Mutex
	lns   map[string]*listener
	load  *load
	kept  []net.Conn // connections a leaking server never closes
	greet string
}

func startAgent() (*agentProc, error) {
	role := os.Getenv(AgentEnv)
	want, _ := strconv.ParseUint(os.Getenv(netnsEnv), 10, 32)
	parent, _ := strconv.Atoi(os.Getenv(parentEnv))
	for _, k := range []string{AgentEnv, netnsEnv, parentEnv} {
		os.Unsetenv(k)
	}
	ino, err := nsthread.ThreadNetNS()
	if err != nil {
		return nil, err
	}
	// A lesson's namespace is never its twtrace's own: only the thread
	// that starts agents enters it, never the main thread, which /proc/PID
	// names.
	var st unix.Stat_t
	sameNS := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", parent), &st) != nil || uint32(st.Ino) == ino
	if want == 0 || ino != uint32(want) || sameNS || parent <= 0 || os.Getppid() != parent {
		return nil, fmt.Errorf("%s is set, but this process was not started by twtrace demo in its namespace: unset it", AgentEnv)
	}
	nameThreads(role)
	if s := os.Getenv(uidEnv); s != "" {
		if err := dropTo(s, parent); err != nil {
			return nil, err
		}
	}
	return &agentProc{role: role, lns: map[string]*listener{},
		greet: fmt.Sprintf("%s %d\n", role, os.Getpid())}, nil
}

// nameThreads names every thread of the process after its role, so that
// events and `why` show "old-server" rather than "twtrace". Threads the
// runtime starts later copy the name of the thread that starts them.
func nameThreads(role string) {
	name := []byte(role[:min(len(role), 15)])
	for range 3 {
		tasks, _ := filepath.Glob("/proc/self/task/*/comm")
		for _, t := range tasks {
			_ = os.WriteFile(t, name, 0)
		}
	}
}

// dropTo becomes uid (and the same gid) in every thread. Changing the
// effective uid clears the parent death signal, so it is set again, and
// the parent checked again in case it died in between.
func dropTo(s string, parent int) error {
	uid, err := strconv.Atoi(s)
	if err != nil || uid <= 0 {
		return fmt.Errorf("%s=%q: want a uid above 0", uidEnv, s)
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(uid); err != nil {
		return fmt.Errorf("setgid %d: %w", uid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid %d: %w", uid, err)
	}
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("PR_SET_PDEATHSIG: %w", err)
	}
	if os.Getppid() != parent {
		return fmt.Errorf("the lesson ended while this process started")
	}
	return nil
}

// serve answers commands until stdin closes or "exit".
func (a *agentProc) serve(in io.Reader, out io.Writer) int {
	sc := bufio.NewScanner(in)
	bw := bufio.NewWriter(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if f[0] == "exit" {
			fmt.Fprintln(bw, "ok")
			bw.Flush()
			return 0
		}
		fmt.Fprintln(bw, a.do(f))
		if bw.Flush() != nil {
			return 1
		}
	}
	return 0
}

// do runs one command and returns its answer.
func (a *agentProc) do(f []string) string {
	args := f[1:]
	need := map[string]int{"listen": 3, "serve": 2, "stop": 1, "conn": 2, "churn": 3, "load": 2, "loadstop": 0, "loadpeek": 0}
	n, known := need[f[0]]
	switch {
	case !known:
		return "err usage unknown command " + f[0]
	case len(args) != n:
		return fmt.Sprintf("err usage %s takes %d arguments", f[0], n)
	}
	switch f[0] {
	case "listen":
		return a.listen(args[0], args[1], args[2])
	case "serve":
		return a.serveOn(args[0], args[1])
	case "stop":
		return a.stop(args[0])
	case "conn":
		ap, err := netip.ParseAddrPort(args[0])
		if err != nil {
			return "err usage " + err.Error()
		}
		port, who, err := connect(ap, args[1])
		if err != nil {
			return errReply(err)
		}
		return fmt.Sprintf("ok %d %s", port, who)
	case "churn":
		return a.churn(args)
	case "load":
		return a.startLoad(args)
	case "loadpeek":
		return a.peekLoad()
	}
	return a.stopLoad()
}

// sysErr is a failed system call.
type sysErr struct {
	call string
	err  error
}

func (e *sysErr) Error() string { return e.call + ": " + e.err.Error() }

// errReply is the answer for a failed command: "err connect EADDRNOTAVAIL".
func errReply(err error) string {
	if se, ok := err.(*sysErr); ok {
		if errno, ok := se.err.(unix.Errno); ok {
			return "err " + se.call + " " + unix.ErrnoName(errno)
		}
		return "err " + se.call + " " + strings.ReplaceAll(se.err.Error(), " ", "_")
	}
	return "err other " + strings.ReplaceAll(err.Error(), " ", "_")
}

func sockaddr(ap netip.AddrPort) (int, unix.Sockaddr) {
	if ap.Addr().Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
}

// listener is a listening socket and how it treats what it accepts.
type listener struct {
	ln      net.Listener
	mu      sync.Mutex
	mode    string // greet, wait or leak
	serving bool
}

// listen makes a socket with the options, binds and listens, with plain
// system calls so that the options are exactly the ones asked for (Go's
// net.Listen always sets SO_REUSEADDR).
func (a *agentProc) listen(id, addr, opts string) string {
	ap, err := netip.ParseAddrPort(addr)
	o, ok := advice.ParseOptions(opts)
	if err != nil || !ok {
		return "err usage listen ID ADDR:PORT OPTIONS"
	}
	fam, sa := sockaddr(ap)
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return errReply(&sysErr{"socket", err})
	}
	if o&advice.ReuseAddr != 0 {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	}
	if o&advice.ReusePort != 0 {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return errReply(&sysErr{"bind", err})
	}
	if err := unix.Listen(fd, 128); err != nil {
		unix.Close(fd)
		return errReply(&sysErr{"listen", err})
	}
	file := os.NewFile(uintptr(fd), "listener")
	ln, err := net.FileListener(file) // a duplicate: the original goes
	file.Close()
	if err != nil {
		return errReply(&sysErr{"listener", err})
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if old := a.lns[id]; old != nil {
		old.ln.Close()
	}
	a.lns[id] = &listener{ln: ln}
	return "ok"
}

// serveOn starts accepting, or changes how later connections are treated:
// greet writes a greeting and closes first; wait writes it and closes after
// the client did; leak writes it and never closes.
func (a *agentProc) serveOn(id, mode string) string {
	if mode != "greet" && mode != "wait" && mode != "leak" {
		return "err usage serve ID greet|wait|leak"
	}
	a.mu.Lock()
	l := a.lns[id]
	a.mu.Unlock()
	if l == nil {
		return "err usage no listener " + id
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mode = mode
	if !l.serving {
		l.serving = true
		go a.accept(l)
	}
	return "ok"
}

func (a *agentProc) accept(l *listener) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return // closed by stop
		}
		l.mu.Lock()
		mode := l.mode
		l.mu.Unlock()
		go a.handle(c, mode)
	}
}

func (a *agentProc) handle(c net.Conn, mode string) {
	_ = c.SetDeadline(time.Now().Add(connTimeout))
	if _, err := io.WriteString(c, a.greet); err != nil || mode == "greet" {
		c.Close()
		return
	}
	if mode == "leak" {
		a.mu.Lock()
		a.kept = append(a.kept, c)
		a.mu.Unlock()
		return
	}
	_, _ = io.Copy(io.Discard, c) // until the client's FIN
	c.Close()
}

func (a *agentProc) stop(id string) string {
	a.mu.Lock()
	l := a.lns[id]
	delete(a.lns, id)
	a.mu.Unlock()
	if l == nil {
		return "err usage no listener " + id
	}
	if err := l.ln.Close(); err != nil {
		return errReply(&sysErr{"close", err})
	}
	return "ok"
}

// connTimeout bounds every read and write of a lesson's connection.
const connTimeout = 5 * time.Second

// connect opens one connection and reads the server's greeting. With
// "server-first" it reads on to the server's FIN before closing; with
// "client-first" it closes right after the greeting. It returns its local
// port and the role of the server that answered.
func connect(ap netip.AddrPort, mode string) (uint16, string, error) {
	if mode != "server-first" && mode != "client-first" {
		return 0, "", fmt.Errorf("conn mode %q: want server-first or client-first", mode)
	}
	fam, sa := sockaddr(ap)
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, "", &sysErr{"socket", err}
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(connTimeout))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Connect(fd, sa); err != nil {
		return 0, "", &sysErr{"connect", err}
	}
	var port uint16
	if local, err := unix.Getsockname(fd); err == nil {
		switch s := local.(type) {
		case *unix.SockaddrInet4:
			port = uint16(s.Port)
		case *unix.SockaddrInet6:
			port = uint16(s.Port)
		}
	}
	greeting, err := readGreeting(fd, mode == "server-first")
	if err != nil {
		return port, "", err
	}
	who, _, _ := strings.Cut(greeting, " ")
	return port, who, nil
}

// readGreeting reads the server's line; toEOF reads on to its FIN. Nothing
// is left unread: closing with unread data would send a reset, not a FIN.
func readGreeting(fd int, toEOF bool) (string, error) {
	var got []byte
	var b [128]byte
	for len(got) < 1024 {
		n, err := unix.Read(fd, b[:])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return "", &sysErr{"read", err}
		case n == 0:
			if len(got) == 0 {
				return "", &sysErr{"read", fmt.Errorf("closed before the greeting")}
			}
			return strings.TrimSpace(string(got)), nil
		}
		got = append(got, b[:n]...)
		if !toEOF && strings.HasSuffix(string(got), "\n") {
			return strings.TrimSpace(string(got)), nil
		}
	}
	return "", &sysErr{"read", fmt.Errorf("greeting too long")}
}

// churn connects N times, one after another, and stops at the first
// failure: "ok N", or "err connect EADDRNOTAVAIL K" after K successes.
func (a *agentProc) churn(args []string) string {
	ap, err1 := netip.ParseAddrPort(args[0])
	n, err2 := strconv.Atoi(args[1])
	if err1 != nil || err2 != nil || n <= 0 {
		return "err usage churn ADDR:PORT N MODE"
	}
	for i := range n {
		if _, _, err := connect(ap, args[2]); err != nil {
			return fmt.Sprintf("%s %d", errReply(err), i)
		}
	}
	return fmt.Sprintf("ok %d", n)
}

package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ssScenario is what TestSocketsAgreesWithSS lists. On port, a Go
// listener (SO_REUSEADDR) shared with a child process that inherited it;
// 30 connections: 10 the server closed first (TIME_WAIT on its side), one
// with 1000 bytes the server has not read, one whose client wrote until the
// server's window closed (a zero-window probe on the client), one the
// server closed and the client did not (an orphan FIN_WAIT2 and its
// CLOSE_WAIT peer), 17 idle; all the open ones with Go's keepalive. On
// mapped, an IPv6 listener on ::ffff:127.0.0.1 with a backlog of 0 and
// none accepted: one connection waits in its accept queue, and the next
// client's SYN is dropped (SYN_SENT, retransmitting).
type ssScenario struct {
	port, mapped int
	child        int             // the pid holding the listener too
	unowned      map[string]bool // sockets no process holds, by "local remote"
}

func newSSScenario(t *testing.T) *ssScenario {
	t.Helper()
	sc := &ssScenario{port: freePort(t), unowned: map[string]bool{}}
	// Fixed buffers from the start, inherited by the accepted sockets (and
	// set on the client that fills one): no autotuning reopens a window,
	// so the stuck sender's timer stays the zero-window probe.
	lc := net.ListenConfig{Control: fixedBuffers}
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:"+strconv.Itoa(sc.port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	sc.child = shareListener(t, l.(*net.TCPListener))

	var open []net.Conn
	t.Cleanup(func() {
		for _, c := range open {
			c.Close()
		}
	})
	for i := range 30 {
		d := net.Dialer{}
		if i == 2 {
			d.Control = fixedBuffers
		}
		c, err := d.Dial("tcp4", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		a, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case i%3 == 0: // TIME_WAIT on the server's side
			a.Close()
			if _, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Fatal(err)
			}
			c.Close()
			continue
		case i == 1: // unread data
			if _, err := c.Write(make([]byte, 1000)); err != nil {
				t.Fatal(err)
			}
		case i == 2: // the server's window closes: queues on both sides
			c.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
			buf := make([]byte, 1<<20)
			for k := 0; k < 64; k++ { // at most 64 MiB
				if _, err := c.Write(buf); err != nil {
					break
				}
			}
		case i == 4: // an orphan: the server closed, the client did not
			a.Close()
			open = append(open, c)
			sc.unowned[a.LocalAddr().String()+" "+a.RemoteAddr().String()] = true
			continue
		}
		open = append(open, c, a)
	}
	sc.mapped = sc.fullBacklog(t)
	// Let the queues and the orphan settle.
	time.Sleep(100 * time.Millisecond)
	return sc
}

// fixedBuffers sets a socket's SO_RCVBUF and SO_SNDBUF, which turns off
// their autotuning.
func fixedBuffers(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = errors.Join(unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<16),
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<16))
	})
	return errors.Join(err, serr)
}

// shareListener starts a child process that inherits the listener's fd
// and holds it, as nginx's workers do; it returns the child's pid.
func shareListener(t *testing.T, l *net.TCPListener) int {
	t.Helper()
	f, err := l.File() // a dup, handed over then closed here
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if line, pid := startHelper(t, holdHelperEnv, f); line == "ready" {
		return pid
	}
	t.Fatal("the helper did not say it was ready")
	return 0
}

// startHelper starts this test binary as the helper env names, with extra
// fds (3 and on), and returns the first line it prints and its pid. The
// helper runs until the test ends.
func startHelper(t *testing.T, env string, files ...*os.File) (line string, pid int) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), env+"=1")
	cmd.ExtraFiles = files
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line, err = bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper %s: %q %v", env, line, err)
	}
	return strings.TrimSpace(line), cmd.Process.Pid
}

// fullBacklog makes the v4-mapped listener with a full accept queue, and
// returns its port.
func (sc *ssScenario) fullBacklog(t *testing.T) int {
	t.Helper()
	lfd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(lfd) })
	mapped := [16]byte{10: 0xff, 11: 0xff, 12: 127, 15: 1}
	if err := unix.Bind(lfd, &unix.SockaddrInet6{Addr: mapped}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lfd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(lfd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*unix.SockaddrInet6).Port
	connect := func() (int, string) {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != unix.EINPROGRESS {
			t.Fatalf("connect: %v", err)
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, _ := unix.Poll(pfd, 300)
		local, _ := unix.Getsockname(fd)
		lp := local.(*unix.SockaddrInet4).Port
		return n, "[::ffff:127.0.0.1]:" + strconv.Itoa(port) + " [::ffff:127.0.0.1]:" + strconv.Itoa(lp)
	}
	if n, server := connect(); n != 1 {
		t.Fatal("the first connection to a backlog of 0 did not complete")
	} else {
		sc.unowned[server] = true // in the accept queue: no fd yet
	}
	if n, _ := connect(); n != 0 {
		t.Fatal("a connection to a full accept queue completed")
	}
	return port
}

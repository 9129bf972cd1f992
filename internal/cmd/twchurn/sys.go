package main

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The hot path calls the kernel through golang.org/x/sys/unix directly:
// net.Conn and the netpoller cost a goroutine switch and several extra
// syscalls per connection (see the package documentation for numbers).

// loopbackAddrs returns the n addresses the servers listen on.
func loopbackAddrs(ipv6 bool, n int) []netip.Addr {
	if ipv6 {
		return []netip.Addr{netip.IPv6Loopback()}
	}
	addrs := make([]netip.Addr, n)
	for i := range addrs {
		// 127.0.0.0/8 is all local on Linux: no configuration needed.
		addrs[i] = netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i)})
	}
	return addrs
}

// sockaddr builds the kernel's form of addr:port. Each worker keeps its own:
// unix.Connect writes into the value it is given.
func sockaddr(addr netip.Addr, port int) unix.Sockaddr {
	if addr.Is4() {
		return &unix.SockaddrInet4{Port: port, Addr: addr.As4()}
	}
	return &unix.SockaddrInet6{Port: port, Addr: addr.As16()}
}

func domainOf(addr netip.Addr) int {
	if addr.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// listen opens a non-blocking listener on addr:port. SO_REUSEADDR lets a
// rerun bind the same port while the last run's TIME_WAIT sockets (left on
// the server by --close server) remain: they inherit the flag, and the kernel
// allows the bind only when both sides have it.
func listen(addr netip.Addr, port int) (fd, bound int, err error) {
	fd, err = unix.Socket(domainOf(addr), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, fmt.Errorf("socket: %w", err)
	}
	fail := func(op string, err error) (int, int, error) {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("%s %s: %w", op, netip.AddrPortFrom(addr, uint16(port)), err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt SO_REUSEADDR", err)
	}
	if addr.Is6() {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fail("setsockopt IPV6_V6ONLY", err)
		}
	}
	if err := unix.Bind(fd, sockaddr(addr, port)); err != nil {
		return fail("bind", err)
	}
	// The kernel caps the backlog at net.core.somaxconn.
	if err := unix.Listen(fd, 4096); err != nil {
		return fail("listen", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		bound = sa.Port
	case *unix.SockaddrInet6:
		bound = sa.Port
	}
	return fd, bound, nil
}

// listenAll opens a listener on each address for each of nports
// consecutive ports from port, so that a tracer can follow the whole run with
// one --port filter per port. With port 0 the first bind picks a free port
// and the others follow it; if one of those is taken, it starts over with a
// fresh port. The result is ordered port by port, then address by address.
func listenAll(addrs []netip.Addr, port, nports int) (fds []int, first int, err error) {
	closeAll := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
		fds = nil
	}
	for attempt := 0; ; attempt++ {
		first = port
		for i := 0; i < nports*len(addrs) && err == nil; i++ {
			p := first + i/len(addrs)
			if p > 65535 {
				err = fmt.Errorf("ports %d-%d: %w", first, first+nports-1, unix.EADDRINUSE)
				break
			}
			var fd, got int
			fd, got, err = listen(addrs[i%len(addrs)], p)
			if err == nil {
				fds = append(fds, fd)
				first = got - i/len(addrs) // only changes on the first, port 0
			}
		}
		if err == nil {
			return fds, first, nil
		}
		closeAll()
		if port != 0 || attempt >= 20 || !errors.Is(err, unix.EADDRINUSE) {
			return nil, 0, err
		}
		err = nil
	}
}

// The per-connection syscalls below go through RawSyscall6: they never
// block (every socket is non-blocking, and close() without SO_LINGER does not
// wait), so the runtime need not know about them. syscall.Syscall would tell
// the scheduler before and after each one and let sysmon take the worker's
// P away during a slow one, only to hand it back on return; measured, that
// costs about a third of the CPU time per connection at a fixed rate.

// rawSockaddr is a sockaddr in the kernel's layout, built once per endpoint.
type rawSockaddr struct {
	buf [unix.SizeofSockaddrInet6]byte
	len uintptr
}

func newRawSockaddr(ap netip.AddrPort) *rawSockaddr {
	var rs rawSockaddr
	port := ap.Port()
	if ap.Addr().Is4() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&rs.buf))
		sa.Family = unix.AF_INET
		sa.Addr = ap.Addr().As4()
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		p[0], p[1] = byte(port>>8), byte(port) // network byte order
		rs.len = unix.SizeofSockaddrInet4
	} else {
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&rs.buf))
		sa.Family = unix.AF_INET6
		sa.Addr = ap.Addr().As16()
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		p[0], p[1] = byte(port>>8), byte(port)
		rs.len = unix.SizeofSockaddrInet6
	}
	return &rs
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func sysSocket(domain int) (int, error) {
	fd, _, e := unix.RawSyscall6(unix.SYS_SOCKET, uintptr(domain),
		unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0, 0, 0)
	return int(fd), errnoErr(e)
}

func sysConnect(fd int, sa *rawSockaddr) error {
	_, _, e := unix.RawSyscall6(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa.buf)), sa.len, 0, 0, 0)
	return errnoErr(e)
}

// sysAccept takes one connection without asking for the peer's address
// (unix.Accept4 allocates it on every call).
func sysAccept(lfd int) (int, error) {
	for {
		fd, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(lfd), 0, 0,
			unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		if e != unix.EINTR {
			return int(fd), errnoErr(e)
		}
	}
}

// sysRead and sysWrite retry on EINTR: treated as EAGAIN, it would wait
// for an edge that has already passed.
func sysRead(fd int, b []byte) (int, error) {
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0, 0)
		if e != unix.EINTR {
			return int(n), errnoErr(e)
		}
	}
}

func sysWrite(fd int, b []byte) (int, error) {
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0, 0)
		if e != unix.EINTR {
			return int(n), errnoErr(e)
		}
	}
}

func sysClose(fd int) error {
	_, _, e := unix.RawSyscall6(unix.SYS_CLOSE, uintptr(fd), 0, 0, 0, 0, 0)
	return errnoErr(e)
}

// epollWait waits for at most timeout (negative: forever) with nanosecond
// precision, which fixed-rate pacing needs: epoll_wait's millisecond timeout
// would bunch connections into 1 ms bursts. epoll_pwait2 is Linux 5.11+;
// older kernels fall back to whole milliseconds, rounded up.
//
// It blocks, yet goes through RawSyscall6 too: each worker has a P of its
// own (Run sets GOMAXPROCS), so holding it while asleep costs nothing, and
// telling the scheduler instead keeps sysmon polling every 20 µs to take the
// P away. A signal (the runtime's preemption, or GC) ends the wait with EINTR.
func epollWait(epfd int, events []unix.EpollEvent, timeout time.Duration, noPwait2 *bool) (int, error) {
	if !*noPwait2 {
		var tsp unsafe.Pointer
		var ts unix.Timespec
		if timeout >= 0 {
			ts = unix.NsecToTimespec(int64(timeout))
			tsp = unsafe.Pointer(&ts)
		}
		n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT2, uintptr(epfd),
			uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(tsp), 0, 0)
		if e == 0 {
			return int(n), nil
		}
		if e != unix.ENOSYS {
			return 0, e
		}
		*noPwait2 = true
	}
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	return unix.EpollWait(epfd, events, ms)
}

// preciseTimers asks the kernel to wake this thread within 1 µs of a timer
// instead of the default 50 µs slack, for even pacing. It only affects the
// calling thread, which is locked to its goroutine.
func preciseTimers() {
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0)
}

// errnoName turns an error into a short kind such as EADDRNOTAVAIL.
func errnoName(err error) string {
	var e unix.Errno
	if errors.As(err, &e) {
		if name := unix.ErrnoName(e); name != "" {
			return name
		}
		return fmt.Sprintf("errno%d", int(e))
	}
	return err.Error()
}

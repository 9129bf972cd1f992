package sockdiag

import (
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Raw sockets for the privileged tests: plain system calls, so that a test
// decides exactly which side closes first and can read SO_COOKIE. Call them
// inside NetNS.Do: a socket belongs to the namespace it was created in.

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	}
	return &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
}

func family(ap netip.AddrPort) int {
	if ap.Addr().Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// tcpSocket makes a blocking TCP socket, bound to local unless it is zero.
func tcpSocket(fam int, local netip.AddrPort) (int, error) {
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if local.IsValid() {
		if err := unix.Bind(fd, sockaddr(local)); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("bind %v: %w", local, err)
		}
	}
	return fd, nil
}

// listenTCP listens on addr (port 0: any) and returns the fd and its address.
func listenTCP(addr netip.AddrPort, backlog int) (int, netip.AddrPort, error) {
	fd, err := tcpSocket(family(addr), addr)
	if err != nil {
		return -1, addr, err
	}
	if err := unix.Listen(fd, backlog); err != nil {
		unix.Close(fd)
		return -1, addr, fmt.Errorf("listen: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, addr, fmt.Errorf("getsockname: %w", err)
	}
	return fd, addrPort(sa), nil
}

// conn is both ends of one loopback connection.
type conn struct {
	client, server int // fds: the connecting and the accepted socket
	local, remote  netip.AddrPort
}

// dialPair connects from local (zero: any) to the listener lfd at dst and
// accepts. On loopback the handshake completes within connect().
func dialPair(lfd int, dst, local netip.AddrPort) (conn, error) {
	c := conn{client: -1, server: -1, remote: dst}
	fd, err := tcpSocket(family(dst), local)
	if err != nil {
		return c, err
	}
	if err := unix.Connect(fd, sockaddr(dst)); err != nil {
		unix.Close(fd)
		return c, fmt.Errorf("connect %v: %w", dst, err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return c, fmt.Errorf("getsockname: %w", err)
	}
	sfd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	if err != nil {
		unix.Close(fd)
		return c, fmt.Errorf("accept: %w", err)
	}
	c.client, c.server, c.local = fd, sfd, addrPort(sa)
	return c, nil
}

// waitEOF reads fd until the peer's FIN (read returns 0), so that closing
// fd afterwards is a passive close, never a simultaneous one.
func waitEOF(fd int) error {
	var b [64]byte
	for range 100 {
		n, err := unix.Read(fd, b[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("read for EOF: %w", err)
		}
		if n == 0 {
			return nil
		}
	}
	return fmt.Errorf("no EOF after 100 reads")
}

// activeClose closes first on one side, waits for the FIN on the other, and
// closes it: the first side is left in TIME_WAIT, the other in nothing.
func activeClose(first, second int) error {
	if err := unix.Close(first); err != nil {
		unix.Close(second)
		return fmt.Errorf("close: %w", err)
	}
	// A blocking read must not wait forever if the FIN were lost.
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(second, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(second)
		return fmt.Errorf("SO_RCVTIMEO: %w", err)
	}
	err := waitEOF(second)
	unix.Close(second)
	return err
}

func cookie(fd int) (uint64, error) {
	c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_COOKIE)
	if err != nil {
		return 0, fmt.Errorf("SO_COOKIE: %w", err)
	}
	return c, nil
}

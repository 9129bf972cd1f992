package sockdiag

import (
	"encoding/binary"
	"fmt"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Requests (linux/inet_diag.h, linux/sock_diag.h).
const (
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY, with struct inet_diag_req_v2
	tcpDiagGetSock   = 18 // TCPDIAG_GETSOCK, the older request, struct inet_diag_req
	reqV2Len         = 56 // struct inet_diag_req_v2
	reqCompatLen     = 60 // struct inet_diag_req
)

// recvBufLen bounds one received datagram. The kernel sizes a dump's
// datagrams to the reader's buffer but never beyond 32 KiB (netlink_recvmsg
// caps max_recvmsg_len), so a larger buffer gets the fewest system calls and
// is never too small.
const recvBufLen = 64 << 10

// Conn is a NETLINK_SOCK_DIAG socket bound to one network namespace: the one
// it was created in, whatever thread later uses it. Its methods may be called
// from any goroutine; dumps run one at a time.
//
// github.com/mdlayher/netlink creates the socket (in another namespace if
// asked) and binds it; requests and replies then go through the socket's
// RawConn, in buffers the Conn owns, because the library's Send and Receive
// allocate for every datagram, and a reconciliation every second should cost
// nothing the garbage collector sees.
type Conn struct {
	mu   sync.Mutex
	nl   *netlink.Conn
	raw  syscall.RawConn
	pid  uint32 // the socket's netlink port id, which replies carry
	seq  uint32 // of the last request
	req  [nlmsgHdrLen + reqCompatLen]byte
	buf  []byte
	d    dump
	fail error // a dump that could not be read to its end leaves the socket out of step

	// sendFn and recvFn are c.send and c.recv, bound once: a method value
	// made for each RawConn call would be an allocation each time.
	sendFn func(fd uintptr) bool
	recvFn func(fd uintptr) bool
	reqLen int
	ioErr  error
	recvN  int // the datagram's length, which exceeds len(buf) if it was cut
}

// Dial opens a sock_diag socket in the network namespace netnsFD refers to (an
// open /proc/PID/ns/net, which the caller keeps and closes). A netnsFD < 0
// means the namespace of the calling thread, which is the process's unless
// the caller moved its thread. Entering another namespace needs CAP_SYS_ADMIN;
// dumping does not need privilege.
func Dial(netnsFD int) (*Conn, error) {
	cfg := &netlink.Config{}
	if netnsFD >= 0 {
		fd := netnsFD
		if fd == 0 {
			// netlink.Config reads NetNS 0 as "not set": use a copy.
			dup, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 3)
			if err != nil {
				return nil, fmt.Errorf("dup netns fd 0: %w", err)
			}
			defer unix.Close(dup)
			fd = dup
		}
		cfg.NetNS = fd
	}
	nl, err := netlink.Dial(unix.NETLINK_SOCK_DIAG, cfg)
	if err != nil {
		return nil, fmt.Errorf("dial netlink sock_diag: %w", err)
	}
	raw, err := nl.SyscallConn()
	if err != nil {
		nl.Close()
		return nil, fmt.Errorf("netlink sock_diag raw conn: %w", err)
	}
	c := &Conn{
		nl:  nl,
		raw: raw,
		pid: nl.PID(),
		// Any start will do; a varying one keeps replies to an earlier
		// Conn's requests, were any to arrive, from matching.
		seq: uint32(time.Now().UnixNano()),
		buf: make([]byte, recvBufLen),
	}
	c.sendFn, c.recvFn = c.send, c.recv
	return c, nil
}

// Close closes the socket. It unblocks a Dump running in another goroutine,
// which then fails.
func (c *Conn) Close() error { return c.nl.Close() }

// Dump asks the kernel for the TCP sockets of family (unix.AF_INET,
// unix.AF_INET6, or unix.AF_UNSPEC for both) whose state is in states (see
// StateMask), and calls fn for each as it is read. fn gets the same *Socket
// every time: it must copy what it keeps. The kernel does the filtering, so
// sockets in other states cost nothing here.
//
// If fn returns an error, Dump delivers nothing more, reads the rest of the
// reply (so the Conn stays usable), and returns fn's error. A dump the kernel
// flagged as interrupted is delivered in full and ends in an error wrapping
// ErrInterrupted. After any other error, later dumps fail: dial again.
func (c *Conn) Dump(family uint8, states uint32, fn func(*Socket) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return fmt.Errorf("sock_diag socket unusable after an earlier failure, dial again: %w", c.fail)
	}
	typ, err := c.request(family, states)
	if err != nil {
		return err
	}
	if err := c.raw.Write(c.sendFn); err != nil {
		return fmt.Errorf("send sock_diag request: %w", err)
	}
	if c.ioErr != nil {
		return fmt.Errorf("send sock_diag request: %w", c.ioErr)
	}
	c.d = dump{seq: c.seq, pid: c.pid, typ: typ, fn: fn}
	err = c.readDump()
	c.d.fn = nil // let the caller's closure go
	if err != nil && !c.d.done {
		c.fail = err
	}
	switch {
	case err != nil:
		return fmt.Errorf("sock_diag dump: %w", err)
	case c.d.fnErr != nil:
		return c.d.fnErr
	case c.d.interrupted:
		return fmt.Errorf("sock_diag dump of %d sockets: %w", c.d.count, ErrInterrupted)
	}
	return nil
}

// request encodes the dump request, header included, into c.req. Both
// families in one dump need the older TCPDIAG_GETSOCK request:
// SOCK_DIAG_BY_FAMILY refuses AF_UNSPEC (ENOENT), while TCPDIAG_GETSOCK
// always dumps both families, in one walk of the hash tables instead of two.
func (c *Conn) request(family uint8, states uint32) (typ uint16, err error) {
	c.req = [len(c.req)]byte{}
	p := c.req[nlmsgHdrLen:]
	switch family {
	case unix.AF_INET, unix.AF_INET6:
		typ, c.reqLen = sockDiagByFamily, nlmsgHdrLen+reqV2Len
		p[0] = family
		p[1] = unix.IPPROTO_TCP
		binary.NativeEndian.PutUint32(p[4:], states)
	case unix.AF_UNSPEC:
		typ, c.reqLen = tcpDiagGetSock, nlmsgHdrLen+reqCompatLen
		binary.NativeEndian.PutUint32(p[52:], states)
	default:
		return 0, fmt.Errorf("sock_diag dump of address family %d: want AF_INET, AF_INET6 or AF_UNSPEC", family)
	}
	c.seq++
	ne := binary.NativeEndian
	ne.PutUint32(c.req[0:], uint32(c.reqLen))
	ne.PutUint16(c.req[4:], typ)
	ne.PutUint16(c.req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(c.req[8:], c.seq)
	ne.PutUint32(c.req[12:], c.pid)
	return typ, nil
}

// readDump reads datagrams until the dump ends.
func (c *Conn) readDump() error {
	for !c.d.done {
		if err := c.raw.Read(c.recvFn); err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		if c.ioErr != nil {
			return fmt.Errorf("receive: %w", c.ioErr)
		}
		if c.recvN > len(c.buf) {
			return fmt.Errorf("datagram of %d bytes exceeds the %d-byte buffer: %w", c.recvN, len(c.buf), errMalformed)
		}
		if err := c.d.feed(c.buf[:c.recvN]); err != nil {
			return err
		}
	}
	return nil
}

// send writes the request in c.req; RawConn.Write calls it when the socket
// is writable. An unaddressed write on a netlink socket goes to the kernel.
func (c *Conn) send(fd uintptr) bool {
	for {
		_, err := unix.Write(int(fd), c.req[:c.reqLen])
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait in the runtime's poller
		}
		c.ioErr = err
		return true
	}
}

// recv reads one datagram into c.buf; RawConn.Read calls it when the socket
// is readable. It calls recvfrom(2) itself because the x/sys wrappers return
// the sender's address, one allocation per datagram. MSG_TRUNC makes the
// kernel return a datagram's full length even when the buffer was too short.
func (c *Conn) recv(fd uintptr) bool {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd,
			uintptr(unsafe.Pointer(&c.buf[0])), uintptr(len(c.buf)), unix.MSG_TRUNC, 0, 0)
		switch errno {
		case 0:
			c.recvN, c.ioErr = int(n), nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait in the runtime's poller
		}
		c.ioErr = errno
		return true
	}
}

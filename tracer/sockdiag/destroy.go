package sockdiag

import (
	"encoding/binary"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// sockDestroy is SOCK_DESTROY (linux/sock_diag.h): the request `ss -K` sends.
const sockDestroy = 21

// Destroy asks the kernel to end one socket, found by its family, 4-tuple,
// interface and cookie as a dump reported it: a full socket is aborted
// (its owner's next call fails with ECONNABORTED, the peer gets a reset),
// and a TIME_WAIT or request mini-socket is removed at once, the end its
// timer would have brought. It is what `ss -K` does, with the cookie making
// sure that a socket which took the same 4-tuple since is left alone.
//
// It needs CAP_NET_ADMIN in the socket's namespace and a kernel built with
// CONFIG_INET_DIAG_DESTROY (EOPNOTSUPP otherwise). A socket already gone, or
// replaced by another of a different cookie, gives ENOENT.
func (c *Conn) Destroy(s *Socket) error {
	req := make([]byte, reqV2Len)
	req[0] = s.Family
	req[1] = unix.IPPROTO_TCP
	ne := binary.NativeEndian
	ne.PutUint32(req[4:], AllStates)
	id := req[8:]
	binary.BigEndian.PutUint16(id[0:], s.Src.Port())
	binary.BigEndian.PutUint16(id[2:], s.Dst.Port())
	switch s.Family {
	case unix.AF_INET:
		if !s.Src.Addr().Unmap().Is4() || !s.Dst.Addr().Unmap().Is4() {
			return fmt.Errorf("destroy an IPv4 socket of %s -> %s: the addresses are not IPv4", s.Src, s.Dst)
		}
		a, b := s.Src.Addr().Unmap().As4(), s.Dst.Addr().Unmap().As4()
		copy(id[4:], a[:])
		copy(id[20:], b[:])
	case unix.AF_INET6:
		a, b := s.Src.Addr().As16(), s.Dst.Addr().As16()
		copy(id[4:], a[:])
		copy(id[20:], b[:])
	default:
		return fmt.Errorf("destroy a socket of address family %d: want AF_INET or AF_INET6", s.Family)
	}
	ne.PutUint32(id[36:], s.IfIndex)
	ne.PutUint32(id[40:], uint32(s.Cookie))
	ne.PutUint32(id[44:], uint32(s.Cookie>>32))

	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.nl.Execute(netlink.Message{
		Header: netlink.Header{Type: sockDestroy, Flags: netlink.Request | netlink.Acknowledge},
		Data:   req,
	})
	if err != nil {
		return fmt.Errorf("sock_diag destroy %s -> %s: %w", s.Src, s.Dst, err)
	}
	return nil
}

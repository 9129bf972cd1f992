package sockdiag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Layout of the kernel's replies (linux/netlink.h, linux/inet_diag.h).
// Netlink talks in the host's byte order; ports and addresses are in network
// byte order, as the kernel keeps them.
const (
	nlmsgHdrLen = 16 // struct nlmsghdr
	diagMsgLen  = 72 // struct inet_diag_msg
	nlaHdrLen   = 4  // struct nlattr

	nlaTypeMask = 0x3fff // strips NLA_F_NESTED and NLA_F_NET_BYTEORDER
)

// Reply attributes the decoder keeps (enum in linux/inet_diag.h). The kernel
// sends them unasked for full sockets; everything else is skipped.
const (
	attrShutdown = 8  // INET_DIAG_SHUTDOWN, u8
	attrSkV6Only = 11 // INET_DIAG_SKV6ONLY, u8
	attrMark     = 15 // INET_DIAG_MARK, u32
	attrCgroupID = 21 // INET_DIAG_CGROUP_ID, u64
)

// errMalformed marks replies that do not have the layout of the ABI. A real
// kernel never sends one; the decoder says so instead of reading past the end.
var errMalformed = errors.New("malformed sock_diag reply")

// header is a struct nlmsghdr.
type header struct {
	len   uint32
	typ   uint16
	flags uint16
	seq   uint32
	pid   uint32
}

// splitMessage cuts the first netlink message off b, a received datagram. It
// returns the message's header, its payload, and what follows it.
func splitMessage(b []byte) (h header, payload, rest []byte, err error) {
	if len(b) < nlmsgHdrLen {
		return h, nil, nil, fmt.Errorf("netlink header: %d bytes left, want %d: %w", len(b), nlmsgHdrLen, errMalformed)
	}
	h = header{
		len:   binary.NativeEndian.Uint32(b[0:]),
		typ:   binary.NativeEndian.Uint16(b[4:]),
		flags: binary.NativeEndian.Uint16(b[6:]),
		seq:   binary.NativeEndian.Uint32(b[8:]),
		pid:   binary.NativeEndian.Uint32(b[12:]),
	}
	if h.len < nlmsgHdrLen || uint64(h.len) > uint64(len(b)) {
		return h, nil, nil, fmt.Errorf("netlink message of %d bytes in %d: %w", h.len, len(b), errMalformed)
	}
	next := align4(int(h.len))
	if next > len(b) {
		next = len(b) // the last message of a datagram may go unpadded
	}
	return h, b[nlmsgHdrLen:h.len], b[next:], nil
}

// decodeMsg decodes b, the payload of one reply (struct inet_diag_msg and its
// attributes), into s. It overwrites every field of s and allocates nothing.
func decodeMsg(b []byte, s *Socket) error {
	if len(b) < diagMsgLen {
		return fmt.Errorf("inet_diag_msg of %d bytes, want %d: %w", len(b), diagMsgLen, errMalformed)
	}
	ne := binary.NativeEndian
	*s = Socket{
		Family:  b[0],
		State:   b[1],
		Timer:   Timer(b[2]),
		Retrans: b[3],
		IfIndex: ne.Uint32(b[40:]),
		// sock_diag_save_cookie stores the low half first.
		Cookie:  uint64(ne.Uint32(b[44:])) | uint64(ne.Uint32(b[48:]))<<32,
		Expires: time.Duration(ne.Uint32(b[52:])) * time.Millisecond,
		RQueue:  ne.Uint32(b[56:]),
		WQueue:  ne.Uint32(b[60:]),
		UID:     ne.Uint32(b[64:]),
		Inode:   ne.Uint32(b[68:]),
	}
	sport := binary.BigEndian.Uint16(b[4:])
	dport := binary.BigEndian.Uint16(b[6:])
	switch s.Family {
	case unix.AF_INET:
		s.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[8:12])), sport)
		s.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[24:28])), dport)
	case unix.AF_INET6:
		s.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), sport)
		s.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[24:40])), dport)
	default:
		return fmt.Errorf("inet_diag_msg of family %d: %w", s.Family, errMalformed)
	}
	return decodeAttrs(b[diagMsgLen:], s)
}

// decodeAttrs reads the attributes that follow an inet_diag_msg. An attribute
// of a size the decoder does not expect is skipped, not trusted.
func decodeAttrs(b []byte, s *Socket) error {
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < nlaHdrLen {
			return fmt.Errorf("attribute header: %d bytes left: %w", len(b), errMalformed)
		}
		n := int(ne.Uint16(b))
		if n < nlaHdrLen || n > len(b) {
			return fmt.Errorf("attribute of %d bytes in %d: %w", n, len(b), errMalformed)
		}
		data := b[nlaHdrLen:n]
		switch ne.Uint16(b[2:]) & nlaTypeMask {
		case attrShutdown:
			if len(data) >= 1 {
				s.Shutdown = data[0]
			}
		case attrSkV6Only:
			if len(data) >= 1 {
				s.V6Only = data[0] != 0
			}
		case attrMark:
			if len(data) >= 4 {
				s.Mark = ne.Uint32(data)
			}
		case attrCgroupID:
			if len(data) >= 8 {
				s.CgroupID = ne.Uint64(data)
			}
		}
		next := align4(n)
		if next > len(b) {
			break // the last attribute may go unpadded
		}
		b = b[next:]
	}
	return nil
}

// align4 rounds n up to NLMSG_ALIGNTO and NLA_ALIGNTO, both 4.
func align4(n int) int { return (n + 3) &^ 3 }

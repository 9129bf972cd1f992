package sockdiag

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// msg is the input of diagMsg: one struct inet_diag_msg.
type msg struct {
	family, state, timer, retrans uint8
	src, dst                      netip.AddrPort
	ifindex                       uint32
	cookie                        uint64
	expiresMS, rq, wq, uid, inode uint32
}

// diagMsg lays m out as the kernel does, in the host's byte order (little
// endian on the machines this runs on), ports and addresses in network order.
func diagMsg(m msg) []byte {
	b := make([]byte, diagMsgLen)
	ne := binary.NativeEndian
	b[0], b[1], b[2], b[3] = m.family, m.state, m.timer, m.retrans
	binary.BigEndian.PutUint16(b[4:], m.src.Port())
	binary.BigEndian.PutUint16(b[6:], m.dst.Port())
	if m.src.Addr().Is4() {
		a, d := m.src.Addr().As4(), m.dst.Addr().As4()
		copy(b[8:], a[:])
		copy(b[24:], d[:])
	} else {
		a, d := m.src.Addr().As16(), m.dst.Addr().As16()
		copy(b[8:], a[:])
		copy(b[24:], d[:])
	}
	ne.PutUint32(b[40:], m.ifindex)
	ne.PutUint32(b[44:], uint32(m.cookie))
	ne.PutUint32(b[48:], uint32(m.cookie>>32))
	ne.PutUint32(b[52:], m.expiresMS)
	ne.PutUint32(b[56:], m.rq)
	ne.PutUint32(b[60:], m.wq)
	ne.PutUint32(b[64:], m.uid)
	ne.PutUint32(b[68:], m.inode)
	return b
}

// attr appends one netlink attribute, padded to 4 bytes.
func attr(b []byte, typ uint16, data []byte) []byte {
	var h [4]byte
	binary.NativeEndian.PutUint16(h[0:], uint16(4+len(data)))
	binary.NativeEndian.PutUint16(h[2:], typ)
	b = append(append(b, h[:]...), data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.NativeEndian.AppendUint64(nil, v) }

// nlmsg wraps payload in a netlink header.
func nlmsg(typ, flags uint16, seq, pid uint32, payload []byte) []byte {
	b := make([]byte, nlmsgHdrLen, nlmsgHdrLen+len(payload)+3)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(nlmsgHdrLen+len(payload)))
	ne.PutUint16(b[4:], typ)
	ne.PutUint16(b[6:], flags)
	ne.PutUint32(b[8:], seq)
	ne.PutUint32(b[12:], pid)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func errnoPayload(code int32) []byte { return u32(uint32(code)) }

func TestDecodeLiteralLittleEndian(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the literal is little endian; this host is not")
	}
	// An ESTABLISHED 10.0.0.1:8080 → 10.0.0.2:443, written out by hand.
	b := []byte{
		2, 1, 1, 2, // AF_INET, ESTABLISHED, retransmit timer, 2 retransmissions
		0x1f, 0x90, 0x01, 0xbb, // ports 8080, 443 (network order)
		10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // src
		10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // dst
		3, 0, 0, 0, // ifindex 3
		0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // cookie 0x1122334455667788, low half first
		0xdc, 0x05, 0, 0, // expires 1500 ms
		7, 0, 0, 0, 9, 0, 0, 0, // rqueue 7, wqueue 9
		0xe8, 0x03, 0, 0, 0x39, 0x30, 0, 0, // uid 1000, inode 12345
		5, 0, 8, 0, 3, 0, 0, 0, // INET_DIAG_SHUTDOWN = 3, padded
	}
	var s Socket
	if err := decodeMsg(b, &s); err != nil {
		t.Fatal(err)
	}
	want := Socket{
		Family: unix.AF_INET, State: StateEstablished, Timer: TimerRetransmit, Retrans: 2,
		Src: netip.MustParseAddrPort("10.0.0.1:8080"), Dst: netip.MustParseAddrPort("10.0.0.2:443"),
		IfIndex: 3, Cookie: 0x1122334455667788, Expires: 1500 * time.Millisecond,
		RQueue: 7, WQueue: 9, UID: 1000, Inode: 12345, Shutdown: 3,
	}
	if s != want {
		t.Errorf("got  %+v\nwant %+v", s, want)
	}
}

func TestDecodeMsg(t *testing.T) {
	v6 := diagMsg(msg{family: unix.AF_INET6, state: StateListen,
		src: netip.MustParseAddrPort("[::1]:443"), dst: netip.MustParseAddrPort("[::]:0"),
		cookie: 42, wq: 128, uid: 33, inode: 777})
	v6 = attr(v6, attrShutdown, []byte{0})
	v6 = attr(v6, attrSkV6Only, []byte{1})
	v6 = attr(v6, attrMark, u32(0xbeef))
	v6 = attr(v6, attrCgroupID, u64(0x1234_5678_9abc))
	v6 = attr(v6, 22, []byte{1, 2})           // INET_DIAG_SOCKOPT: skipped
	v6 = attr(v6, 0x8000|99, []byte{1, 2, 3}) // an unknown nested one: skipped

	tw := diagMsg(msg{family: unix.AF_INET, state: StateTimeWait, timer: uint8(TimerTimeWait),
		src: netip.MustParseAddrPort("127.0.0.1:40000"), dst: netip.MustParseAddrPort("127.0.0.1:8080"),
		cookie: 0xfb38, expiresMS: 59876})
	tw = attr(tw, attrMark, u32(0)) // the one attribute the kernel sends for TIME_WAIT

	fw2 := diagMsg(msg{family: unix.AF_INET6, state: StateFinWait2, timer: uint8(TimerTimeWait),
		src:       netip.MustParseAddrPort("[::ffff:192.0.2.1]:5000"),
		dst:       netip.MustParseAddrPort("[::ffff:192.0.2.9]:80"),
		expiresMS: 30000})

	for _, tc := range []struct {
		name string
		b    []byte
		want Socket
	}{
		{"ipv6 listener with attributes", v6, Socket{
			Family: unix.AF_INET6, State: StateListen,
			Src: netip.MustParseAddrPort("[::1]:443"), Dst: netip.MustParseAddrPort("[::]:0"),
			Cookie: 42, WQueue: 128, UID: 33, Inode: 777,
			V6Only: true, Mark: 0xbeef, CgroupID: 0x1234_5678_9abc,
		}},
		{"time wait", tw, Socket{
			Family: unix.AF_INET, State: StateTimeWait, Timer: TimerTimeWait,
			Src: netip.MustParseAddrPort("127.0.0.1:40000"), Dst: netip.MustParseAddrPort("127.0.0.1:8080"),
			Cookie: 0xfb38, Expires: 59876 * time.Millisecond,
		}},
		{"orphaned fin wait 2, v4-mapped", fw2, Socket{
			Family: unix.AF_INET6, State: StateFinWait2, Timer: TimerTimeWait,
			Src:     netip.MustParseAddrPort("[::ffff:192.0.2.1]:5000"),
			Dst:     netip.MustParseAddrPort("[::ffff:192.0.2.9]:80"),
			Expires: 30 * time.Second,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Start dirty: decoding must overwrite every field.
			s := Socket{Mark: 1, V6Only: true, Shutdown: 3, CgroupID: 9, Inode: 5}
			if err := decodeMsg(tc.b, &s); err != nil {
				t.Fatal(err)
			}
			if s != tc.want {
				t.Errorf("got  %+v\nwant %+v", s, tc.want)
			}
			if got, want := s.TimeWaitSock(), tc.want.Timer == TimerTimeWait; got != want {
				t.Errorf("TimeWaitSock() = %v, want %v", got, want)
			}
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	good := attr(diagMsg(msg{family: unix.AF_INET}), attrMark, u32(1))
	// Every truncation is an error, never a panic; the attribute may only
	// lose its padding.
	for n := range len(good) {
		var s Socket
		err := decodeMsg(good[:n], &s)
		if n < diagMsgLen || (n > diagMsgLen && n < len(good)) {
			if !errors.Is(err, errMalformed) {
				t.Errorf("%d of %d bytes: err = %v, want errMalformed", n, len(good), err)
			}
		} else if err != nil {
			t.Errorf("%d of %d bytes: %v", n, len(good), err)
		}
	}
	for name, b := range map[string][]byte{
		"unknown family":      diagMsg(msg{family: unix.AF_UNIX}),
		"attribute too long":  append(diagMsg(msg{family: unix.AF_INET}), 200, 0, 15, 0, 1, 2, 3, 4),
		"attribute too short": append(diagMsg(msg{family: unix.AF_INET}), 2, 0, 15, 0),
		"zero attribute":      append(diagMsg(msg{family: unix.AF_INET}), 0, 0, 0, 0),
	} {
		var s Socket
		if err := decodeMsg(b, &s); !errors.Is(err, errMalformed) {
			t.Errorf("%s: err = %v, want errMalformed", name, err)
		}
	}
	// Attributes of unexpected sizes are skipped, not read past.
	b := attr(diagMsg(msg{family: unix.AF_INET}), attrCgroupID, []byte{1, 2, 3})
	var s Socket
	if err := decodeMsg(b, &s); err != nil || s.CgroupID != 0 {
		t.Errorf("short cgroup id: %v, CgroupID %d", err, s.CgroupID)
	}
}

func TestSplitMessage(t *testing.T) {
	m := nlmsg(20, 2, 7, 9, []byte{1, 2, 3, 4, 5})
	h, payload, rest, err := splitMessage(append(m, m...))
	if err != nil || h.typ != 20 || h.flags != 2 || h.seq != 7 || h.pid != 9 || len(payload) != 5 || len(rest) != len(m) {
		t.Errorf("got %+v payload %v rest %d bytes, err %v", h, payload, len(rest), err)
	}
	under := nlmsg(20, 0, 0, 0, nil)
	binary.NativeEndian.PutUint32(under, 8) // shorter than its own header
	for name, b := range map[string][]byte{
		"short header":    m[:10],
		"length beyond":   m[:nlmsgHdrLen+2],
		"length under 16": under,
	} {
		if _, _, _, err := splitMessage(b); !errors.Is(err, errMalformed) {
			t.Errorf("%s: err = %v, want errMalformed", name, err)
		}
	}
}

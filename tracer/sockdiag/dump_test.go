package sockdiag

import (
	"errors"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

const testSeq, testPID = 100, 4242

func twMsg(port uint16) []byte {
	return diagMsg(msg{family: unix.AF_INET, state: StateTimeWait, timer: uint8(TimerTimeWait),
		src: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
		dst: netip.MustParseAddrPort("127.0.0.1:80"), cookie: uint64(port), expiresMS: 60000})
}

// reply is a datagram of two sockets and NLMSG_DONE.
func reply(doneFlags uint16, doneErrno int32) []byte {
	b := nlmsg(sockDiagByFamily, unix.NLM_F_MULTI, testSeq, testPID, twMsg(1001))
	b = append(b, nlmsg(sockDiagByFamily, unix.NLM_F_MULTI, testSeq, testPID, twMsg(1002))...)
	return append(b, nlmsg(nlmsgDone, unix.NLM_F_MULTI|doneFlags, testSeq, testPID, errnoPayload(doneErrno))...)
}

func newDump(fn func(*Socket) error) *dump {
	return &dump{seq: testSeq, pid: testPID, typ: sockDiagByFamily, fn: fn}
}

func TestFeed(t *testing.T) {
	var ports []uint16
	collect := func(s *Socket) error { ports = append(ports, s.Src.Port()); return nil }

	d := newDump(collect)
	// Split over two datagrams, after a stray reply to another request.
	stray := nlmsg(sockDiagByFamily, unix.NLM_F_MULTI, testSeq-1, testPID, twMsg(9))
	first := append(stray, nlmsg(sockDiagByFamily, unix.NLM_F_MULTI, testSeq, testPID, twMsg(1001))...)
	if err := d.feed(first); err != nil || d.done {
		t.Fatalf("first datagram: %v, done %v", err, d.done)
	}
	second := nlmsg(sockDiagByFamily, unix.NLM_F_MULTI, testSeq, testPID, twMsg(1002))
	second = append(second, nlmsg(nlmsgDone, unix.NLM_F_MULTI, testSeq, testPID, errnoPayload(0))...)
	if err := d.feed(second); err != nil || !d.done || d.interrupted {
		t.Fatalf("second datagram: %v, done %v, interrupted %v", err, d.done, d.interrupted)
	}
	if len(ports) != 2 || ports[0] != 1001 || ports[1] != 1002 || d.count != 2 {
		t.Errorf("delivered ports %v, count %d; want [1001 1002]", ports, d.count)
	}

	d = newDump(func(*Socket) error { return nil })
	if err := d.feed(reply(unix.NLM_F_DUMP_INTR, 0)); err != nil || !d.done || !d.interrupted {
		t.Errorf("interrupted dump: %v, done %v, interrupted %v", err, d.done, d.interrupted)
	}

	d = newDump(func(*Socket) error { return nil })
	if err := d.feed(reply(0, -int32(unix.EINVAL))); !errors.Is(err, unix.EINVAL) || !d.done {
		t.Errorf("dump ended by EINVAL: %v, done %v", err, d.done)
	}

	d = newDump(func(*Socket) error { return nil })
	refused := nlmsg(nlmsgError, 0, testSeq, testPID, append(errnoPayload(-int32(unix.ENOENT)), make([]byte, 16)...))
	if err := d.feed(refused); !errors.Is(err, unix.ENOENT) || !d.done {
		t.Errorf("refused dump: %v, done %v", err, d.done)
	}

	d = newDump(func(*Socket) error { return nil })
	ack := nlmsg(nlmsgError, 0, testSeq, testPID, make([]byte, 20))
	if err := d.feed(append(ack, reply(0, 0)...)); err != nil || !d.done || d.count != 2 {
		t.Errorf("acknowledged dump: %v, done %v, count %d", err, d.done, d.count)
	}

	stop := errors.New("stop")
	calls := 0
	d = newDump(func(*Socket) error { calls++; return stop })
	if err := d.feed(reply(0, 0)); err != nil || !d.done || calls != 1 || d.fnErr != stop {
		t.Errorf("stopped dump: %v, done %v, %d calls, fnErr %v", err, d.done, calls, d.fnErr)
	}

	d = newDump(func(*Socket) error { return nil })
	cut := reply(0, 0)
	if err := d.feed(cut[:len(cut)-10]); !errors.Is(err, errMalformed) || d.done {
		t.Errorf("truncated datagram: %v, done %v", err, d.done)
	}
}

func TestStateMask(t *testing.T) {
	if got := StateMask(StateTimeWait); got != 1<<6 {
		t.Errorf("StateMask(TIME_WAIT) = %#x", got)
	}
	if got := StateMask(StateListen, StateEstablished, 40); got != 1<<10|1<<1 {
		t.Errorf("StateMask(LISTEN, ESTABLISHED, 40) = %#x", got)
	}
	var all []uint8
	for s := StateEstablished; s <= StateNewSynRecv; s++ {
		all = append(all, s)
	}
	if AllStates != StateMask(all...) {
		t.Errorf("AllStates = %#x, want %#x", AllStates, StateMask(all...))
	}
	if TimerProbe.String() != "probe" || Timer(9).String() != "timer(9)" {
		t.Errorf("Timer names: %v, %v", TimerProbe, Timer(9))
	}
}

// FuzzDecodeMsg: no input makes the decoder panic, and what it accepts has
// an address of its family.
func FuzzDecodeMsg(f *testing.F) {
	f.Add(twMsg(1))
	f.Add(attr(attr(diagMsg(msg{family: unix.AF_INET6}), attrSkV6Only, []byte{1}), attrCgroupID, u64(7)))
	f.Add(diagMsg(msg{family: unix.AF_INET})[:40])
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Socket
		if decodeMsg(b, &s) != nil {
			return
		}
		if !s.Src.Addr().IsValid() || s.Src.Addr().Is4() != (s.Family == unix.AF_INET) {
			t.Errorf("accepted %x as family %d with source %v", b, s.Family, s.Src)
		}
	})
}

// FuzzDecodeDatagram feeds arbitrary datagrams to a dump: errors are fine,
// panics are not.
func FuzzDecodeDatagram(f *testing.F) {
	f.Add(reply(0, 0))
	f.Add(reply(unix.NLM_F_DUMP_INTR, -int32(unix.EINVAL)))
	f.Add(nlmsg(nlmsgError, 0, testSeq, testPID, errnoPayload(-2)))
	f.Add(nlmsg(sockDiagByFamily, 0, testSeq, testPID, []byte{2, 6}))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := newDump(func(s *Socket) error {
			if s.Family != unix.AF_INET && s.Family != unix.AF_INET6 {
				t.Errorf("delivered a socket of family %d", s.Family)
			}
			return nil
		})
		_ = d.feed(b)
	})
}

// BenchmarkFeed measures the user-space half of a dump: decoding one 32 KiB
// datagram of TIME_WAIT replies, the largest the kernel sends.
func BenchmarkFeed(b *testing.B) {
	var dgram []byte
	for i := 0; len(dgram)+96 <= 32<<10; i++ {
		dgram = append(dgram, nlmsg(sockDiagByFamily, unix.NLM_F_MULTI, testSeq, testPID,
			attr(twMsg(uint16(i)), attrMark, u32(0)))...)
	}
	n := 0
	d := newDump(func(*Socket) error { n++; return nil })
	b.ReportAllocs()
	for b.Loop() {
		n, d.done = 0, false
		if err := d.feed(dgram); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/socket")
}

package tracer

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/twtrace/twtrace/tracer/event"
)

// The offsets below are written from headers/twtrace.h, independently of the
// Go types bpf2go generates: if the two ever disagree, these tests fail.

func putHead(b []byte, kind, flags uint8, family uint16, pid, tid, netns uint32, ts, cgroup uint64, comm string) {
	le := binary.LittleEndian
	b[0] = kind
	b[1] = flags
	le.PutUint16(b[2:], family)
	le.PutUint32(b[4:], pid)
	le.PutUint32(b[8:], tid)
	le.PutUint32(b[12:], netns)
	le.PutUint64(b[16:], ts)
	le.PutUint64(b[24:], cgroup)
	copy(b[32:48], comm)
}

func TestABISizes(t *testing.T) {
	if got := len(sockstateTwCounters{}.V); got != int(statMax) {
		t.Errorf("tw_counters has %d counters, tracer/stats.go names %d", got, statMax)
	}
	if got := unsafe.Sizeof(rawStateEvent{}); got != 128 {
		t.Errorf("tw_state_event is %d bytes, headers/twtrace.h says 128", got)
	}
	if got := unsafe.Sizeof(rawSysEvent{}); got != 80 {
		t.Errorf("tw_sys_event is %d bytes, headers/twtrace.h says 80", got)
	}
}

var testClock = Clock{bootNS: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixNano()}

func TestDecodeStateIPv4(t *testing.T) {
	b := make([]byte, 128)
	le := binary.LittleEndian
	putHead(b, 1, flagOldKnown|flagOwnerKnown|flagReuseAddr, 2, 4121, 4122, 4026531840, 1_500_000_000, 77, "nginx")
	le.PutUint64(b[48:], 0x1f3a)          // cookie
	le.PutUint64(b[56:], 12_345_678)      // old_ns
	copy(b[64:], []byte{10, 0, 0, 1})     // saddr
	copy(b[80:], []byte{192, 168, 1, 20}) // daddr
	le.PutUint16(b[96:], 8080)            // sport
	le.PutUint16(b[98:], 51234)           // dport
	b[100], b[101] = 1, 4                 // ESTABLISHED -> FIN_WAIT1
	le.PutUint32(b[104:], 4120)           // owner_pid
	le.PutUint32(b[108:], 33)             // uid
	copy(b[112:], "nginx-master")         // owner_comm

	var ev event.Event
	if err := Decode(b, testClock, &ev); err != nil {
		t.Fatal(err)
	}
	want := event.Event{
		Kind: event.KindState, Time: time.Date(2026, 11, 25, 10, 0, 1, 500_000_000, time.UTC),
		PID: 4121, TID: 4122, Comm: event.MakeComm("nginx"), CgroupID: 77, NetNS: 4026531840,
		Family: event.FamilyIPv4,
		Src:    netip.MustParseAddrPort("10.0.0.1:8080"), Dst: netip.MustParseAddrPort("192.168.1.20:51234"),
		Cookie: 0x1f3a, Old: event.StateEstablished, New: event.StateFinWait1,
		OldDur: 12_345_678 * time.Nanosecond, OldKnown: true,
		Owner: 4120, OwnerComm: event.MakeComm("nginx-master"),
		UID: 33, UIDKnown: true,
		SockReuse: event.ReuseKnown | event.ReuseAddr,
	}
	if ev != want {
		t.Errorf("decoded\n %+v\nwant\n %+v", ev, want)
	}
}

func TestDecodeStateIPv6UnknownOwner(t *testing.T) {
	b := make([]byte, 128)
	le := binary.LittleEndian
	putHead(b, 1, flagSkErr|flagReusePort, 10, 1, 1, 5, 0, 0, "swapper/0")
	le.PutUint64(b[56:], 999) // ignored: flagOldKnown not set
	copy(b[64:], netip.MustParseAddr("::1").AsSlice())
	copy(b[80:], netip.MustParseAddr("2001:db8::7").AsSlice())
	le.PutUint16(b[96:], 443)
	le.PutUint16(b[98:], 40000)
	b[100], b[101] = 5, 7 // FIN_WAIT2 -> CLOSE
	le.PutUint32(b[104:], 1234)
	var ev event.Event
	if err := Decode(b, testClock, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Family != event.FamilyIPv6 || ev.Src != netip.MustParseAddrPort("[::1]:443") ||
		ev.Dst != netip.MustParseAddrPort("[2001:db8::7]:40000") {
		t.Errorf("endpoints %v %v %v", ev.Family, ev.Src, ev.Dst)
	}
	if ev.OldKnown || ev.OldDur != 0 || ev.OwnerKnown() || ev.Owner != 0 || !ev.Reset || ev.SockReuse != event.ReuseKnown|event.ReusePort {
		t.Errorf("flags not honoured: %+v", ev)
	}
	if ev.Comm.String() != "swapper/0" {
		t.Errorf("comm %q", ev.Comm)
	}
}

func TestDecodeSyscalls(t *testing.T) {
	le := binary.LittleEndian
	for _, tc := range []struct {
		name   string
		kind   uint8
		family uint16
		addr   string
		port   uint16
		ret    int32
		flags  uint8
		check  func(t *testing.T, ev *event.Event)
	}{
		{"bind refused", 2, 2, "127.0.0.1", 9090, -98, flagSockKnown, func(t *testing.T, ev *event.Event) {
			if ev.Src != netip.MustParseAddrPort("127.0.0.1:9090") || ev.Errno() != "EADDRINUSE" || ev.ReuseAddr || ev.ReusePort {
				t.Errorf("%+v", ev)
			}
		}},
		{"bind reuse flags", 2, 10, "::", 9090, 0, flagSockKnown | flagReuseAddr | flagReusePort, func(t *testing.T, ev *event.Event) {
			if ev.Src != netip.MustParseAddrPort("[::]:9090") || ev.Errno() != "" || !ev.ReuseAddr || !ev.ReusePort {
				t.Errorf("%+v", ev)
			}
		}},
		{"connect", 3, 2, "10.1.2.3", 5432, -99, flagSockKnown, func(t *testing.T, ev *event.Event) {
			if ev.Dst != netip.MustParseAddrPort("10.1.2.3:5432") || ev.Src.IsValid() || ev.Errno() != "EADDRNOTAVAIL" || ev.Port() != 5432 {
				t.Errorf("%+v", ev)
			}
		}},
		{"listen", 4, 2, "0.0.0.0", 80, -98, flagSockKnown, func(t *testing.T, ev *event.Event) {
			if ev.Port() != 80 || ev.Errno() != "EADDRINUSE" {
				t.Errorf("%+v", ev)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := make([]byte, 80)
			putHead(b, tc.kind, tc.flags, tc.family, 300, 301, 9, 2_000_000_000, 0, "server")
			copy(b[48:], netip.MustParseAddr(tc.addr).AsSlice())
			le.PutUint32(b[64:], uint32(tc.ret))
			le.PutUint32(b[68:], 7) // fd
			le.PutUint16(b[72:], tc.port)
			le.PutUint32(b[76:], 1001) // uid
			var ev event.Event
			if err := Decode(b, testClock, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Kind != event.Kind(tc.kind) || ev.PID != 300 || ev.FD != 7 || ev.Ret != tc.ret || ev.NetNS != 9 ||
				ev.Comm.String() != "server" || !ev.Time.Equal(testClock.Time(2_000_000_000)) || ev.UID != 1001 || !ev.UIDKnown {
				t.Errorf("head: %+v", ev)
			}
			tc.check(t, &ev)
		})
	}
}

func TestDecodeRejectsBadRecords(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"empty", nil},
		{"short state", append([]byte{1}, make([]byte, 100)...)},
		{"short bind", append([]byte{2}, make([]byte, 40)...)},
		{"unknown kind", append([]byte{42}, make([]byte, 200)...)},
	} {
		var ev event.Event
		if err := Decode(tc.raw, testClock, &ev); err == nil {
			t.Errorf("%s: decoded without error", tc.name)
		}
	}
	var ev event.Event
	if err := Decode([]byte{1, 0}, testClock, &ev); !errors.Is(err, ErrShortRecord) {
		t.Errorf("short record error %v, want ErrShortRecord", err)
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	b := make([]byte, 128)
	putHead(b, 1, flagOwnerKnown, 2, 1, 1, 1, 1, 1, "x")
	var ev event.Event
	if n := testing.AllocsPerRun(100, func() { _ = Decode(b, testClock, &ev) }); n != 0 {
		t.Errorf("Decode allocates %v times per event", n)
	}
}

// BenchmarkDecode: a ring buffer record (a state event, as the kernel lays
// it out) to an Event, with the TIME_WAIT inference the reader does.
func BenchmarkDecode(b *testing.B) {
	raw := make([]byte, 128)
	le := binary.LittleEndian
	putHead(raw, 1, flagOldKnown|flagOwnerKnown, 2, 4121, 4122, 4026531840, 1_500_000_000, 0, "nginx")
	le.PutUint64(raw[48:], 0x1f3a)
	le.PutUint64(raw[56:], 12_345)
	copy(raw[64:], []byte{127, 0, 0, 1})
	copy(raw[80:], []byte{127, 0, 0, 1})
	le.PutUint16(raw[96:], 8080)
	le.PutUint16(raw[98:], 51234)
	raw[100], raw[101] = 5, 7 // FIN_WAIT2 -> CLOSE: the inference runs too
	le.PutUint32(raw[104:], 4120)
	copy(raw[112:], "nginx")
	var ev, tw event.Event
	b.ReportAllocs()
	for b.Loop() {
		if err := Decode(raw, testClock, &ev); err != nil {
			b.Fatal(err)
		}
		event.InferTimeWait(&ev, &tw)
	}
}

package tracer

import (
	"errors"
	"fmt"
	"net/netip"
	"structs"
	"time"
	"unsafe"
)

// Flags of tw_head.flags (enum tw_flag in headers/twtrace.h).
const (
	flagOldKnown   = 1 << 0
	flagOwnerKnown = 1 << 1
	flagReuseAddr  = 1 << 2
	flagReusePort  = 1 << 3
	flagSockKnown  = 1 << 4
	flagSkErr      = 1 << 5
)

// The generated types of the event ABI. The ring buffer hands out little-endian
// bytes laid out exactly like them, so a record is read in place.
type (
	rawStateEvent = sockstateTwStateEvent
	rawSysEvent   = syscallsTwSysEvent
)

var (
	sizeofStateEvent = int(unsafe.Sizeof(rawStateEvent{}))
	sizeofSysEvent   = int(unsafe.Sizeof(rawSysEvent{}))
)

// ErrShortRecord is returned for a ring buffer record smaller than its kind's struct.
var ErrShortRecord = errors.New("short record")

// Clock turns the kernel's CLOCK_MONOTONIC nanoseconds into wall-clock time
// using one offset taken when tracing starts.
type Clock struct {
	bootNS int64 // wall-clock time of monotonic zero, in Unix nanoseconds
}

// NewClock samples the two clocks once.
func NewClock() Clock {
	return Clock{bootNS: time.Now().UnixNano() - monotonicNow()}
}

// Time converts a bpf_ktime_get_ns() value.
func (c Clock) Time(mono uint64) time.Time {
	return time.Unix(0, c.bootNS+int64(mono)).UTC()
}

// Decode fills ev from one ring buffer record. It does not allocate.
func Decode(raw []byte, clock Clock, ev *Event) error {
	if len(raw) == 0 {
		return ErrShortRecord
	}
	switch Kind(raw[0]) {
	case KindState:
		if len(raw) < sizeofStateEvent {
			return fmt.Errorf("state event: %w (%d bytes)", ErrShortRecord, len(raw))
		}
		decodeState((*rawStateEvent)(unsafe.Pointer(&raw[0])), clock, ev)
	case KindBind, KindConnect, KindListen:
		if len(raw) < sizeofSysEvent {
			return fmt.Errorf("%s event: %w (%d bytes)", Kind(raw[0]), ErrShortRecord, len(raw))
		}
		decodeSys((*rawSysEvent)(unsafe.Pointer(&raw[0])), clock, ev)
	default:
		return fmt.Errorf("unknown event kind %d", raw[0])
	}
	return nil
}

// rawHead is the common head of every record (struct tw_head).
type rawHead = struct {
	_        structs.HostLayout
	Kind     uint8
	Flags    uint8
	Family   uint16
	Pid      uint32
	Tid      uint32
	Netns    uint32
	TsNs     uint64
	CgroupId uint64
	Comm     [16]int8
}

// decodeHead starts an event from the head every record has.
func decodeHead(h *rawHead, clock Clock, ev *Event) {
	*ev = Event{
		Kind:     Kind(h.Kind),
		Time:     clock.Time(h.TsNs),
		PID:      h.Pid,
		TID:      h.Tid,
		Comm:     commOf(&h.Comm),
		CgroupID: h.CgroupId,
		NetNS:    h.Netns,
		Family:   Family(h.Family),
	}
}

func decodeState(r *rawStateEvent, clock Clock, ev *Event) {
	decodeHead(&r.H, clock, ev)
	ev.Src = netip.AddrPortFrom(addrOf(ev.Family, &r.Saddr), r.Sport)
	ev.Dst = netip.AddrPortFrom(addrOf(ev.Family, &r.Daddr), r.Dport)
	ev.Cookie = r.Cookie
	ev.Old, ev.New = State(r.Oldstate), State(r.Newstate)
	ev.Reset = r.H.Flags&flagSkErr != 0
	ev.SockReuse = reuseOf(r.H.Flags)
	if r.H.Flags&flagOldKnown != 0 {
		ev.OldDur = time.Duration(r.OldNs)
		ev.OldKnown = true
	}
	if r.H.Flags&flagOwnerKnown != 0 {
		ev.Owner = r.OwnerPid
		ev.OwnerComm = commOf(&r.OwnerComm)
	}
}

// reuseOf reads TW_F_REUSEADDR and TW_F_REUSEPORT: of a state event's head,
// or of a socket iterator record.
func reuseOf(flags uint8) Reuse {
	r := ReuseKnown
	if flags&flagReuseAddr != 0 {
		r |= ReuseAddr
	}
	if flags&flagReusePort != 0 {
		r |= ReusePort
	}
	return r
}

func decodeSys(r *rawSysEvent, clock Clock, ev *Event) {
	decodeHead(&r.H, clock, ev)
	ev.FD, ev.Ret = r.Fd, r.Ret
	ev.ReuseAddr = r.H.Flags&flagReuseAddr != 0
	ev.ReusePort = r.H.Flags&flagReusePort != 0
	ap := netip.AddrPortFrom(addrOf(ev.Family, &r.Addr), r.Port)
	if ev.Kind == KindConnect {
		ev.Dst = ap
	} else {
		ev.Src = ap
	}
}

func addrOf(f Family, b *[16]uint8) netip.Addr {
	if f == FamilyIPv4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(*b)
}

func commOf(c *[16]int8) Comm {
	return *(*Comm)(unsafe.Pointer(c))
}

// InferTimeWait returns the TIME_WAIT enter that a state event implies, if any.
// The kernel hands the 4-tuple to an inet_timewait_sock without reporting it:
// the full socket of the active closer goes FIN_WAIT2→CLOSE or CLOSING→CLOSE.
// A reset on the way (sk_err set) means no TIME_WAIT follows.
func InferTimeWait(st *Event, tw *Event) bool {
	if st.Kind != KindState || st.New != StateClose || st.Reset ||
		(st.Old != StateFinWait2 && st.Old != StateClosing) {
		return false
	}
	*tw = Event{
		Kind:      KindTimeWait,
		Time:      st.Time,
		NetNS:     st.NetNS,
		Family:    st.Family,
		Src:       st.Src,
		Dst:       st.Dst,
		Cookie:    st.Cookie,
		Owner:     st.Owner,
		OwnerComm: st.OwnerComm,
		TimeWait:  TimeWaitEnter,
		Remaining: TimeWaitLen,
		Source:    SourceInferred,
	}
	return true
}

package tracer

import (
	"errors"
	"fmt"
	"net/netip"
	"structs"
	"time"
	"unsafe"

	"github.com/twtrace/twtrace/tracer/event"
)

// Flags of tw_head.flags, generated from enum tw_flag in headers/twtrace.h.
const (
	flagOldKnown   = uint8(sockstateTwFlagTW_F_OLD_KNOWN)
	flagOwnerKnown = uint8(sockstateTwFlagTW_F_OWNER_KNOWN)
	flagReuseAddr  = uint8(sockstateTwFlagTW_F_REUSEADDR)
	flagReusePort  = uint8(sockstateTwFlagTW_F_REUSEPORT)
	flagSockKnown  = uint8(sockstateTwFlagTW_F_SOCK_KNOWN)
	flagSkErr      = uint8(sockstateTwFlagTW_F_SK_ERR)
)

// kindFromABI maps the kernel's event kinds (enum tw_kind) to the stream's.
func kindFromABI(k uint8) (event.Kind, bool) {
	switch sockstateTwKind(k) {
	case sockstateTwKindTW_KIND_STATE:
		return event.KindState, true
	case sockstateTwKindTW_KIND_BIND:
		return event.KindBind, true
	case sockstateTwKindTW_KIND_CONNECT:
		return event.KindConnect, true
	case sockstateTwKindTW_KIND_LISTEN:
		return event.KindListen, true
	}
	return 0, false
}

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
func Decode(raw []byte, clock Clock, ev *event.Event) error {
	if len(raw) == 0 {
		return ErrShortRecord
	}
	kind, ok := kindFromABI(raw[0])
	switch {
	case !ok:
		return fmt.Errorf("unknown event kind %d", raw[0])
	case kind == event.KindState:
		if len(raw) < sizeofStateEvent {
			return fmt.Errorf("state event: %w (%d bytes)", ErrShortRecord, len(raw))
		}
		decodeState((*rawStateEvent)(unsafe.Pointer(&raw[0])), clock, ev)
		ev.Kind = kind
	default:
		if len(raw) < sizeofSysEvent {
			return fmt.Errorf("%s event: %w (%d bytes)", kind, ErrShortRecord, len(raw))
		}
		decodeSys((*rawSysEvent)(unsafe.Pointer(&raw[0])), kind, clock, ev)
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
func decodeHead(h *rawHead, clock Clock, ev *event.Event) {
	*ev = event.Event{
		Time:     clock.Time(h.TsNs),
		PID:      h.Pid,
		TID:      h.Tid,
		Comm:     commOf(&h.Comm),
		CgroupID: h.CgroupId,
		NetNS:    h.Netns,
		Family:   event.Family(h.Family),
	}
}

func decodeState(r *rawStateEvent, clock Clock, ev *event.Event) {
	decodeHead(&r.H, clock, ev)
	ev.Src = netip.AddrPortFrom(addrOf(ev.Family, &r.Saddr), r.Sport)
	ev.Dst = netip.AddrPortFrom(addrOf(ev.Family, &r.Daddr), r.Dport)
	ev.Cookie = r.Cookie
	ev.Old, ev.New = event.State(r.Oldstate), event.State(r.Newstate)
	ev.UID, ev.UIDKnown = r.Uid, true
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
func reuseOf(flags uint8) event.Reuse {
	r := event.ReuseKnown
	if flags&flagReuseAddr != 0 {
		r |= event.ReuseAddr
	}
	if flags&flagReusePort != 0 {
		r |= event.ReusePort
	}
	return r
}

func decodeSys(r *rawSysEvent, kind event.Kind, clock Clock, ev *event.Event) {
	decodeHead(&r.H, clock, ev)
	ev.Kind = kind
	ev.FD, ev.Ret = r.Fd, r.Ret
	ev.UID, ev.UIDKnown = r.Uid, true
	ev.ReuseAddr = r.H.Flags&flagReuseAddr != 0
	ev.ReusePort = r.H.Flags&flagReusePort != 0
	ap := netip.AddrPortFrom(addrOf(ev.Family, &r.Addr), r.Port)
	if ev.Kind == event.KindConnect {
		ev.Dst = ap
	} else {
		ev.Src = ap
	}
}

func addrOf(f event.Family, b *[16]uint8) netip.Addr {
	if f == event.FamilyIPv4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(*b)
}

func commOf(c *[16]int8) event.Comm {
	return *(*event.Comm)(unsafe.Pointer(c))
}

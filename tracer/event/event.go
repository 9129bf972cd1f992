package event

import (
	"bytes"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Kind says what an Event describes.
type Kind uint8

// Event kinds. The kernel writes the first four; the rest are derived in user
// space. Values of the kernel kinds match enum tw_kind in headers/twtrace.h.
const (
	KindState    Kind = 1 // a TCP state transition reported by the kernel
	KindBind     Kind = 2 // a bind() on a TCP socket, success or failure
	KindConnect  Kind = 3 // a connect() that failed with EADDRINUSE/EADDRNOTAVAIL
	KindListen   Kind = 4 // a listen() that failed with EADDRINUSE
	KindTimeWait Kind = 5 // a TIME_WAIT enter/expire/reuse/kill, inferred or observed
	KindLost     Kind = 6 // events the kernel could not deliver
	KindHeader   Kind = 7 // the first record of a capture file
	// Records of a capture file that are not events either: they never
	// enter the stream.
	KindSocket Kind = 8 // a socket of the capture's starting snapshot
	KindEnd    Kind = 9 // the last record of a capture its recorder closed
)

var kindNames = [...]string{
	KindState:    "state",
	KindBind:     "bind",
	KindConnect:  "connect",
	KindListen:   "listen",
	KindTimeWait: "timewait",
	KindLost:     "lost",
	KindHeader:   "header",
	KindSocket:   "socket",
	KindEnd:      "end",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "unknown"
}

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, bool) {
	for k, n := range kindNames {
		if n != "" && n == s {
			return Kind(k), true
		}
	}
	return 0, false
}

// State is a TCP state as the kernel numbers it (include/net/tcp_states.h).
type State uint8

// TCP states.
const (
	StateEstablished   State = 1
	StateSynSent       State = 2
	StateSynRecv       State = 3
	StateFinWait1      State = 4
	StateFinWait2      State = 5
	StateTimeWait      State = 6
	StateClose         State = 7
	StateCloseWait     State = 8
	StateLastAck       State = 9
	StateListen        State = 10
	StateClosing       State = 11
	StateNewSynRecv    State = 12
	StateBoundInactive State = 13
)

var stateNames = [...]string{
	StateEstablished:   "ESTABLISHED",
	StateSynSent:       "SYN_SENT",
	StateSynRecv:       "SYN_RECV",
	StateFinWait1:      "FIN_WAIT1",
	StateFinWait2:      "FIN_WAIT2",
	StateTimeWait:      "TIME_WAIT",
	StateClose:         "CLOSE",
	StateCloseWait:     "CLOSE_WAIT",
	StateLastAck:       "LAST_ACK",
	StateListen:        "LISTEN",
	StateClosing:       "CLOSING",
	StateNewSynRecv:    "NEW_SYN_RECV",
	StateBoundInactive: "BOUND_INACTIVE",
}

// String returns the state's name without the TCP_ prefix, as in the JSON schema.
func (s State) String() string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return "UNKNOWN"
}

// ParseState accepts a state name with or without the TCP_ prefix, in any case.
func ParseState(name string) (State, bool) {
	name = strings.TrimPrefix(strings.ToUpper(name), "TCP_")
	for s, n := range stateNames {
		if n != "" && n == name {
			return State(s), true
		}
	}
	return 0, false
}

// Family is an address family.
type Family uint16

// Address families twtrace traces.
const (
	FamilyIPv4 Family = unix.AF_INET
	FamilyIPv6 Family = unix.AF_INET6
)

func (f Family) String() string {
	switch f {
	case FamilyIPv4:
		return "ipv4"
	case FamilyIPv6:
		return "ipv6"
	}
	return "unknown"
}

// ParseFamily is the inverse of Family.String.
func ParseFamily(s string) (Family, bool) {
	switch s {
	case "ipv4":
		return FamilyIPv4, true
	case "ipv6":
		return FamilyIPv6, true
	}
	return 0, false
}

// Comm is a task name as the kernel stores it: up to 16 bytes, NUL padded.
// It is kept as an array so that decoding an event does not allocate.
type Comm [16]byte

func (c Comm) String() string {
	if i := bytes.IndexByte(c[:], 0); i >= 0 {
		return string(c[:i])
	}
	return string(c[:])
}

// AppendPrintable appends the name with control bytes replaced by '?': a
// task can name itself anything, escape sequences included, and those must
// not reach a terminal.
func (c *Comm) AppendPrintable(b []byte) []byte {
	for _, ch := range c {
		switch {
		case ch == 0:
			return b
		case ch < 0x20 || ch == 0x7f:
			b = append(b, '?')
		default:
			b = append(b, ch)
		}
	}
	return b
}

// MakeComm truncates s to a Comm.
func MakeComm(s string) Comm {
	var c Comm
	copy(c[:len(c)-1], s)
	return c
}

// TimeWaitOp is what happened to a TIME_WAIT socket.
type TimeWaitOp uint8

// TIME_WAIT operations of KindTimeWait events.
const (
	TimeWaitEnter  TimeWaitOp = 1 // the active closer's 4-tuple entered TIME_WAIT
	TimeWaitExpire TimeWaitOp = 2 // the timer ran out
	TimeWaitReuse  TimeWaitOp = 3 // a new connection took the 4-tuple (tcp_tw_reuse)
	TimeWaitKill   TimeWaitOp = 4 // ended early: RST, a new SYN, or killed
)

var timeWaitNames = [...]string{
	TimeWaitEnter:  "enter",
	TimeWaitExpire: "expire",
	TimeWaitReuse:  "reuse",
	TimeWaitKill:   "kill",
}

func (o TimeWaitOp) String() string {
	if int(o) < len(timeWaitNames) && timeWaitNames[o] != "" {
		return timeWaitNames[o]
	}
	return "unknown"
}

// ParseTimeWaitOp is the inverse of TimeWaitOp.String.
func ParseTimeWaitOp(s string) (TimeWaitOp, bool) {
	for o, n := range timeWaitNames {
		if n != "" && n == s {
			return TimeWaitOp(o), true
		}
	}
	return 0, false
}

// Source says where a derived fact comes from.
type Source uint8

// Sources of timewait events.
const (
	SourceInferred Source = 1 // deduced from the transitions the kernel reported
	SourceSockDiag Source = 2 // read from the kernel's own socket table
)

func (s Source) String() string {
	switch s {
	case SourceInferred:
		return "inferred"
	case SourceSockDiag:
		return "sock_diag"
	}
	return "unknown"
}

// ParseSource is the inverse of Source.String.
func ParseSource(s string) (Source, bool) {
	switch s {
	case "inferred":
		return SourceInferred, true
	case "sock_diag":
		return SourceSockDiag, true
	}
	return 0, false
}

// TimeWaitLen is TCP_TIMEWAIT_LEN, a compile-time constant of the kernel.
const TimeWaitLen = 60 * time.Second

// Event is one fact in the stream every sink consumes, live or replayed.
// It is a flat value with no pointers to per-event memory, so decoding one
// from the ring buffer does not allocate. Which fields are meaningful depends
// on Kind.
type Event struct {
	Kind Kind
	Time time.Time

	// The task running when the kernel event fired (in softirq, whoever was
	// on the CPU), its cgroup and the socket's network namespace.
	PID, TID uint32
	Comm     Comm
	CgroupID uint64
	NetNS    uint32

	// UID is, for state and timewait events, the socket's owner uid (the
	// uid of its creator, which the kernel compares for SO_REUSEPORT); for
	// bind, connect and listen, the task's uid. Both as the host (the
	// initial user namespace) numbers them. Valid when UIDKnown: a capture
	// of an older twtrace has none.
	UID      uint32
	UIDKnown bool

	Family Family
	Src    netip.AddrPort // state, timewait: local end
	Dst    netip.AddrPort // state, timewait: remote end; connect: destination

	// KindState.
	Cookie    uint64        // socket cookie, as `ss -e` prints after sk:
	Old, New  State         //
	OldDur    time.Duration // time spent in Old
	OldKnown  bool          // OldDur is valid
	Owner     uint32        // attributed owner pid, 0 when unknown
	OwnerComm Comm          //
	Reset     bool          // the socket had an error at CLOSE (reset)
	SockReuse Reuse         // the socket's SO_REUSEADDR/SO_REUSEPORT; unknown in captures

	// KindBind (Src holds the address), KindConnect (Dst), KindListen (Src).
	FD        int32
	Ret       int32 // 0 or -errno
	ReuseAddr bool
	ReusePort bool

	// KindTimeWait.
	TimeWait  TimeWaitOp
	Remaining time.Duration
	Source    Source

	// KindLost.
	Lost uint64
}

// Errno returns the errno name of a failed syscall ("EADDRINUSE"), or "".
func (e *Event) Errno() string {
	return ErrnoName(e.Ret)
}

// OwnerKnown reports whether the event carries an attributed owner.
func (e *Event) OwnerKnown() bool { return e.Owner != 0 }

// Port returns the port a bind/listen event is about, or a connect event's
// destination port.
func (e *Event) Port() uint16 {
	if e.Kind == KindConnect {
		return e.Dst.Port()
	}
	return e.Src.Port()
}

// ErrnoName returns the name of -ret ("EADDRINUSE") or "" for ret >= 0.
func ErrnoName(ret int32) string {
	if ret >= 0 {
		return ""
	}
	if n := unix.ErrnoName(syscall.Errno(-ret)); n != "" {
		return n
	}
	return "E?"
}

// ParseErrno is the inverse of ErrnoName: it returns the negative errno.
func ParseErrno(name string) (int32, bool) {
	if name == "" {
		return 0, true
	}
	n, ok := errnoByName()[name]
	return -n, ok
}

// errnoByName inverts unix.ErrnoName once, on first use.
var errnoByName = sync.OnceValue(func() map[string]int32 {
	m := make(map[string]int32, 140)
	for e := 1; e < 200; e++ {
		if n := unix.ErrnoName(syscall.Errno(e)); n != "" {
			m[n] = int32(e)
		}
	}
	return m
})

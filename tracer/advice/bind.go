// Package advice says why a port is blocked and what fixes it. It holds the
// kernel's bind() conflict rule, written once and checked against the kernel
// itself by a privileged test (a predicted bind is then done for real), and
// the advisor's rules: each takes evidence (sockets, failures, sysctls,
// counters) to a finding and the fixes that work on the running kernel.
//
// The package is pure: it reads no kernel state. `twtrace why` and the live
// session gather the facts (sock_diag, the iter/tcp reuse bits, /proc), a
// replayed capture rebuilds them, and both ask the same questions here.
package advice

import (
	"net/netip"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// Socket is one socket on a port, as the kernel's tables report it.
type Socket struct {
	Cookie uint64
	State  event.State // StateClose with Bound: bound, neither listening nor connected
	Bound  bool        // a bound-only socket (sock_diag's BOUND_INACTIVE)
	Family event.Family
	Local  netip.AddrPort
	Remote netip.AddrPort
	// V6Only is IPV6_V6ONLY of an IPv6 socket; it decides whether a [::]
	// socket covers IPv4 too.
	V6Only bool
	// Reuse is SO_REUSEADDR/SO_REUSEPORT; a TIME_WAIT socket keeps the
	// options of the socket it came from, an accepted one its listener's.
	// Unknown when they could not be read (no BPF privilege).
	Reuse event.Reuse
	// UID is the socket's owner (the uid of its creator, sk_uid), which the
	// SO_REUSEPORT rule compares; TIME_WAIT sockets have none.
	UID      uint32
	UIDKnown bool
	IfIndex  uint32    // SO_BINDTODEVICE, 0 for none
	Expires  time.Time // TIME_WAIT: when its timer ends
	Holders  []Holder  // the processes with an fd on it
}

// Holder is a process that holds a socket.
type Holder struct {
	PID       uint32 `json:"pid"`
	Comm      string `json:"comm"`
	Cmdline   string `json:"cmdline"`
	UID       uint32 `json:"uid"`
	User      string `json:"user"`
	Container string `json:"container,omitempty"`
	Unit      string `json:"unit,omitempty"` // the systemd unit its cgroup names
}

// Options are the socket options a program may set before bind().
type Options uint8

// Socket options of an attempt.
const (
	ReuseAddr Options = 1 << iota // SO_REUSEADDR
	ReusePort                     // SO_REUSEPORT
)

// AllOptions lists the four ways a program may set the two options.
var AllOptions = []Options{0, ReuseAddr, ReusePort, ReuseAddr | ReusePort}

// String names the options as the JSON schema does.
func (o Options) String() string {
	switch o {
	case 0:
		return "plain"
	case ReuseAddr:
		return "reuseaddr"
	case ReusePort:
		return "reuseport"
	}
	return "reuseaddr+reuseport"
}

// ParseOptions is the inverse of Options.String; "both" is accepted too.
func ParseOptions(s string) (Options, bool) {
	for _, o := range AllOptions {
		if o.String() == s {
			return o, true
		}
	}
	if s == "both" {
		return ReuseAddr | ReusePort, true
	}
	return 0, false
}

// Attempt is one way a program might bind a port: the address, IPV6_V6ONLY
// for an IPv6 address, the socket options and the uid it runs as. The
// socket is new: bound to no device, in no SO_REUSEPORT group yet.
type Attempt struct {
	Addr    netip.AddrPort
	V6Only  bool
	Options Options
	UID     uint32
}

// Result is what a syscall returns: "ok" or an errno name.
type Result string

// Results.
const (
	OK         Result = "ok"
	EADDRINUSE Result = "EADDRINUSE"
)

// Conflict is one existing socket that refuses an attempt, and why.
type Conflict struct {
	Socket int   // index into the sockets given to Predict
	Cause  Cause // what kind of obstacle it is
	// Certain is false when the answer depends on options or a uid that
	// could not be read.
	Certain bool
}

// Cause names what refuses a bind, as the JSON schema's causes do.
type Cause string

// Causes.
const (
	CauseListener      Cause = "listener"       // a LISTEN socket
	CauseTimeWait      Cause = "timewait"       // a TIME_WAIT socket
	CauseReusePortUser Cause = "reuseport_user" // SO_REUSEPORT on both, but another user's
	CauseV6Wildcard    Cause = "v6_wildcard"    // an IPv4/IPv6 wildcard overlap across families
	CauseBound         Cause = "bound"          // a socket bound but not listening
	CauseConnection    Cause = "connection"     // a connected socket (e.g. an outgoing connection's local port)
)

// Outcome is the kernel's answer to an attempt, predicted.
type Outcome struct {
	Attempt   Attempt
	Result    Result
	Certain   bool       // false: depends on options or uids not read
	Conflicts []Conflict // the sockets that refuse it (all of them)
}

// Predict says what bind() returns for the attempt, given every socket on
// its port in its network namespace. It follows inet_csk_bind_conflict() of
// net/ipv4/inet_connection_sock.c (6.x): a new socket conflicts with an
// existing one when their addresses overlap, unless (A) both have
// SO_REUSEADDR and the existing one is not listening, or (B) both have
// SO_REUSEPORT and the existing one is TIME_WAIT or has the same owner uid.
func Predict(socks []Socket, a Attempt) Outcome {
	out := Outcome{Attempt: a, Result: OK, Certain: true}
	for i := range socks {
		s := &socks[i]
		if s.Local.Port() != a.Addr.Port() || !overlap(a, s) {
			continue
		}
		conflict, certain := conflicts(a, s)
		if !conflict && certain {
			continue
		}
		c := Conflict{Socket: i, Cause: cause(a, s), Certain: certain}
		out.Conflicts = append(out.Conflicts, c)
		if conflict && certain {
			out.Result = EADDRINUSE
		}
	}
	if out.Result == OK {
		for _, c := range out.Conflicts {
			if !c.Certain {
				// Some socket may refuse it: the answer is not known.
				out.Certain = false
				out.Result = EADDRINUSE
			}
		}
	}
	return out
}

// conflicts applies the rule to one overlapping socket. certain is false
// when the answer depends on what could not be read.
func conflicts(a Attempt, s *Socket) (conflict, certain bool) {
	addr, port := a.Options&ReuseAddr != 0, a.Options&ReusePort != 0
	known := s.Reuse.Known()
	oldAddr, oldPort := s.Reuse&event.ReuseAddr != 0, s.Reuse&event.ReusePort != 0
	if !addr && !port {
		return true, true // only the options of both could let it through
	}
	if !known {
		return true, false
	}
	// (A) both SO_REUSEADDR, and the old socket is not listening.
	if addr && oldAddr && s.State != event.StateListen {
		return false, true
	}
	// (B) both SO_REUSEPORT, and the old one is TIME_WAIT or the same user's.
	if port && oldPort {
		if s.State == event.StateTimeWait {
			return false, true
		}
		if !s.UIDKnown {
			return true, false
		}
		return s.UID != a.UID, true
	}
	return true, true
}

// cause classifies an obstacle for the verdict.
func cause(a Attempt, s *Socket) Cause {
	switch {
	case a.Options&ReusePort != 0 && s.Reuse.Known() && s.Reuse&event.ReusePort != 0 &&
		s.State != event.StateTimeWait && s.UIDKnown && s.UID != a.UID:
		return CauseReusePortUser
	case s.State == event.StateTimeWait:
		return CauseTimeWait
	case crossFamily(a, s):
		return CauseV6Wildcard
	case s.State == event.StateListen:
		return CauseListener
	case s.Bound:
		return CauseBound
	}
	return CauseConnection
}

// crossFamily: the overlap is between an IPv4 address and an IPv6 wildcard.
func crossFamily(a Attempt, s *Socket) bool {
	na, oa := a.Addr.Addr().Unmap(), s.Local.Addr().Unmap()
	return na.Is4() != oa.Is4()
}

// overlap reports whether the attempt's address and the socket's overlap,
// as inet_rcv_saddr_equal() and the bhash2 lookups of 6.x decide:
//   - IPv4: the same address, or either is 0.0.0.0;
//   - [::] overlaps [::] whatever V6ONLY says, and every IPv6 address;
//   - a new [::] overlaps every IPv4 address unless it is V6ONLY;
//   - a new IPv4 address overlaps an old [::] unless that one is V6ONLY;
//   - a specific (non-mapped) IPv6 address is V6ONLY: it never overlaps IPv4;
//   - v4-mapped addresses (::ffff:a.b.c.d) count as IPv4.
func overlap(a Attempt, s *Socket) bool {
	na, oa := a.Addr.Addr().Unmap(), s.Local.Addr().Unmap()
	switch {
	case na.Is4() && oa.Is4():
		return na == oa || na.IsUnspecified() || oa.IsUnspecified()
	case !na.Is4() && !oa.Is4():
		return na == oa || na.IsUnspecified() || oa.IsUnspecified()
	case na.Is4(): // new IPv4, old IPv6
		return oa.IsUnspecified() && !s.V6Only
	default: // new IPv6, old IPv4
		return na.IsUnspecified() && !a.V6Only
	}
}

package jsonl

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/twtrace/twtrace/tracer/table"
	"github.com/twtrace/twtrace/tracer/text"
)

// AppendSocket appends one socket of `twtrace sockets --json` and a newline.
// state is the kernel's (Socket.KernelState). remaining_ms is set for
// TIME_WAIT sockets only; since and owner_* are null when unknown. What a
// listing adds (Socket.Detail) follows: recv_q, send_q, timer (null for
// none), timer_ms, retrans, and owners, every process holding the socket
// with its fds; a TIME_WAIT has its timer and empty queues.
func AppendSocket(b []byte, s *table.Socket, now time.Time) []byte {
	b = append(b, '{')
	b = appendSocketFields(b, s, s.KernelState(), now)
	b = appendDetail(b, s, now)
	return append(b, "}\n"...)
}

// AppendSocketRecord appends a capture's socket record: the socket as
// AppendSocket writes it, after "kind":"socket" and "ts", the time of the
// snapshot, which remaining_ms counts from. Its state is the table's (an
// orphan's FIN_WAIT2 mini-socket is TIME_WAIT there, with its timer), so
// that a replay restores the table as it was.
func AppendSocketRecord(b []byte, s *table.Socket, at time.Time) []byte {
	b = append(b, `{"kind":"socket","ts":"`...)
	b = appendTime(b, at)
	b = append(b, `",`...)
	b = appendSocketFields(b, s, s.State, at)
	return append(b, "}\n"...)
}

// appendSocketFields appends the fields every socket record has, the state
// as given.
func appendSocketFields(b []byte, s *table.Socket, state event.State, now time.Time) []byte {
	b = append(b, `"state":"`...)
	b = append(b, state.String()...)
	b = append(b, '"')
	b = appendFamily(b, s.Family)
	b = appendAddr(b, "saddr", s.Src.Addr())
	b = appendInt(b, "sport", int64(s.Src.Port()))
	b = appendAddr(b, "daddr", s.Dst.Addr())
	b = appendInt(b, "dport", int64(s.Dst.Port()))
	b = appendInt(b, "netns", int64(s.NetNS))
	b = appendInt(b, "inode", int64(s.Inode))
	b = appendCookie(b, s.Cookie)
	b = appendOwner(b, s.Owner, &s.OwnerComm)
	if s.Container != "" {
		b = append(b, `,"container":`...)
		b = appendString(b, []byte(s.Container))
	}
	b = append(b, `,"since":`...)
	if s.Since.IsZero() {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = appendTime(b, s.Since)
		b = append(b, '"')
	}
	if s.State == event.StateTimeWait {
		b = appendInt(b, "remaining_ms", s.Remaining(now).Milliseconds())
	}
	b = appendReuse(b, s.Reuse)
	b = append(b, `,"side":"`...)
	b = append(b, s.Side.String()...)
	b = append(b, `","source":"`...)
	b = append(b, s.Source...)
	return append(b, '"')
}

// appendDetail appends what a listing found beyond the table: queues,
// timer, holders.
func appendDetail(b []byte, s *table.Socket, now time.Time) []byte {
	d := s.Detail
	if d == nil && s.State != event.StateTimeWait {
		return b
	}
	var rq, sq uint32
	if d != nil {
		rq, sq = d.RecvQ, d.SendQ
	}
	b = appendInt(b, "recv_q", int64(rq))
	b = appendInt(b, "send_q", int64(sq))
	t, left, n := s.Timer(now)
	b = append(b, `,"timer":`...)
	if t == table.TimerNone {
		b = append(b, "null"...)
	} else {
		b = appendString(b, []byte(text.TimerName(t)))
	}
	b = appendInt(b, "timer_ms", left.Milliseconds())
	b = appendInt(b, "retrans", int64(n))
	if d == nil {
		return b
	}
	b = append(b, `,"owners":[`...)
	for i := range d.Holders {
		h := &d.Holders[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"pid":`...)
		b = appendUint(b, uint64(h.PID))
		b = append(b, `,"comm":`...)
		b = appendString(b, h.Comm[:])
		b = append(b, `,"fds":[`...)
		for k, fd := range h.FDs {
			if k > 0 {
				b = append(b, ',')
			}
			b = appendIntDec(b, int64(fd))
		}
		b = append(b, "]}"...)
	}
	return append(b, ']')
}

// appendReuse appends "reuseaddr" and "reuseport": booleans, or null when
// the options could not be read.
func appendReuse(b []byte, r event.Reuse) []byte {
	if !r.Known() {
		return append(b, `,"reuseaddr":null,"reuseport":null`...)
	}
	b = strconv.AppendBool(append(b, `,"reuseaddr":`...), r&event.ReuseAddr != 0)
	return strconv.AppendBool(append(b, `,"reuseport":`...), r&event.ReusePort != 0)
}

// socketRecord is the JSON form of a socket record. Pointers tell a missing
// field from a zero one.
type socketRecord struct {
	Kind        string  `json:"kind"`
	TS          string  `json:"ts"`
	State       *string `json:"state"`
	Family      *string `json:"family"`
	Saddr       *string `json:"saddr"`
	Sport       *uint16 `json:"sport"`
	Daddr       *string `json:"daddr"`
	Dport       *uint16 `json:"dport"`
	NetNS       *uint32 `json:"netns"`
	Inode       *uint32 `json:"inode"`
	Sock        *string `json:"sock"`
	OwnerPID    *uint32 `json:"owner_pid"`
	OwnerComm   *string `json:"owner_comm"`
	Container   *string `json:"container"`
	Since       *string `json:"since"`
	RemainingMS *int64  `json:"remaining_ms"`
	ReuseAddr   *bool   `json:"reuseaddr"`
	ReusePort   *bool   `json:"reuseport"`
	Side        *string `json:"side"`
	Source      *string `json:"source"`
}

// DecodeSocket parses a capture's socket record into s and returns the
// time of the snapshot it belongs to (its ts). A TIME_WAIT socket's timer
// ends remaining_ms after it. Like Decode, it ignores unknown fields and
// names the field that is missing or malformed.
func DecodeSocket(line []byte, s *table.Socket) (time.Time, error) {
	var r socketRecord
	if err := json.Unmarshal(line, &r); err != nil {
		return time.Time{}, fmt.Errorf("not a JSON object: %w", err)
	}
	if r.Kind != event.KindSocket.String() {
		return time.Time{}, fmt.Errorf("a %q record, not a socket", r.Kind)
	}
	at, err := time.Parse(time.RFC3339Nano, r.TS)
	if err != nil {
		return time.Time{}, fmt.Errorf(`bad "ts": %w`, err)
	}
	at = at.UTC()
	*s = table.Socket{}
	if err := r.fill(s, at); err != nil {
		return time.Time{}, err
	}
	return at, nil
}

func (r *socketRecord) fill(s *table.Socket, at time.Time) error {
	missing := func(f string) error { return fmt.Errorf("socket record without %q", f) }
	switch {
	case r.State == nil:
		return missing("state")
	case r.Family == nil:
		return missing("family")
	case r.Saddr == nil:
		return missing("saddr")
	case r.Sport == nil:
		return missing("sport")
	case r.Daddr == nil:
		return missing("daddr")
	case r.Dport == nil:
		return missing("dport")
	case r.NetNS == nil:
		return missing("netns")
	case r.Sock == nil:
		return missing("sock")
	case r.Source == nil:
		return missing("source")
	}
	st, ok := event.ParseState(*r.State)
	if !ok || st.String() == "UNKNOWN" {
		return fmt.Errorf(`bad "state" %q: want a TCP state such as LISTEN`, *r.State)
	}
	s.State = st
	if s.Family, ok = event.ParseFamily(*r.Family); !ok {
		return fmt.Errorf(`bad "family" %q: want ipv4 or ipv6`, *r.Family)
	}
	src, err := socketAddr("saddr", *r.Saddr, s.Family)
	if err != nil {
		return err
	}
	dst, err := socketAddr("daddr", *r.Daddr, s.Family)
	if err != nil {
		return err
	}
	s.Src, s.Dst = netip.AddrPortFrom(src, *r.Sport), netip.AddrPortFrom(dst, *r.Dport)
	if s.Cookie, err = strconv.ParseUint(*r.Sock, 16, 64); err != nil || s.Cookie == 0 {
		return fmt.Errorf(`bad "sock" %q: want a hex socket cookie`, *r.Sock)
	}
	s.NetNS = *r.NetNS
	if r.Inode != nil {
		s.Inode = *r.Inode
	}
	if r.OwnerPID != nil && *r.OwnerPID != 0 {
		s.Owner = *r.OwnerPID
		if r.OwnerComm != nil {
			s.OwnerComm = commOf(*r.OwnerComm)
		}
	}
	if r.Container != nil {
		// As the encoder writes it back: up to a NUL, invalid bytes replaced.
		s.Container = replaceInvalid([]byte(*r.Container))
	}
	if r.Since != nil {
		if s.Since, err = time.Parse(time.RFC3339Nano, *r.Since); err != nil {
			return fmt.Errorf(`bad "since": %w`, err)
		}
		s.Since = s.Since.UTC()
	}
	return r.fillRest(s, at)
}

// fillRest reads the timer, the options and the source.
func (r *socketRecord) fillRest(s *table.Socket, at time.Time) error {
	if s.State == event.StateTimeWait {
		ms := int64(0)
		if r.RemainingMS != nil {
			ms = *r.RemainingMS
		}
		if ms < 0 || ms > math.MaxInt64/int64(time.Millisecond) {
			return fmt.Errorf(`bad "remaining_ms" %d`, ms)
		}
		s.Expires = at.Add(time.Duration(ms) * time.Millisecond)
	}
	switch {
	case r.ReuseAddr == nil && r.ReusePort == nil:
	case r.ReuseAddr == nil || r.ReusePort == nil:
		return errors.New(`socket record with one of "reuseaddr" and "reuseport": want both, or neither when unknown`)
	default:
		s.Reuse = event.ReuseKnown
		if *r.ReuseAddr {
			s.Reuse |= event.ReuseAddr
		}
		if *r.ReusePort {
			s.Reuse |= event.ReusePort
		}
	}
	// The side, as the recording table decided it; a capture without it
	// leaves the decision to the evidence of the table it is restored in.
	s.Side = table.SideClientGuess
	if r.Side != nil {
		side, ok := table.ParseSide(*r.Side)
		if !ok {
			return fmt.Errorf(`bad "side" %q: want server, client or client?`, *r.Side)
		}
		s.Side = side
	}
	switch *r.Source {
	case "trace", "sock_diag", "sock_diag+trace":
		s.Source = *r.Source
	default:
		return fmt.Errorf(`bad "source" %q: want sock_diag, trace or sock_diag+trace`, *r.Source)
	}
	s.Confirmed = s.State == event.StateTimeWait && s.Source != "trace"
	return nil
}

func socketAddr(field, v string, f event.Family) (netip.Addr, error) {
	a, err := netip.ParseAddr(v)
	if err != nil {
		return a, fmt.Errorf("bad %q: %w", field, err)
	}
	if a.Is4() != (f == event.FamilyIPv4) || a.Zone() != "" {
		return a, fmt.Errorf("%q %s does not belong to family %s", field, a, f)
	}
	return a, nil
}

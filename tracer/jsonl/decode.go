package jsonl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twtrace/twtrace/tracer/event"
)

// record is the union of every kind's fields. Pointers tell a missing field
// from a zero one; json.RawMessage keeps null apart from absent.
type record struct {
	Kind        string          `json:"kind"`
	TS          string          `json:"ts"`
	Sock        *string         `json:"sock"`
	Family      *string         `json:"family"`
	Saddr       *string         `json:"saddr"`
	Sport       *uint16         `json:"sport"`
	Daddr       *string         `json:"daddr"`
	Dport       *uint16         `json:"dport"`
	Old         *string         `json:"old"`
	New         *string         `json:"new"`
	OldMS       json.RawMessage `json:"old_ms"`
	PID         *uint32         `json:"pid"`
	Comm        *string         `json:"comm"`
	OwnerPID    *uint32         `json:"owner_pid"`
	OwnerComm   *string         `json:"owner_comm"`
	UID         *uint32         `json:"uid"`
	OwnerUID    *uint32         `json:"owner_uid"`
	Reset       bool            `json:"reset"`
	NetNS       *uint32         `json:"netns"`
	FD          *int32          `json:"fd"`
	Addr        *string         `json:"addr"`
	Port        *uint16         `json:"port"`
	Ret         *int32          `json:"ret"`
	Errno       *string         `json:"errno"`
	ReuseAddr   *bool           `json:"reuseaddr"`
	ReusePort   *bool           `json:"reuseport"`
	Event       *string         `json:"event"`
	RemainingMS *int64          `json:"remaining_ms"`
	Source      *string         `json:"source"`
	Count       *uint64         `json:"count"`
}

// Records of a capture that are not events: Decode returns these for them,
// and the capture reader decodes them itself (DecodeSocket for a socket).
var (
	ErrHeader = errors.New("header record")
	ErrSocket = errors.New("socket record")
	ErrEnd    = errors.New("end record")
)

// Decode parses one line. Unknown fields are ignored (fields may be added to
// the schema); missing or malformed required fields are errors that name the field.
func Decode(line []byte, ev *event.Event) error {
	var (
		r  record
		st store
	)
	if !scanFlat(line, &r, &st) {
		// A record of its own: one passed to encoding/json escapes to the
		// heap, and r stays on the stack for the fast path.
		slow := new(record)
		if err := json.Unmarshal(line, slow); err != nil {
			return fmt.Errorf("not a JSON object: %w", err)
		}
		r = *slow
	}
	kind, ok := event.ParseKind(r.Kind)
	if !ok {
		if r.Kind == "" {
			return errors.New(`missing "kind"`)
		}
		return fmt.Errorf("unknown kind %q", r.Kind)
	}
	switch kind {
	case event.KindHeader:
		return ErrHeader
	case event.KindSocket:
		return ErrSocket
	case event.KindEnd:
		return ErrEnd
	}
	ts, err := time.Parse(time.RFC3339Nano, r.TS)
	if err != nil {
		return fmt.Errorf(`bad "ts": %w`, err)
	}
	*ev = event.Event{Kind: kind, Time: ts.UTC()}
	err = nil // d's first failure; kept out of d, which would take r to the heap with it
	d := decoder{r: &r, ev: ev, err: &err}
	switch kind {
	case event.KindState:
		d.state()
	case event.KindBind:
		d.task()
		d.fd()
		d.family()
		ev.Src = netip.AddrPortFrom(d.addr("addr", r.Addr), d.u16("port", r.Port))
		d.errno()
		ev.ReuseAddr = d.boolean("reuseaddr", r.ReuseAddr)
		ev.ReusePort = d.boolean("reuseport", r.ReusePort)
		d.netns()
	case event.KindConnect:
		d.task()
		d.optionalFD()
		d.family()
		ev.Dst = netip.AddrPortFrom(d.addr("daddr", r.Daddr), d.u16("dport", r.Dport))
		d.errno()
		d.netns()
	case event.KindListen:
		d.task()
		d.optionalFD()
		d.family()
		ev.Src = netip.AddrPortFrom(netip.Addr{}, d.u16("port", r.Port))
		d.errno()
		d.netns()
	case event.KindTimeWait:
		d.timeWait()
	case event.KindLost:
		if r.Count == nil {
			d.missing("count")
		} else {
			ev.Lost = *r.Count
		}
	}
	return err
}

type decoder struct {
	r   *record
	ev  *event.Event
	err *error // the first failure
}

func (d *decoder) fail(format string, args ...any) {
	if *d.err == nil {
		*d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) missing(field string) { d.fail("%s record without %q", d.r.Kind, field) }

func (d *decoder) state() {
	r, ev := d.r, d.ev
	if r.Sock == nil {
		d.missing("sock")
	} else if c, err := strconv.ParseUint(*r.Sock, 16, 64); err != nil {
		d.fail(`bad "sock" %q: want a hex socket cookie`, *r.Sock)
	} else {
		ev.Cookie = c
	}
	d.endpoints()
	ev.Old = d.state1("old", r.Old)
	ev.New = d.state1("new", r.New)
	if len(r.OldMS) > 0 && string(r.OldMS) != "null" {
		ms, err := strconv.ParseFloat(string(r.OldMS), 64)
		if err != nil || ms < 0 || ms > math.MaxInt64/float64(time.Millisecond) {
			d.fail(`bad "old_ms" %s`, r.OldMS)
		} else {
			// Rounded: 2.074 ms is 2073999.9999 ns in binary floating point.
			ev.OldDur = time.Duration(math.Round(ms * float64(time.Millisecond)))
			ev.OldKnown = true
		}
	}
	d.task()
	d.owner()
	d.uid(r.OwnerUID)
	ev.SockReuse = d.reuse()
	ev.Reset = r.Reset
	d.netns()
}

func (d *decoder) timeWait() {
	r, ev := d.r, d.ev
	if r.Event == nil {
		d.missing("event")
	} else if op, ok := event.ParseTimeWaitOp(*r.Event); !ok {
		d.fail(`bad "event" %q`, *r.Event)
	} else {
		ev.TimeWait = op
	}
	if r.Sock != nil {
		c, err := strconv.ParseUint(*r.Sock, 16, 64)
		if err != nil {
			d.fail(`bad "sock" %q`, *r.Sock)
		}
		ev.Cookie = c
	}
	d.endpoints()
	if r.RemainingMS == nil {
		d.missing("remaining_ms")
	} else if *r.RemainingMS < 0 || *r.RemainingMS > math.MaxInt64/int64(time.Millisecond) {
		d.fail(`bad "remaining_ms" %d`, *r.RemainingMS)
	} else {
		ev.Remaining = time.Duration(*r.RemainingMS) * time.Millisecond
	}
	d.owner()
	d.uid(r.OwnerUID)
	d.netns()
	if r.Source == nil {
		d.missing("source")
	} else if s, ok := event.ParseSource(*r.Source); !ok {
		d.fail(`bad "source" %q`, *r.Source)
	} else {
		ev.Source = s
	}
}

func (d *decoder) endpoints() {
	r := d.r
	d.family()
	d.ev.Src = netip.AddrPortFrom(d.addr("saddr", r.Saddr), d.u16("sport", r.Sport))
	d.ev.Dst = netip.AddrPortFrom(d.addr("daddr", r.Daddr), d.u16("dport", r.Dport))
}

func (d *decoder) family() {
	if d.r.Family == nil {
		d.missing("family")
		return
	}
	f, ok := event.ParseFamily(*d.r.Family)
	if !ok {
		d.fail(`bad "family" %q`, *d.r.Family)
	}
	d.ev.Family = f
}

func (d *decoder) addr(field string, s *string) netip.Addr {
	if s == nil {
		d.missing(field)
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(*s)
	if err != nil {
		d.fail("bad %q: %w", field, err)
		return a
	}
	if (a.Is4() && d.ev.Family != event.FamilyIPv4) || (!a.Is4() && d.ev.Family == event.FamilyIPv4) {
		d.fail("%q %s does not belong to family %s", field, a, d.ev.Family)
	}
	return a
}

func (d *decoder) u16(field string, v *uint16) uint16 {
	if v == nil {
		d.missing(field)
		return 0
	}
	return *v
}

func (d *decoder) boolean(field string, v *bool) bool {
	if v == nil {
		d.missing(field)
		return false
	}
	return *v
}

func (d *decoder) state1(field string, s *string) event.State {
	if s == nil {
		d.missing(field)
		return 0
	}
	st, ok := event.ParseState(*s)
	if !ok {
		d.fail("bad %q: unknown TCP state %q", field, *s)
	}
	return st
}

// task reads the running task: pid, comm, and the uid of a bind, connect
// or listen record.
func (d *decoder) task() {
	if d.r.PID == nil {
		d.missing("pid")
	} else {
		d.ev.PID = *d.r.PID
	}
	if d.r.Comm == nil {
		d.missing("comm")
	} else {
		d.ev.Comm = commOf(*d.r.Comm)
	}
	if d.ev.Kind != event.KindState {
		d.uid(d.r.UID)
	}
}

// uid reads "uid" or "owner_uid": optional, as records written before they
// were added have none (UIDKnown stays false).
func (d *decoder) uid(v *uint32) {
	if v != nil {
		d.ev.UID, d.ev.UIDKnown = *v, true
	}
}

func (d *decoder) owner() {
	// Pid 0 is no owner (twtrace writes null): a name beside it means nothing.
	if d.r.OwnerPID != nil && *d.r.OwnerPID != 0 {
		d.ev.Owner = *d.r.OwnerPID
		if d.r.OwnerComm != nil {
			d.ev.OwnerComm = commOf(*d.r.OwnerComm)
		}
	}
}

func (d *decoder) fd() {
	if d.r.FD == nil {
		d.missing("fd")
		return
	}
	d.ev.FD = *d.r.FD
}

func (d *decoder) optionalFD() {
	if d.r.FD != nil {
		d.ev.FD = *d.r.FD
	}
}

func (d *decoder) errno() {
	if d.r.Ret == nil {
		d.missing("ret")
		return
	}
	d.ev.Ret = *d.r.Ret
	if d.r.Errno != nil {
		want, ok := event.ParseErrno(*d.r.Errno)
		if !ok {
			d.fail(`bad "errno" %q`, *d.r.Errno)
		} else if want != d.ev.Ret && !(want == 0 && d.ev.Ret >= 0) {
			d.fail(`"errno" %q disagrees with "ret" %d`, *d.r.Errno, d.ev.Ret)
		}
	}
}

func (d *decoder) netns() {
	if d.r.NetNS == nil {
		d.missing("netns")
		return
	}
	d.ev.NetNS = *d.r.NetNS
}

// reuse reads a state record's socket options: both booleans, or neither
// (null, or absent in captures older than the fields) when they are unknown.
func (d *decoder) reuse() event.Reuse {
	a, p := d.r.ReuseAddr, d.r.ReusePort
	switch {
	case a == nil && p == nil:
		return 0
	case a == nil || p == nil:
		d.fail(`%s record with one of "reuseaddr" and "reuseport": want both, or neither when unknown`, d.r.Kind)
		return 0
	}
	r := event.ReuseKnown
	if *a {
		r |= event.ReuseAddr
	}
	if *p {
		r |= event.ReusePort
	}
	return r
}

// commOf converts a decoded string to a Comm as it reads back after being
// encoded again: up to its first NUL (the encoder stops there), at most 15
// bytes, and where that cut split a character, the bytes the encoder's
// replacement of it (U+FFFD per invalid byte) leaves in 15 bytes. A
// decoded event then encodes and decodes to itself.
func commOf(s string) event.Comm {
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	c := event.MakeComm(s)
	if n := bytes.IndexByte(c[:], 0); n < 0 || utf8.Valid(c[:n]) {
		return c // the usual case, without allocating
	}
	for range 3 { // a fixed point after two rounds at most
		next := event.MakeComm(replaceInvalid(c[:]))
		if next == c {
			break
		}
		c = next
	}
	return c
}

// replaceInvalid is b up to its first NUL, each byte that is not part of
// valid UTF-8 replaced by U+FFFD, as appendString writes it.
func replaceInvalid(b []byte) string {
	var out strings.Builder
	for i := 0; i < len(b) && b[i] != 0; {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			out.WriteRune(utf8.RuneError)
		} else {
			out.Write(b[i : i+n])
		}
		i += n
	}
	return out.String()
}

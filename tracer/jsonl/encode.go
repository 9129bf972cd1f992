// Package jsonl writes and reads the JSON Lines form of the event stream:
// the `--json` output of `twtrace trace` and the records of a capture file.
// The schema is in docs/jsonl.md; encoding appends to a caller's buffer and does
// not allocate, because it runs once per kernel event.
package jsonl

import (
	"net/netip"
	"strconv"
	"unicode/utf8"

	"github.com/twtrace/twtrace/tracer/event"
)

// Append appends ev as one JSON object and a newline. An Encoder does the
// same faster for a stream of events.
func Append(b []byte, ev *event.Event) []byte {
	var e Encoder
	return e.Append(b, ev)
}

// Encoder encodes a stream of events. It remembers the last second it
// formatted: consecutive events mostly share it. The zero value is ready;
// it is not safe for concurrent use.
type Encoder struct {
	sec    int64
	prefix [19]byte // "2006-01-02T15:04:05" of sec
	valid  bool
}

// Append appends ev as one JSON object and a newline.
func (enc *Encoder) Append(b []byte, ev *event.Event) []byte {
	b = append(b, `{"kind":"`...)
	b = append(b, ev.Kind.String()...)
	b = append(b, `","ts":"`...)
	b = enc.appendTime(b, ev.Time)
	b = append(b, '"')
	switch ev.Kind {
	case event.KindState:
		b = appendState(b, ev)
	case event.KindBind:
		b = appendTask(b, ev)
		b = appendInt(b, "fd", int64(ev.FD))
		b = appendFamily(b, ev.Family)
		b = appendAddr(b, "addr", ev.Src.Addr())
		b = appendInt(b, "port", int64(ev.Src.Port()))
		b = appendErr(b, ev)
		b = appendBool(b, "reuseaddr", ev.ReuseAddr)
		b = appendBool(b, "reuseport", ev.ReusePort)
		b = appendInt(b, "netns", int64(ev.NetNS))
	case event.KindConnect:
		b = appendTask(b, ev)
		b = appendInt(b, "fd", int64(ev.FD))
		b = appendFamily(b, ev.Family)
		b = appendAddr(b, "daddr", ev.Dst.Addr())
		b = appendInt(b, "dport", int64(ev.Dst.Port()))
		b = appendErr(b, ev)
		b = appendInt(b, "netns", int64(ev.NetNS))
	case event.KindListen:
		b = appendTask(b, ev)
		b = appendInt(b, "fd", int64(ev.FD))
		b = appendFamily(b, ev.Family)
		b = appendInt(b, "port", int64(ev.Src.Port()))
		b = appendErr(b, ev)
		b = appendInt(b, "netns", int64(ev.NetNS))
	case event.KindTimeWait:
		b = append(b, `,"event":"`...)
		b = append(b, ev.TimeWait.String()...)
		b = append(b, '"')
		if ev.Cookie != 0 {
			b = appendCookie(b, ev.Cookie)
		}
		b = appendEndpoints(b, ev)
		b = appendInt(b, "remaining_ms", ev.Remaining.Milliseconds())
		b = appendOwner(b, ev.Owner, &ev.OwnerComm)
		b = appendUID(b, "owner_uid", ev)
		b = appendInt(b, "netns", int64(ev.NetNS))
		b = append(b, `,"source":"`...)
		b = append(b, ev.Source.String()...)
		b = append(b, '"')
	case event.KindLost:
		b = append(b, `,"count":`...)
		b = appendUint(b, ev.Lost)
	}
	return append(b, "}\n"...)
}

func appendState(b []byte, ev *event.Event) []byte {
	b = appendCookie(b, ev.Cookie)
	b = appendEndpoints(b, ev)
	b = append(b, `,"old":"`...)
	b = append(b, ev.Old.String()...)
	b = append(b, `","new":"`...)
	b = append(b, ev.New.String()...)
	b = append(b, `","old_ms":`...)
	if ev.OldKnown {
		b = appendMillis(b, ev.OldDur.Microseconds())
	} else {
		b = append(b, "null"...)
	}
	b = appendTask(b, ev)
	b = appendOwner(b, ev.Owner, &ev.OwnerComm)
	b = appendUID(b, "owner_uid", ev)
	if ev.Reset {
		b = append(b, `,"reset":true`...)
	}
	b = appendReuse(b, ev.SockReuse)
	return appendInt(b, "netns", int64(ev.NetNS))
}

// appendOwner appends "owner_pid" and "owner_comm": null for pid 0, unknown.
func appendOwner(b []byte, pid uint32, comm *event.Comm) []byte {
	b = append(b, `,"owner_pid":`...)
	if pid == 0 {
		return append(b, `null,"owner_comm":null`...)
	}
	b = appendUint(b, uint64(pid))
	b = append(b, `,"owner_comm":`...)
	return appendString(b, comm[:])
}

// appendMillis writes microseconds as milliseconds with up to three
// decimals, trailing zeros trimmed: what strconv.AppendFloat(us/1000, 'f',
// -1) writes, without floating point.
func appendMillis(b []byte, us int64) []byte {
	if us < 0 {
		b = append(b, '-')
		us = -us
	}
	b = appendIntDec(b, us/1000)
	frac := us % 1000
	if frac == 0 {
		return b
	}
	d := [4]byte{'.', byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
	n := 4
	for d[n-1] == '0' {
		n--
	}
	return append(b, d[:n]...)
}

func appendCookie(b []byte, c uint64) []byte {
	b = append(b, `,"sock":"`...)
	b = appendHex(b, c)
	return append(b, '"')
}

func appendEndpoints(b []byte, ev *event.Event) []byte {
	b = appendFamily(b, ev.Family)
	b = appendAddr(b, "saddr", ev.Src.Addr())
	b = appendInt(b, "sport", int64(ev.Src.Port()))
	b = appendAddr(b, "daddr", ev.Dst.Addr())
	return appendInt(b, "dport", int64(ev.Dst.Port()))
}

// appendTask appends the running task: pid, comm, and for bind, connect
// and listen its uid.
func appendTask(b []byte, ev *event.Event) []byte {
	b = appendInt(b, "pid", int64(ev.PID))
	b = append(b, `,"comm":`...)
	b = appendString(b, ev.Comm[:])
	if ev.Kind != event.KindState {
		b = appendUID(b, "uid", ev)
	}
	return b
}

// appendUID appends the event's uid under key, when it is known.
func appendUID(b []byte, key string, ev *event.Event) []byte {
	if !ev.UIDKnown {
		return b
	}
	return appendInt(b, key, int64(ev.UID))
}

func appendErr(b []byte, ev *event.Event) []byte {
	b = appendInt(b, "ret", int64(ev.Ret))
	b = append(b, `,"errno":"`...)
	b = append(b, event.ErrnoName(ev.Ret)...)
	return append(b, '"')
}

func appendFamily(b []byte, f event.Family) []byte {
	b = append(b, `,"family":"`...)
	b = append(b, f.String()...)
	return append(b, '"')
}

func appendAddr(b []byte, key string, a netip.Addr) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":"`...)
	b = a.AppendTo(b)
	return append(b, '"')
}

func appendInt(b []byte, key string, v int64) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	return appendIntDec(b, v)
}

func appendBool(b []byte, key string, v bool) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	return strconv.AppendBool(b, v)
}

const hex = "0123456789abcdef"

// appendString appends s, up to its first NUL, as a JSON string. Task names
// are chosen by whoever runs the task: quotes, control bytes and invalid
// UTF-8 are escaped or replaced so that every line stays valid JSON.
func appendString(b []byte, s []byte) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c == 0 {
			break
		}
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}

package jsonl

import (
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
	b = append(b, `{"state":"`...)
	b = append(b, s.KernelState().String()...)
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
	b = append(b, `,"source":"`...)
	b = append(b, s.Source...)
	b = append(b, '"')
	b = appendDetail(b, s, now)
	return append(b, "}\n"...)
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

package jsonl

import (
	"strconv"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/twtrace/twtrace/tracer/table"
)

// AppendSocket appends one socket of `twtrace sockets --json` and a newline.
// remaining_ms is set for TIME_WAIT sockets only; since and owner_* are null
// when unknown.
func AppendSocket(b []byte, s *table.Socket, now time.Time) []byte {
	b = append(b, `{"state":"`...)
	b = append(b, s.State.String()...)
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
	return append(b, "\"}\n"...)
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

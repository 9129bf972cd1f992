// Package text is the one place where events and sockets become the words
// people read: the columns of an event (`twtrace trace`, `twtrace replay`,
// the live view's Events view), and the addresses, owners, task names,
// times and durations every listing shows.
//
// It writes plain text only. Colour belongs to the sink: an event's Class
// says what kind of fact it is, and the text stream maps it to ANSI codes,
// the live view to its styles. Every function appends to a caller's buffer
// and allocates nothing, because `trace` formats hundreds of thousands of
// events a second; the string forms are for the live view, which formats
// only the rows on screen.
package text

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// AppendAddr appends an endpoint as ss prints it: "*" for a port not (yet)
// set (a listener's peer, a client before connect() picked its port),
// "*:port" for a port without an address (a failed listen(): the syscall
// names no address), "-" when neither is known.
func AppendAddr(b []byte, ap netip.AddrPort) []byte {
	a, port := ap.Addr(), ap.Port()
	switch {
	case !a.IsValid() && port == 0:
		return append(b, '-')
	case !a.IsValid():
		b = append(b, "*:"...)
		return strconv.AppendUint(b, uint64(port), 10)
	case port != 0:
		return ap.AppendTo(b)
	case a.Is6():
		b = append(b, '[')
		b = a.AppendTo(b)
		return append(b, "]:*"...)
	}
	b = a.AppendTo(b)
	return append(b, ":*"...)
}

// Addr is AppendAddr as a string.
func Addr(ap netip.AddrPort) string {
	var a [64]byte
	return string(AppendAddr(a[:0], ap))
}

// AppendComm appends a task name made safe for a terminal: a task can name
// itself anything, escape sequences included.
func AppendComm(b []byte, c *event.Comm) []byte { return c.AppendPrintable(b) }

// Comm is AppendComm as a string.
func Comm(c *event.Comm) string {
	var a [len(event.Comm{})]byte
	return string(c.AppendPrintable(a[:0]))
}

// AppendOwner appends a socket's owner, "pid comm", or "-" for pid 0
// (unknown).
func AppendOwner(b []byte, pid uint32, comm *event.Comm) []byte {
	if pid == 0 {
		return append(b, '-')
	}
	b = strconv.AppendUint(b, uint64(pid), 10)
	b = append(b, ' ')
	return comm.AppendPrintable(b)
}

// Owner is AppendOwner as a string.
func Owner(pid uint32, comm *event.Comm) string {
	var a [32]byte
	return string(AppendOwner(a[:0], pid, comm))
}

// AppendClock appends the time of day of t in loc to the millisecond
// (15:04:05.000), or "-" for the zero time (never seen). It writes the
// digits itself: the layout interpreter of time.Format was a third of the
// cost of a line of `trace`.
func AppendClock(b []byte, t time.Time, loc *time.Location) []byte {
	if t.IsZero() {
		return append(b, '-')
	}
	h, m, s := t.In(loc).Clock()
	ms := t.Nanosecond() / 1e6
	return append(b, byte('0'+h/10), byte('0'+h%10), ':', byte('0'+m/10), byte('0'+m%10), ':',
		byte('0'+s/10), byte('0'+s%10), '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
}

// Clock is AppendClock as a string.
func Clock(t time.Time, loc *time.Location) string {
	var a [16]byte
	return string(AppendClock(a[:0], t, loc))
}

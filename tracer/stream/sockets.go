package stream

import (
	"cmp"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/table"
	"github.com/twtrace/twtrace/tracer/text"
)

const (
	wState     = 12
	wQueue     = 6  // "RECV-Q"
	wReuse     = 10 // "addr,port"
	wInode     = 8
	wCookie    = 12
	wContainer = 14
)

// shortID is a container id's first 12 digits.
func shortID(id string) string { return id[:min(len(id), 12)] }

// socketCols are the widths of a listing's columns that depend on what it
// holds: an IPv6 or v4-mapped address ([::ffff:127.0.0.1]:8080) is wider
// than an IPv4 one, and a row must not push the rest of its line.
type socketCols struct {
	recvQ, sendQ, local, remote, timer int
	inode, cookie                      int // an inode of many digits on a long-running host
	containers                         bool
}

func measureSockets(socks []table.Socket, now time.Time) socketCols {
	c := socketCols{recvQ: wQueue, sendQ: wQueue, local: wAddr, remote: wAddr, timer: 9, inode: wInode, cookie: wCookie}
	var scratch [64]byte
	for i := range socks {
		s := &socks[i]
		if d := s.Detail; d != nil {
			c.recvQ = max(c.recvQ, len(strconv.AppendUint(scratch[:0], uint64(d.RecvQ), 10)))
			c.sendQ = max(c.sendQ, len(strconv.AppendUint(scratch[:0], uint64(d.SendQ), 10)))
		}
		c.local = max(c.local, len(text.AppendAddr(scratch[:0], s.Src)))
		c.remote = max(c.remote, len(text.AppendAddr(scratch[:0], s.Dst)))
		t, left, n := s.Timer(now)
		c.timer = max(c.timer, len(text.AppendTimer(scratch[:0], t, left, n)))
		c.inode = max(c.inode, len(strconv.AppendUint(scratch[:0], uint64(s.Inode), 10)))
		c.cookie = max(c.cookie, len(strconv.AppendUint(scratch[:0], s.Cookie, 16)))
		c.containers = c.containers || s.Container != ""
	}
	return c
}

// header is the header line of WriteSockets; the CONTAINER column only when
// a socket has one.
func (c socketCols) header() []byte {
	b := pad(nil, "STATE", wState)
	b = pad(b, "RECV-Q", c.recvQ)
	b = pad(b, "SEND-Q", c.sendQ)
	b = pad(b, "LOCAL", c.local)
	b = pad(b, "REMOTE", c.remote)
	b = pad(b, "TIMER", c.timer)
	b = pad(b, "REUSE", wReuse)
	b = pad(b, "INODE", c.inode)
	b = pad(b, "SK", c.cookie)
	if c.containers {
		b = pad(b, "CONTAINER", wContainer)
	}
	return append(b, "OWNERS\n"...)
}

// WriteSockets writes sockets as `ss -tanpoe` would, then one summary line.
// STATE is the kernel's (an orphan's TIME_WAIT mini-socket still in
// substate FIN_WAIT2 is FIN_WAIT2). RECV-Q and SEND-Q are the bytes not yet
// read and not yet acknowledged (a listener's accept queue and backlog);
// TIMER the timer pending, with its time left; REUSE the socket's
// SO_REUSEADDR/SO_REUSEPORT ("addr", "port", "addr,port", "-" for neither,
// "?" when they could not be read); SK its cookie; CONTAINER the first
// owner's container id, short (12 digits) as docker and crictl print it;
// OWNERS every process holding it and their fds, last because a shared
// socket has many.
func WriteSockets(w io.Writer, socks []table.Socket, now time.Time, color bool) error {
	c := measureSockets(socks, now)
	b := c.header()
	var counts [16]int
	var last time.Time
	for i := range socks {
		s := &socks[i]
		st := s.KernelState()
		if int(st) < len(counts) {
			counts[st]++
		}
		tw := s.State == event.StateTimeWait // an orphan's mini-socket too
		if st == event.StateTimeWait && s.Expires.After(last) {
			last = s.Expires
		}
		if color && tw {
			b = append(b, ansiYel...)
		}
		b = appendSocket(b, s, st, &c, now)
		if color && tw {
			b = append(b, ansiOff...)
		}
		b = append(b, '\n')
	}
	b = append(b, summary(counts[:], len(socks), last, now)...)
	_, err := w.Write(b)
	return err
}

// appendSocket appends one row of WriteSockets.
func appendSocket(b []byte, s *table.Socket, st event.State, c *socketCols, now time.Time) []byte {
	b = pad(b, st.String(), wState)
	rq, sq := "-", "-"
	switch {
	case s.Detail != nil:
		rq, sq = strconv.FormatUint(uint64(s.Detail.RecvQ), 10), strconv.FormatUint(uint64(s.Detail.SendQ), 10)
	case s.State == event.StateTimeWait:
		rq, sq = "0", "0" // a mini-socket has no buffers
	}
	b = pad(b, rq, c.recvQ)
	b = pad(b, sq, c.sendQ)
	at := len(b)
	b = padTo(text.AppendAddr(b, s.Src), at, c.local)
	at = len(b)
	b = padTo(text.AppendAddr(b, s.Dst), at, c.remote)
	at = len(b)
	t, left, n := s.Timer(now)
	b = padTo(text.AppendTimer(b, t, left, n), at, c.timer)
	b = pad(b, s.Reuse.String(), wReuse)
	at = len(b)
	if s.Inode != 0 {
		b = strconv.AppendUint(b, uint64(s.Inode), 10)
	} else {
		b = append(b, '-')
	}
	b = padTo(b, at, c.inode)
	at = len(b)
	b = padTo(strconv.AppendUint(b, s.Cookie, 16), at, c.cookie)
	if c.containers {
		b = pad(b, cmp.Or(shortID(s.Container), "-"), wContainer)
	}
	return text.AppendSocketOwners(b, s)
}

// summary is the last line of a listing: sockets by state, and when the
// last TIME_WAIT ends.
func summary(counts []int, total int, last, now time.Time) string {
	var parts []string
	for st, n := range counts {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, event.State(st)))
		}
	}
	sum := fmt.Sprintf("%d sockets", total)
	if len(parts) > 0 {
		sum += ": " + strings.Join(parts, ", ")
	}
	if !last.IsZero() {
		sum += "; the last TIME_WAIT ends in " + text.Countdown(last.Sub(now))
	}
	return sum + "\n"
}

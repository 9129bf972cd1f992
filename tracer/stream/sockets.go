package stream

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/table"
	"github.com/twtrace/twtrace/tracer/text"
)

const (
	wState     = 12
	wReuse     = 10 // "addr,port"
	wContainer = 14
)

// shortID is a container id's first 12 digits.
func shortID(id string) string { return id[:min(len(id), 12)] }

// socketsHeader is the header line of WriteSockets; the CONTAINER column
// only when a socket has one.
func socketsHeader(containers bool) []byte {
	b := pad(nil, "STATE", wState)
	b = pad(b, "LOCAL", wAddr)
	b = pad(b, "REMOTE", wAddr)
	b = pad(b, "OWNER", wOwner)
	if containers {
		b = pad(b, "CONTAINER", wContainer)
	}
	b = pad(b, "TIMER", 9)
	b = pad(b, "REUSE", wReuse)
	return append(b, "SK\n"...)
}

// WriteSockets writes sockets as `ss -tanp -o` would, with owners and
// TIME_WAIT countdowns, then one summary line. CONTAINER is the owner's
// container id, short (12 digits) as docker and crictl print it. REUSE is
// the socket's SO_REUSEADDR/SO_REUSEPORT ("addr", "port", "addr,port", "-"
// for neither, "?" when they could not be read).
func WriteSockets(w io.Writer, socks []table.Socket, now time.Time, color bool) error {
	containers := slices.ContainsFunc(socks, func(s table.Socket) bool { return s.Container != "" })
	b := socketsHeader(containers)
	var counts [16]int
	var last time.Time
	for i := range socks {
		s := &socks[i]
		if int(s.State) < len(counts) {
			counts[s.State]++
		}
		tw := s.State == event.StateTimeWait
		if tw && s.Expires.After(last) {
			last = s.Expires
		}
		if color && tw {
			b = append(b, ansiYel...)
		}
		b = pad(b, s.State.String(), wState)
		at := len(b)
		b = padTo(text.AppendAddr(b, s.Src), at, wAddr)
		at = len(b)
		b = padTo(text.AppendAddr(b, s.Dst), at, wAddr)
		at = len(b)
		b = padTo(text.AppendOwner(b, s.Owner, &s.OwnerComm), at, wOwner)
		if containers {
			b = pad(b, cmp.Or(shortID(s.Container), "-"), wContainer)
		}
		at = len(b)
		if tw {
			b = text.AppendCountdown(b, s.Remaining(now))
		}
		b = padTo(b, at, 9)
		b = pad(b, s.Reuse.String(), wReuse)
		b = strconv.AppendUint(b, s.Cookie, 16)
		if color && tw {
			b = append(b, ansiOff...)
		}
		b = append(b, '\n')
	}
	var parts []string
	for st, n := range counts {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, event.State(st)))
		}
	}
	sum := fmt.Sprintf("%d sockets", len(socks))
	if len(parts) > 0 {
		sum += ": " + strings.Join(parts, ", ")
	}
	if !last.IsZero() {
		sum += "; the last TIME_WAIT ends in " + text.Countdown(last.Sub(now))
	}
	b = append(b, sum...)
	b = append(b, '\n')
	_, err := w.Write(b)
	return err
}

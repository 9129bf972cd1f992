package tui

import (
	"math"
	"net/netip"
	"strconv"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// ---------------------------------------------------------------- VIEW

// Formatting of the values every view shows. All of it returns plain text:
// styles are applied by the grid, per cell.

// fmtAddr writes an endpoint as ss does: "*" for a port not (yet) set (a
// listener's peer, a client before connect() picked its port), "-" when
// there is no address at all.
func fmtAddr(ap netip.AddrPort) string {
	switch {
	case !ap.Addr().IsValid():
		if ap.Port() != 0 {
			return "*:" + strconv.Itoa(int(ap.Port()))
		}
		return "-"
	case ap.Port() != 0:
		return ap.String()
	case ap.Addr().Is6():
		return "[" + ap.Addr().String() + "]:*"
	}
	return ap.Addr().String() + ":*"
}

// fmtComm returns a task name safe for the terminal the UI draws on.
func fmtComm(c *event.Comm) string {
	var b [len(event.Comm{})]byte
	return string(c.AppendPrintable(b[:0]))
}

// fmtOwner is "pid comm", or "-" when unknown.
func fmtOwner(pid uint32, comm *event.Comm) string {
	if pid == 0 {
		return "-"
	}
	return strconv.FormatUint(uint64(pid), 10) + " " + fmtComm(comm)
}

// fmtCountdown is a timer's time left, with tenths under 100 s so that a
// TIME_WAIT countdown visibly moves at every frame.
func fmtCountdown(d time.Duration) string {
	if d <= 0 {
		return "0.0s"
	}
	if d < 100*time.Second {
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	}
	return fmtAge(d)
}

// fmtAge is a coarse duration for columns: 850ms, 12.3s, 5m02s, 2h05m, 3d04h.
func fmtAge(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < time.Millisecond:
		return "<1ms"
	case d < time.Second:
		return strconv.Itoa(int(d/time.Millisecond)) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		return two(int(d/time.Minute), "m", int(d%time.Minute/time.Second), "s")
	case d < 24*time.Hour:
		return two(int(d/time.Hour), "h", int(d%time.Hour/time.Minute), "m")
	}
	return two(int(d/(24*time.Hour)), "d", int(d%(24*time.Hour)/time.Hour), "h")
}

func two(a int, ua string, b int, ub string) string {
	s := strconv.Itoa(b)
	if b < 10 {
		s = "0" + s
	}
	return strconv.Itoa(a) + ua + s + ub
}

// fmtPrecise is a duration for the timeline and the log, where sub-
// millisecond handshakes and 60 s TIME_WAITs sit side by side.
func fmtPrecise(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return strconv.FormatFloat(float64(d)/1e6, 'f', 3, 64) + " ms"
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) + " ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
	}
	return fmtAge(d)
}

// fmtRate is a per-second rate, "-" until there is one.
func fmtRate(r float64, ok bool) string {
	switch {
	case !ok:
		return "-"
	case r == 0:
		return "0"
	case r < 10:
		return strconv.FormatFloat(r, 'f', 1, 64)
	case r < 10000:
		return strconv.FormatFloat(math.Round(r), 'f', 0, 64)
	case r < 1e7:
		return strconv.FormatFloat(r/1e3, 'f', 0, 64) + "k"
	}
	return strconv.FormatFloat(r/1e6, 'f', 0, 64) + "M"
}

// itoa is strconv.Itoa for the counters, which are of several types.
func itoa[T ~int | ~uint64 | ~uint32 | ~uint16](v T) string {
	return strconv.FormatUint(uint64(v), 10)
}

// fmtClock is the time of day of an event, to the millisecond.
func fmtClock(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(loc).Format("15:04:05.000")
}

package stream

import (
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// TextOptions configures the text writer.
type TextOptions struct {
	Color    bool           // ANSI colours: failures in red, TIME_WAIT in yellow
	Location *time.Location // time zone of the TIME column; nil: local
	NoHeader bool
}

// Text writes one aligned line per event under a header line.
type Text struct {
	w      io.Writer
	opt    TextOptions
	buf    []byte
	header bool
}

// Column widths; wider values push the rest of their line to the right.
const (
	wTime   = 12
	wPID    = 7
	wComm   = 16
	wOwner  = 23
	wAddr   = 23
	wEvent  = 28
	ansiRed = "\x1b[1;31m"
	ansiYel = "\x1b[33m"
	ansiOff = "\x1b[0m"
)

// NewText returns a text writer to w.
func NewText(w io.Writer, opt TextOptions) *Text {
	if opt.Location == nil {
		opt.Location = time.Local
	}
	return &Text{w: w, opt: opt, buf: make([]byte, 0, 64<<10), header: !opt.NoHeader}
}

// Header is the column header line.
func Header() string {
	b := pad(nil, "TIME", wTime)
	b = pad(b, "PID", wPID)
	b = pad(b, "COMM", wComm)
	b = pad(b, "OWNER", wOwner)
	b = pad(b, "LOCAL", wAddr)
	b = pad(b, "REMOTE", wAddr)
	b = pad(b, "EVENT", wEvent)
	return string(append(b, "DETAIL"...))
}

// Write renders a batch and writes it with one call.
func (t *Text) Write(batch []event.Event) error {
	b := t.buf[:0]
	if t.header {
		b = append(b, Header()...)
		b = append(b, '\n')
		t.header = false
	}
	for i := range batch {
		b = t.appendLine(b, &batch[i])
	}
	t.buf = b
	if len(b) == 0 {
		return nil
	}
	_, err := t.w.Write(b)
	return err
}

func (t *Text) appendLine(b []byte, ev *event.Event) []byte {
	color := ""
	if t.opt.Color {
		switch {
		case ev.Kind == event.KindLost || ev.Ret < 0:
			color = ansiRed
		case ev.Kind == event.KindTimeWait:
			color = ansiYel
		}
	}
	b = append(b, color...)
	start := len(b)
	b = ev.Time.In(t.opt.Location).AppendFormat(b, "15:04:05.000")
	b = padTo(b, start, wTime)

	if ev.Kind == event.KindLost {
		b = pad(b, "", wPID+wComm+wOwner+2*wAddr)
		b = append(b, "!LOST "...)
		b = strconv.AppendUint(b, ev.Lost, 10)
		b = append(b, " events the kernel could not deliver"...)
		return endLine(b, color)
	}

	if ev.Kind == event.KindTimeWait {
		// A TIME_WAIT socket belongs to no task: the kernel holds it.
		b = pad(b, "-", wPID)
		b = pad(b, "-", wComm)
	} else {
		b = padNum(b, uint64(ev.PID), wPID)
		s := len(b)
		b = ev.Comm.AppendPrintable(b)
		b = padTo(b, s, wComm)
	}
	switch {
	case ev.OwnerKnown():
		b = padOwner(b, ev.Owner, &ev.OwnerComm)
	case ev.Kind == event.KindBind || ev.Kind == event.KindConnect || ev.Kind == event.KindListen:
		// A syscall runs in its process: the task is the owner.
		b = padOwner(b, ev.PID, &ev.Comm)
	default:
		b = padOwner(b, 0, nil)
	}

	switch ev.Kind {
	case event.KindState:
		b = padAddr(b, ev.Src, wAddr)
		b = padAddr(b, ev.Dst, wAddr)
		s := len(b)
		b = append(b, ev.Old.String()...)
		b = append(b, " -> "...)
		b = append(b, ev.New.String()...)
		b = padTo(b, s, wEvent)
		if ev.OldKnown {
			b = strconv.AppendFloat(b, float64(ev.OldDur.Microseconds())/1000, 'f', 3, 64)
			b = append(b, " ms"...)
		}
		if ev.Reset {
			b = append(b, " reset"...)
		}
	case event.KindTimeWait:
		b = padAddr(b, ev.Src, wAddr)
		b = padAddr(b, ev.Dst, wAddr)
		s := len(b)
		b = append(b, "TIME_WAIT "...)
		b = append(b, ev.TimeWait.String()...)
		b = padTo(b, s, wEvent)
		if ev.TimeWait == event.TimeWaitEnter || ev.Remaining > 0 {
			b = strconv.AppendFloat(b, ev.Remaining.Seconds(), 'f', 1, 64)
			b = append(b, " s left, "...)
		}
		b = append(b, ev.Source.String()...)
	case event.KindBind, event.KindListen:
		if ev.Kind == event.KindListen {
			b = pad(b, "*:"+strconv.Itoa(int(ev.Src.Port())), wAddr)
		} else {
			b = padAddr(b, ev.Src, wAddr)
		}
		b = pad(b, "", wAddr)
		b = appendSyscall(b, ev)
	case event.KindConnect:
		b = pad(b, "", wAddr)
		b = padAddr(b, ev.Dst, wAddr)
		b = appendSyscall(b, ev)
	}
	return endLine(b, color)
}

func appendSyscall(b []byte, ev *event.Event) []byte {
	s := len(b)
	if ev.Ret < 0 {
		b = append(b, '!')
	}
	b = append(b, upper(ev.Kind)...)
	b = append(b, ' ')
	if ev.Ret < 0 {
		b = append(b, ev.Errno()...)
	} else {
		b = append(b, "ok"...)
	}
	b = padTo(b, s, wEvent)
	b = append(b, "fd="...)
	b = strconv.AppendInt(b, int64(ev.FD), 10)
	if ev.Kind == event.KindBind {
		b = append(b, " reuseaddr="...)
		b = appendYesNo(b, ev.ReuseAddr)
		b = append(b, " reuseport="...)
		b = appendYesNo(b, ev.ReusePort)
	}
	return b
}

func upper(k event.Kind) string {
	switch k {
	case event.KindBind:
		return "BIND"
	case event.KindConnect:
		return "CONNECT"
	case event.KindListen:
		return "LISTEN"
	}
	return k.String()
}

func appendYesNo(b []byte, v bool) []byte {
	if v {
		return append(b, "yes"...)
	}
	return append(b, "no"...)
}

func endLine(b []byte, color string) []byte {
	if color != "" {
		b = append(b, ansiOff...)
	}
	return append(b, '\n')
}

func pad(b []byte, s string, w int) []byte {
	start := len(b)
	b = append(b, s...)
	return padTo(b, start, w)
}

// padTo pads what was appended since start to w columns plus one space.
func padTo(b []byte, start, w int) []byte {
	for n := len(b) - start; n < w; n++ {
		b = append(b, ' ')
	}
	return append(b, ' ')
}

func padNum(b []byte, v uint64, w int) []byte {
	start := len(b)
	b = strconv.AppendUint(b, v, 10)
	return padTo(b, start, w)
}

// padAddr writes addr:port as ss does, with "*" for a port not (yet) set:
// a listener's peer, or a client before connect() picked its source port.
func padAddr(b []byte, ap netip.AddrPort, w int) []byte {
	start := len(b)
	switch {
	case !ap.Addr().IsValid():
		b = append(b, '-')
	case ap.Port() != 0:
		b = ap.AppendTo(b)
	case ap.Addr().Is6():
		b = append(b, '[')
		b = ap.Addr().AppendTo(b)
		b = append(b, "]:*"...)
	default:
		b = ap.Addr().AppendTo(b)
		b = append(b, ":*"...)
	}
	return padTo(b, start, w)
}

// padOwner appends the OWNER column: "pid comm", or "-" for pid 0.
func padOwner(b []byte, pid uint32, comm *event.Comm) []byte {
	if pid == 0 {
		return pad(b, "-", wOwner)
	}
	s := len(b)
	b = strconv.AppendUint(b, uint64(pid), 10)
	b = append(b, ' ')
	b = comm.AppendPrintable(b)
	return padTo(b, s, wOwner)
}

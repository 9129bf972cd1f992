package text

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// Column is one column of an event's row.
type Column uint8

// The columns of an event, in the order the text stream prints them. A sink
// with less room may show fewer, or join What and Detail (AppendSummary);
// the words in each are the same everywhere.
const (
	ColTime   Column = iota // time of day, to the millisecond
	ColTask                 // the task running at the event: "pid comm"
	ColOwner                // the process the socket belongs to: "pid comm"
	ColLocal                // local endpoint
	ColRemote               // remote endpoint
	ColWhat                 // what happened: "SYN_SENT -> ESTABLISHED", "!bind EADDRINUSE"
	ColDetail               // what explains it: time spent, time left, socket options
	NumColumns
)

// Titles are the column headers.
var Titles = [NumColumns]string{"TIME", "TASK", "OWNER", "LOCAL", "REMOTE", "EVENT", "DETAIL"}

// Class says what kind of fact an event is, for the sink to colour.
type Class uint8

// Classes of events.
const (
	ClassPlain    Class = iota // anything else: a successful bind()
	ClassFailure               // a refused bind(), connect() or listen()
	ClassLoss                  // events the kernel could not deliver
	ClassTimeWait              // a TIME_WAIT enter, expire, reuse or kill
	ClassState                 // a transition, coloured by the state it enters
)

// Classify returns an event's class, and the TCP state that colours it:
// the new state of a transition, TIME_WAIT for a timewait event.
func Classify(ev *event.Event) (Class, event.State) {
	switch {
	case ev.Kind == event.KindLost:
		return ClassLoss, 0
	case ev.Ret < 0:
		return ClassFailure, 0
	case ev.Kind == event.KindTimeWait:
		return ClassTimeWait, event.StateTimeWait
	case ev.Kind == event.KindState:
		return ClassState, ev.New
	}
	return ClassPlain, 0
}

// Task returns the task an event ran in; ok is false when there is none: a
// TIME_WAIT socket belongs to no task (the kernel holds it), a loss
// report to nobody.
func Task(ev *event.Event) (pid uint32, comm *event.Comm, ok bool) {
	switch ev.Kind {
	case event.KindTimeWait, event.KindLost:
		return 0, nil, false
	}
	return ev.PID, &ev.Comm, ev.PID != 0 || ev.Comm[0] != 0
}

// EventOwner returns the process an event's socket belongs to, pid 0 when
// unknown. A syscall runs in its process: its task is the owner.
func EventOwner(ev *event.Event) (pid uint32, comm *event.Comm) {
	switch {
	case ev.OwnerKnown():
		return ev.Owner, &ev.OwnerComm
	case ev.Kind == event.KindBind || ev.Kind == event.KindConnect || ev.Kind == event.KindListen:
		return ev.PID, &ev.Comm
	}
	return 0, nil
}

// AppendColumn appends column c of ev's row; loc is the time zone of
// ColTime. A column that does not apply to the event (the remote end of a
// bind, the task of a loss report) is left empty.
func AppendColumn(b []byte, ev *event.Event, c Column, loc *time.Location) []byte {
	switch c {
	case ColTime:
		return AppendClock(b, ev.Time, loc)
	case ColTask:
		return appendTask(b, ev)
	case ColOwner:
		if ev.Kind == event.KindLost {
			return b
		}
		pid, comm := EventOwner(ev)
		return AppendOwner(b, pid, comm)
	case ColLocal:
		switch ev.Kind {
		case event.KindState, event.KindTimeWait, event.KindBind:
			return AppendAddr(b, ev.Src)
		case event.KindListen:
			// The syscall names no address: only the bound port is known.
			return AppendAddr(b, netip.AddrPortFrom(netip.Addr{}, ev.Src.Port()))
		}
	case ColRemote:
		switch ev.Kind {
		case event.KindState, event.KindTimeWait, event.KindConnect:
			return AppendAddr(b, ev.Dst)
		}
	case ColWhat:
		return appendWhat(b, ev)
	case ColDetail:
		return appendDetail(b, ev)
	}
	return b
}

// AppendSummary appends the EVENT and DETAIL columns as one, for a sink
// with fewer columns.
func AppendSummary(b []byte, ev *event.Event) []byte {
	b = appendWhat(b, ev)
	s := len(b)
	b = append(b, ' ')
	if d := appendDetail(b, ev); len(d) > s+1 {
		return d
	}
	return b[:s]
}

func appendTask(b []byte, ev *event.Event) []byte {
	pid, comm, ok := Task(ev)
	switch {
	case ok:
		b = strconv.AppendUint(b, uint64(pid), 10)
		b = append(b, ' ')
		return comm.AppendPrintable(b)
	case ev.Kind == event.KindLost:
		return b
	}
	return append(b, '-')
}

func appendWhat(b []byte, ev *event.Event) []byte {
	switch ev.Kind {
	case event.KindState:
		b = append(b, ev.Old.String()...)
		b = append(b, " -> "...)
		return append(b, ev.New.String()...)
	case event.KindTimeWait:
		b = append(b, "TIME_WAIT "...)
		return append(b, ev.TimeWait.String()...)
	case event.KindBind, event.KindConnect, event.KindListen:
		if ev.Ret < 0 {
			b = append(b, '!')
			b = append(b, ev.Kind.String()...)
			b = append(b, ' ')
			return append(b, ev.Errno()...)
		}
		b = append(b, ev.Kind.String()...)
		return append(b, " ok"...)
	case event.KindLost:
		b = append(b, "!LOST "...)
		b = strconv.AppendUint(b, ev.Lost, 10)
		return append(b, " events"...)
	}
	return append(b, ev.Kind.String()...)
}

// DetailDuration returns the duration DETAIL shows: the time a transition
// spent in its old state, or a TIME_WAIT's time left. ok is false when it
// shows none.
func DetailDuration(ev *event.Event) (d time.Duration, ok bool) {
	switch ev.Kind {
	case event.KindState:
		return ev.OldDur, ev.OldKnown
	case event.KindTimeWait:
		return ev.Remaining, ev.TimeWait == event.TimeWaitEnter || ev.Remaining > 0
	}
	return 0, false
}

// appendDetail: "25.0 ms reset", "60.0s left (inferred)", "no reuseaddr fd=6".
func appendDetail(b []byte, ev *event.Event) []byte {
	d, ok := DetailDuration(ev)
	switch ev.Kind {
	case event.KindState:
		if ok {
			b = AppendDuration(b, d)
			if ev.Reset {
				b = append(b, ' ')
			}
		}
	case event.KindTimeWait:
		if ok {
			b = AppendCountdown(b, d)
			b = append(b, " left "...)
		}
		b = append(b, '(')
		b = AppendNote(b, ev)
		return append(b, ')')
	}
	return AppendNote(b, ev)
}

// AppendNote appends the words of DETAIL besides its duration, for a sink
// that gives the duration a column of its own: "reset", the source of a
// TIME_WAIT fact, a bind's socket options and fd.
func AppendNote(b []byte, ev *event.Event) []byte {
	switch ev.Kind {
	case event.KindState:
		if ev.Reset {
			b = append(b, "reset"...)
		}
	case event.KindTimeWait:
		b = append(b, ev.Source.String()...)
	case event.KindBind:
		// The socket options decide whether a bind() meets a conflict:
		// say which were set, or that none was.
		b = appendReuse(b, ev.ReuseAddr, ev.ReusePort)
		b = append(b, " fd="...)
		b = strconv.AppendInt(b, int64(ev.FD), 10)
	case event.KindConnect, event.KindListen:
		b = append(b, "fd="...)
		b = strconv.AppendInt(b, int64(ev.FD), 10)
	case event.KindLost:
		b = append(b, "the kernel could not deliver"...)
	}
	return b
}

func appendReuse(b []byte, addr, port bool) []byte {
	switch {
	case addr && port:
		return append(b, "reuseaddr+reuseport"...)
	case addr:
		return append(b, "reuseaddr"...)
	case port:
		return append(b, "reuseport"...)
	}
	return append(b, "no reuseaddr"...)
}

package table

import (
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// Detail is what a one-shot listing (twtrace sockets) shows of a socket
// beyond its entry, as sock_diag and /proc reported them at the listing:
// what ss -tanpo shows. The live table keeps none of it: queues and timers
// change by the millisecond, and a socket's holders are many only when it
// is shared.
type Detail struct {
	// RecvQ and SendQ are the bytes not yet read and not yet acknowledged;
	// for a listener, its accept queue and the queue's limit (backlog).
	RecvQ, SendQ uint32
	Timer        Timer         // the timer pending on it
	TimerLeft    time.Duration // time left on Timer
	// Retrans counts retransmissions (TimerRetransmit) or unanswered
	// probes (TimerKeepalive, TimerProbe).
	Retrans uint8
	// Holders are every process with an fd on the socket, by pid: a socket
	// shared across fork() (nginx's master and workers) has several.
	Holders []Holder
}

// Holder is a process that holds a socket, and its fds on it.
type Holder struct {
	PID       uint32
	Comm      event.Comm
	FDs       []int // ascending
	Container string
}

// Timer is the kind of timer pending on a socket (idiag_timer), as ss -o
// shows it.
type Timer uint8

// Timers.
const (
	TimerNone       Timer = 0 // nothing pending
	TimerRetransmit Timer = 1 // retransmission, loss probe, or a request's SYN-ACK (ss: "on")
	TimerKeepalive  Timer = 2 // keepalive, or an orphaned FIN_WAIT2's tcp_fin_timeout above 60 s
	TimerTimeWait   Timer = 3 // a TIME_WAIT (or orphaned FIN_WAIT2) mini-socket's end
	TimerProbe      Timer = 4 // zero-window probe (ss: "persist")
)

// Timer returns the socket's pending timer and the time left on it at now:
// a TIME_WAIT's from the table, any other's from its Detail.
func (s *Socket) Timer(now time.Time) (Timer, time.Duration, uint8) {
	switch {
	case s.State == event.StateTimeWait:
		return TimerTimeWait, s.Remaining(now), 0
	case s.Detail != nil:
		return s.Detail.Timer, s.Detail.TimerLeft, s.Detail.Retrans
	}
	return TimerNone, 0, 0
}

package demo

import (
	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer/event"
)

// Matchers of the events lessons wait for. A port of 0 and a state of 0
// match any.

// bindBy: a bind() by pid of port that returned errno (0: success).
func bindBy(pid int, port uint16, errno unix.Errno) matcher {
	return func(ev *event.Event) bool {
		return ev.Kind == event.KindBind && int(ev.PID) == pid && ev.Src.Port() == port && ev.Ret == -int32(errno)
	}
}

// listenBy: pid's socket on port entered LISTEN (listen() runs in the
// process, so the task is the owner).
func listenBy(pid int, port uint16) matcher {
	return func(ev *event.Event) bool {
		return ev.Kind == event.KindState && ev.New == event.StateListen && int(ev.PID) == pid && ev.Src.Port() == port
	}
}

// listenerClosedBy: pid's listener on port closed.
func listenerClosedBy(pid int, port uint16) matcher {
	return func(ev *event.Event) bool {
		return ev.Kind == event.KindState && ev.Old == event.StateListen && ev.New == event.StateClose &&
			int(ev.PID) == pid && ev.Src.Port() == port
	}
}

// transition: a connection local -> remote went from old to new.
func transition(local, remote uint16, old, new event.State) matcher {
	return func(ev *event.Event) bool {
		return ev.Kind == event.KindState && ev.New == new && (old == 0 || ev.Old == old) && ends(ev, local, remote)
	}
}

// resetClient: a connection to remote ended by a reset, or refused.
func resetClient(remote uint16) matcher {
	return func(ev *event.Event) bool {
		return ev.Kind == event.KindState && ev.New == event.StateClose && ev.Dst.Port() == remote &&
			(ev.Reset || ev.Old == event.StateSynSent)
	}
}

// timeWait: a TIME_WAIT of local -> remote entered, expired, was reused or
// killed.
func timeWait(op event.TimeWaitOp, local, remote uint16) matcher {
	return func(ev *event.Event) bool {
		return ev.Kind == event.KindTimeWait && ev.TimeWait == op && ends(ev, local, remote)
	}
}

// timeWaitEnd: a TIME_WAIT on local port ended, by its timer or killed.
func timeWaitEnd(local uint16) matcher {
	return func(ev *event.Event) bool {
		return ev.Kind == event.KindTimeWait && ev.Src.Port() == local &&
			(ev.TimeWait == event.TimeWaitExpire || ev.TimeWait == event.TimeWaitKill)
	}
}

// connectFailed: a connect() by pid to port refused with errno.
func connectFailed(pid int, port uint16, errno unix.Errno) matcher {
	return func(ev *event.Event) bool {
		return ev.Kind == event.KindConnect && int(ev.PID) == pid && ev.Dst.Port() == port && ev.Ret == -int32(errno)
	}
}

func ends(ev *event.Event, local, remote uint16) bool {
	return (local == 0 || ev.Src.Port() == local) && (remote == 0 || ev.Dst.Port() == remote)
}

package event

import (
	"fmt"
	"slices"
)

// Filter selects events. A live tracer applies Ports, PID, UIDs, NetNS and
// Family in the kernel (a filtered-out event is never written to the ring buffer),
// and the rest in twtrace. Match applies all of them, so that a replayed
// capture is filtered like a live trace.
type Filter struct {
	Ports  []uint16 // local or remote port
	PID    uint32   // the attributed owner or the running task
	UIDs   []uint32 // the socket's owner uid (state, timewait) or the task's (bind, connect, listen)
	Comm   string   // the owner's or the running task's name
	States []State  // state events entering or leaving one of these; timewait events for TIME_WAIT
	NetNS  uint32   // network namespace inode
	Family Family   // 0: both
}

// Validate reports a filter that cannot be applied.
func (f *Filter) Validate() error {
	if f.Family != 0 && f.Family != FamilyIPv4 && f.Family != FamilyIPv6 {
		return fmt.Errorf("unknown address family %d", f.Family)
	}
	return nil
}

// Empty reports whether the filter selects everything.
func (f *Filter) Empty() bool {
	return len(f.Ports) == 0 && f.PID == 0 && len(f.UIDs) == 0 && f.Comm == "" && len(f.States) == 0 &&
		f.NetNS == 0 && f.Family == 0
}

// Match reports whether ev passes every part of the filter. Lost and header
// records always pass: loss is never hidden.
func (f *Filter) Match(ev *Event) bool {
	if ev.Kind == KindLost || ev.Kind == KindHeader {
		return true
	}
	if f.Family != 0 && ev.Family != f.Family {
		return false
	}
	if f.NetNS != 0 && ev.NetNS != f.NetNS {
		return false
	}
	if len(f.Ports) > 0 && !f.matchPort(ev) {
		return false
	}
	if f.PID != 0 && ev.PID != f.PID && ev.Owner != f.PID {
		return false
	}
	if len(f.UIDs) > 0 && (!ev.UIDKnown || !slices.Contains(f.UIDs, ev.UID)) {
		return false
	}
	if f.Comm != "" {
		if c := MakeComm(f.Comm); ev.Comm != c && ev.OwnerComm != c {
			return false
		}
	}
	if len(f.States) > 0 {
		switch ev.Kind {
		case KindState:
			return slices.Contains(f.States, ev.Old) || slices.Contains(f.States, ev.New)
		case KindTimeWait:
			return slices.Contains(f.States, StateTimeWait)
		default:
			return false
		}
	}
	return true
}

func (f *Filter) matchPort(ev *Event) bool {
	for _, p := range f.Ports {
		if ev.Src.Port() == p || ev.Dst.Port() == p {
			return true
		}
	}
	return false
}

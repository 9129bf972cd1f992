package event

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Filter selects events. A live tracer applies Ports, PID, UIDs, NetNS and
// Family in the kernel too (a filtered-out event is never written to the ring buffer).
// Match applies all of them, so a replayed capture is filtered exactly like
// a live trace. ParseFilter and Add read it from the words people type; the
// CLI's filter flags and the live view's "/" line both go through them.
//
// Where an event happened (ports, owner, namespace, family) must match every
// part given. What happened is one choice: a state event passes when States
// has one of its states, a syscall event (bind, connect, listen) when it is of
// one of Kinds, failed if Failed, with one of Errnos if given. So "8080
// TIME_WAIT fail" is the TIME_WAITs and the refused calls on port 8080.
type Filter struct {
	Ports       []uint16 // local or remote port
	LocalPorts  []uint16 // local port (tcpstates -L)
	RemotePorts []uint16 // remote port (tcpstates -D); a connect()'s destination
	PID         uint32   // the attributed owner or the running task
	UIDs        []uint32 // the socket's owner uid (state, timewait) or the task's (bind, connect, listen)
	Comm        string   // the owner's or the running task's name
	NetNS       uint32   // network namespace inode
	Family      Family   // 0: both

	States []State // state events entering or leaving one of these; timewait events for TIME_WAIT
	Kinds  []Kind  // syscall events of these kinds (KindBind, KindConnect, KindListen)
	Failed bool    // syscall events that failed
	Errnos []int32 // syscall events that failed with one of these, as Event.Ret (-errno)
}

// Validate reports a filter that cannot be applied.
func (f *Filter) Validate() error {
	if f.Family != 0 && f.Family != FamilyIPv4 && f.Family != FamilyIPv6 {
		return fmt.Errorf("unknown address family %d", f.Family)
	}
	for _, k := range f.Kinds {
		if !k.Syscall() {
			return fmt.Errorf("kind %s is not a syscall's", k)
		}
	}
	return nil
}

// Empty reports whether the filter selects everything.
func (f *Filter) Empty() bool {
	return len(f.Ports) == 0 && len(f.LocalPorts) == 0 && len(f.RemotePorts) == 0 && f.PID == 0 &&
		len(f.UIDs) == 0 && f.Comm == "" && f.NetNS == 0 && f.Family == 0 && len(f.States) == 0 && !f.calls()
}

// calls reports whether the filter says which syscall events it wants.
func (f *Filter) calls() bool { return len(f.Kinds) > 0 || f.Failed || len(f.Errnos) > 0 }

// Syscall reports whether events of the kind are a syscall's.
func (k Kind) Syscall() bool { return k == KindBind || k == KindConnect || k == KindListen }

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
	if len(f.Ports) > 0 && !slices.Contains(f.Ports, ev.Src.Port()) && !slices.Contains(f.Ports, ev.Dst.Port()) {
		return false
	}
	if len(f.LocalPorts) > 0 && !slices.Contains(f.LocalPorts, ev.Src.Port()) {
		return false
	}
	if len(f.RemotePorts) > 0 && !slices.Contains(f.RemotePorts, ev.Dst.Port()) {
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
	return f.matchWhat(ev)
}

// matchWhat applies the parts that say what happened: states, or kinds and
// results of syscalls, either one.
func (f *Filter) matchWhat(ev *Event) bool {
	if len(f.States) == 0 && !f.calls() {
		return true
	}
	switch ev.Kind {
	case KindState:
		return slices.Contains(f.States, ev.Old) || slices.Contains(f.States, ev.New)
	case KindTimeWait:
		return slices.Contains(f.States, StateTimeWait)
	case KindBind, KindConnect, KindListen:
		return f.calls() && f.MatchCall(ev.Kind, ev.Ret)
	}
	return false
}

// MatchCall applies Kinds, Failed and Errnos to a syscall of a kind that
// returned ret; a filter with none of them passes every call.
func (f *Filter) MatchCall(k Kind, ret int32) bool {
	return (len(f.Kinds) == 0 || slices.Contains(f.Kinds, k)) &&
		(!f.Failed || ret < 0) &&
		(len(f.Errnos) == 0 || slices.Contains(f.Errnos, ret))
}

// String writes the filter in the words ParseFilter reads, one term each:
// ParseFilter(f.String()) selects what f selects.
func (f *Filter) String() string {
	var terms []string
	add := func(key string, ports []uint16) {
		for _, p := range ports {
			terms = append(terms, key+strconv.Itoa(int(p)))
		}
	}
	add("port:", f.Ports)
	add("sport:", f.LocalPorts)
	add("dport:", f.RemotePorts)
	for _, s := range f.States {
		terms = append(terms, "state:"+s.Name())
	}
	for _, k := range f.Kinds {
		terms = append(terms, k.String())
	}
	if f.Failed {
		terms = append(terms, "fail")
	}
	for _, e := range f.Errnos {
		terms = append(terms, ErrnoName(e))
	}
	if f.PID != 0 {
		terms = append(terms, "pid:"+strconv.FormatUint(uint64(f.PID), 10))
	}
	for _, u := range f.UIDs {
		terms = append(terms, "uid:"+strconv.FormatUint(uint64(u), 10))
	}
	if f.Comm != "" {
		terms = append(terms, "comm:"+f.Comm)
	}
	if f.NetNS != 0 {
		terms = append(terms, "netns:"+strconv.FormatUint(uint64(f.NetNS), 10))
	}
	if f.Family != 0 {
		terms = append(terms, f.Family.String())
	}
	return strings.Join(terms, " ")
}

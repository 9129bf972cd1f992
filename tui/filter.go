package tui

import (
	"slices"
	"strings"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/twtrace/twtrace/tracer/table"
)

// ---------------------------------------------------------------- MODEL

// filter is what "/" selects: the words of event.ParseFilter, the same as
// the CLI's filter flags. The Events view applies all of it (event.Filter's
// Match); the other views apply what their rows can be judged by, and name
// the rest in their title.
type filter struct {
	text string // as typed
	ev   event.Filter
}

// parseFilter reads what the user typed.
func parseFilter(s string) (filter, error) {
	f, err := event.ParseFilter(s)
	if err != nil {
		return filter{}, err
	}
	return filter{text: strings.TrimSpace(s), ev: f}, nil
}

// portFilter selects one local port of one namespace (a drill-down).
func portFilter(netns uint32, port uint16) filter {
	return filter{text: itoa(port), ev: event.Filter{Ports: []uint16{port}, NetNS: netns}}
}

func (f *filter) empty() bool { return f.ev.Empty() }

// calls reports whether the filter says which syscall events it wants.
func (f *filter) calls() bool { return len(f.ev.Kinds) > 0 || f.ev.Failed || len(f.ev.Errnos) > 0 }

// query is the table query of the Sockets view, and the part of the filter
// the query cannot apply (nil: none). Closed sockets are included: the table
// keeps them a few seconds so that one can see how they ended. Syscall terms
// select no socket: a refused call leaves none.
func (f *filter) query() (table.Query, func(*table.Socket) bool) {
	e := &f.ev
	q := table.Query{States: e.States, PID: e.PID, NetNS: e.NetNS, IncludeClosed: true}
	switch {
	case len(e.Ports) > 0:
		q.Ports = e.Ports
	case len(e.LocalPorts) > 0:
		q.Ports = e.LocalPorts // either end: the socket check keeps the local ones
	case len(e.RemotePorts) > 0:
		q.Ports = e.RemotePorts
	}
	if len(e.LocalPorts) == 0 && len(e.RemotePorts) == 0 && e.Comm == "" && e.Family == 0 {
		return q, nil
	}
	sf := *f
	return q, sf.matchSocket
}

// matchSocket applies what the table's query does not: local and remote
// ports, the owner's name, the family.
func (f *filter) matchSocket(s *table.Socket) bool {
	e := &f.ev
	return (len(e.LocalPorts) == 0 || slices.Contains(e.LocalPorts, s.Src.Port())) &&
		(len(e.RemotePorts) == 0 || slices.Contains(e.RemotePorts, s.Dst.Port())) &&
		(e.Comm == "" || s.OwnerComm == event.MakeComm(e.Comm)) &&
		(e.Family == 0 || s.Family == e.Family)
}

// matchPort judges a port's row: the local port, its owners (and those who
// left its TIME_WAITs), its sockets' states, the calls its counters count.
func (f *filter) matchPort(p *table.PortSummary) bool {
	e := &f.ev
	switch {
	case e.NetNS != 0 && p.NetNS != e.NetNS,
		len(e.Ports) > 0 && !slices.Contains(e.Ports, p.Port),
		len(e.LocalPorts) > 0 && !slices.Contains(e.LocalPorts, p.Port),
		e.PID != 0 && !hasOwner(p, func(o *table.Owner) bool { return o.PID == e.PID }),
		e.Comm != "" && !hasOwner(p, func(o *table.Owner) bool { return o.Comm == event.MakeComm(e.Comm) }):
		return false
	}
	states, calls := len(e.States) > 0, f.portCalls()
	if !states && !calls {
		return true
	}
	if states && slices.ContainsFunc(e.States, func(s event.State) bool { return p.States[s] > 0 }) {
		return true
	}
	return calls && f.portCallsMatch(p)
}

func hasOwner(p *table.PortSummary, ok func(*table.Owner) bool) bool {
	for _, os := range [][]table.Owner{p.Owners, p.TimeWaitOwners} {
		for i := range os {
			if ok(&os[i]) {
				return true
			}
		}
	}
	return false
}

// portCalls reports whether the port counters can judge the filter's
// syscall terms: they count binds and refused binds and listens, by port;
// not connect() (its failures name a remote port), not errnos.
func (f *filter) portCalls() bool {
	return f.calls() && !slices.Contains(f.ev.Kinds, event.KindConnect) &&
		(len(f.ev.Kinds) > 0 || f.ev.Failed)
}

func (f *filter) portCallsMatch(p *table.PortSummary) bool {
	e := &f.ev
	any := len(e.Kinds) == 0
	binds := p.Binds
	if e.Failed {
		binds = p.BindFailures
	}
	return ((any || slices.Contains(e.Kinds, event.KindBind)) && binds > 0) ||
		((any || slices.Contains(e.Kinds, event.KindListen)) && p.ListenFailures > 0)
}

// matchRemote judges a remote endpoint's row: its port, the states it
// counts (TIME_WAIT, ESTABLISHED).
func (f *filter) matchRemote(r *table.RemoteSummary) bool {
	e := &f.ev
	switch {
	case e.NetNS != 0 && r.NetNS != e.NetNS,
		len(e.Ports) > 0 && !slices.Contains(e.Ports, r.Remote.Port()),
		len(e.RemotePorts) > 0 && !slices.Contains(e.RemotePorts, r.Remote.Port()):
		return false
	}
	if len(e.States) == 0 {
		return true
	}
	has := func(s event.State) bool {
		return (s == event.StateTimeWait && r.TimeWait > 0) || (s == event.StateEstablished && r.Established > 0)
	}
	return slices.ContainsFunc(e.States, has)
}

// matchEvent is the event filter's Match. Gaps always show, as lost
// events do: loss is never filtered away.
func (f *filter) matchEvent(e *logEntry) bool {
	return e.skipped > 0 || f.ev.Match(&e.ev)
}

// notHere lists the terms a view does not apply: its rows cannot be judged
// by them (a port's row has no remote port, a socket no refused call).
func (f *filter) notHere(v viewID) []string {
	e := &f.ev
	var out []string
	ports := func(key string, ps []uint16) {
		for _, p := range ps {
			out = append(out, key+itoa(p))
		}
	}
	// The table keeps no socket's uid: only the log's events carry one.
	var uids []string
	for _, u := range e.UIDs {
		uids = append(uids, "uid:"+itoa(u))
	}
	switch v {
	case viewPorts:
		out = append(out, uids...)
		ports("dport:", e.RemotePorts)
		if f.calls() && !f.portCalls() {
			out = append(out, f.callTerms()...)
		} else {
			out = append(out, f.errnoTerms()...)
		}
	case viewSockets:
		out = append(out, uids...)
		out = append(out, f.callTerms()...)
		return out
	case viewRemotes:
		out = append(out, uids...)
		ports("sport:", e.LocalPorts)
		if e.PID != 0 {
			out = append(out, "pid:"+itoa(e.PID))
		}
		if e.Comm != "" {
			out = append(out, "comm:"+e.Comm)
		}
		out = append(out, f.callTerms()...)
	default:
		return nil
	}
	if e.Family != 0 {
		out = append(out, e.Family.String())
	}
	return out
}

// callTerms are the syscall terms, as typed; listen, which is the LISTEN
// state too, applies as that where calls do not.
func (f *filter) callTerms() []string {
	var out []string
	for _, k := range f.ev.Kinds {
		if k != event.KindListen || !slices.Contains(f.ev.States, event.StateListen) {
			out = append(out, k.String())
		}
	}
	if f.ev.Failed {
		out = append(out, "fail")
	}
	return append(out, f.errnoTerms()...)
}

func (f *filter) errnoTerms() []string {
	var out []string
	for _, e := range f.ev.Errnos {
		out = append(out, event.ErrnoName(e))
	}
	return out
}

// notHereNote is the title's note of the terms a view does not apply.
func notHereNote(ctx *uiContext, f *filter, v viewID) string {
	terms := f.notHere(v)
	if len(terms) == 0 {
		return ""
	}
	st := ctx.styles
	return st.paint(&st.Muted, " · only in Events: "+strings.Join(terms, " "))
}

// String describes the filter for the status line and the titles.
func (f *filter) String() string {
	e := &f.ev
	var parts []string
	add := func(key string, ps []uint16) {
		for _, p := range ps {
			parts = append(parts, key+itoa(p))
		}
	}
	add("port ", e.Ports)
	add("sport ", e.LocalPorts)
	add("dport ", e.RemotePorts)
	for _, s := range e.States {
		parts = append(parts, s.String())
	}
	for _, k := range e.Kinds {
		parts = append(parts, k.String()+"()")
	}
	if e.Failed {
		parts = append(parts, "failed calls")
	}
	parts = append(parts, f.errnoTerms()...)
	if e.PID != 0 {
		parts = append(parts, "pid "+itoa(e.PID))
	}
	for _, u := range e.UIDs {
		parts = append(parts, "uid "+itoa(u))
	}
	if e.Comm != "" {
		parts = append(parts, "comm "+e.Comm)
	}
	if e.NetNS != 0 {
		parts = append(parts, "netns "+itoa(e.NetNS))
	}
	if e.Family != 0 {
		parts = append(parts, e.Family.String())
	}
	return strings.Join(parts, ", ")
}

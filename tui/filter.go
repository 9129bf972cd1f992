package tui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/twtrace/twtrace/tracer/table"
)

// ---------------------------------------------------------------- MODEL

// filter is what "/" selects, applied to every view: ports (local or
// remote), states, an owner pid. Terms of one kind are alternatives (8080
// 8443: either port); kinds combine (8080 tw: TIME_WAIT on 8080).
type filter struct {
	text   string
	ports  []uint16
	states []event.State
	pid    uint32
	netns  uint32 // set by drilling down from a port of another namespace
}

// stateAliases are the names people type besides the kernel's.
var stateAliases = map[string]event.State{
	"TW": event.StateTimeWait, "TIMEWAIT": event.StateTimeWait,
	"ESTAB": event.StateEstablished, "EST": event.StateEstablished,
	"SYNSENT": event.StateSynSent, "SYNRECV": event.StateSynRecv,
	"FINWAIT1": event.StateFinWait1, "FINWAIT2": event.StateFinWait2,
	"CLOSEWAIT": event.StateCloseWait, "LASTACK": event.StateLastAck,
	"CLOSED": event.StateClose,
}

// parseFilter reads what the user typed: numbers are ports, words are
// states (time_wait, TIME-WAIT, tw, estab...), pid:N is an owner.
func parseFilter(s string) (filter, error) {
	f := filter{text: strings.TrimSpace(s)}
	for _, tok := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' }) {
		if rest, ok := strings.CutPrefix(strings.ToLower(tok), "pid"); ok && len(rest) > 1 && (rest[0] == ':' || rest[0] == '=') {
			pid, err := strconv.ParseUint(rest[1:], 10, 32)
			if err != nil || pid == 0 {
				return filter{}, fmt.Errorf("%q is not a pid", rest[1:])
			}
			f.pid = uint32(pid)
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimPrefix(tok, ":"), 10, 16); err == nil {
			f.ports = append(f.ports, uint16(n))
			continue
		}
		name := strings.ToUpper(strings.ReplaceAll(tok, "-", "_"))
		st, ok := event.ParseState(name)
		if !ok {
			st, ok = stateAliases[strings.ReplaceAll(name, "_", "")]
		}
		if !ok {
			return filter{}, fmt.Errorf("%q is neither a port, a TCP state nor pid:N", tok)
		}
		f.states = append(f.states, st)
	}
	return f, nil
}

// portFilter selects one local port of one namespace (a drill-down).
func portFilter(netns uint32, port uint16) filter {
	return filter{text: itoa(port), ports: []uint16{port}, netns: netns}
}

func (f *filter) empty() bool {
	return len(f.ports) == 0 && len(f.states) == 0 && f.pid == 0 && f.netns == 0
}

// query is the table query of the filter. Closed sockets are included: the
// table keeps them a few seconds so that one can see how they ended.
func (f *filter) query() table.Query {
	return table.Query{Ports: f.ports, States: f.states, PID: f.pid, NetNS: f.netns, IncludeClosed: true}
}

func (f *filter) matchPort(p *table.PortSummary) bool {
	if f.netns != 0 && p.NetNS != f.netns {
		return false
	}
	if len(f.ports) > 0 && !slices.Contains(f.ports, p.Port) {
		return false
	}
	if len(f.states) > 0 && !slices.ContainsFunc(f.states, func(s event.State) bool { return p.States[s] > 0 }) {
		return false
	}
	if f.pid != 0 && !slices.ContainsFunc(p.Owners, func(o table.Owner) bool { return o.PID == f.pid }) {
		return false
	}
	return true
}

func (f *filter) matchRemote(r *table.RemoteSummary) bool {
	if f.netns != 0 && r.NetNS != f.netns {
		return false
	}
	if len(f.ports) > 0 && !slices.Contains(f.ports, r.Remote.Port()) {
		return false
	}
	if len(f.states) > 0 {
		has := func(s event.State) bool {
			return (s == event.StateTimeWait && r.TimeWait > 0) || (s == event.StateEstablished && r.Established > 0)
		}
		if !slices.ContainsFunc(f.states, has) {
			return false
		}
	}
	return true
}

// matchEvent: a port matches either end, a state either side of a
// transition (TIME_WAIT matches the timewait events), a pid the task or the
// owner. Lost events and gaps always show: loss is never filtered away.
func (f *filter) matchEvent(e *logEntry) bool {
	ev := &e.ev
	if e.skipped > 0 || ev.Kind == event.KindLost {
		return true
	}
	if f.netns != 0 && ev.NetNS != f.netns {
		return false
	}
	if len(f.ports) > 0 && !slices.Contains(f.ports, ev.Src.Port()) && !slices.Contains(f.ports, ev.Dst.Port()) {
		return false
	}
	if len(f.states) > 0 {
		switch ev.Kind {
		case event.KindState:
			if !slices.Contains(f.states, ev.Old) && !slices.Contains(f.states, ev.New) {
				return false
			}
		case event.KindTimeWait:
			if !slices.Contains(f.states, event.StateTimeWait) {
				return false
			}
		default:
			return false
		}
	}
	if f.pid != 0 && ev.PID != f.pid && ev.Owner != f.pid {
		return false
	}
	return true
}

// String describes the filter for the status line.
func (f *filter) String() string {
	var parts []string
	for _, p := range f.ports {
		parts = append(parts, "port "+itoa(p))
	}
	for _, s := range f.states {
		parts = append(parts, s.String())
	}
	if f.pid != 0 {
		parts = append(parts, "pid "+itoa(f.pid))
	}
	if f.netns != 0 {
		parts = append(parts, "netns "+itoa(f.netns))
	}
	return strings.Join(parts, ", ")
}

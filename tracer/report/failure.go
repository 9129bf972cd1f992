package report

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/twtrace/twtrace/tracer/advice"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/text"
)

// failure diagnoses a refused syscall from the table at its moment, keeps
// it for the advisor, and adds it to its group.
func (c *collector) failure(ev *event.Event) {
	c.rep.FailureCount++
	if len(c.facts.Failures) >= MaxFailures {
		return // counted only
	}
	fl := advice.DiagnoseFailure(c.tab, ev, c.sysctlsOf(ev.NetNS))
	c.facts.Failures = append(c.facts.Failures, fl)
	f := c.describe(ev, &fl)
	key := fmt.Sprintf("%s %s %s %d %s", f.Kind, f.Target, f.Errno, f.NetNS, f.Code)
	g := c.groups[key]
	if g == nil {
		g = &Group{Failure: f}
		c.groups[key] = g
		c.order = append(c.order, key)
		c.sample(ev.Time) // the timeline shows the port at this moment
	}
	g.Count++
	g.Last = ev.Time
	if len(g.Times) < maxTimes {
		g.Times = append(g.Times, ev.Time)
	}
	if !slices.Contains(g.PIDs, ev.PID) && len(g.PIDs) < maxPIDs {
		g.PIDs = append(g.PIDs, ev.PID)
	}
	c.involve(ev.PID, text.Comm(&ev.Comm), fmt.Sprintf("refused %s() %s (%s)", f.Kind, f.Target, f.Errno))
	for _, h := range f.Held {
		c.involve(h.PID, h.Comm, fmt.Sprintf("held port %d (%s)", f.Port, strings.Join(h.States, ", ")))
	}
	c.mark(ev, &f)
}

// describe is a failure as the report tells it.
func (c *collector) describe(ev *event.Event, fl *advice.Failure) Failure {
	f := Failure{
		Time: ev.Time, Kind: ev.Kind.String(), Errno: ev.Errno(), Port: ev.Port(), NetNS: ev.NetNS,
		PID: ev.PID, Comm: text.Comm(&ev.Comm), Line: eventLine(ev, c.rep.loc),
		Held: []Holder{}, Sockets: []Sockets{}, Fixes: []string{},
	}
	switch ev.Kind {
	case event.KindConnect:
		f.Target = text.Addr(ev.Dst)
		c.connectCause(ev, &f)
		return f
	case event.KindListen:
		f.Target = text.Addr(netip.AddrPortFrom(netip.Addr{}, ev.Src.Port()))
	default:
		f.Target = text.Addr(ev.Src)
	}
	r := fl.Port
	if r == nil { // bind(0): no port to diagnose
		f.Cause = "no free port: bind() to port 0 finds every port of ip_local_port_range taken"
		f.Summary = f.Cause
		return f
	}
	f.Verdict = r.Verdict
	for _, h := range r.Holders {
		f.Held = append(f.Held, Holder{PID: h.PID, Comm: h.Comm, States: h.States})
	}
	for _, s := range r.ByState {
		f.Sockets = append(f.Sockets, Sockets{State: s.State, N: s.N, Reuse: s.Reuse})
	}
	if len(r.Findings) > 0 {
		fd := &r.Findings[0]
		f.Code, f.Cause, f.Summary, f.Not = fd.Code, fd.Cause, fd.Summary, fd.NotFixes
		for _, fx := range fd.Fixes {
			f.Fixes = append(f.Fixes, fx.Text)
		}
	}
	if f.Cause == "" {
		f.Cause = "no socket on the port explains it: the table had none that conflicts"
		f.Summary = f.Cause + " (events lost, or a socket older than the capture)"
	}
	return f
}

// connectCause diagnoses a refused connect() as the advisor would over
// the table of that moment: the destination's TIME_WAITs against the range.
func (c *collector) connectCause(ev *event.Event, f *Failure) {
	facts := advice.Facts{
		Now: ev.Time, Failures: []advice.Failure{{Event: *ev}}, Remotes: c.tab.Remotes(),
		Namespaces: map[uint32]*advice.NetNS{ev.NetNS: {Sysctls: c.sysctlsOf(ev.NetNS), FinWait2Orphans: -1}},
	}
	for _, fd := range advice.Advise(&facts) {
		if fd.Code != advice.CodePortExhaustion {
			continue
		}
		// The finding counts the failures it was given (this one): the
		// group counts them all. Its evidence about the ports is the news.
		f.Code, f.Cause, f.Not = fd.Code, fd.Cause, fd.NotFixes
		f.Summary = "no local port was free for that destination"
		for _, e := range fd.Evidence {
			if strings.Contains(e, "TIME_WAIT") {
				f.Summary += ": " + e
			}
		}
		for _, fx := range fd.Fixes {
			f.Fixes = append(f.Fixes, fx.Text)
		}
		break
	}
	for _, r := range facts.Remotes {
		if r.NetNS == ev.NetNS && r.Remote == ev.Dst {
			f.Sockets = append(f.Sockets, Sockets{State: "TIME_WAIT", N: r.TimeWait, Reuse: "towards it"},
				Sockets{State: "ESTABLISHED", N: r.Established, Reuse: "towards it"})
			break
		}
	}
	if f.Cause == "" {
		f.Cause = "connect() found no local address or port: " + f.Errno
		f.Summary = f.Cause
	}
}

// mark puts a failure on its port's timeline: a refused connect() on the
// row of its namespace's client sockets.
func (c *collector) mark(ev *event.Event, f *Failure) {
	k := portKey{ev.NetNS, ev.Src.Port(), false}
	if ev.Kind == event.KindConnect || ev.Src.Port() == 0 {
		k = portKey{ev.NetNS, 0, true}
	}
	tl := c.timeline(k)
	switch {
	case tl == nil:
		return
	case len(tl.Failures) >= maxMarks:
		tl.Dropped++
		return
	}
	tl.Failures = append(tl.Failures, Mark{At: ev.Time, Title: c.rep.clock(ev.Time) + " " + f.Kind + " " + f.Target + " " +
		f.Errno + " by " + text.Owner(f.PID, &ev.Comm) + ": " + f.Cause})
}

// involve records what a process did.
func (c *collector) involve(pid uint32, comm, role string) {
	if pid == 0 {
		return
	}
	p := c.procs[pid]
	if p == nil {
		p = &Process{PID: pid, Comm: comm}
		c.procs[pid] = p
	}
	if !slices.Contains(p.Roles, role) && len(p.Roles) < 8 {
		p.Roles = append(p.Roles, role)
	}
}

// processes lists the processes involved: the failures' and their ports'
// holders, and those whose sockets left the TIME_WAITs of the busiest ports.
func (c *collector) processes() {
	for _, p := range c.rep.Ports {
		for _, o := range p.LeftBy {
			c.involve(o.PID, o.Comm, fmt.Sprintf("its sockets left the TIME_WAITs of %s (%d at the peak)", portName(&p), p.Peak))
		}
	}
	for _, p := range c.procs {
		c.rep.Processes = append(c.rep.Processes, *p)
	}
	slices.SortFunc(c.rep.Processes, func(a, b Process) int { return int(a.PID) - int(b.PID) })
}

// portName is a port row's name: "port 8080", or the client sockets'.
func portName(p *Port) string {
	if p.Clients {
		return "connect()'s ports"
	}
	return fmt.Sprintf("port %d", p.Port)
}

// eventLine is an event as `twtrace trace` prints it, columns separated
// by two spaces (the empty ones left out).
func eventLine(ev *event.Event, loc *time.Location) string {
	var parts []string
	for col := text.ColTime; col < text.NumColumns; col++ {
		if b := text.AppendColumn(nil, ev, col, loc); len(b) > 0 {
			parts = append(parts, string(b))
		}
	}
	return strings.Join(parts, "  ")
}

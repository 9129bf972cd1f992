package advice

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// portFindings explains a port's verdict: one finding per kind of obstacle
// of the bind the caller means, each with the fixes that get it through,
// checked with Predict wherever a fix changes the attempt.
func portFindings(r *PortReport, f *PortFacts, want Attempt) {
	o := r.Outcome
	if o.Result == "EACCES" {
		r.Findings = append(r.Findings, privilegedPort(f, want))
	}
	var twNoReuse, twReuse, twUnknown, live, cross, reuseUser, ephem []int
	for _, c := range o.Conflicts {
		s := &f.Sockets[c.Socket]
		switch {
		case c.Cause == CauseReusePortUser:
			reuseUser = append(reuseUser, c.Socket)
		case c.Cause == CauseV6Wildcard:
			cross = append(cross, c.Socket)
		case s.State == event.StateTimeWait:
			switch {
			case !s.Reuse.Known():
				twUnknown = append(twUnknown, c.Socket)
			case s.Reuse&event.ReuseAddr == 0:
				twNoReuse = append(twNoReuse, c.Socket)
			default:
				twReuse = append(twReuse, c.Socket)
			}
		default:
			live = append(live, c.Socket)
			if s.State != event.StateListen && !s.Bound && inRange(f, s.Local.Port()) {
				ephem = append(ephem, c.Socket)
			}
		}
	}
	if len(twNoReuse) > 0 {
		r.Findings = append(r.Findings, timeWaitNoReuse(f, want, twNoReuse))
	}
	if len(twReuse) > 0 {
		r.Findings = append(r.Findings, timeWaitReuseNew(f, want, twReuse))
	}
	if len(twUnknown) > 0 {
		r.Findings = append(r.Findings, timeWaitUnknown(f, twUnknown))
	}
	if len(reuseUser) > 0 {
		r.Findings = append(r.Findings, reusePortUser(f, want, reuseUser))
	}
	if len(cross) > 0 {
		r.Findings = append(r.Findings, v6Wildcard(f, want, cross))
	}
	if len(ephem) > 0 {
		r.Findings = append(r.Findings, ephemeralTaken(f, ephem))
	}
	if held := slices.DeleteFunc(slices.Clone(live), func(i int) bool { return slices.Contains(ephem, i) }); len(held) > 0 {
		r.Findings = append(r.Findings, liveHolder(f, want, held))
	}
	if o.Result == OK {
		if fd, ok := secondListen(f, want); ok {
			r.Findings = append(r.Findings, fd)
		}
	}
}

func inRange(f *PortFacts, port uint16) bool {
	return f.Sysctls != nil && f.Sysctls.PortRange[0] > 0 &&
		int(port) >= f.Sysctls.PortRange[0] && int(port) <= f.Sysctls.PortRange[1]
}

// lastExpiry is when the last of some TIME_WAIT sockets ends.
func lastExpiry(f *PortFacts, idx []int) time.Time {
	var last time.Time
	for _, i := range idx {
		if e := f.Sockets[i].Expires; e.After(last) {
			last = e
		}
	}
	return last
}

// tuples lists a few sockets as "local -> remote", for evidence.
func tuples(f *PortFacts, idx []int) string {
	const most = 3
	var parts []string
	for k, i := range idx {
		if k == most {
			parts = append(parts, fmt.Sprintf("and %d more", len(idx)-most))
			break
		}
		s := &f.Sockets[i]
		p := s.Local.String()
		if s.Remote.Port() != 0 {
			p += " -> " + s.Remote.String()
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

func verb(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func were(n int) string {
	if n == 1 {
		return "was"
	}
	return "were"
}

func has(n int) string {
	if n == 1 {
		return "has"
	}
	return "have"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func timeWaitNoReuse(f *PortFacts, want Attempt, idx []int) Finding {
	last := lastExpiry(f, idx)
	n := plural(len(idx), "TIME_WAIT socket", "TIME_WAIT sockets")
	fd := Finding{
		Code: CodeTimeWaitNoReuse, Name: "timewait-without-reuseaddr", Port: f.Port, NetNS: f.NetNS,
		Summary: fmt.Sprintf("%s on port %d %s left by a socket without SO_REUSEADDR: until the last ends, "+
			"every new bind() is refused, even one that sets SO_REUSEADDR (both sockets must have it)",
			n, f.Port, were(len(idx))),
		Cause:    fmt.Sprintf("%d TIME_WAIT without SO_REUSEADDR", len(idx)),
		Evidence: []string{fmt.Sprintf("%s, options read from the kernel: none (%s)", n, tuples(f, idx))},
		NotFixes: []string{notTWReuse(f.Sysctls), notFinTimeout(f.Sysctls)},
	}
	if !last.IsZero() {
		fd.Fixes = append(fd.Fixes, waitFix(last, f.Now, "the last TIME_WAIT", f.Port))
	}
	fd.Fixes = append(fd.Fixes, Fix{
		Kind: FixSocketOption, Brief: "set SO_REUSEADDR for next time",
		Text: "set SO_REUSEADDR on the listening socket before bind(), so that the TIME_WAIT sockets it leaves " +
			"never block the next restart (it cannot get past these, left by a socket without it)",
		Snippets: reuseAddrSnippets,
	})
	// A socket with SO_REUSEPORT gets past TIME_WAIT sockets that have it too.
	if alt := want; want.Options&ReusePort == 0 {
		alt.Options |= ReusePort
		if allReusePort(f, idx) && Predict(f.Sockets, alt).Result == OK {
			fd.Fixes = append(fd.Fixes, Fix{Kind: FixSocketOption, Brief: "set SO_REUSEPORT",
				Text:     "these TIME_WAIT sockets have SO_REUSEPORT: a new socket with SO_REUSEPORT binds now",
				Snippets: reusePortSnippets})
		}
	}
	return fd
}

func allReusePort(f *PortFacts, idx []int) bool {
	for _, i := range idx {
		if r := f.Sockets[i].Reuse; !r.Known() || r&event.ReusePort == 0 {
			return false
		}
	}
	return true
}

func timeWaitReuseNew(f *PortFacts, want Attempt, idx []int) Finding {
	last := lastExpiry(f, idx)
	n := plural(len(idx), "TIME_WAIT socket", "TIME_WAIT sockets")
	fd := Finding{
		Code: CodeTimeWaitReuseNew, Name: "new-socket-without-reuseaddr", Port: f.Port, NetNS: f.NetNS,
		Summary: fmt.Sprintf("%s on port %d %s SO_REUSEADDR, the new socket does not: "+
			"with SO_REUSEADDR it would bind beside %s", n, f.Port, has(len(idx)), verb(len(idx), "it", "them")),
		Cause:    fmt.Sprintf("%d TIME_WAIT with SO_REUSEADDR; the new socket lacks it", len(idx)),
		Evidence: []string{fmt.Sprintf("%s with SO_REUSEADDR (%s)", n, tuples(f, idx))},
		NotFixes: []string{notTWReuse(f.Sysctls)},
	}
	alt := want
	alt.Options |= ReuseAddr
	if o := Predict(f.Sockets, alt); o.Result == OK {
		fd.Fixes = append(fd.Fixes, Fix{Kind: FixSocketOption, Brief: "set SO_REUSEADDR",
			Text:     "set SO_REUSEADDR on the new socket before bind(): the kernel then lets it bind now",
			Snippets: reuseAddrSnippets})
	} else {
		fd.Fixes = append(fd.Fixes, Fix{Kind: FixSocketOption, Brief: "set SO_REUSEADDR",
			Text: "set SO_REUSEADDR on the new socket before bind(): it gets past these TIME_WAIT sockets, " +
				"but other sockets on the port still refuse it (see the other findings)",
			Snippets: reuseAddrSnippets})
	}
	if !last.IsZero() {
		fd.Fixes = append(fd.Fixes, waitFix(last, f.Now, "the last TIME_WAIT", f.Port))
	}
	return fd
}

func timeWaitUnknown(f *PortFacts, idx []int) Finding {
	last := lastExpiry(f, idx)
	n := plural(len(idx), "TIME_WAIT socket", "TIME_WAIT sockets")
	fd := Finding{
		Code: CodeTimeWaitUnknown, Name: "timewait-options-unknown", Port: f.Port, NetNS: f.NetNS,
		Summary: fmt.Sprintf("%s on port %d %s a plain bind(); whether SO_REUSEADDR would get past %s "+
			"depends on the options of the socket %s from, which could not be read", n, f.Port,
			verb(len(idx), "refuses", "refuse"), verb(len(idx), "it", "them"), verb(len(idx), "it came", "they came")),
		Cause:    fmt.Sprintf("%d TIME_WAIT of unknown options", len(idx)),
		Evidence: []string{fmt.Sprintf("%s (%s); %s", n, tuples(f, idx), f.ReuseUnknown)},
		NotFixes: []string{notTWReuse(f.Sysctls), notFinTimeout(f.Sysctls)},
	}
	if !last.IsZero() {
		fd.Fixes = append(fd.Fixes, waitFix(last, f.Now, "the last TIME_WAIT", f.Port))
	}
	fd.Fixes = append(fd.Fixes, Fix{Kind: FixSocketOption, Brief: "set SO_REUSEADDR (may help)",
		Text: "set SO_REUSEADDR on the listener before bind(): it gets past TIME_WAIT sockets left by a socket " +
			"that had it too (run twtrace as root to read theirs)", Snippets: reuseAddrSnippets})
	return fd
}

// holdersOf lists the distinct processes of some sockets, and whether any
// socket had none.
func holdersOf(f *PortFacts, idx []int) (hs []Holder, orphan bool) {
	for _, i := range idx {
		s := &f.Sockets[i]
		if len(s.Holders) == 0 {
			orphan = true
		}
		for _, h := range s.Holders {
			if !slices.ContainsFunc(hs, func(x Holder) bool { return x.PID == h.PID }) {
				hs = append(hs, h)
			}
		}
	}
	return hs, orphan
}

// Who names a holder for people: "4312 myapp (user app, unit myapp.service)".
func (h Holder) Who() string {
	s := fmt.Sprintf("%d %s", h.PID, h.Comm)
	var extra []string
	if h.User != "" {
		extra = append(extra, "user "+h.User)
	}
	if h.Unit != "" {
		extra = append(extra, "unit "+h.Unit)
	}
	if h.Container != "" {
		extra = append(extra, "container "+h.Container[:min(12, len(h.Container))])
	}
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, ", ") + ")"
	}
	return s
}

// stopCommand is how to stop a holder, from what runs it.
func stopCommand(h Holder) string {
	switch {
	case h.Unit != "" && strings.HasSuffix(h.Unit, ".service"):
		return "systemctl stop " + h.Unit
	case h.Container != "":
		return "docker stop " + h.Container[:min(12, len(h.Container))] + " (or your runtime's stop)"
	}
	return fmt.Sprintf("kill %d", h.PID)
}

func liveHolder(f *PortFacts, want Attempt, idx []int) Finding {
	hs, orphan := holdersOf(f, idx)
	states := map[string]int{}
	for _, i := range idx {
		states[stateName(&f.Sockets[i])]++
	}
	var sp []string
	for _, st := range []string{"LISTEN", "BOUND", "ESTABLISHED", "SYN_RECV", "CLOSE_WAIT", "FIN_WAIT1", "FIN_WAIT2", "LAST_ACK", "CLOSING"} {
		if n := states[st]; n > 0 {
			sp = append(sp, fmt.Sprintf("%d %s", n, st))
		}
	}
	who := "no process (their owners closed them or are out of sight)"
	if len(hs) > 0 {
		var names []string
		for _, h := range hs {
			names = append(names, h.Who())
		}
		who = strings.Join(names, "; ")
	}
	fd := Finding{
		Code: CodeLiveHolder, Name: "port-held", Port: f.Port, NetNS: f.NetNS,
		Summary:  fmt.Sprintf("port %d is held by %s: %s", f.Port, who, strings.Join(sp, ", ")),
		Evidence: []string{fmt.Sprintf("%s (%s)", strings.Join(sp, ", "), tuples(f, idx))},
	}
	if len(hs) > 0 {
		fd.PID = hs[0].PID
		fd.Cause = fmt.Sprintf("held by %d %s", hs[0].PID, hs[0].Comm)
		for _, h := range hs {
			fd.Fixes = append(fd.Fixes, Fix{Kind: FixProcess, Brief: fmt.Sprintf("stop %d %s first", h.PID, h.Comm),
				Text: fmt.Sprintf("stop %s before starting the new one: %s", h.Who(), stopCommand(h))})
		}
	} else {
		fd.Cause = "held by sockets with no process"
		if orphan {
			fd.Evidence = append(fd.Evidence, "no /proc/PID/fd names these sockets: closed by their process and "+
				"still finishing, or held by a process twtrace may not inspect (run as root)")
		}
	}
	// A zero-downtime handoff: SO_REUSEPORT, if every listener has it.
	handoff := want
	handoff.Options |= ReusePort
	for _, i := range idx {
		if s := &f.Sockets[i]; s.State == event.StateListen && s.UIDKnown {
			handoff.UID = s.UID // the rule compares the sockets' owners
			break
		}
	}
	if o := Predict(f.Sockets, handoff); o.Result == OK && o.Certain {
		fd.Fixes = append(fd.Fixes, Fix{Kind: FixSocketOption, Brief: "SO_REUSEPORT handoff",
			Text: fmt.Sprintf("the holder has SO_REUSEPORT: a new listener with SO_REUSEPORT, run as uid %d, binds beside it "+
				"now; stop the old one once the new one accepts (a restart without a refused connection)", handoff.UID),
			Snippets: reusePortSnippets})
	} else if states["LISTEN"] > 0 {
		fd.Fixes = append(fd.Fixes, Fix{Kind: FixSocketOption, Brief: "hand the socket over",
			Text: "for restarts without downtime: set SO_REUSEPORT on old and new listeners (same user), " +
				"or let systemd hold the socket (a .socket unit) or pass the listening fd to the new process"})
	}
	return fd
}

func reusePortUser(f *PortFacts, want Attempt, idx []int) Finding {
	s := &f.Sockets[idx[0]]
	owner := fmt.Sprintf("uid %d", s.UID)
	if len(s.Holders) > 0 && s.Holders[0].User != "" {
		owner += " (" + s.Holders[0].User + ")"
	}
	fd := Finding{
		Code: CodeReusePortUser, Name: "reuseport-other-user", Port: f.Port, NetNS: f.NetNS,
		Summary: fmt.Sprintf("the sockets on port %d have SO_REUSEPORT but belong to %s, and the new socket runs as uid %d: "+
			"the kernel shares a port through SO_REUSEPORT only between sockets of the same user", f.Port, owner, want.UID),
		Cause:    fmt.Sprintf("SO_REUSEPORT of another user (%s)", owner),
		Evidence: []string{fmt.Sprintf("%s with SO_REUSEPORT, owner %s (%s)", plural(len(idx), "socket", "sockets"), owner, tuples(f, idx))},
	}
	same := want
	same.UID = s.UID
	if Predict(f.Sockets, same).Result == OK {
		fd.Fixes = append(fd.Fixes, Fix{Kind: FixProcess, Brief: fmt.Sprintf("run as uid %d", s.UID),
			Text: fmt.Sprintf("run the new listener as %s, the user of the sockets already there: it then binds beside them", owner)})
	}
	return fd
}

func v6Wildcard(f *PortFacts, want Attempt, idx []int) Finding {
	s := &f.Sockets[idx[0]]
	fd := Finding{Code: CodeV6Wildcard, Name: "ipv6-wildcard-overlap", Port: f.Port, NetNS: f.NetNS,
		Evidence: []string{tuples(f, idx)}}
	if want.Addr.Addr().Unmap().Is4() {
		fd.Summary = fmt.Sprintf("a [::] socket on port %d is dual-stack (no IPV6_V6ONLY): it covers IPv4 too, "+
			"so an IPv4 bind() of the port is refused", f.Port)
		fd.Cause = "a dual-stack [::] socket covers IPv4"
		fd.Fixes = append(fd.Fixes, Fix{Kind: FixSocketOption, Brief: "IPV6_V6ONLY on the [::] socket",
			Text:     "set IPV6_V6ONLY on the [::] socket (its program), so that it leaves IPv4 alone, or serve both families from it",
			Snippets: v6OnlySnippets})
	} else {
		fd.Summary = fmt.Sprintf("a new [::] socket without IPV6_V6ONLY covers IPv4, where %s holds port %d", s.Local.Addr(), f.Port)
		fd.Cause = "the new [::] socket is dual-stack; IPv4 is taken"
		alt := want
		alt.V6Only = true
		text := "set IPV6_V6ONLY on the new socket before bind(): the kernel then lets it bind IPv6 only"
		if Predict(f.Sockets, alt).Result != OK {
			text = "set IPV6_V6ONLY on the new socket before bind(): it then leaves IPv4 alone, " +
				"but other sockets on the port still refuse it (see the other findings)"
		}
		fd.Fixes = append(fd.Fixes, Fix{Kind: FixSocketOption, Brief: "set IPV6_V6ONLY", Text: text, Snippets: v6OnlySnippets})
	}
	return fd
}

func ephemeralTaken(f *PortFacts, idx []int) Finding {
	cur := f.Sysctls.ReservedPorts
	suggested := strconv.Itoa(int(f.Port))
	if cur != "" {
		suggested = cur + "," + suggested
	}
	rng := fmt.Sprintf("%d-%d", f.Sysctls.PortRange[0], f.Sysctls.PortRange[1])
	return Finding{
		Code: CodeEphemeralTaken, Name: "ephemeral-port-taken", Port: f.Port, NetNS: f.NetNS,
		Summary: fmt.Sprintf("port %d lies in ip_local_port_range (%s): outgoing connections took it as their local port", f.Port, rng),
		Cause:   "an outgoing connection took the port",
		Evidence: []string{fmt.Sprintf("%s with local port %d (%s)",
			plural(len(idx), "connection", "connections"), f.Port, tuples(f, idx))},
		Fixes: []Fix{sysctlFix(f.Sysctls, "net.ipv4.ip_local_reserved_ports", suggested,
			"connect() then never picks the port (the connections that have it keep it until they close)",
			"reserve the port")},
	}
}

func privilegedPort(f *PortFacts, want Attempt) Finding {
	return Finding{
		Code: CodePrivilegedPort, Name: "privileged-port", Port: f.Port, NetNS: f.NetNS,
		Summary: fmt.Sprintf("port %d is below net.ipv4.ip_unprivileged_port_start (%d): uid %d gets EACCES "+
			"unless the program has CAP_NET_BIND_SERVICE", f.Port, f.Sysctls.UnprivPortStart, want.UID),
		Cause: "a privileged port",
		Fixes: []Fix{{Kind: FixProcess, Brief: "grant CAP_NET_BIND_SERVICE",
			Text: "give the program CAP_NET_BIND_SERVICE (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE)"}},
	}
}

// secondListen warns of a bound-only socket with SO_REUSEADDR beside an
// attempt that has it too: both bind, and whichever listens second fails.
func secondListen(f *PortFacts, want Attempt) (Finding, bool) {
	if want.Options&ReuseAddr == 0 {
		return Finding{}, false
	}
	var idx []int
	for i := range f.Sockets {
		s := &f.Sockets[i]
		if s.Bound && s.Local.Port() == f.Port && overlap(want, s) {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return Finding{}, false
	}
	hs, _ := holdersOf(f, idx)
	who := "another socket"
	if len(hs) > 0 {
		who = "a socket of " + hs[0].Who()
	}
	return Finding{
		Code: CodeSecondListen, Name: "second-listen", Port: f.Port, NetNS: f.NetNS,
		Summary: fmt.Sprintf("%s is bound to port %d and not listening yet: with SO_REUSEADDR both bind(), "+
			"and the second to call listen() fails with EADDRINUSE", who, f.Port),
		Cause:    "two SO_REUSEADDR sockets bound: the second listen() fails",
		Evidence: []string{tuples(f, idx)},
		Fixes: []Fix{{Kind: FixSocketOption, Brief: "SO_REUSEPORT, or one socket",
			Text: "to share the port, set SO_REUSEPORT on both (same user); otherwise bind it in one place only"}},
	}, true
}

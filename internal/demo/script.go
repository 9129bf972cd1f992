package demo

import (
	"fmt"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer/advice"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/text"
)

// The lessons' vocabulary: what their processes do, each step waiting for
// what the tracer shows of it. Every method does nothing once the lesson
// failed (see env).

// agent starts one of the lesson's processes, as uid (0: root).
func (e *env) agent(role string, uid int) *agent {
	if e.err != nil {
		return nil
	}
	a, err := e.startAgent(role, uid)
	e.fail(err)
	return a
}

// call sends a a command; a refusal by the kernel is returned, anything
// else that goes wrong fails the lesson.
func (e *env) call(a *agent, format string, args ...any) ([]string, *refusal) {
	if e.err != nil {
		return nil, nil
	}
	f, err := a.call(e.ctx, format, args...)
	if r, ok := refused(err); ok {
		return nil, r
	}
	e.fail(err)
	return f, nil
}

// do is call where the lesson expects success.
func (e *env) do(a *agent, format string, args ...any) []string {
	f, r := e.call(a, format, args...)
	if r != nil {
		e.failf("%s's %s, where the lesson expects it to succeed", a.Role, r)
	}
	return f
}

// listens has a bind and listen on service with o, and waits for both.
func (e *env) listens(a *agent, o advice.Options) {
	e.do(a, "listen L %s %s", service, o)
	if e.err == nil {
		e.Expect(a.Role+"'s bind()", bindBy(a.PID, service.Port(), 0))
		e.Expect(a.Role+"'s listen()", listenBy(a.PID, service.Port()))
	}
}

// serve sets how a's listener treats what it accepts: greet (answer, close
// first), wait (answer, close after the client) or leak (answer, never close).
func (e *env) serve(a *agent, mode string) { e.do(a, "serve L %s", mode) }

// startServer begins a step with its text, and starts a server that
// listens on service with o and serves in mode.
func (e *env) startServer(role string, o advice.Options, mode string, format string, args ...any) *agent {
	e.Step(format, args...)
	a := e.agent(role, 0)
	e.listens(a, o)
	e.serve(a, mode)
	return a
}

// refusedServer starts an agent as uid whose bind() of service with o must
// fail with EADDRINUSE, and waits for the refusal.
func (e *env) refusedServer(role string, uid int, o advice.Options) *agent {
	a := e.agent(role, uid)
	if _, r := e.call(a, "listen L %s %s", service, o); e.err == nil {
		if r == nil || r.Call != "bind" || r.Errno != "EADDRINUSE" {
			e.failf("%s's bind() of %s with %s: %v, where the lesson expects EADDRINUSE", role, service, o, r)
		}
		refused := bindBy(a.PID, service.Port(), unix.EADDRINUSE)
		ev := e.Expect("the refused bind()", func(ev *event.Event) bool {
			return refused(ev) && (uid == 0 || ev.UIDKnown)
		})
		if ev != nil && uid != 0 {
			e.check(ev.UID == uint32(uid), "the tracer shows %s's bind() made as uid %d, where the lesson runs it as %d", role, ev.UID, uid)
			e.say("The tracer shows the bind() made by pid %d as uid %d.", a.PID, ev.UID)
		}
	}
	return a
}

// stopServer ends a server and waits for its listener's close.
func (e *env) stopServer(a *agent) {
	e.exit(a)
	if e.err == nil {
		e.Expect(a.Role+"'s listener closing", listenerClosedBy(a.PID, service.Port()))
	}
}

// exit asks a to end.
func (e *env) exit(a *agent) {
	if e.err == nil {
		e.fail(a.exit())
	}
}

// conn opens one connection from a to service and returns its local port.
func (e *env) conn(a *agent, mode string) uint16 {
	f := e.do(a, "conn %s %s", service, mode)
	if e.err != nil {
		return 0
	}
	var p uint64 // a.Role below: a is not nil once the call succeeded
	if len(f) > 0 {
		p, _ = strconv.ParseUint(f[0], 10, 16)
	}
	e.check(p != 0, "%s answered %q, not its port", a.Role, f)
	return uint16(p)
}

// churn has a connect to service n times in a row, closing first, and
// returns how many connected and the refusal that stopped it, if one did.
func (e *env) churn(a *agent, n int) (int, *refusal) {
	_, r := e.call(a, "churn %s %d client-first", service, n)
	switch {
	case e.err != nil:
		return 0, nil
	case r == nil:
		return n, nil
	}
	done := 0
	if len(r.Rest) > 0 {
		done, _ = strconv.Atoi(r.Rest[0])
	}
	return done, r
}

// serverClosesFirst: a client connects, the server answers and closes
// first. It returns the client's port.
func (e *env) serverClosesFirst() uint16 {
	e.Step("A client connects; the server answers and closes the connection first.")
	cl := e.agent("client", 0)
	lport := e.conn(cl, "server-first")
	e.Expect("the connection", transition(lport, service.Port(), event.StateSynSent, event.StateEstablished))
	e.closing(service.Port(), lport, "server", "client")
	e.exit(cl)
	return lport
}

// closing waits for the close of the connection between ports first and
// second, first closing first, and quotes each side.
func (e *env) closing(first, second uint16, firstName, secondName string) {
	for _, s := range []struct {
		what     string
		from, to uint16
		old, new event.State
	}{
		{"the " + firstName + "'s close()", first, second, event.StateEstablished, event.StateFinWait1},
		{"the " + secondName + " receiving the FIN", second, first, event.StateEstablished, event.StateCloseWait},
		{"the " + secondName + "'s close()", second, first, event.StateCloseWait, event.StateLastAck},
		{"the " + secondName + "'s end", second, first, event.StateLastAck, event.StateClose},
	} {
		e.Expect(s.what, transition(s.from, s.to, s.old, s.new))
	}
	e.Expect("the TIME_WAIT", timeWait(event.TimeWaitEnter, first, second))
	e.say("TIME_WAIT on the %s's side: %s -> %s, for 60 s. The %s keeps nothing.",
		firstName, ep(first), ep(second), secondName)
}

// expectBlocked asks why about a and fails unless cause blocks it.
func (e *env) expectBlocked(a advice.Attempt, cause advice.Cause) *advice.PortReport {
	r := e.why(a)
	if r == nil {
		return nil
	}
	for _, c := range r.Causes {
		if c == cause {
			return r
		}
	}
	e.failf("why says %s (causes %v), where the lesson expects it blocked by %s", r.Verdict, r.Causes, cause)
	return nil
}

// pid is a's pid, 0 when it could not start (the lesson failed).
func (e *env) pid(a *agent) int {
	if a == nil {
		return 0
	}
	return a.PID
}

// ep is the endpoint of port on the service's address, as text writes it.
func ep(port uint16) string { return text.Addr(netip.AddrPortFrom(service.Addr(), port)) }

// check fails the lesson unless ok.
func (e *env) check(ok bool, format string, args ...any) {
	if e.err == nil && !ok {
		e.fail(fmt.Errorf(format, args...))
	}
}

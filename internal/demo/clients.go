package demo

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer/advice"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/session"
)

// The lessons about many connections.

// The client-churn lesson's port range: 16 ports.
const churnLow, churnHigh = 40000, 40015

var clientChurn = &Lesson{
	Name: "client-churn",
	Summary: "a client closing first fills its port range with TIME_WAIT until connect() fails; " +
		"tcp_tw_reuse lets it take them over",
	Moral: "A client that closes first keeps each connection's 4-tuple in TIME_WAIT for 60 s, and towards one server " +
		"(one address and port) it has only ip_local_port_range to choose from. tcp_tw_reuse lets connect() take " +
		"over a TIME_WAIT 4-tuple (with TCP timestamps, once it is tcp_tw_reuse_delay old); reusing connections " +
		"avoids the churn altogether.",
	run: func(e *env) {
		port := service.Port()
		size := churnHigh - churnLow + 1
		e.Step("The lesson's namespace gets a narrow port range, and tcp_tw_reuse off:")
		e.sysctl("net.ipv4.ip_local_port_range", fmt.Sprintf("%d %d", churnLow, churnHigh))
		e.sysctl("net.ipv4.tcp_tw_reuse", "0")
		e.startServer("server", advice.ReuseAddr, "wait",
			"A server listens on %s; it answers, then waits for the client to close.", service)
		cl := e.agent("client", 0)
		e.Step("The client connects and closes first, again and again.")
		done, r := e.churn(cl, 4*size)
		e.check(r != nil, "all %d connections succeeded, where the lesson expects the %d ports to run out", done, size)
		e.check(r == nil || (r.Call == "connect" && r.Errno == "EADDRNOTAVAIL"),
			"the client's %v after %d connections, where the lesson expects connect() to fail with EADDRNOTAVAIL", r, done)
		tws := e.ExpectN("the client's TIME_WAITs", size, func(ev *event.Event) bool {
			return timeWait(event.TimeWaitEnter, 0, port)(ev) && ev.Src.Port() >= churnLow && ev.Src.Port() <= churnHigh
		})
		e.Expect("the refused connect()", connectFailed(e.pid(cl), port, unix.EADDRNOTAVAIL))
		e.say("%d connections, then every one of the %d ports holds a TIME_WAIT towards %s: connect() fails with EADDRNOTAVAIL.",
			done, size, service)
		e.Step("What `twtrace advise` says:")
		e.advise(advice.CodePortExhaustion)
		if e.err == nil {
			e.twReuse(cl, tws[len(tws)-1].Time, size*3/4)
		}
	},
}

// twReuse turns tcp_tw_reuse on and has the client connect n times again,
// each time taking over a TIME_WAIT.
func (e *env) twReuse(cl *agent, newest time.Time, n int) {
	port := service.Port()
	e.Step("tcp_tw_reuse = 1: connect() may take over the 4-tuple of a TIME_WAIT once it is old enough.")
	e.sysctl("net.ipv4.tcp_tw_reuse", "1")
	ns, _, err := session.NamespaceFacts(e.nsFD, nil)
	e.fail(err)
	delay := 2 * time.Second // without the setting: a whole second, counted in seconds
	if s := ns.Sysctls; s != nil && s.Has("net.ipv4.tcp_tw_reuse_delay") {
		delay = time.Duration(s.TWReuseDelayMs) * time.Millisecond
	}
	if wait := time.Until(newest.Add(delay + 200*time.Millisecond)); wait > 0 {
		e.say("The newest TIME_WAIT must first be %v old (tcp_tw_reuse_delay): %v to wait.", delay, wait.Round(time.Millisecond))
		e.pace(wait)
	}
	e.Step("The client connects %d times again.", n)
	done, r := e.churn(cl, n)
	e.check(r == nil, "the client's %v after %d connections, with tcp_tw_reuse on", r, done)
	e.ExpectN("TIME_WAIT reuses", n, timeWait(event.TimeWaitReuse, 0, port))
	refused := e.rec.count(e.mark, connectFailed(e.pid(cl), port, unix.EADDRNOTAVAIL))
	e.check(len(refused) == 0, "the tracer saw %d connect() refused with tcp_tw_reuse on", len(refused))
	e.say("%d connections, each on the 4-tuple of a TIME_WAIT the kernel let it take over; no connect() refused.", n)
}

var closeWaitLeak = &Lesson{
	Name:    "close-wait-leak",
	Summary: "a server that never closes: CLOSE_WAIT piles up under its pid, and no sysctl helps",
	Moral: "CLOSE_WAIT means the peer has closed and this program has not. The kernel never times it out, and no " +
		"sysctl shortens it: only the program's close(), or its exit, ends it.",
	run: func(e *env) {
		const n = 20
		port := service.Port()
		srv := e.startServer("leaky-server", advice.ReuseAddr, "leak",
			"A server listens on %s. Its bug: it answers, then never reads again and never calls close().", service)
		cl := e.agent("client", 0)
		e.Step("%d clients connect, read the answer and close.", n)
		done, r := e.churn(cl, n)
		e.check(r == nil, "the client's %v after %d connections", r, done)
		evs := e.ExpectN("connections entering CLOSE_WAIT", n, transition(port, 0, event.StateEstablished, event.StateCloseWait))
		owned := 0
		for i := range evs {
			if int(evs[i].Owner) == e.pid(srv) {
				owned++
			}
		}
		e.say("%d connections in CLOSE_WAIT on the server's side, %d of them owned by pid %d (leaky-server): "+
			"their clients closed, the server never did.", n, owned, e.pid(srv))
		e.Step("What `twtrace advise` says:")
		e.advise(advice.CodeCloseWaitLeak)
		e.Step("The leaky server exits: the kernel closes what it held.")
		e.exit(srv)
		e.ExpectN("the CLOSE_WAITs closing", n, transition(port, 0, event.StateCloseWait, event.StateLastAck))
	},
}

var zeroDowntime = &Lesson{
	Name:    "zero-downtime-restart",
	Summary: "two listeners with SO_REUSEPORT hand the port over without refusing a connection; another user is refused",
	Moral: "SO_REUSEPORT lets listeners of one user share a port: start the new version beside the old one, then " +
		"close the old one; with net.ipv4.tcp_migrate_req = 1 the kernel moves what waits in the old one's queue " +
		"to the new one. The kernel shares a port only within one user: another user's program cannot join in.",
	run: func(e *env) {
		e.Step("tcp_migrate_req = 1: when a listener of a SO_REUSEPORT group closes, the kernel hands " +
			"the connections waiting in its queue to another listener of the group, instead of resetting them.")
		e.sysctl("net.ipv4.tcp_migrate_req", "1")
		old := e.startServer("old-server", advice.ReusePort, "greet", "The old version listens on %s with SO_REUSEPORT.", service)
		cl := e.agent("client", 0)
		e.Step("A client connects every 20 ms, as users do.")
		e.do(cl, "load %s 20", service)
		from := e.mark
		e.ExpectN("the client's connections", 3, transition(0, service.Port(), event.StateSynSent, event.StateEstablished))
		e.handOver(old, cl)
		e.tallyLoad(cl, from)
		e.otherUser()
	},
}

// handOver starts the new server beside old, then closes old's listener.
func (e *env) handOver(old, cl *agent) {
	port := service.Port()
	e.Step("The new version starts beside the old one, with SO_REUSEPORT, as the same user (root).")
	nw := e.agent("new-server", 0)
	e.listens(nw, advice.ReusePort)
	e.serve(nw, "greet")
	e.bothServe(cl)
	e.Step("The old version closes its listener.")
	e.do(old, "stop L")
	e.Expect("the old listener's close", listenerClosedBy(e.pid(old), port))
	e.ExpectN("connections after it", 10, transition(0, port, event.StateSynSent, event.StateEstablished))
}

// bothServe waits until the client's connections reach both servers.
func (e *env) bothServe(cl *agent) {
	before := e.tally(cl, "loadpeek")
	deadline := time.Now().Add(expectWithin)
	for e.err == nil {
		now := e.tally(cl, "loadpeek")
		old, nw := now["old-server"]-before["old-server"], now["new-server"]
		if old > 0 && nw > 0 {
			e.say("Both listen on the port, and the kernel spreads new connections between them: "+
				"of the client's next %d, %d went to old-server and %d to new-server.", old+nw, old, nw)
			return
		}
		e.check(time.Now().Before(deadline), "in %v the client's connections did not reach both servers "+
			"(old-server %d, new-server %d)", expectWithin, old, nw)
		e.pace(50 * time.Millisecond)
	}
}

// tally asks the client for its load so far (loadpeek) or at its end
// (loadstop): connections by the server that answered, total and failed.
func (e *env) tally(cl *agent, cmd string) map[string]int {
	t := map[string]int{}
	for _, kv := range e.do(cl, "%s", cmd) {
		k, v, _ := strings.Cut(kv, "=")
		t[k], _ = strconv.Atoi(v)
	}
	return t
}

// tallyLoad stops the client's load and checks, with the tracer, that no
// connection since from was refused or reset.
func (e *env) tallyLoad(cl *agent, from int) {
	t := e.tally(cl, "loadstop")
	port := service.Port()
	established := e.rec.count(from, transition(0, port, event.StateSynSent, event.StateEstablished))
	if e.err == nil && len(established) < t["total"] {
		// The last connections' events may still be on their way.
		established, _ = e.rec.wait(e.ctx, from, t["total"], expectWithin, "",
			transition(0, port, event.StateSynSent, event.StateEstablished))
	}
	resets := e.rec.count(from, resetClient(port))
	e.say("%d connections while the port changed hands: %d answered by old-server, %d by new-server, %d failed. "+
		"The tracer saw %d reach ESTABLISHED and %d refused or reset.", t["total"], t["old-server"], t["new-server"],
		t["failed"], len(established), len(resets))
	e.check(t["failed"] == 0 && len(resets) == 0 && len(established) == t["total"],
		"the handoff lost connections: %v, %d reset", t, len(resets))
	e.check(t["new-server"] > 0, "no connection reached the new server: %v", t)
}

// otherUser: a process of another user tries to join the port's group.
func (e *env) otherUser() {
	const nobody = 65534
	e.Step("Another user tries the same: a process of uid %d binds %s with SO_REUSEPORT.", nobody, service)
	e.refusedServer("other-user", nobody, advice.ReusePort)
	e.Step("What `twtrace why` says about it:")
	e.expectBlocked(advice.Attempt{Addr: service, Options: advice.ReusePort, UID: nobody}, advice.CauseReusePortUser)
}

package demo

import (
	"github.com/twtrace/twtrace/tracer/advice"
	"github.com/twtrace/twtrace/tracer/event"
)

// The lessons about restarting a server.

var restartTooFast = &Lesson{
	Name:    "restart-too-fast",
	Summary: "the server closes first, and its restart without SO_REUSEADDR meets its own TIME_WAIT",
	Moral: "TIME_WAIT stays on the side that closes first, for 60 s. A server that closes first leaves it on its own port; " +
		"a restart that binds without SO_REUSEADDR is refused until it ends. With SO_REUSEADDR on the old and the new " +
		"listener, the restart binds beside it at once.",
	run: func(e *env) {
		old := e.startServer("old-server", advice.ReuseAddr, "greet",
			"A server starts: it listens on %s with SO_REUSEADDR, as most servers do.", service)
		lport := e.serverClosesFirst()
		e.Step("The server exits. Its TIME_WAIT stays: the kernel holds it, no process does.")
		e.stopServer(old)
		e.Step("The new version starts at once, without SO_REUSEADDR.")
		nw := e.refusedServer("new-server", 0, 0)
		e.say("Refused: the TIME_WAIT of %s -> %s holds the port against a bind() without SO_REUSEADDR.",
			ep(service.Port()), ep(lport))
		e.Step("What `twtrace why` says about it:")
		e.expectBlocked(advice.Attempt{Addr: service}, advice.CauseTimeWait)
		e.Step("The same restart with SO_REUSEADDR.")
		e.listens(nw, advice.ReuseAddr)
		e.say("It binds and listens beside the TIME_WAIT, which the kernel keeps until its 60 s end.")
	},
}

var oldVersion = &Lesson{
	Name:    "old-version-without-reuseaddr",
	Summary: "the old listener lacked SO_REUSEADDR, so the new one's SO_REUSEADDR is refused until the TIME_WAIT ends",
	Moral: "SO_REUSEADDR lets a bind() share a port with a TIME_WAIT only when the socket that TIME_WAIT came from " +
		"had it too. The first release that adds it still waits out the TIME_WAIT of the one before: wait " +
		"(twtrace why 9000 --wait 65s), or hand over with SO_REUSEPORT (see zero-downtime-restart).",
	run: func(e *env) {
		old := e.startServer("old-server", 0, "greet", "The old version listens on %s without SO_REUSEADDR.", service)
		e.serverClosesFirst()
		e.say("A TIME_WAIT keeps the options of the socket it came from; an accepted socket has its listener's: none.")
		e.Step("The old version exits; the new one, which sets SO_REUSEADDR, starts.")
		e.stopServer(old)
		nw := e.refusedServer("new-server", 0, advice.ReuseAddr)
		e.say("Refused, SO_REUSEADDR and all: the TIME_WAIT came from a socket without it.")
		e.Step("What `twtrace why` says about it:")
		r := e.expectBlocked(advice.Attempt{Addr: service, Options: advice.ReuseAddr}, advice.CauseTimeWait)
		e.check(r == nil || r.TimeWaitUntil != nil, "why gives no time for the TIME_WAIT's end")
		if e.err != nil {
			return
		}
		e.Step("Waiting for the TIME_WAIT to end.")
		if end := e.waitTimeWait(service.Port(), *r.TimeWaitUntil); end != nil && end.TimeWait == event.TimeWaitKill {
			e.say("sock_diag no longer lists it: the kernel ended it before its timer.")
		} else {
			e.say("Its 60 s ran out.")
		}
		e.Step("The new version tries again, with SO_REUSEADDR.")
		e.listens(nw, advice.ReuseAddr)
	},
}

var portHeld = &Lesson{
	Name:    "port-held",
	Summary: "an old process still listens: the new one is refused, and twtrace names the holder",
	Moral: "A listening socket blocks every new bind() of its port, SO_REUSEADDR or not, as long as its process keeps " +
		"it: stop the old process first, or share the port with SO_REUSEPORT (zero-downtime-restart).",
	run: func(e *env) {
		old := e.startServer("old-server", advice.ReuseAddr, "greet", "A server listens on %s with SO_REUSEADDR.", service)
		e.Step("The new version starts while the old one still runs.")
		nw := e.refusedServer("new-server", 0, advice.ReuseAddr)
		e.Step("What `twtrace why` says about it:")
		r := e.expectBlocked(advice.Attempt{Addr: service, Options: advice.ReuseAddr}, advice.CauseListener)
		if r != nil {
			e.check(len(r.Holders) == 1 && int(r.Holders[0].PID) == old.PID,
				"why names %d holders, where the lesson expects pid %d", len(r.Holders), old.PID)
		}
		if e.err == nil {
			e.say("The holder: %s, the old server.", r.Holders[0].Who())
		}
		e.Step("The old server stops.")
		e.stopServer(old)
		e.Step("The new version tries again.")
		e.listens(nw, advice.ReuseAddr)
	},
}

var whoClosesFirst = &Lesson{
	Name:    "who-closes-first",
	Summary: "the same exchange twice, closed from either side: TIME_WAIT lands on the side that closes first",
	Moral: "TIME_WAIT belongs to whoever calls close() first; the other side goes CLOSE_WAIT -> LAST_ACK -> CLOSE " +
		"and keeps nothing. A server that closes first collects TIME_WAIT on its own port; a client that closes " +
		"first collects it on its ephemeral ports, where it limits new connections to the same server (client-churn).",
	run: func(e *env) {
		port := service.Port()
		srv := e.startServer("server", advice.ReuseAddr, "wait",
			"A server listens on %s; it answers, then waits for the client to close.", service)
		cl := e.agent("client", 0)
		e.Step("First exchange: the client closes first.")
		e.closing(e.conn(cl, "client-first"), port, "client", "server")
		e.serve(srv, "greet")
		e.Step("Second exchange: the server answers and closes first.")
		e.closing(port, e.conn(cl, "server-first"), "server", "client")
	},
}

package main

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A worker is one OS thread that plays both client and server. It connects,
// sends the request, then accepts from the listener it connected to and
// serves what it accepted, before it reads its own reply. On loopback the
// kernel runs the handshake, the data and the FINs in softirq within those
// very syscalls, so each step finds its data already there: a connection
// usually completes without sleeping, without a thread switch, and with no
// epoll call at all. Only a step that finds nothing (EAGAIN) registers its
// socket with the worker's epoll, so a worker is never stuck behind another:
// when workers share a listener, one may accept the other's connection, and
// both still make progress.

// Connection states. Every state is one kind of syscall the connection waits on.
const (
	stSend uint8 = iota // client: request; server: reply
	stRecv              // client: reply; server: request
	stEOF               // the peer's FIN, after which we close
)

var stateNames = [...]string{stSend: "send", stRecv: "recv", stEOF: "eof"}

// lateAfter is how far behind its due time a fixed-rate start counts as late.
const lateAfter = time.Millisecond

// housekeepEvery bounds how long a worker goes without checking timeouts.
const housekeepEvery = 50 * time.Millisecond

// listenerTag marks epoll events of listeners (in EpollEvent.Pad, where
// connections keep their generation).
const listenerTag = -1

type conn struct {
	fd       int
	gen      int32 // changes when the conn is reused: stale epoll events are ignored
	client   bool
	measured bool
	queued   bool
	dead     bool
	state    uint8
	off      int
	since    int64  // start, for the timeout
	events   uint32 // registered epoll events; 0 = not registered
	idx      int    // position in worker.active
}

type workerStats struct {
	started  [2]uint64 // client connections attempted: [warmup, measured]
	done     [2]uint64 // completed on the client side: request, reply and close
	served   uint64    // completed on the server side
	lastDone int64     // when the last measured connection completed
	late     uint64    // fixed rate: starts more than lateAfter behind schedule
	maxLate  int64
	errors   map[string]uint64
}

type worker struct {
	r        *shared
	epfd     int
	events   []unix.EpollEvent
	domain   int
	dst      []*rawSockaddr // servers to connect to, round robin
	lns      []int          // the listener behind each dst
	rr       int
	buf      []byte
	byFD     []*conn
	active   []*conn
	free     []*conn
	runq     []*conn
	clients  int
	stopping bool
	lastHK   int64
	ticket   bool // fixed rate: holds a ticket not started yet
	due      int64
	noPwait2 bool
	stats    workerStats
	progress atomic.Uint64 // completed client connections, for --interval
	errCount atomic.Uint64 // errors, for --interval
}

// loop runs until the run ends and every connection this worker holds is
// finished or has timed out.
func (w *worker) loop() {
	cfg := w.r.cfg
	for {
		now := w.r.now()
		if !w.stopping && w.r.cancel.Load() {
			w.stopping = true
		}
		if now-w.lastHK >= int64(housekeepEvery) {
			w.housekeep(now)
		}
		if w.stopping && len(w.active) == 0 {
			return
		}
		wait := time.Duration(-1)
		if !w.stopping && w.clients < cfg.Inflight {
			due, measured, ok := w.next(now)
			switch {
			case !ok:
				continue // stopping now: drain
			case due <= now+w.r.slack:
				w.start(now, due, measured)
				w.runQueue()
				if len(w.active) == 0 {
					continue // the usual case: all done, no epoll needed
				}
				wait = 0
			default:
				wait = time.Duration(due - now)
			}
		}
		if wait < 0 || wait > housekeepEvery {
			wait = housekeepEvery
		}
		if wait == 0 && len(w.active) == 0 {
			continue
		}
		w.poll(wait)
	}
}

// next says when the next client connection may start, and whether it is
// measured; ok is false when the run is over for this worker.
func (w *worker) next(now int64) (due int64, measured, ok bool) {
	r := w.r
	due = now
	if r.pacer != nil {
		if !w.ticket {
			_, w.due = r.pacer.take()
			w.ticket = true
		}
		due = w.due
	}
	if due >= r.stopAt {
		w.stopping = true
		return 0, false, false
	}
	measured = due >= r.warmupEnd
	if measured && due <= now+r.slack && r.cfg.Count > 0 && r.measured.Add(1) > r.cfg.Count {
		w.stopping = true
		return 0, false, false
	}
	return due, measured, true
}

// start opens one client connection and sends the request, then serves one
// connection from the listener it connected to: most often its own.
func (w *worker) start(now, due int64, measured bool) {
	w.ticket = false
	phase := 0
	if measured {
		phase = 1
	}
	w.stats.started[phase]++
	if w.r.pacer != nil {
		if late := now - due; late > int64(lateAfter) {
			w.stats.late++
			w.stats.maxLate = max(w.stats.maxLate, late)
		}
	}
	i := w.rr
	w.rr = (w.rr + 1) % len(w.dst)
	fd, err := sysSocket(w.domain)
	if err != nil {
		w.countError("socket", errnoName(err))
		return
	}
	// Non-blocking connect on loopback has usually completed the handshake
	// by the time it returns EINPROGRESS; the write below finds out.
	if err := sysConnect(fd, w.dst[i]); err != nil && err != unix.EINPROGRESS {
		sysClose(fd)
		w.countError("connect", errnoName(err))
		return
	}
	c := w.newConn(fd, true, measured, now)
	c.state = stSend
	w.advance(c)
	w.accept(w.lns[i], 1, now)
}

// accept serves up to n connections waiting on the listener lfd.
func (w *worker) accept(lfd, n int, now int64) {
	for ; n > 0; n-- {
		fd, err := sysAccept(lfd)
		if err == unix.EAGAIN {
			return
		}
		if err != nil {
			w.countError("accept", errnoName(err))
			if err == unix.ECONNABORTED || err == unix.EINTR {
				continue
			}
			return
		}
		c := w.newConn(fd, false, false, now)
		c.state = stRecv
		w.advance(c)
	}
}

// advance runs c's steps until one has to wait. A step that waits for the
// peer is first deferred to the run queue rather than tried at once: by the
// time the queue reaches it, this worker has usually done what the peer
// needed (accepted and replied, or closed), so the try succeeds.
func (w *worker) advance(c *conn) {
	msgLen := len(w.r.msg)
	for {
		switch c.state {
		case stSend:
			n, err := sysWrite(c.fd, w.r.msg[c.off:])
			if err == unix.EAGAIN {
				w.block(c, unix.EPOLLOUT)
				return
			}
			if err != nil {
				w.fail(c, writeOp(c, err), err)
				return
			}
			if c.off += n; c.off < msgLen {
				continue
			}
			c.off = 0
			switch {
			case c.client:
				c.state = stRecv
				w.enqueue(c)
			case w.r.cfg.Close == closeServer:
				w.finish(c)
			default:
				c.state = stEOF
				w.enqueue(c)
			}
			return
		case stRecv:
			n, err := sysRead(c.fd, w.buf[c.off:msgLen])
			if err == unix.EAGAIN {
				w.block(c, unix.EPOLLIN|unix.EPOLLRDHUP)
				return
			}
			if err != nil {
				w.fail(c, "read", err)
				return
			}
			if n == 0 {
				w.failKind(c, "read:early_eof")
				return
			}
			if c.off += n; c.off < msgLen {
				continue
			}
			c.off = 0
			switch {
			case !c.client:
				c.state = stSend
			case w.r.cfg.Close == closeClient:
				w.finish(c)
				return
			default:
				c.state = stEOF // the server has most likely closed already
			}
		case stEOF:
			n, err := sysRead(c.fd, w.buf)
			if err == unix.EAGAIN {
				w.block(c, unix.EPOLLIN|unix.EPOLLRDHUP)
				return
			}
			if err != nil {
				w.fail(c, "read", err)
				return
			}
			if n > 0 {
				w.failKind(c, "read:extra_data")
				return
			}
			w.finish(c)
			return
		}
	}
}

func (w *worker) enqueue(c *conn) {
	if !c.queued {
		c.queued = true
		w.runq = append(w.runq, c)
	}
}

func (w *worker) runQueue() {
	for i := 0; i < len(w.runq); i++ { // advance may append
		c := w.runq[i]
		c.queued = false
		if c.dead {
			w.free = append(w.free, c)
			continue
		}
		w.advance(c)
	}
	w.runq = w.runq[:0]
}

// block registers c for the events it now waits on. Edge-triggered, so a
// socket stays registered from its first wait to its close.
func (w *worker) block(c *conn, events uint32) {
	events |= unix.EPOLLET
	if c.events == events {
		return
	}
	op := unix.EPOLL_CTL_MOD
	if c.events == 0 {
		op = unix.EPOLL_CTL_ADD
	}
	ev := unix.EpollEvent{Events: events, Fd: int32(c.fd), Pad: c.gen}
	if err := unix.EpollCtl(w.epfd, op, c.fd, &ev); err != nil {
		w.fail(c, "epoll_ctl", err)
		return
	}
	c.events = events
}

// poll waits up to timeout for sockets that blocked, and advances them.
func (w *worker) poll(timeout time.Duration) {
	n, err := epollWait(w.epfd, w.events, timeout, &w.noPwait2)
	if err != nil {
		if err != unix.EINTR {
			w.countError("epoll_wait", errnoName(err))
		}
		return
	}
	now := w.r.now()
	for _, ev := range w.events[:n] {
		fd := int(ev.Fd)
		if ev.Pad == listenerTag {
			w.accept(fd, 64, now)
			continue
		}
		if fd < len(w.byFD) {
			if c := w.byFD[fd]; c != nil && c.gen == ev.Pad {
				w.enqueue(c)
			}
		}
	}
	w.runQueue()
}

func (w *worker) newConn(fd int, client, measured bool, now int64) *conn {
	var c *conn
	if n := len(w.free); n > 0 {
		c = w.free[n-1]
		w.free = w.free[:n-1]
		gen := c.gen + 1
		*c = conn{gen: gen & 0x7fffffff} // never listenerTag
	} else {
		c = &conn{}
	}
	c.fd, c.client, c.measured, c.since = fd, client, measured, now
	for fd >= len(w.byFD) {
		w.byFD = append(w.byFD, nil)
	}
	w.byFD[fd] = c
	c.idx = len(w.active)
	w.active = append(w.active, c)
	if client {
		w.clients++
	}
	return c
}

// release forgets c; its fd is already closed.
func (w *worker) release(c *conn) {
	if w.byFD[c.fd] == c {
		w.byFD[c.fd] = nil
	}
	last := w.active[len(w.active)-1]
	w.active[c.idx] = last
	last.idx = c.idx
	w.active = w.active[:len(w.active)-1]
	if c.client {
		w.clients--
	}
	c.fd = -1
	c.dead = true
	if !c.queued {
		w.free = append(w.free, c)
	}
}

// finish closes c normally: a FIN, never an RST, as everything was read.
func (w *worker) finish(c *conn) {
	if err := sysClose(c.fd); err != nil {
		w.countError("close", errnoName(err))
	}
	if c.client {
		if c.measured {
			w.stats.done[1]++
			w.stats.lastDone = w.r.now()
		} else {
			w.stats.done[0]++
		}
		// A plain store on amd64 and arm64: the owner is the only writer.
		w.progress.Store(w.stats.done[0] + w.stats.done[1])
	} else {
		w.stats.served++
	}
	w.release(c)
}

// writeOp names the operation a failed write reports: the first write of a
// client is where a non-blocking connect's failure shows.
func writeOp(c *conn, err error) string {
	if c.client {
		switch err {
		case unix.ECONNREFUSED, unix.ETIMEDOUT, unix.EHOSTUNREACH, unix.ENETUNREACH:
			return "connect"
		}
	}
	return "write"
}

func (w *worker) fail(c *conn, op string, err error) {
	w.failKind(c, op+":"+errnoName(err))
}

// failKind counts an error and drops c. Closing may send an RST if data is
// unread; that is part of the error being reported.
func (w *worker) failKind(c *conn, kind string) {
	w.countKind(kind)
	sysClose(c.fd)
	w.release(c)
}

func (w *worker) countError(op, kind string) {
	w.countKind(op + ":" + kind)
}

func (w *worker) countKind(kind string) {
	w.stats.errors[kind]++
	w.errCount.Add(1)
}

// housekeep fails connections that have taken longer than the timeout, and
// looks for connections on its listeners that no wake-up announced: with
// EPOLLEXCLUSIVE the kernel wakes one of the workers sharing a listener, and
// that one may be a worker that has just finished.
func (w *worker) housekeep(now int64) {
	w.lastHK = now
	for _, lfd := range w.lns {
		w.accept(lfd, 64, now)
	}
	limit := int64(w.r.cfg.Timeout)
	for i := len(w.active) - 1; i >= 0; i-- { // release swaps in the last
		if c := w.active[i]; now-c.since > limit {
			role := "server"
			if c.client {
				role = "client"
			}
			w.failKind(c, "timeout:"+role+"_"+stateNames[c.state])
		}
	}
}

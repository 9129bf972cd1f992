// Package live runs twtrace's pipeline on a live system: the kernel's event
// stream feeds the socket table, which starts from a sock_diag snapshot, is
// reconciled with the kernel's TIME_WAIT sockets about once a second, and
// learns the owners of sockets that predate the tracer from /proc. The
// events the table derives (TIME_WAIT expire, kill, reuse, and enters the
// stream could not show) join the kernel's events for every sink.
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer"
	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/owner"
	"github.com/twtrace/twtrace/tracer/sockdiag"
	"github.com/twtrace/twtrace/tracer/table"
)

// Config configures a Session.
type Config struct {
	Tracer tracer.Config
	Table  table.Config // Derive is always on: a live session derives

	// ReconcileEvery is the period of the TIME_WAIT reconciliation.
	// 0 means DefaultReconcileEvery.
	ReconcileEvery time.Duration
	// ReconcileBudget bounds the reconciliation to 1/ReconcileBudget of a
	// CPU, all namespaces together: rounds are spaced out when dumps cost
	// more (see DefaultReconcileBudget). 0 means DefaultReconcileBudget.
	ReconcileBudget int
	// Namespaces are extra network namespaces to snapshot and reconcile,
	// as fds the caller keeps open. The host's is always included, and
	// namespaces seen in events are found by themselves when they can be.
	Namespaces []int
	// ProcRoot is where /proc is; "" means /proc.
	ProcRoot string
	Logger   *slog.Logger
}

// DefaultReconcileEvery is once a second: a TIME_WAIT's end is reported
// within about a second.
const DefaultReconcileEvery = time.Second

// ownerRefresh bounds how often a full snapshot is taken to find the owners
// of sockets the stream showed without one.
const ownerRefresh = 10 * time.Second

// maxNamespaces bounds the namespaces reconciled besides the host's.
const maxNamespaces = 64

// Session is a live tracing session.
type Session struct {
	cfg    Config
	log    *slog.Logger
	tr     *tracer.Tracer
	tab    *table.Table
	owners *owner.Resolver
	diag   *sockdiag.Conn // the host namespace's, kept open
	hostNS uint32

	derived chan []event.Event // from the reconciler to the pipeline
	hints   chan nsHint        // namespaces seen in events, to the reconciler

	mu      sync.Mutex
	rates   kstat.Rates
	haveRt  bool
	sysctls map[uint32]kstat.Sysctls // namespace → its sysctls as last read (readSysctls), under mu
	nsList  map[uint32]*netns        // reconciler-owned
	nsMiss  map[uint32]time.Time     // reconciler-owned: not found, when last looked for
	known   map[uint32]bool          // pipeline-owned: namespaces already hinted
	scratch []table.KernelSocket
}

type nsHint struct {
	inode uint32
	pid   uint32
}

// Start opens the tracer, then takes the first snapshot, so that no socket
// that changes in between is missed: the table orders what it learns by time.
func Start(cfg Config) (*Session, error) {
	if cfg.ReconcileEvery <= 0 {
		cfg.ReconcileEvery = DefaultReconcileEvery
	}
	if cfg.ReconcileBudget <= 0 {
		cfg.ReconcileBudget = DefaultReconcileBudget
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	cfg.Table.Derive = true
	s := &Session{
		cfg:     cfg,
		log:     cfg.Logger,
		tab:     table.New(cfg.Table),
		derived: make(chan []event.Event, 16),
		hints:   make(chan nsHint, 64),
		sysctls: make(map[uint32]kstat.Sysctls),
		nsList:  make(map[uint32]*netns),
		nsMiss:  make(map[uint32]time.Time),
		known:   make(map[uint32]bool),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	tr, err := tracer.Open(cfg.Tracer)
	if err != nil {
		return nil, err
	}
	s.tr = tr
	if err := s.init(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Session) init() error {
	var err error
	if s.hostNS, err = hostNetNS(); err != nil {
		return fmt.Errorf("read the host network namespace: %w", err)
	}
	if s.owners, err = owner.NewResolver(s.cfg.ProcRoot); err != nil {
		return err
	}
	if s.diag, err = sockdiag.Dial(-1); err != nil {
		return fmt.Errorf("open sock_diag: %w", err)
	}
	s.nsList[s.hostNS] = &netns{inode: s.hostNS, fd: -1, host: true}
	s.known[s.hostNS] = true
	for _, fd := range s.cfg.Namespaces {
		ino, err := fdInode(fd)
		if err != nil {
			return fmt.Errorf("network namespace fd %d: %w", fd, err)
		}
		s.nsList[ino] = &netns{inode: ino, fd: fd}
		s.known[ino] = true
	}
	for _, n := range s.nsList {
		if s.cfg.Tracer.Filter.NetNS != 0 && n.inode != s.cfg.Tracer.Filter.NetNS {
			continue
		}
		s.readSysctls(n)
		if _, err := s.dump(n, dumpAll, true, nil); err != nil {
			s.log.Warn("initial snapshot", "netns", n.inode, "err", err)
		}
	}
	s.resolveOwners()
	s.initialReuse()
	return nil
}

// initialReuse reads the address-reuse options of the sockets the initial
// snapshot found; sockets that change state later carry theirs in the stream.
func (s *Session) initialReuse() {
	r, err := tracer.OpenReuseReader()
	if err != nil {
		s.log.Warn("SO_REUSEADDR/SO_REUSEPORT of existing sockets unknown", "err", err)
		return
	}
	defer r.Close()
	for _, n := range s.nsList {
		if s.cfg.Tracer.Filter.NetNS != 0 && n.inode != s.cfg.Tracer.Filter.NetNS {
			continue
		}
		if err := readReuse(r, s.tab, n.fd); err != nil {
			s.log.Warn("SO_REUSEADDR/SO_REUSEPORT of existing sockets", "netns", n.inode, "err", err)
		}
	}
}

// Table is the session's socket table.
func (s *Session) Table() *table.Table { return s.tab }

// HostNetNS is the inode of the network namespace twtrace runs in.
func (s *Session) HostNetNS() uint32 { return s.hostNS }

// Tracer is the session's tracer (kernel counters, warnings).
func (s *Session) Tracer() *tracer.Tracer { return s.tr }

// Rates returns the host namespace's latest TIME_WAIT counter rates.
func (s *Session) Rates() (kstat.Rates, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rates, s.haveRt
}

// Run streams events, kernel and derived, to sink until ctx ends. sink must
// not keep the slice.
func (s *Session) Run(ctx context.Context, sink func([]event.Event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		// A panic here would end the process before the deferred closes
		// of the caller run: it stops the session instead (the tracer's
		// own goroutine recovers in tracer.Run).
		defer func() {
			if r := recover(); r != nil {
				s.log.Debug("reconciliation panicked", "panic", r, "stack", string(debug.Stack()))
				err = fmt.Errorf("internal error in the reconciliation: %v", r)
				cancel() // the pipeline drains and stops
			}
		}()
		s.reconcileLoop(gctx)
		return nil
	})
	g.Go(func() error {
		defer cancel() // a failed pipeline stops the reconciler too
		return s.pipeline(ctx, sink)
	})
	return g.Wait()
}

func (s *Session) pipeline(ctx context.Context, sink func([]event.Event) error) error {
	st := &stage{s: s, sink: sink, lastTick: time.Now()}
	return s.tr.Run(ctx, st.handle)
}

// stage is the pipeline's work on each batch from the tracer, on the
// tracer's goroutine: the table, the derived events, the sink.
type stage struct {
	s        *Session
	sink     func([]event.Event) error
	out      []event.Event
	lastTick time.Time
}

func (st *stage) handle(batch []event.Event) error {
	s := st.s
	var out []event.Event
	if len(batch) == 0 {
		// The ring buffer is drained: the TIME_WAIT ends that waited for
		// the stream to catch up with a dump can be judged.
		out = s.tab.Drained(time.Now(), st.out[:0])
	} else {
		out = s.tab.ApplyBatch(batch, st.out[:0])
	}
	s.hintNamespaces(batch)
drain:
	for {
		select {
		case d := <-s.derived:
			out = append(out, d...)
		default:
			break drain
		}
	}
	if now := time.Now(); now.Sub(st.lastTick) >= time.Second {
		st.lastTick = now
		out = s.tab.Tick(now, out)
	}
	st.out = out
	if err := st.sink(batch); err != nil {
		return err
	}
	flt := &s.cfg.Tracer.Filter
	n := 0
	for i := range out {
		if flt.Match(&out[i]) {
			out[n] = out[i]
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return st.sink(out[:n])
}

// hintNamespaces tells the reconciler about namespaces the stream shows.
func (s *Session) hintNamespaces(batch []event.Event) {
	last := uint32(0) // events come in runs from one namespace
	for i := range batch {
		ev := &batch[i]
		if ev.NetNS == last || ev.NetNS == 0 || s.known[ev.NetNS] || len(s.known) > maxNamespaces {
			last = ev.NetNS
			continue
		}
		pid := ev.Owner
		if pid == 0 && ev.Kind != event.KindState {
			pid = ev.PID
		}
		if pid == 0 {
			continue // a softirq task tells nothing about the namespace
		}
		select {
		case s.hints <- nsHint{ev.NetNS, pid}:
			s.known[ev.NetNS] = true
		default:
		}
	}
}

// DefaultReconcileBudget bounds the reconciliation's share of a CPU: with hundreds
// of thousands of TIME_WAIT sockets a round takes long, and then rounds are
// spaced out (a TIME_WAIT's end is reported later, never at any cost).
//
// The bound is for all namespaces together. A sock_diag dump walks the
// kernel's TCP hash tables, which all namespaces share (unless
// net.ipv4.tcp_child_ehash_entries gave one its own), so dumping a namespace
// with ten sockets costs as much as dumping the one with a million: measured
// here, 5 ms for the host's few sockets beside 100 000 TIME_WAIT in another
// namespace. Each namespace's pause is its own cost times the budget times
// the number of namespaces, so N namespaces together stay within 1/budget.
//
// The cost is CPU time, not wall time: on a busy host a dump waits for a
// CPU, and counting that wait spaced rounds by 10 s and more (a dump of a
// few sockets measured 30 ms of wall time on two loaded cores), so that
// TIME_WAIT ends went unreported and namespaces fell back to timers.
const DefaultReconcileBudget = 200 // 0.5% of a CPU

// threadCPU is the CPU time the calling thread has used. The reconciler is
// locked to its thread, so across a dump it is what the dump cost, the
// kernel's walk of its tables included: the walk runs in the reconciler's
// own sendmsg and recvmsg.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

func (s *Session) reconcileLoop(ctx context.Context) {
	runtime.LockOSThread() // for threadCPU
	defer runtime.UnlockOSThread()
	tick := time.NewTicker(s.cfg.ReconcileEvery)
	defer tick.Stop()
	lastOwners := time.Now()
	var sampler kstat.Sampler
	kr, err := kstat.NewReader(s.cfg.ProcRoot)
	if err != nil {
		s.log.Warn("kernel counters unavailable", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case h := <-s.hints:
			s.adoptNamespace(h)
			continue
		case <-tick.C:
		}
		var out []event.Event
		// Now and then a full dump instead: it gives the inodes of sockets
		// the stream showed without an owner, for /proc to resolve.
		full := time.Since(lastOwners) >= ownerRefresh && s.tab.Unresolved() > 0
		if full {
			lastOwners = time.Now()
		}
		for _, n := range s.nsList {
			// Each namespace is spaced by its own cost: one with a million
			// TIME_WAIT sockets does not slow down the others.
			if time.Now().Before(n.next) {
				continue
			}
			if time.Since(n.sysctlsAt) >= sysctlRefresh {
				s.readSysctls(n)
			}
			began, cpu := time.Now(), threadCPU()
			kind := dumpTimeWait
			if full || s.cfg.Tracer.Aggregate {
				// With Tracer.Aggregate the stream shows only TIME_WAIT
				// enters, listener changes and connect()s: every round
				// reads every socket, and the table follows the kernel's
				// states within a round.
				kind = dumpAll
			}
			var err error
			out, err = s.dump(n, kind, false, out)
			if err == nil && !full && s.tab.ListenerWithoutInode(n.inode) {
				// A listener the stream showed: a dump of the listeners
				// (a short walk of their own table) gives its inode.
				out, err = s.dump(n, dumpListeners, false, out)
			}
			cost := threadCPU() - cpu
			if cost <= 0 {
				cost = time.Since(began) // no thread clock: the wall clock, an upper bound
			}
			n.next = began.Add(time.Duration(s.cfg.ReconcileBudget*len(s.nsList)) * cost)
			if err != nil {
				s.log.Debug("reconcile", "netns", n.inode, "err", err)
				if !n.host && n.fd < 0 {
					delete(s.nsList, n.inode) // gone, or no longer reachable
					s.tab.StopReconciling(n.inode)
					s.mu.Lock()
					delete(s.sysctls, n.inode)
					s.mu.Unlock()
				}
				continue
			}
		}
		if full {
			s.resolveOwners()
		}
		if kr != nil {
			if c, err := kr.Counters(); err == nil {
				if r, ok := sampler.Add(c); ok {
					s.mu.Lock()
					s.rates, s.haveRt = r, true
					s.mu.Unlock()
				}
			}
		}
		if len(out) > 0 {
			select {
			case s.derived <- out:
			case <-ctx.Done():
				return
			}
		}
	}
}

// adoptNamespace starts reconciling a namespace the stream showed, if a path
// to it can be found.
func (s *Session) adoptNamespace(h nsHint) {
	if _, ok := s.nsList[h.inode]; ok || len(s.nsList) > maxNamespaces {
		return
	}
	if t, ok := s.nsMiss[h.inode]; ok && time.Since(t) < nsRetry {
		return
	}
	path, ok := findNetNS(s.cfg.ProcRoot, h.inode, h.pid)
	if !ok {
		s.nsMiss[h.inode] = time.Now()
		s.log.Debug("namespace not reachable: its TIME_WAIT sockets expire by timer", "netns", h.inode)
		return
	}
	n := &netns{inode: h.inode, fd: -1, path: path}
	s.nsList[h.inode] = n
	s.readSysctls(n)
}

// sysctlRefresh is how often a namespace's sysctls are read again: someone
// may widen the port range during an outage.
const sysctlRefresh = 10 * time.Second

// readSysctls reads a namespace's sysctls in that namespace and gives the
// table its ip_local_port_range: which sockets are a client's, and how much
// of the range the Remotes view says TIME_WAITs hold.
func (s *Session) readSysctls(n *netns) {
	n.sysctlsAt = time.Now()
	sc, err := n.sysctls(s.cfg.ProcRoot)
	if err != nil {
		s.log.Warn("sysctls unread: the default ip_local_port_range is assumed", "netns", n.inode, "err", err)
		return
	}
	if lo, hi := sc.PortRange[0], sc.PortRange[1]; lo > 0 && hi >= lo && hi <= 65535 {
		s.tab.SetPortRange(n.inode, table.PortRange{uint16(lo), uint16(hi)})
	}
	s.mu.Lock()
	s.sysctls[n.inode] = sc
	s.mu.Unlock()
}

// EphemeralPorts returns how many local ports connect() can choose from in
// a network namespace the session reconciles: its ip_local_port_range less
// its ip_local_reserved_ports (kstat.Sysctls.EphemeralPorts), as last read
// in that namespace, at most sysctlRefresh ago. ok is false for a
// namespace the session does not reach.
func (s *Session) EphemeralPorts(netns uint32) (int, bool) {
	s.mu.Lock()
	sc, ok := s.sysctls[netns]
	s.mu.Unlock()
	if !ok {
		return 0, false
	}
	return sc.EphemeralPorts()
}

// Sysctls returns a network namespace's sysctls as the session last read
// them in that namespace (at most sysctlRefresh ago), or nil for a
// namespace the session does not reach. The caller may keep the copy.
func (s *Session) Sysctls(netns uint32) *kstat.Sysctls {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.sysctls[netns]
	if !ok {
		return nil
	}
	sc.Missing = slices.Clone(sc.Missing)
	return &sc
}

// dump merges one namespace's sockets into the table.
func (s *Session) dump(n *netns, kind dumpKind, initial bool, out []event.Event) ([]event.Event, error) {
	c, closeAfter, err := n.dial(s.diag)
	if err != nil {
		return out, err
	}
	if closeAfter {
		defer c.Close()
	}
	if s.scratch == nil {
		s.scratch = make([]table.KernelSocket, 0, chunkLen)
	}
	req := dumpReq{netns: n.inode, kind: kind, initial: initial, flt: &s.cfg.Tracer.Filter}
	return reconcile(c, s.tab, req, s.scratch, out)
}

func (s *Session) resolveOwners() { resolveOwners(s.tab, s.owners) }

// Close detaches every program and closes every connection.
func (s *Session) Close() error {
	var errs []error
	if s.diag != nil {
		errs = append(errs, s.diag.Close())
	}
	if s.tr != nil {
		errs = append(errs, s.tr.Close())
	}
	return errors.Join(errs...)
}

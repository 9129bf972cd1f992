package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// shared is the state the workers share. Everything but the two atomics is
// written before the workers start.
type shared struct {
	cfg       *Config
	base      time.Time // the run's clock: ns since base
	warmupEnd int64
	stopAt    int64
	pacer     *pacer
	slack     int64 // a paced start may run this early (--pace-slack); 0 at full speed
	msg       []byte
	measured  atomic.Uint64 // measured connections started, for --count
	cancel    atomic.Bool   // interrupted: stop starting, drain
}

func (r *shared) now() int64 { return int64(time.Since(r.base)) }

// Run opens the listeners, runs the workers until the run ends, and returns
// what they measured. Progress notes (the port to trace) go to logw.
func Run(ctx context.Context, cfg *Config, logw io.Writer) (*Result, error) {
	addrs := loopbackAddrs(cfg.IPv6, cfg.Addrs)
	lfds, port, err := listenAll(addrs, cfg.Port, cfg.Ports)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	defer func() {
		for _, fd := range lfds {
			unix.Close(fd)
		}
	}()
	fmt.Fprintf(logw, "twchurn: listening on %s %s; %d workers, close %s, rate %s\n",
		addrRange(addrs), portRange(port, cfg.Ports), cfg.Workers, cfg.Close, rateText(cfg.Rate))

	// A worker keeps its P even while it sleeps in epoll (RawSyscall, see
	// sys.go): one P per worker, and one for the rest of the program.
	prev := runtime.GOMAXPROCS(max(runtime.NumCPU(), cfg.Workers+1))
	defer runtime.GOMAXPROCS(prev)

	r := &shared{cfg: cfg, msg: make([]byte, cfg.MsgSize)}
	for i := range r.msg {
		r.msg[i] = byte('a' + i%26)
	}
	eps := make([]netip.AddrPort, len(lfds)) // in listenAll's order
	for i := range eps {
		eps[i] = netip.AddrPortFrom(addrs[i%len(addrs)], uint16(port+i/len(addrs)))
	}
	workers, err := newWorkers(r, eps, lfds)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, w := range workers {
			unix.Close(w.epfd)
		}
	}()

	before := takeSnapshot()
	r.base = time.Now()
	r.warmupEnd = int64(cfg.Warmup)
	r.stopAt = r.warmupEnd + int64(cfg.Duration)
	if cfg.Rate > 0 {
		r.pacer = newPacer(0, cfg.Rate)
		r.slack = int64(cfg.PaceSlack)
	}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Locked for good: the worker's syscalls, timer slack and CPU
			// time stay on one thread, and the thread exits with it.
			runtime.LockOSThread()
			preciseTimers()
			w.loop()
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()

	atWarmupEnd := before
	warm := time.NewTimer(time.Until(r.base.Add(cfg.Warmup)))
	defer warm.Stop()
	var tick <-chan time.Time
	if cfg.Interval > 0 {
		t := time.NewTicker(cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	prog := progress{at: r.base}
	done := ctx.Done()
	for waiting := true; waiting; {
		select {
		case now := <-tick:
			prog.report(logw, now, r, workers)
		case <-warm.C:
			atWarmupEnd = takeSnapshot()
		case <-done:
			r.cancel.Store(true)
			done = nil
		case <-finished:
			waiting = false
		}
	}
	after := takeSnapshot()
	if r.now() < r.warmupEnd { // interrupted during the warmup
		atWarmupEnd = after
	}
	return newResult(cfg, r, workers, addrs, port, before, atWarmupEnd, after), nil
}

// progress prints the rate since the last report, for --interval.
type progress struct {
	at         time.Time
	done, errs uint64
}

func (p *progress) report(w io.Writer, now time.Time, r *shared, workers []*worker) {
	var done, errs uint64
	for _, wk := range workers {
		done += wk.progress.Load()
		errs += wk.errCount.Load()
	}
	phase := "measuring"
	if now.Sub(r.base) < r.cfg.Warmup {
		phase = "warmup"
	}
	fmt.Fprintf(w, "twchurn: %7.2fs %-9s %8.0f/s  %d errors\n", now.Sub(r.base).Seconds(), phase,
		float64(done-p.done)/now.Sub(p.at).Seconds(), errs-p.errs)
	p.at, p.done, p.errs = now, done, errs
}

// newWorkers gives each worker its epoll and its servers (endpoints). With
// at least as many endpoints as workers, each worker has endpoints of its
// own and accepts only its own connections; otherwise workers share. Either
// way a worker spreads its connections over all its endpoints: each one is
// another range of ephemeral ports (see doc.go, "Ports").
func newWorkers(r *shared, eps []netip.AddrPort, lfds []int) ([]*worker, error) {
	n := r.cfg.Workers
	users := make([]int, len(eps))
	mine := make([][]int, n)
	for i := range n {
		if len(eps) >= n {
			for j := i; j < len(eps); j += n {
				mine[i] = append(mine[i], j)
			}
		} else {
			mine[i] = []int{i % len(eps)}
		}
		for _, j := range mine[i] {
			users[j]++
		}
	}
	var workers []*worker
	for i := range n {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			for _, w := range workers {
				unix.Close(w.epfd)
			}
			return nil, fmt.Errorf("epoll_create1: %w", err)
		}
		w := &worker{
			r:      r,
			epfd:   epfd,
			events: make([]unix.EpollEvent, 64),
			domain: domainOf(eps[0].Addr()),
			buf:    make([]byte, max(r.cfg.MsgSize, 512)),
			stats:  workerStats{errors: map[string]uint64{}},
		}
		workers = append(workers, w)
		for _, j := range mine[i] {
			w.dst = append(w.dst, newRawSockaddr(eps[j]))
			w.lns = append(w.lns, lfds[j])
			// Level-triggered: a connection another worker left in the
			// queue keeps waking someone. EPOLLEXCLUSIVE wakes one sharer,
			// not all of them.
			ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(lfds[j]), Pad: listenerTag}
			if users[j] > 1 {
				ev.Events |= unix.EPOLLEXCLUSIVE
			}
			if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, lfds[j], &ev); err != nil {
				for _, w := range workers {
					unix.Close(w.epfd)
				}
				return nil, fmt.Errorf("epoll_ctl listener: %w", err)
			}
		}
	}
	return workers, nil
}

func addrRange(addrs []netip.Addr) string {
	if len(addrs) == 1 {
		return addrs[0].String()
	}
	return addrs[0].String() + "-" + addrs[len(addrs)-1].String()
}

func portRange(port, n int) string {
	if n == 1 {
		return fmt.Sprintf("port %d", port)
	}
	return fmt.Sprintf("ports %d-%d", port, port+n-1)
}

func rateText(rate int) string {
	if rate == 0 {
		return "max"
	}
	return fmt.Sprintf("%d/s", rate)
}

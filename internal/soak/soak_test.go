//go:build soak

// Package soak runs twtrace's live pipeline for minutes under connection
// churn against a small ring buffer, with the live view's model and a
// recorder attached, and requires that memory, goroutines and file
// descriptors stay flat after the warm-up and that the loss accounting is
// exact at the end. It is not part of `make test`: `make soak` runs it
// (SOAK_DURATION, default 3m).
package soak

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/kcount"
	"github.com/twtrace/twtrace/internal/tracertest"
	"github.com/twtrace/twtrace/tracer"
	"github.com/twtrace/twtrace/tracer/capture"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/session"
	"github.com/twtrace/twtrace/tui"
)

const port = 29533

// sample is one reading of the process's resources.
type sample struct {
	at         time.Duration
	rss        int64  // bytes
	heap       uint64 // bytes of the Go heap in use
	goroutines int
	fds        int
}

func (s sample) String() string {
	return fmt.Sprintf("%6.0fs rss %5.1f MiB heap %5.1f MiB goroutines %3d fds %3d", s.at.Seconds(),
		float64(s.rss)/(1<<20), float64(s.heap)/(1<<20), s.goroutines, s.fds)
}

// read samples after giving freed memory back, so that RSS is what the
// process holds.
func read(start time.Time) sample {
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := sample{at: time.Since(start), heap: ms.HeapInuse, goroutines: runtime.NumGoroutine()}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				s.rss = kb << 10
			}
		}
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		s.fds = len(ents)
	}
	return s
}

// feed is the session with a recorder and a tally in front of the UI.
type feed struct {
	*session.Session
	w         *capture.Writer
	delivered atomic.Uint64 // state events
	lost      atomic.Uint64
}

func (f *feed) Run(ctx context.Context, fn func([]event.Event) error) error {
	return f.Session.Run(ctx, func(b []event.Event) error {
		for i := range b {
			switch b[i].Kind {
			case event.KindState:
				f.delivered.Add(1)
			case event.KindLost:
				f.lost.Add(b[i].Lost)
			}
		}
		if err := f.w.Write(b); err != nil {
			return err
		}
		return fn(b)
	})
}

// churn makes connections the server closes first until ctx ends, as fast
// as two threads in the namespace can.
func churn(ctx context.Context, ns *tracertest.NetNS, lfd int) (int, error) {
	var wg sync.WaitGroup
	var n atomic.Int64
	errs := make(chan error, 2)
	sa := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- ns.Do(func() error {
				buf := make([]byte, 1)
				for ctx.Err() == nil {
					c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
					if err != nil {
						return err
					}
					if err := unix.Connect(c, sa); err != nil {
						unix.Close(c)
						if err == unix.EADDRNOTAVAIL {
							time.Sleep(time.Millisecond) // ports held by TIME_WAIT: a short wait
							continue
						}
						return fmt.Errorf("connect: %w", err)
					}
					a, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
					if err != nil {
						unix.Close(c)
						return fmt.Errorf("accept: %w", err)
					}
					unix.Close(a)
					unix.Read(c, buf)
					unix.Close(c)
					n.Add(1)
				}
				return nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return int(n.Load()), err
		}
	}
	return int(n.Load()), nil
}

func TestSoak(t *testing.T) {
	tracertest.Require(t)
	debug.SetMemoryLimit(48 << 20) // as twtrace's main does
	duration := 3 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("SOAK_DURATION")); err == nil && d > 0 {
		duration = d
	}
	// TIME_WAIT sockets live 60 s: the table and the kernel reach their
	// steady state after that, and the warm-up covers it.
	warmup := max(duration/2, 70*time.Second)
	if warmup >= duration {
		t.Fatalf("SOAK_DURATION %v: want more than the %v warm-up", duration, warmup)
	}
	ns := tracertest.NewNetNS(t)
	// A wide port range and room for every TIME_WAIT: the load is steady.
	ns.Sysctl("net/ipv4/ip_local_port_range", "1024 65535")
	ns.Sysctl("net/ipv4/tcp_tw_reuse", "1")
	var lfd int
	if err := ns.Do(func() error {
		var err error
		if lfd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		unix.SetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if err := unix.Bind(lfd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			return err
		}
		return unix.Listen(lfd, 1024)
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)

	counter, err := kcount.Open(port, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer counter.Close()
	c0, _ := counter.Read()
	sess, err := session.Start(session.Config{
		Tracer:     tracer.Config{Filter: event.Filter{Ports: []uint16{port}}, RingSize: 64 << 10, WakeupEvery: 50 * time.Millisecond},
		Namespaces: []int{ns.FD()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	w, err := capture.Create(filepath.Join(t.TempDir(), "soak.jsonl.zst"), capture.Header{Host: "soak"}, capture.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &feed{Session: sess, w: w}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	uiDone := make(chan error, 1)
	go func() { uiDone <- tui.Headless(ctx, f, tui.Options{HostNetNS: sess.HostNetNS()}) }()
	loadCtx, stopLoad := context.WithTimeout(ctx, duration)
	defer stopLoad()
	loadDone := make(chan error, 1)
	var conns int
	go func() {
		var err error
		conns, err = churn(loadCtx, ns, lfd)
		loadDone <- err
	}()

	start := time.Now()
	var samples []sample
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
sampling:
	for {
		select {
		case <-tick.C:
			if loadCtx.Err() != nil || time.Since(start) > duration-5*time.Second {
				break sampling // the load is ending: no longer the steady state
			}
			s := read(start)
			samples = append(samples, s)
			t.Log(s)
		case <-loadCtx.Done():
			break sampling
		}
	}
	if err := <-loadDone; err != nil {
		t.Fatalf("load: %v", err)
	}
	// Let the last transitions of the load come, then stop.
	last, _ := counter.Read()
	for deadline, still := time.Now().Add(5*time.Second), 0; still < 20 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		if n, _ := counter.Read(); n != last {
			last, still = n, 0
		} else {
			still++
		}
	}
	atCancel, _ := counter.Read()
	cancel()
	if err := <-uiDone; err != nil {
		t.Fatalf("the live view's model: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("the recorder: %v", err)
	}
	c1, _ := counter.Read()
	misses, _ := counter.Misses() // runs the independent counter itself skipped
	ks, err := sess.Tracer().Stats()
	if err != nil {
		t.Fatal(err)
	}
	// The lost events of the stream count the refused connect()s the ring
	// had no room for too (the load meets EADDRNOTAVAIL now and then).
	sysLost := ks.SysLost
	for name, p := range ks.Programs {
		if strings.HasPrefix(name, "sys_") || strings.HasPrefix(name, "raw_sys") {
			sysLost += p.RecursionMisses // a bind/connect/listen event, not a transition
		}
	}
	delivered, lost := f.delivered.Load(), f.lost.Load()-sysLost
	t.Logf("lost of bind/connect/listen: %d; programs %+v", sysLost, ks.Programs)
	t.Logf("%d connections in %v; delivered %d + lost %d = %d; the kernel counted %d (%d when stopping, %d runs of the counter skipped); table %+v",
		conns, duration, delivered, lost, delivered+lost, c1-c0, atCancel-c0, misses, sess.Table().Stats())

	// Exact accounting: nothing neither delivered nor reported lost, and
	// nothing more than the kernel made (the counter's own skipped runs are
	// transitions it did not count).
	if sum := delivered + lost; sum < atCancel-c0 || sum > c1-c0+misses {
		t.Errorf("delivered + lost = %d, the kernel counted %d to %d (+%d the counter skipped)", sum, atCancel-c0, c1-c0, misses)
	}
	if lost == 0 {
		t.Error("a 64 KiB ring lost nothing at full churn: the soak did not test overload")
	}
	// Flat after the warm-up: the table is at its cap, evicting.
	var steady []sample
	for _, s := range samples {
		if s.at >= warmup {
			steady = append(steady, s)
		}
	}
	if len(steady) < 3 {
		t.Fatalf("%d samples after the warm-up: run longer", len(steady))
	}
	lo, hi := steady[0], steady[0]
	for _, s := range steady {
		if s.rss < lo.rss {
			lo = s
		}
		if s.rss > hi.rss {
			hi = s
		}
	}
	// A leak grows all along; a map that doubles once is a step. So: at most
	// one step of 16 MiB above the lowest, and the last third no higher
	// than 8 MiB above the first third.
	third := func(ss []sample) int64 {
		var sum int64
		for _, x := range ss {
			sum += x.rss
		}
		return sum / int64(len(ss))
	}
	n3 := max(len(steady)/3, 1)
	if hi.rss-lo.rss > 16<<20 || third(steady[len(steady)-n3:])-third(steady[:n3]) > 8<<20 {
		t.Errorf("RSS not flat after the warm-up: %v to %v (first %v, last %v)", lo, hi, steady[0], steady[len(steady)-1])
	}
	for _, s := range steady {
		if d := s.goroutines - steady[0].goroutines; d > 4 || d < -4 {
			t.Errorf("goroutines moved from %d to %d", steady[0].goroutines, s.goroutines)
			break
		}
		if d := s.fds - steady[0].fds; d > 4 || d < -4 {
			t.Errorf("file descriptors moved from %d to %d", steady[0].fds, s.fds)
			break
		}
	}
}

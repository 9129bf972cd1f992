package tracer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
)

// Config configures a Tracer.
type Config struct {
	Filter event.Filter

	// RingSize is the size of the BPF ring buffer in bytes, a power of two
	// and a multiple of the page size. 0 means DefaultRingSize.
	RingSize int

	// WakeupEvery, when non-zero, stops the kernel from waking the reader
	// for each event: the reader polls at this interval (the latency bound)
	// and the kernel wakes it early only when a quarter of the ring is full.
	// When zero, the kernel wakes the reader whenever it finds it idle.
	WakeupEvery time.Duration

	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
}

// DefaultRingSize holds about 30 800 state events (128 bytes each, plus the
// ring buffer's 8-byte record header).
const DefaultRingSize = 4 << 20

// MaxRingSize bounds the ring buffer: its memory is the kernel's, locked,
// and 256 MiB already hold two million state events.
const MaxRingSize = 256 << 20

// DefaultWakeupEvery bounds how long an event waits in the ring buffer.
const DefaultWakeupEvery = 50 * time.Millisecond

// maxBatch bounds the events handed to a sink at once.
const maxBatch = 512

// lostCheckEvery is how often the kernel's loss counters are read.
const lostCheckEvery = time.Second

// Tracer owns the loaded BPF programs, their links and the ring buffer reader.
type Tracer struct {
	cfg      Config
	log      *slog.Logger
	clock    Clock
	state    sockstateObjects
	sys      syscallsObjects
	haveSys  bool
	links    []link.Link
	reader   *ringbuf.Reader
	progs    map[string]*ebpf.Program
	batch    []event.Event
	lostSeen uint64 // ring-buffer-full plus recursion misses already reported
	lastLost time.Time
	warnings []string
}

// Open checks the host, loads the programs with the filter compiled in,
// attaches them and opens the ring buffer. Errors that mean "this kernel or
// this process cannot" are *FeatureError.
func Open(cfg Config) (*Tracer, error) {
	if _, err := kernelConfig(&cfg.Filter); err != nil {
		return nil, err
	}
	if err := CheckFeatures(ThisHost()); err != nil {
		return nil, err
	}
	if cfg.RingSize == 0 {
		cfg.RingSize = DefaultRingSize
	}
	if err := CheckRingSize(cfg.RingSize); err != nil {
		return nil, err
	}
	t := &Tracer{
		cfg:   cfg,
		log:   cfg.Logger,
		progs: map[string]*ebpf.Program{},
		batch: make([]event.Event, 0, maxBatch+1),
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if err := t.load(); err != nil {
		t.Close()
		return nil, err
	}
	if err := t.attach(); err != nil {
		t.Close()
		return nil, err
	}
	rd, err := ringbuf.NewReader(t.state.Events)
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("open ring buffer: %w", err)
	}
	t.reader = rd
	t.clock = NewClock()
	t.lastLost = time.Now()
	return t, nil
}

// CheckRingSize reports a ring buffer size the kernel would refuse, or that
// would take more of its memory than tracing is worth.
func CheckRingSize(n int) error {
	page := os.Getpagesize()
	switch {
	case n < page || n&(n-1) != 0:
		return fmt.Errorf("the ring buffer size must be a power of two of at least %d bytes (4K, 1M, 16M, ...)", page)
	case n > MaxRingSize:
		return fmt.Errorf("the ring buffer size can be at most %dM: the kernel locks its memory", MaxRingSize>>20)
	}
	return nil
}

func (t *Tracer) kernelConfig() sockstateTwConfig {
	c, _ := kernelConfig(&t.cfg.Filter) // checked by Open
	if t.cfg.WakeupEvery > 0 {
		c.BatchWakeup = 1
		c.WakeupBytes = uint32(t.cfg.RingSize / 4)
	}
	return c
}

func (t *Tracer) load() error {
	kcfg := t.kernelConfig()

	spec, err := loadSockstate()
	if err != nil {
		return err
	}
	spec.Maps["events"].MaxEntries = uint32(t.cfg.RingSize)
	if err := spec.Variables["cfg"].Set(kcfg); err != nil {
		return fmt.Errorf("configure sockstate: %w", err)
	}
	if err := spec.LoadAndAssign(&t.state, nil); err != nil {
		return loadError("the TCP state program", err)
	}
	t.progs["inet_sock_set_state"] = t.state.InetSockSetState

	sysSpec, err := loadSyscalls()
	if err != nil {
		return err
	}
	if err := sysSpec.Variables["cfg"].Set(kcfg); err != nil {
		return fmt.Errorf("configure syscalls: %w", err)
	}
	opts := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{
		"events": t.state.Events,
		"stats":  t.state.Stats,
	}}
	if err := sysSpec.LoadAndAssign(&t.sys, opts); err != nil {
		// The state stream is the core; bind/connect/listen are optional.
		t.warn("continuing without bind/connect/listen events: %v", loadError("the syscall programs", err))
		return nil
	}
	t.haveSys = true
	return nil
}

// loadError makes a load failure readable: a verifier log is cut to its
// last lines (the full log goes to the debug logger), a missing privilege
// or feature becomes a FeatureError.
func loadError(what string, err error) error {
	if fe := asFeatureError("load "+what, err); fe != nil {
		return fe
	}
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		lines := ve.Log
		if len(lines) > 4 {
			lines = lines[len(lines)-4:]
		}
		tail := strings.Join(lines, "; ")
		if strings.Contains(tail, "unknown func") || strings.Contains(tail, "invalid func") {
			return &FeatureError{
				Missing: "a BPF helper " + what + " needs",
				Fix:     "twtrace needs Linux 5.12 or newer for socket cookies in tracing programs",
				Err:     fmt.Errorf("verifier: %s", tail),
			}
		}
		return fmt.Errorf("load %s: the verifier refused it: %s", what, tail)
	}
	return fmt.Errorf("load %s: %w", what, err)
}

func (t *Tracer) attach() error {
	l, err := link.AttachTracing(link.TracingOptions{Program: t.state.InetSockSetState})
	if err != nil {
		if fe := asFeatureError("attach tp_btf/inet_sock_set_state", err); fe != nil {
			return fe
		}
		return fmt.Errorf("attach tp_btf/inet_sock_set_state: %w", err)
	}
	t.links = append(t.links, l)
	if !t.haveSys {
		return nil
	}
	err = withTracefs(func() error {
		for _, tp := range []struct {
			name string
			prog *ebpf.Program
		}{
			{"sys_enter_bind", t.sys.SysEnterBind},
			{"sys_exit_bind", t.sys.SysExitBind},
			{"sys_enter_connect", t.sys.SysEnterConnect},
			{"sys_exit_connect", t.sys.SysExitConnect},
			{"sys_enter_listen", t.sys.SysEnterListen},
			{"sys_exit_listen", t.sys.SysExitListen},
		} {
			l, err := link.Tracepoint("syscalls", tp.name, tp.prog, nil)
			if err != nil {
				return fmt.Errorf("syscalls:%s: %w", tp.name, err)
			}
			t.links = append(t.links, l)
			t.progs[tp.name] = tp.prog
		}
		return nil
	})
	if err != nil {
		// Half a syscall pair would leave entries behind: all or none.
		t.warn("continuing without bind/connect/listen events: %v", err)
		for _, l := range t.links[1:] {
			_ = l.Close()
		}
		t.links = t.links[:1]
		for name := range t.progs {
			if name != "inet_sock_set_state" {
				delete(t.progs, name)
			}
		}
	}
	return nil
}

func (t *Tracer) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	t.warnings = append(t.warnings, msg)
	t.log.Warn(msg)
}

// Warnings lists the optional parts that could not be loaded.
func (t *Tracer) Warnings() []string { return t.warnings }

// Run reads events until ctx is done or fn fails, handing them to fn in
// batches. fn must not keep the slice: it is reused. fn is also called with
// an empty batch whenever a poll interval ends with the ring buffer drained
// (at least once per interval when idle), so that a consumer can do periodic
// work on the same goroutine. When ctx is done, Run
// detaches the programs, delivers what is still in the ring buffer and the
// final loss count, and returns nil.
func (t *Tracer) Run(ctx context.Context, fn func([]event.Event) error) error {
	stop := context.AfterFunc(ctx, func() { _ = t.reader.Flush() })
	defer stop()

	var rec ringbuf.Record
	t.reader.SetDeadline(time.Now().Add(t.pollInterval()))
	for {
		err := t.reader.ReadInto(&rec)
		switch {
		case err == nil:
			t.add(rec.RawSample)
			if rec.Remaining == 0 || len(t.batch) >= maxBatch {
				if err := t.flush(fn, false, false); err != nil {
					return err
				}
			}
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, ringbuf.ErrFlushed):
			if ctx.Err() != nil {
				return t.shutdown(fn, &rec)
			}
			if err := t.flush(fn, true, false); err != nil {
				return err
			}
			t.reader.SetDeadline(time.Now().Add(t.pollInterval()))
		default:
			return fmt.Errorf("read ring buffer: %w", err)
		}
	}
}

func (t *Tracer) pollInterval() time.Duration {
	if t.cfg.WakeupEvery > 0 {
		return t.cfg.WakeupEvery
	}
	return lostCheckEvery
}

// add decodes one record into the batch, with the TIME_WAIT it implies.
func (t *Tracer) add(raw []byte) {
	t.batch = t.batch[:len(t.batch)+1]
	ev := &t.batch[len(t.batch)-1]
	if err := Decode(raw, t.clock, ev); err != nil {
		t.batch = t.batch[:len(t.batch)-1]
		t.log.Warn("undecodable record", "err", err)
		return
	}
	if !t.cfg.Filter.Match(ev) {
		t.batch = t.batch[:len(t.batch)-1]
		return
	}
	if ev.Kind == event.KindState && ev.New == event.StateClose {
		var tw event.Event
		if event.InferTimeWait(ev, &tw) {
			t.batch = append(t.batch, tw)
		}
	}
}

// flush hands the batch to fn, followed by a lost record when the kernel
// reported loss since the last check (every lostCheckEvery: the check costs
// a syscall per program). An idle flush (the poll interval passed) calls fn
// even with nothing; the final one always checks for loss.
func (t *Tracer) flush(fn func([]event.Event) error, idle, final bool) error {
	if now := time.Now(); final || now.Sub(t.lastLost) >= lostCheckEvery {
		t.lastLost = now
		if n := t.newLoss(); n > 0 {
			t.batch = append(t.batch, event.Event{Kind: event.KindLost, Time: now.UTC(), Lost: n})
		}
	}
	if len(t.batch) == 0 && !idle {
		return nil
	}
	err := fn(t.batch)
	t.batch = t.batch[:0]
	return err
}

// newLoss returns the events lost since the previous call: records the ring
// buffer had no room for, and program runs the kernel skipped.
func (t *Tracer) newLoss() uint64 {
	s, err := t.Stats()
	if err != nil {
		t.log.Warn("read loss counters", "err", err)
		return 0
	}
	total := s.Lost + s.SysLost + s.RecursionMisses
	if total <= t.lostSeen {
		return 0
	}
	n := total - t.lostSeen
	t.lostSeen = total
	return n
}

// shutdown detaches the programs, drains the ring buffer and delivers the
// last batch with the final loss count.
func (t *Tracer) shutdown(fn func([]event.Event) error, rec *ringbuf.Record) error {
	t.detach()
	t.reader.SetDeadline(time.Now())
	for {
		err := t.reader.ReadInto(rec)
		if err != nil {
			break
		}
		t.add(rec.RawSample)
		if len(t.batch) >= maxBatch {
			if err := t.flush(fn, false, false); err != nil {
				return err
			}
		}
	}
	return t.flush(fn, true, true)
}

func (t *Tracer) detach() {
	for _, l := range t.links {
		if err := l.Close(); err != nil {
			t.log.Warn("detach", "err", err)
		}
	}
	t.links = nil
}

// Close detaches every program and frees every map. It is safe to call
// more than once and after Run returned.
func (t *Tracer) Close() error {
	t.detach()
	if t.reader != nil {
		_ = t.reader.Close()
		t.reader = nil
	}
	_ = t.sys.Close()
	_ = t.state.Close()
	return nil
}

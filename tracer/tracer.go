package tracer

import (
	"fmt"
	"log/slog"
	"os"
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

	// Hooks chooses how bind/connect/listen are traced; HooksAuto (the
	// zero value) picks the cheapest that this process can attach.
	Hooks SyscallHooks

	// Aggregate counts the transitions the filters keep, and the time
	// spent in each state, in the kernel (Tracer.Aggregates), and streams
	// only the transitions the socket table needs: TIME_WAIT enters,
	// listener changes and connect()'s start; of bind() only failures. For
	// serve: of a connection's ten transitions, one or two are sent.
	Aggregate bool
	// aggregateAll aggregates and still streams every event: for the test
	// that the kernel's counts are the stream's.
	aggregateAll bool
	// connectAtEntry remembers every connect() at its entry even where its
	// exit could read the call's arguments: for the test of that path, which
	// kernels without bpf_task_pt_regs (before 5.15) take.
	connectAtEntry bool

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
	cfg           Config
	userFilter    event.Filter // the part of cfg.Filter the kernel does not apply
	host          Host
	log           *slog.Logger
	clock         Clock
	state         sockstateObjects
	sys           *ebpf.Collection // the bind/connect/listen programs; nil without them
	hooks         SyscallHooks     // how they are attached
	connectAtExit bool             // connect() traced at its exit alone (cfg connect_regs)
	links         []link.Link
	reader        *ringbuf.Reader
	progs         map[string]*ebpf.Program
	batch         []event.Event
	lostSeen      uint64 // ring-buffer-full plus recursion misses already reported
	lastLost      time.Time
	degraded      []string
}

// Open checks the host, loads the programs with the filter compiled in,
// attaches them and opens the ring buffer. Errors that mean "this kernel or
// this process cannot" are *FeatureError; the parts it could do without are
// listed by Degraded.
func Open(cfg Config) (*Tracer, error) {
	host := ThisHost()
	if _, err := kernelConfig(&cfg.Filter); err != nil {
		return nil, err
	}
	if err := CheckFeatures(host); err != nil {
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
		host:  host,
		log:   cfg.Logger,
		progs: map[string]*ebpf.Program{},
		batch: make([]event.Event, 0, maxBatch+1),
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	// The kernel applies these; applied again here they could only
	// disagree with it (a connect's local port is not in the event).
	t.userFilter = cfg.Filter
	t.userFilter.Ports, t.userFilter.PID, t.userFilter.Family, t.userFilter.UIDs, t.userFilter.NetNS = nil, 0, 0, nil, 0
	if err := t.loadState(); err != nil {
		t.Close()
		return nil, err
	}
	if err := t.attachState(); err != nil {
		t.Close()
		return nil, err
	}
	t.openSyscalls()
	t.degraded = append(t.degraded, host.Limits()...)
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
	switch {
	case t.cfg.aggregateAll:
		c.Aggregate = uint8(sockstateTwAggregateTW_AGG_COUNT)
	case t.cfg.Aggregate:
		c.Aggregate = uint8(sockstateTwAggregateTW_AGG_COUNT | sockstateTwAggregateTW_AGG_ONLY)
	}
	syscallNumbers(&c)
	if t.connectAtExit {
		c.ConnectRegs = 1
	}
	return c
}

// Close detaches every program and frees every map. It is safe to call
// more than once and after Run returned.
func (t *Tracer) Close() error {
	t.detach()
	if t.reader != nil {
		_ = t.reader.Close()
		t.reader = nil
	}
	if t.sys != nil {
		t.sys.Close()
		t.sys = nil
	}
	_ = t.state.Close()
	return nil
}

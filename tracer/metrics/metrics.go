// Package metrics turns twtrace's event stream and socket table into
// Prometheus metrics, for `twtrace serve`: counters fed by the stream as it
// passes (transitions, failures, TIME_WAIT enters and ends, time in each
// state), gauges read from the socket table and the kernel at each scrape
// (sockets by state, TIME_WAIT by port, ephemeral ports per destination,
// the TcpExt counters). docs/metrics.md lists every metric.
//
// Every label is bounded: ports and destinations keep the busiest K and
// fold the rest into "other"; the extra label (--by-netns, --by-container)
// holds at most a fixed number of values and folds the rest, counting the
// folds. The package reads no kernel state of its own beyond /proc files
// (kstat) and imports no BPF code.
package metrics

import (
	"fmt"
	"sync"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/table"
)

// Bounds and defaults of the labels.
const (
	DefaultTopPorts        = 20
	DefaultTopDestinations = 20
	DefaultMaxLabelValues  = 32
	MaxTopPorts            = 1000
	MaxTopDestinations     = 1000
	MaxLabelValues         = 1024
	// DefaultLabelIdle is how long a value of the extra label keeps its
	// slot without being seen (a namespace or container that went away).
	DefaultLabelIdle = 10 * time.Minute
)

// maxErrnos bounds the errno values per syscall and extra label; a rare
// errno beyond them is counted as errno="other".
const maxErrnos = 16

// Config configures an Exporter.
type Config struct {
	TopPorts        int       // ports with a label of their own; 0: DefaultTopPorts
	TopDestinations int       // destinations with a label of their own; 0: DefaultTopDestinations
	Label           LabelMode // the extra label
	MaxLabelValues  int       // values of the extra label; 0: DefaultMaxLabelValues
	LabelIdle       time.Duration

	// Table is the session's socket table, read at each scrape.
	Table *table.Table
	// Kernel reads the TcpExt counters and sysctls of the namespace twtrace
	// runs in; nil leaves them out.
	Kernel *kstat.Reader
	// HostNetNS is the inode of that namespace.
	HostNetNS uint32
	// PortRange returns the usable ephemeral ports of a namespace: its
	// ip_local_port_range less ip_local_reserved_ports, as the session last
	// read them there (Session.EphemeralPorts: cheap, it is asked at every
	// scrape). nil: the host's (from Kernel) for every namespace.
	PortRange func(netns uint32) (int, bool)
	// ContainerOf names the container of a process ("" for none), for
	// LabelContainer; it is called once per new pid, off the scrape.
	ContainerOf func(pid uint32) string
	// Kernel-side aggregation: when set, transitions and the time in each
	// state come from it at each scrape, and state events only feed the
	// table.
	Aggregates func() (*Aggregates, error)

	Build BuildInfo
	Now   func() time.Time // nil: time.Now
}

// Aggregates are the transition counts and state-time histograms the
// kernel keeps, summed over CPUs.
type Aggregates struct {
	Transitions [NumStates][NumStates]uint64 // [old][new]
	Durations   [NumStates]KernelHist        // by old state
}

// KernelHist is one state's time histogram as the kernel keeps it.
type KernelHist struct {
	Slots        [Log2Slots]uint64
	SumHi, SumLo uint64 // the sum of nanoseconds, 128 bits
}

// NumStates sizes the per-state arrays: TCP states are 1..13, and the
// kernel's aggregates have 16 (tracer.AggStates).
const NumStates = 16

// Validate reports a configuration out of its bounds, as one sentence.
func (c *Config) Validate() error {
	switch {
	case c.TopPorts < 0 || c.TopPorts > MaxTopPorts:
		return fmt.Errorf("the number of ports with a label of their own must be from 1 to %d, got %d", MaxTopPorts, c.TopPorts)
	case c.TopDestinations < 0 || c.TopDestinations > MaxTopDestinations:
		return fmt.Errorf("the number of destinations with a label of their own must be from 1 to %d, got %d", MaxTopDestinations, c.TopDestinations)
	case c.MaxLabelValues < 0 || c.MaxLabelValues > MaxLabelValues:
		return fmt.Errorf("the number of values of the extra label must be from 1 to %d, got %d", MaxLabelValues, c.MaxLabelValues)
	case c.Table == nil:
		return fmt.Errorf("metrics need the socket table")
	}
	return nil
}

// Exporter is a prometheus.Collector of twtrace's metrics.
type Exporter struct {
	cfg    Config
	descs  descs
	mu     sync.Mutex
	now    int64 // Unix ns, per batch
	labels *labeler
	slots  []*slotData // by label slot
	kinds  [event.KindHeader + 1]uint64
	lost   uint64
	errors map[string]uint64 // collect errors by source
}

// slotData is what the stream counted for one value of the extra label.
type slotData struct {
	used bool
	streamCounts
	failures map[failKey]*portCounter
	errnos   [numSyscalls]int // distinct errnos per syscall
}

// streamCounts are a label value's fixed-size counters.
type streamCounts struct {
	transitions [NumStates][NumStates]uint64
	durations   [NumStates]durationHist
	twEnters    uint64
	twEnds      [event.TimeWaitKill + 1]uint64
}

type failKey struct {
	sys   syscallKind
	errno int32 // the negative errno; 1 stands for "other"
}

type syscallKind uint8

const (
	sysBind syscallKind = iota
	sysConnect
	sysListen
	numSyscalls
)

var syscallNames = [numSyscalls]string{"bind", "connect", "listen"}

const errnoOther = 1

// New returns an Exporter; cfg must be valid (Validate).
func New(cfg Config) *Exporter {
	if cfg.TopPorts == 0 {
		cfg.TopPorts = DefaultTopPorts
	}
	if cfg.TopDestinations == 0 {
		cfg.TopDestinations = DefaultTopDestinations
	}
	if cfg.MaxLabelValues == 0 {
		cfg.MaxLabelValues = DefaultMaxLabelValues
	}
	if cfg.LabelIdle <= 0 {
		cfg.LabelIdle = DefaultLabelIdle
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	x := &Exporter{
		cfg:    cfg,
		descs:  newDescs(cfg.Label),
		labels: newLabeler(cfg.Label, cfg.MaxLabelValues, int64(cfg.LabelIdle), cfg.ContainerOf),
		slots:  []*slotData{{used: cfg.Label == LabelNone}},
		errors: map[string]uint64{},
	}
	return x
}

// Observe counts a batch of events. It is the session's sink: it does not
// keep the slice, and it allocates only for a port, errno or label value
// it has not seen before.
func (x *Exporter) Observe(batch []event.Event) error {
	if len(batch) == 0 {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.now = x.cfg.Now().UnixNano()
	for i := range batch {
		x.observe(&batch[i])
	}
	return nil
}

func (x *Exporter) observe(ev *event.Event) {
	if int(ev.Kind) < len(x.kinds) {
		x.kinds[ev.Kind]++
	}
	switch ev.Kind {
	case event.KindState:
		if x.cfg.Aggregates != nil {
			return // counted in the kernel
		}
		s := x.slot(ev)
		if ev.Old < NumStates && ev.New < NumStates {
			s.transitions[ev.Old][ev.New]++
		}
		if ev.OldKnown && ev.Old < NumStates {
			s.durations[ev.Old].add(ev.OldDur)
		}
	case event.KindBind:
		if ev.Ret < 0 {
			x.fail(ev, sysBind, ev.Src.Port())
		}
	case event.KindConnect:
		if ev.Ret < 0 {
			x.fail(ev, sysConnect, ev.Dst.Port())
		}
	case event.KindListen:
		if ev.Ret < 0 {
			x.fail(ev, sysListen, ev.Src.Port())
		}
	case event.KindTimeWait:
		s := x.slot(ev)
		if ev.TimeWait == event.TimeWaitEnter {
			s.twEnters++
		} else if int(ev.TimeWait) < len(s.twEnds) {
			s.twEnds[ev.TimeWait]++
		}
	case event.KindLost:
		x.lost += ev.Lost
	}
}

func (x *Exporter) fail(ev *event.Event, sys syscallKind, port uint16) {
	s := x.slot(ev)
	k := failKey{sys, ev.Ret}
	c := s.failures[k]
	if c == nil {
		if s.failures == nil {
			s.failures = map[failKey]*portCounter{}
		}
		if s.errnos[sys] >= maxErrnos {
			k.errno = errnoOther
			c = s.failures[k]
		} else {
			s.errnos[sys]++
		}
		if c == nil {
			c = newPortCounter()
			s.failures[k] = c
		}
	}
	c.add(port, x.cfg.TopPorts)
}

// slot returns the counters of the event's value of the extra label.
func (x *Exporter) slot(ev *event.Event) *slotData {
	i := 0
	switch x.cfg.Label {
	case LabelNetNS:
		i = x.labels.netnsSlot(ev.NetNS, x.now, true)
	case LabelContainer:
		pid := ev.Owner
		if pid == 0 && ev.Kind != event.KindState && ev.Kind != event.KindTimeWait {
			pid = ev.PID // bind, connect, listen run in the caller
		}
		i = x.labels.pidSlot(pid, x.now)
	}
	for len(x.slots) <= i {
		x.slots = append(x.slots, &slotData{})
	}
	s := x.slots[i]
	s.used = true
	return s
}

// aggregates reads the kernel's, counting a failure; nil when none.
func (x *Exporter) aggregates() *Aggregates {
	if x.cfg.Aggregates == nil {
		return nil
	}
	agg, err := x.cfg.Aggregates()
	if err != nil {
		x.countError("kernel_aggregates")
		return nil
	}
	return agg
}

func (x *Exporter) countError(source string) {
	x.mu.Lock()
	x.errors[source]++
	x.mu.Unlock()
}

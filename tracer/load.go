package tracer

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// SyscallHooks says how bind(), connect() and listen() are traced.
type SyscallHooks uint8

// The two ways of tracing bind/connect/listen. Both run the same code at
// the same point of every syscall (the syscall tracepoints are built on
// sys_enter/sys_exit); they differ in what attaching needs and what it costs.
const (
	// HooksAuto tries the syscall tracepoints, then the raw ones.
	HooksAuto SyscallHooks = iota
	// HooksTracepoints: syscalls:sys_enter_bind and the others. Attaching
	// reads event ids from tracefs (mounted, or mounted privately, which
	// needs CAP_SYS_ADMIN). Measured: +70 ns on every syscall of the host.
	HooksTracepoints
	// HooksRaw: the raw sys_enter/sys_exit tracepoints, BTF-typed. They need
	// only CAP_BPF and CAP_PERFMON, but a program runs for every syscall of
	// the host: +200 ns on every syscall (docs/performance.md).
	HooksRaw
)

func (h SyscallHooks) String() string {
	switch h {
	case HooksTracepoints:
		return "syscall tracepoints"
	case HooksRaw:
		return "raw syscall tracepoints"
	}
	return "automatic"
}

// syscallTracepoints are the programs of HooksTracepoints, by tracepoint.
var syscallTracepoints = []string{
	"sys_enter_bind", "sys_exit_bind",
	"sys_enter_connect", "sys_exit_connect",
	"sys_enter_listen", "sys_exit_listen",
}

// rawSyscallPrograms are the programs of HooksRaw.
var rawSyscallPrograms = []string{"raw_sys_enter", "raw_sys_exit"}

// loadState loads the TCP state program with the ring buffer and counters
// every program shares.
func (t *Tracer) loadState() error {
	spec, err := loadSockstate()
	if err != nil {
		return err
	}
	spec.Maps["events"].MaxEntries = uint32(t.cfg.RingSize)
	if err := spec.Variables["cfg"].Set(t.kernelConfig()); err != nil {
		return fmt.Errorf("configure sockstate: %w", err)
	}
	if err := spec.LoadAndAssign(&t.state, nil); err != nil {
		return t.loadError("the TCP state program", "tracing", err)
	}
	t.progs["inet_sock_set_state"] = t.state.InetSockSetState
	return nil
}

// nestedProgram handles the transitions the state program misses because
// it is running on the CPU (see sockstate.c).
const nestedProgram = "inet_sock_set_state_nested"

// attachState attaches the state program, and with an in-kernel filter the
// nested one after it. Without a filter, a transition the state program
// misses is counted lost, and exactly: every transition is an event. With a
// filter, the kernel's count of misses cannot tell a transition the filter
// keeps from one it drops; the nested program handles them instead (it
// costs 70-90 ns a transition, a tenth of the state program's; see
// docs/performance.md).
func (t *Tracer) attachState() error {
	progs := []*ebpf.Program{t.state.InetSockSetState}
	if t.kernelFiltered() {
		progs = append(progs, t.state.InetSockSetStateNested)
		t.progs[nestedProgram] = t.state.InetSockSetStateNested
	}
	for _, p := range progs {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			return t.attachError("tp_btf/inet_sock_set_state", "4.16", err)
		}
		t.links = append(t.links, l)
	}
	return nil
}

// kernelFiltered reports whether the programs filter events.
func (t *Tracer) kernelFiltered() bool {
	f := &t.cfg.Filter
	return len(f.Ports) > 0 || f.PID != 0 || len(f.UIDs) > 0 || f.Family != 0 || f.NetNS != 0
}

// openSyscalls loads and attaches the bind/connect/listen programs, on the
// first hooks that work: the syscall tracepoints cost less, the raw ones need
// less. Without either, twtrace continues without these events and says so.
func (t *Tracer) openSyscalls() {
	// Where the kernel hands a program the task's saved registers,
	// connect() needs no entry program (syscalls.c, connect_at_exit).
	t.connectAtExit = !t.cfg.connectAtEntry && t.host.Helper(ebpf.TracePoint, asm.FnTaskPtRegs) == nil
	hooks := []SyscallHooks{HooksTracepoints, HooksRaw}
	if t.cfg.Hooks != HooksAuto {
		hooks = []SyscallHooks{t.cfg.Hooks}
	}
	var err error
	for _, h := range hooks {
		if err = t.openSyscallHooks(h); err == nil {
			t.hooks = h
			return
		}
		t.log.Debug("bind/connect/listen programs", "hooks", h, "err", err)
	}
	// The last failure says the most: the raw hooks need only what the
	// state program needs.
	t.degrade("bind/connect/listen events", err)
}

// openSyscallHooks loads the programs of one kind of hooks, sharing the
// state program's ring buffer and counters, and attaches all of them or none
// (half a syscall pair would leave entries behind).
func (t *Tracer) openSyscallHooks(h SyscallHooks) error {
	names, kind := syscallTracepoints, "tracepoint"
	if t.connectAtExit {
		names = slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == "sys_enter_connect" })
	}
	if h == HooksRaw {
		names, kind = rawSyscallPrograms, "tracing"
	} else if err := checkTracepoints(t.host); err != nil {
		return err
	}
	spec, err := loadSyscalls()
	if err != nil {
		return err
	}
	for name := range spec.Programs {
		if !slices.Contains(names, name) {
			delete(spec.Programs, name)
		}
	}
	// The copies of the shared maps must match the maps they are replaced
	// by, size included: --ring-size resizes both.
	spec.Maps["events"].MaxEntries = uint32(t.cfg.RingSize)
	if err := spec.Variables["cfg"].Set(t.kernelConfig()); err != nil {
		return fmt.Errorf("configure syscalls: %w", err)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		MapReplacements: map[string]*ebpf.Map{"events": t.state.Events, "stats": t.state.Stats},
	})
	if err != nil {
		return t.loadError("the syscall programs", kind, err)
	}
	var links []link.Link
	attach := func() error {
		for _, name := range names {
			l, err := attachSyscall(h, name, coll.Programs[name])
			if err != nil {
				return t.attachError(hookName(h, name), "4.7", err)
			}
			links = append(links, l)
		}
		return nil
	}
	if h == HooksTracepoints {
		err = withTracefs(attach)
	} else {
		err = attach()
	}
	if err != nil {
		for _, l := range links {
			_ = l.Close()
		}
		coll.Close()
		return err
	}
	t.sys = coll
	t.links = append(t.links, links...)
	for _, name := range names {
		t.progs[name] = coll.Programs[name]
	}
	return nil
}

func attachSyscall(h SyscallHooks, name string, p *ebpf.Program) (link.Link, error) {
	if h == HooksRaw {
		return link.AttachTracing(link.TracingOptions{Program: p})
	}
	return link.Tracepoint("syscalls", name, p, nil)
}

func hookName(h SyscallHooks, name string) string {
	if h == HooksRaw {
		return "tp_btf/" + name[len("raw_"):]
	}
	return "syscalls:" + name
}

// degrade records that part of the tracing is missing, as one sentence:
// "continuing without X: why, and how to get it".
func (t *Tracer) degrade(what string, err error) {
	var fe *FeatureError
	why := err.Error()
	if errors.As(err, &fe) {
		why = fe.Error()
	}
	t.degraded = append(t.degraded, "continuing without "+what+": "+why)
}

// Degraded lists, as sentences, the parts of the tracing this process or
// kernel could not have ("continuing without ..."), for the CLI to print, a
// capture's header to keep and the live view to mark.
func (t *Tracer) Degraded() []string { return slices.Clone(t.degraded) }

// Hooks says how bind/connect/listen are traced; HooksAuto when they are not.
func (t *Tracer) Hooks() SyscallHooks { return t.hooks }

// syscallNumbers are this architecture's numbers of the traced syscalls,
// for the raw hooks, which see every syscall.
func syscallNumbers(c *sockstateTwConfig) {
	c.NrBind, c.NrConnect, c.NrListen = unix.SYS_BIND, unix.SYS_CONNECT, unix.SYS_LISTEN
}

package tracer

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/tracertest"
	"github.com/twtrace/twtrace/tracer/event"
)

// fullHost has every feature and runs as root would (all capabilities but
// CAP_SYS_ADMIN, so that the check of CAP_BPF and CAP_PERFMON is the one
// that decides).
func fullHost() Host {
	return Host{
		Release:  "5.10.0-28-amd64",
		HasCap:   func(c int) bool { return c != capSysAdmin },
		BTF:      func() error { return nil },
		MapType:  func(ebpf.MapType) error { return nil },
		Tracing:  func() error { return nil },
		Lockdown: func() string { return "none" },

		ProgramType: func(ebpf.ProgramType) error { return nil },
		Helper:      func(ebpf.ProgramType, asm.BuiltinFunc) error { return nil },
	}
}

var errNotSupported = fmt.Errorf("probe: %w", ebpf.ErrNotSupported)

// Every message is one sentence, checked whole: what is missing, and how to get it.
func TestCheckFeaturesMessages(t *testing.T) {
	if err := CheckFeatures(fullHost()); err != nil {
		t.Fatalf("a host with everything: %v", err)
	}
	admin := fullHost()
	admin.HasCap = func(c int) bool { return c == capSysAdmin }
	if err := CheckFeatures(admin); err != nil {
		t.Fatalf("CAP_SYS_ADMIN alone implies CAP_BPF and CAP_PERFMON: %v", err)
	}
	only := func(caps ...int) func(int) bool {
		return func(c int) bool {
			for _, k := range caps {
				if c == k {
					return true
				}
			}
			return false
		}
	}
	for _, tc := range []struct {
		name    string
		mutate  func(h *Host)
		missing string
		msg     string
	}{
		{"no privilege", func(h *Host) { h.HasCap = only() }, "CAP_BPF and CAP_PERFMON",
			"twtrace needs CAP_BPF and CAP_PERFMON, which this process lacks: run it as root (sudo), or grant them with `sudo setcap cap_bpf,cap_perfmon,cap_sys_ptrace,cap_dac_read_search+ep $(command -v twtrace)`"},
		{"no CAP_PERFMON", func(h *Host) { h.HasCap = only(capBPF, capSysPtrace) }, "CAP_PERFMON",
			"twtrace needs CAP_PERFMON, which this process lacks: run it as root (sudo), or grant it with `sudo setcap cap_bpf,cap_perfmon,cap_sys_ptrace,cap_dac_read_search+ep $(command -v twtrace)`"},
		{"no CAP_BPF", func(h *Host) { h.HasCap = only(capPerfmon) }, "CAP_BPF",
			"twtrace needs CAP_BPF, which this process lacks: run it as root (sudo), or grant it with `sudo setcap cap_bpf,cap_perfmon,cap_sys_ptrace,cap_dac_read_search+ep $(command -v twtrace)`"},
		{"no BTF", func(h *Host) { h.BTF = func() error { return errors.New("no such file") } }, "kernel BTF",
			"this kernel has no BTF type information (/sys/kernel/btf/vmlinux): run twtrace on a kernel built with CONFIG_DEBUG_INFO_BTF=y, as most distributions' kernels since 2020 are"},
		{"no ring buffer", func(h *Host) { h.MapType = missingMap(ebpf.RingBuf) }, "BPF_MAP_TYPE_RINGBUF",
			"this kernel (5.10.0-28-amd64) has no BPF ring buffer (BPF_MAP_TYPE_RINGBUF, Linux 5.8): run twtrace on Linux 5.12 or newer, or on a distribution kernel that backports it"},
		{"no socket storage", func(h *Host) { h.MapType = missingMap(ebpf.SkStorage) }, "BPF_MAP_TYPE_SK_STORAGE",
			"this kernel (5.10.0-28-amd64) has no BPF socket storage (BPF_MAP_TYPE_SK_STORAGE, Linux 5.2): run twtrace on Linux 5.12 or newer, or on a distribution kernel that backports it"},
		{"no tracing programs", func(h *Host) { h.Tracing = func() error { return errNotSupported } }, "tp_btf",
			"this kernel (5.10.0-28-amd64) has no BTF tracing programs (tp_btf, Linux 5.5): run twtrace on Linux 5.12 or newer, or on a distribution kernel that backports it"},
		{"maps refused", func(h *Host) {
			h.MapType = func(ebpf.MapType) error { return fmt.Errorf("create map: %w", unix.EPERM) }
		},
			"BPF_MAP_TYPE_RINGBUF",
			"the kernel refused to create a BPF ring buffer (operation not permitted) although twtrace has CAP_BPF and CAP_PERFMON: kernel lockdown, a seccomp filter or an LSM policy forbids BPF tracing here; run twtrace where the host's policy allows it"},
		{"tracing refused under lockdown", func(h *Host) {
			h.Tracing = func() error { return fmt.Errorf("load program: %w", unix.EPERM) }
			h.Lockdown = func() string { return "confidentiality" }
		}, "tp_btf",
			"the kernel refused to load a BTF tracing program (operation not permitted) although twtrace has CAP_BPF and CAP_PERFMON: kernel lockdown (confidentiality), a seccomp filter or an LSM policy forbids it here; run twtrace where the host's policy allows BPF tracing"},
	} {
		h := fullHost()
		tc.mutate(&h)
		err := CheckFeatures(h)
		var fe *FeatureError
		if !errors.As(err, &fe) {
			t.Errorf("%s: error %v is not a FeatureError", tc.name, err)
			continue
		}
		if fe.Missing != tc.missing || fe.Error() != tc.msg {
			t.Errorf("%s: missing %q, message\n\t%s\nwant missing %q, message\n\t%s", tc.name, fe.Missing, fe.Error(), tc.missing, tc.msg)
		}
	}
}

func missingMap(missing ebpf.MapType) func(ebpf.MapType) error {
	return func(mt ebpf.MapType) error {
		if mt == missing {
			return errNotSupported
		}
		return nil
	}
}

// Load and attach failures: the verifier's refusal of a helper names the
// helper and the kernel that has it; EPERM names the policy; a missing
// tracepoint names the tracepoint.
func TestLoadAndAttachMessages(t *testing.T) {
	tr := &Tracer{host: fullHost(), log: slog.New(slog.DiscardHandler)}
	verifier := func(lines ...string) error {
		return &ebpf.VerifierError{Cause: unix.EINVAL, Log: append([]string{"0: R1=ctx() R10=fp0", "; int BPF_PROG(...)"}, lines...)}
	}
	for _, tc := range []struct {
		name    string
		err     error
		missing string
		msg     string
	}{
		{"helper unknown (5.x wording)", tr.loadError("the TCP state program", "tracing",
			verifier("12: (85) call bpf_get_socket_cookie#46", "unknown func bpf_get_socket_cookie#46", "processed 12 insns")),
			"bpf_get_socket_cookie",
			"this kernel (5.10.0-28-amd64) does not let tracing programs call bpf_get_socket_cookie (Linux 5.12 added it): run twtrace on Linux 5.12 or newer, or on a distribution kernel that backports it"},
		{"helper refused (6.x wording)", tr.loadError("the TCP state program", "tracing",
			verifier("program of this type cannot use helper bpf_sk_storage_get#107")),
			"bpf_sk_storage_get",
			"this kernel (5.10.0-28-amd64) does not let tracing programs call bpf_sk_storage_get (Linux 5.11 added it): run twtrace on Linux 5.12 or newer, or on a distribution kernel that backports it"},
		{"helper beyond the kernel's list", tr.loadError("the syscall programs", "tracepoint",
			verifier("invalid func unknown#211")),
			"helper #211",
			"this kernel (5.10.0-28-amd64) does not let tracepoint programs call helper #211 (a later kernel added it): run twtrace on Linux 5.12 or newer, or on a distribution kernel that backports it"},
		{"load refused", tr.loadError("the TCP state program", "tracing", fmt.Errorf("load program: %w", unix.EPERM)),
			"the TCP state program",
			"the kernel refused to load the TCP state program (operation not permitted) although twtrace has CAP_BPF and CAP_PERFMON: kernel lockdown, a seccomp filter or an LSM policy forbids BPF tracing here; run twtrace where the host's policy allows it"},
		{"attach refused", tr.attachError("tp_btf/inet_sock_set_state", "4.16", fmt.Errorf("attach: %w", unix.EPERM)),
			"tp_btf/inet_sock_set_state",
			"the kernel refused to attach tp_btf/inet_sock_set_state (operation not permitted) although twtrace has CAP_BPF and CAP_PERFMON: kernel lockdown, a seccomp filter or an LSM policy forbids BPF tracing here; run twtrace where the host's policy allows it"},
		{"no tracepoint", tr.attachError("syscalls:sys_enter_bind", "4.7", fmt.Errorf("open tracepoint: %w", unix.ENOENT)),
			"syscalls:sys_enter_bind",
			"this kernel (5.10.0-28-amd64) has no tracepoint syscalls:sys_enter_bind (Linux 4.7): run twtrace on Linux 5.12 or newer, or on a distribution kernel that backports it"},
	} {
		var fe *FeatureError
		if !errors.As(tc.err, &fe) {
			t.Errorf("%s: error %v is not a FeatureError", tc.name, tc.err)
			continue
		}
		if fe.Missing != tc.missing || fe.Error() != tc.msg {
			t.Errorf("%s: missing %q, message\n\t%s\nwant missing %q, message\n\t%s", tc.name, fe.Missing, fe.Error(), tc.missing, tc.msg)
		}
	}

	locked := fullHost()
	locked.Lockdown = func() string { return "confidentiality" }
	tr.host = locked
	err := tr.loadError("the syscall programs", "tracing", verifier("unknown func bpf_probe_read_kernel#113"))
	const want = "kernel lockdown (confidentiality) keeps BPF programs from reading kernel memory (bpf_probe_read_kernel): boot the kernel with lockdown=integrity or without lockdown to trace with twtrace"
	if err == nil || err.Error() != want {
		t.Errorf("helper taken away by lockdown: %v\nwant %s", err, want)
	}

	// Any other refusal is a runtime failure with the verifier's last lines.
	err = tr.loadError("the TCP state program", "tracing", verifier("R1 invalid mem access 'scalar'", "processed 40 insns"))
	var fe *FeatureError
	if errors.As(err, &fe) || err.Error() != "load the TCP state program: the verifier refused it: "+
		"0: R1=ctx() R10=fp0; ; int BPF_PROG(...); R1 invalid mem access 'scalar'; processed 40 insns" {
		t.Errorf("a program the verifier refuses: %v", err)
	}
}

// The syscall tracepoints' programs, probed by cilium's probes: a helper
// missing there means the raw syscall tracepoints, and the reason says it.
func TestCheckTracepoints(t *testing.T) {
	if err := checkTracepoints(fullHost()); err != nil {
		t.Fatalf("a host with everything: %v", err)
	}
	h := fullHost()
	h.Helper = func(pt ebpf.ProgramType, fn asm.BuiltinFunc) error {
		if pt == ebpf.TracePoint && fn == asm.FnRingbufReserve {
			return errNotSupported
		}
		return nil
	}
	const want = "this kernel (5.10.0-28-amd64) has no bpf_ringbuf_reserve for tracepoint programs (Linux 5.8): " +
		"run twtrace on Linux 5.12 or newer, or on a distribution kernel that backports it"
	if err := checkTracepoints(h); err == nil || err.Error() != want {
		t.Errorf("no ring buffer helper: %v\nwant %s", err, want)
	}
	h = fullHost()
	h.ProgramType = func(ebpf.ProgramType) error { return errNotSupported }
	if err := checkTracepoints(h); err == nil || !strings.HasPrefix(err.Error(), "this kernel (5.10.0-28-amd64) has no tracepoint programs (Linux 4.7): ") {
		t.Errorf("no tracepoint programs: %v", err)
	}
}

// A part twtrace runs without is one sentence: what, then why and how to get it.
func TestDegrade(t *testing.T) {
	tr := &Tracer{}
	tr.degrade("bind/connect/listen events", fmt.Errorf("load: %w", &FeatureError{Reason: "this kernel has no X", Fix: "upgrade"}))
	tr.degrade("Y", errors.New("attach syscalls:sys_enter_bind: boom"))
	want := []string{
		"continuing without bind/connect/listen events: this kernel has no X: upgrade",
		"continuing without Y: attach syscalls:sys_enter_bind: boom",
	}
	if got := tr.Degraded(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("degraded %q, want %q", got, want)
	}
}

// Optional privileges: without them twtrace runs and says what it does without.
func TestLimits(t *testing.T) {
	h := fullHost()
	h.HasCap = func(c int) bool { return c == capBPF || c == capPerfmon || c == capSysPtrace }
	want := []string{
		"continuing without the owners of other users' sockets older than twtrace: reading another user's /proc/PID/fd needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH",
		"continuing without checking other network namespaces' TIME_WAIT sockets against the kernel (they end by their timer): entering a namespace needs CAP_SYS_ADMIN",
	}
	got := h.Limits()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("limits\n\t%q\nwant\n\t%q", got, want)
	}
	h.HasCap = func(int) bool { return true }
	if got := h.Limits(); len(got) != 0 {
		t.Errorf("root has no limits, got %q", got)
	}
}

// The real probes pass on this kernel, as root.
func TestProbesOfThisHost(t *testing.T) {
	tracertest.Require(t)
	if err := CheckFeatures(ThisHost()); err != nil {
		t.Fatalf("the probes of this host: %v", err)
	}
	if got := ThisHost().Limits(); len(got) != 0 {
		t.Errorf("root lacks optional privileges: %q", got)
	}
}

// The kernel-side part of a filter: at most TW_MAX_PORTS ports and
// TW_MAX_UIDS uids, and the values land in the configuration the programs read.
func TestKernelConfig(t *testing.T) {
	if _, err := kernelConfig(&event.Filter{Ports: make([]uint16, MaxPorts+1)}); err == nil {
		t.Error("accepted more ports than the kernel filter holds")
	}
	if _, err := kernelConfig(&event.Filter{UIDs: make([]uint32, MaxUIDs+1)}); err == nil {
		t.Error("accepted more uids than the kernel filter holds")
	}
	c, err := kernelConfig(&event.Filter{Ports: []uint16{1, 2}, PID: 3, Family: event.FamilyIPv4, UIDs: []uint32{0, 1000}, NetNS: 77})
	if err != nil {
		t.Fatal(err)
	}
	if c.Nports != 2 || c.Ports[0] != 1 || c.Ports[1] != 2 || c.Pid != 3 || c.Family != 2 ||
		c.Nuids != 2 || c.Uids[0] != 0 || c.Uids[1] != 1000 || c.Netns != 77 {
		t.Errorf("kernel config %+v", c)
	}
}

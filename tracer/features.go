package tracer

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// FeatureError says that a privilege or a kernel feature twtrace needs is
// missing, and how to get it. Its message is one sentence, "what is missing:
// how to get it", printed as it is; the CLI exits with code 3 for it.
type FeatureError struct {
	Missing string // what is missing, for programs and tests: "CAP_PERFMON", "BPF_MAP_TYPE_RINGBUF", "bpf_get_socket_cookie"
	Reason  string // a clause saying what is missing: "this kernel has no BPF ring buffer (...)"
	Fix     string // a clause saying how to get it: "run twtrace on Linux 5.12 or newer, ..."
	Err     error  // the underlying error, if any: for the debug log, not the sentence
}

func (e *FeatureError) Error() string { return e.Reason + ": " + e.Fix }

func (e *FeatureError) Unwrap() error { return e.Err }

// MinKernel is the oldest mainline kernel with everything twtrace uses: the
// last piece is bpf_get_socket_cookie in tracing programs. No version is
// compared: a distribution kernel may backport what it needs, so features
// are probed, and this is only what a message advises.
const MinKernel = "5.12"

// upgrade is the fix for any missing kernel feature: the kernel that has all of them.
const upgrade = "run twtrace on Linux " + MinKernel + " or newer, or on a distribution kernel that backports it"

// Capabilities twtrace checks for.
const (
	capDACReadSearch = 2  // CAP_DAC_READ_SEARCH
	capSysPtrace     = 19 // CAP_SYS_PTRACE
	capSysAdmin      = 21 // CAP_SYS_ADMIN: before Linux 5.8, BPF and perf needed it
	capPerfmon       = 38 // CAP_PERFMON, Linux 5.8
	capBPF           = 39 // CAP_BPF, Linux 5.8
)

// SetcapHint grants the capabilities of a full trace but one: CAP_SYS_ADMIN
// (other network namespaces), which twtrace runs without (README.md).
const SetcapHint = "sudo setcap cap_bpf,cap_perfmon,cap_sys_ptrace,cap_dac_read_search+ep $(command -v twtrace)"

// Host is what the feature check looks at: the process's capabilities and
// probes of the running kernel. ThisHost is the real one; tests pass others.
// A probe returns nil when the feature is there, an error wrapping
// ebpf.ErrNotSupported when it is not, and any other error when the kernel
// refused to answer (typically EPERM).
type Host struct {
	Release  string             // uname -r, for messages
	HasCap   func(cap int) bool // the effective capability set
	BTF      func() error       // kernel BTF is readable
	MapType  func(ebpf.MapType) error
	Tracing  func() error  // a tp_btf program loads (the state program's type)
	Lockdown func() string // the active kernel lockdown mode: "none", "integrity", "confidentiality", or "" unknown

	// ProgramType and Helper probe the classic tracepoint programs of the
	// syscall tracepoints (cilium's probes answer for that type).
	ProgramType func(ebpf.ProgramType) error
	Helper      func(ebpf.ProgramType, asm.BuiltinFunc) error
}

// tracepointHelpers are the helpers of the syscall tracepoints' programs
// that came after tracepoint programs themselves.
var tracepointHelpers = []struct {
	fn    asm.BuiltinFunc
	name  string
	since string
}{
	{asm.FnProbeReadUser, "bpf_probe_read_user", "5.5"},
	{asm.FnProbeReadKernel, "bpf_probe_read_kernel", "5.5"},
	{asm.FnRingbufReserve, "bpf_ringbuf_reserve", "5.8"},
	{asm.FnRingbufQuery, "bpf_ringbuf_query", "5.8"},
	{asm.FnGetCurrentCgroupId, "bpf_get_current_cgroup_id", "4.18"},
}

// checkTracepoints says whether the syscall tracepoints' programs can load
// here: when not, the raw syscall tracepoints are used instead.
func checkTracepoints(h Host) error {
	if err := h.ProgramType(ebpf.TracePoint); err != nil {
		return probeError(h, "tracepoint programs", "tracepoint programs (Linux 4.7)", "load a tracepoint program", err)
	}
	for _, hp := range tracepointHelpers {
		if err := h.Helper(ebpf.TracePoint, hp.fn); err != nil {
			return probeError(h, hp.name, fmt.Sprintf("%s for tracepoint programs (Linux %s)", hp.name, hp.since),
				"probe "+hp.name, err)
		}
	}
	return nil
}

// mapsUsed are the map types the programs create, with the mainline kernel
// that introduced each and a name for people.
var mapsUsed = []struct {
	typ   ebpf.MapType
	name  string
	since string
	what  string
}{
	{ebpf.RingBuf, "BPF_MAP_TYPE_RINGBUF", "5.8", "BPF ring buffer"},
	{ebpf.SkStorage, "BPF_MAP_TYPE_SK_STORAGE", "5.2", "BPF socket storage"},
	{ebpf.PerCPUArray, "BPF_MAP_TYPE_PERCPU_ARRAY", "4.6", "BPF per-CPU array"},
	{ebpf.Hash, "BPF_MAP_TYPE_HASH", "3.19", "BPF hash map"},
}

// CheckFeatures verifies, before anything is loaded, that the privileges and
// the kernel are enough. The error, a *FeatureError, names the missing piece.
// Helpers are checked when the programs load (see loadError): the kernel
// has no probe for the helpers of tracing programs other than loading them.
func CheckFeatures(h Host) error {
	if err := checkPrivileges(h); err != nil {
		return err
	}
	if err := h.BTF(); err != nil {
		return &FeatureError{
			Missing: "kernel BTF",
			Reason:  "this kernel has no BTF type information (/sys/kernel/btf/vmlinux)",
			Fix:     "run twtrace on a kernel built with CONFIG_DEBUG_INFO_BTF=y, as most distributions' kernels since 2020 are",
			Err:     err,
		}
	}
	for _, m := range mapsUsed {
		if err := h.MapType(m.typ); err != nil {
			return probeError(h, m.name, fmt.Sprintf("%s (%s, Linux %s)", m.what, m.name, m.since),
				"create a "+m.what, err)
		}
	}
	if err := h.Tracing(); err != nil {
		return probeError(h, "tp_btf", "BTF tracing programs (tp_btf, Linux 5.5)", "load a BTF tracing program", err)
	}
	return nil
}

// checkPrivileges names exactly the capabilities that are missing. Since
// Linux 5.8 CAP_SYS_ADMIN still implies both.
func checkPrivileges(h Host) error {
	if h.HasCap(capSysAdmin) {
		return nil
	}
	var missing []string
	for _, c := range []struct {
		bit  int
		name string
	}{{capBPF, "CAP_BPF"}, {capPerfmon, "CAP_PERFMON"}} {
		if !h.HasCap(c.bit) {
			missing = append(missing, c.name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	names, them := strings.Join(missing, " and "), "them"
	if len(missing) == 1 {
		them = "it"
	}
	return &FeatureError{
		Missing: names,
		Reason:  "twtrace needs " + names + ", which this process lacks",
		Fix:     "run it as root (sudo), or grant " + them + " with `" + SetcapHint + "`",
	}
}

// probeError turns a failed probe into a FeatureError: the feature is
// missing, or the kernel refused to say (a policy forbids BPF).
func probeError(h Host, missing, feature, action string, err error) error {
	if errors.Is(err, ebpf.ErrNotSupported) {
		return &FeatureError{
			Missing: missing,
			Reason:  fmt.Sprintf("this kernel (%s) has no %s", h.Release, feature),
			Fix:     upgrade,
			Err:     err,
		}
	}
	return refused(h, missing, action, err)
}

// refused is the FeatureError for a kernel that refuses what the
// capabilities allow: lockdown, seccomp, an LSM.
func refused(h Host, missing, action string, err error) *FeatureError {
	fix := "kernel lockdown, a seccomp filter or an LSM policy forbids BPF tracing here; run twtrace where the host's policy allows it"
	if mode := h.Lockdown(); mode == "integrity" || mode == "confidentiality" {
		fix = "kernel lockdown (" + mode + "), a seccomp filter or an LSM policy forbids it here; run twtrace where the host's policy allows BPF tracing"
	}
	return &FeatureError{
		Missing: missing,
		Reason:  fmt.Sprintf("the kernel refused to %s (%s) although twtrace has CAP_BPF and CAP_PERFMON", action, errnoText(err)),
		Fix:     fix,
		Err:     err,
	}
}

// optionalPrivileges are capabilities twtrace runs without, doing less:
// each gives one sentence when it is missing.
var optionalPrivileges = []struct {
	caps    []int
	without string
	needs   string
}{
	{[]int{capSysPtrace, capDACReadSearch},
		"the owners of other users' sockets older than twtrace",
		"reading another user's /proc/PID/fd needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH"},
	{[]int{capSysAdmin},
		"checking other network namespaces' TIME_WAIT sockets against the kernel (they end by their timer)",
		"entering a namespace needs CAP_SYS_ADMIN"},
}

// Limits returns a "continuing without ..." sentence for each optional
// privilege the process lacks.
func (h Host) Limits() []string {
	var out []string
	for _, p := range optionalPrivileges {
		if slices.ContainsFunc(p.caps, func(c int) bool { return !h.HasCap(c) }) {
			out = append(out, "continuing without "+p.without+": "+p.needs)
		}
	}
	return out
}

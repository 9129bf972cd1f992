package tracer

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// FeatureError says that a privilege or a kernel feature twtrace needs is
// missing, and how to get it. The CLI exits with code 3 for it.
type FeatureError struct {
	Missing string // what is missing, e.g. "CAP_BPF"
	Fix     string // one sentence: how to get it
	Err     error  // the underlying error, if any
}

func (e *FeatureError) Error() string {
	msg := e.Missing
	if e.Fix != "" {
		msg += ": " + e.Fix
	}
	if e.Err != nil {
		msg += " (" + e.Err.Error() + ")"
	}
	return msg
}

func (e *FeatureError) Unwrap() error { return e.Err }

// MinKernel is the oldest kernel twtrace supports: the BPF ring buffer.
var MinKernel = KernelVersion{5, 8, 0}

// KernelVersion is a kernel release as major.minor.patch.
type KernelVersion [3]int

func (v KernelVersion) String() string { return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]) }

// Less reports whether v is older than w.
func (v KernelVersion) Less(w KernelVersion) bool {
	for i := range v {
		if v[i] != w[i] {
			return v[i] < w[i]
		}
	}
	return false
}

// ParseKernelRelease reads the version at the start of a uname release
// string such as "6.18.44-fc-v657" or "5.15.0-91-generic".
func ParseKernelRelease(release string) (KernelVersion, error) {
	var v KernelVersion
	rest := release
	for i := range v {
		end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if end == 0 {
			if i < 2 {
				return v, fmt.Errorf("kernel release %q: no version number", release)
			}
			break
		}
		if end < 0 {
			end = len(rest)
		}
		n, err := strconv.Atoi(rest[:end])
		if err != nil {
			return v, fmt.Errorf("kernel release %q: %w", release, err)
		}
		v[i] = n
		rest = rest[end:]
		if !strings.HasPrefix(rest, ".") {
			if i < 1 {
				return v, fmt.Errorf("kernel release %q: no minor version", release)
			}
			break
		}
		rest = rest[1:]
	}
	return v, nil
}

// Capabilities twtrace needs when not running as root.
const (
	capBPF     = 39 // CAP_BPF, Linux 5.8
	capPerfmon = 38 // CAP_PERFMON, Linux 5.8
)

// Host is what the feature check looks at; tests replace it.
type Host struct {
	Release string             // uname -r
	EUID    int                //
	HasCap  func(cap int) bool // effective capability set
	LoadBTF func() error       // kernel BTF is readable
}

// ThisHost describes the running system.
func ThisHost() Host {
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	return Host{
		Release: unix.ByteSliceToString(uts.Release[:]),
		EUID:    os.Geteuid(),
		HasCap:  hasEffectiveCap,
		LoadBTF: func() error {
			_, err := btf.LoadKernelSpec()
			return err
		},
	}
}

// CheckFeatures verifies, before anything is loaded, that the kernel and the
// privileges are enough. The error, a *FeatureError, names the missing piece.
func CheckFeatures(h Host) error {
	v, err := ParseKernelRelease(h.Release)
	if err != nil {
		return &FeatureError{Missing: "a readable kernel version", Err: err}
	}
	if v.Less(MinKernel) {
		return &FeatureError{
			Missing: fmt.Sprintf("kernel %s is older than %s", v, MinKernel),
			Fix:     "twtrace needs the BPF ring buffer and BTF raw tracepoints; run it on Linux 5.8 or newer",
		}
	}
	if h.EUID != 0 && !(h.HasCap(capBPF) && h.HasCap(capPerfmon)) {
		return &FeatureError{
			Missing: "CAP_BPF and CAP_PERFMON",
			Fix: "run twtrace as root (sudo), or grant the capabilities once with " +
				"`sudo setcap cap_bpf,cap_perfmon,cap_net_admin,cap_sys_ptrace,cap_dac_read_search+ep " +
				"$(command -v twtrace)`",
		}
	}
	if err := h.LoadBTF(); err != nil {
		return &FeatureError{
			Missing: "kernel BTF (/sys/kernel/btf/vmlinux)",
			Fix:     "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distributions since 2020 are)",
			Err:     err,
		}
	}
	return nil
}

func hasEffectiveCap(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[c/32].Effective&(1<<(uint(c)%32)) != 0
}

// asFeatureError turns the errors of loading and attaching that mean "this
// kernel or this process cannot" into a FeatureError.
func asFeatureError(what string, err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return &FeatureError{
			Missing: "permission to " + what,
			Fix:     "run twtrace as root; under kernel lockdown or a restrictive seccomp/LSM policy BPF tracing may be refused altogether",
			Err:     err,
		}
	case errors.Is(err, os.ErrNotExist):
		return &FeatureError{Missing: what + " is not available in this kernel", Err: err}
	}
	return nil
}

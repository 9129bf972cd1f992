package tracer

import (
	"errors"
	"os"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

// ThisHost probes the running system. cilium/ebpf's probes are used where
// they answer for the program types twtrace loads: its probe of tracing
// programs attaches an fentry program, which a kernel may refuse (lockdown)
// while it accepts the tp_btf programs twtrace uses, so that one is ours.
func ThisHost() Host {
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	caps := effectiveCaps()
	return Host{
		Release: unix.ByteSliceToString(uts.Release[:]),
		HasCap:  func(c int) bool { return c < 64 && caps&(1<<uint(c)) != 0 },
		BTF: func() error {
			_, err := btf.LoadKernelSpec()
			return err
		},
		MapType:     features.HaveMapType,
		Tracing:     probeTracing,
		Lockdown:    lockdownMode,
		ProgramType: features.HaveProgramType,
		Helper:      features.HaveProgramHelper,
	}
}

// effectiveCaps reads the effective capability set of this process.
func effectiveCaps() uint64 {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0
	}
	return uint64(data[1].Effective)<<32 | uint64(data[0].Effective)
}

// probeTracing loads the smallest tp_btf program on the tracepoint the
// state program uses, once per process.
var probeTracing = sync.OnceValue(func() error {
	prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Type:       ebpf.Tracing,
		AttachType: ebpf.AttachTraceRawTp,
		AttachTo:   "inet_sock_set_state",
		License:    "GPL",
		Instructions: asm.Instructions{
			asm.LoadImm(asm.R0, 0, asm.DWord),
			asm.Return(),
		},
	}, ebpf.ProgramOptions{LogDisabled: true})
	if err == nil {
		prog.Close()
		return nil
	}
	// EINVAL: the program type or attach type is unknown; E2BIG: the
	// kernel's bpf_attr is older than the library's; ENOENT: BTF has no such
	// tracepoint.
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.E2BIG) || errors.Is(err, btf.ErrNotFound) {
		return errors.Join(ebpf.ErrNotSupported, err)
	}
	return err
})

// lockdownMode reads the active mode from securityfs, shown in brackets:
// "none [integrity] confidentiality". "" when it cannot be read.
func lockdownMode() string {
	b, err := os.ReadFile("/sys/kernel/security/lockdown")
	if err != nil {
		return ""
	}
	s := string(b)
	i, j := strings.IndexByte(s, '['), strings.IndexByte(s, ']')
	if i < 0 || j < i {
		return ""
	}
	return s[i+1 : j]
}

// errnoText is the errno an error carries, as strerror says it, or the
// error itself when it carries none.
func errnoText(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	if err == nil {
		return "no reason given"
	}
	return err.Error()
}

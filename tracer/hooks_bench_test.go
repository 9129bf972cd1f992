package tracer

import (
	"errors"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/tracertest"
)

// BenchmarkSyscallHooks measures what each way of tracing bind/connect/
// listen costs every other syscall of the host: the time of getppid(), the
// cheapest syscall, untraced and with each set of programs attached (ns/op),
// and with bpf_stats the programs' own run time per syscall (prog-ns/op).
// The syscall tracepoints send every syscall through the kernel's slow path
// and a check of the syscall number; the raw tracepoints run a program at
// the entry and the exit of every syscall, which checks the number itself.
func BenchmarkSyscallHooks(b *testing.B) {
	tracertest.Require(b)
	for _, tc := range []struct {
		name  string
		hooks SyscallHooks
		stats bool
	}{
		{"untraced", 0, false},
		{"tracepoints", HooksTracepoints, false},
		{"raw", HooksRaw, false},
		{"raw-bpf_stats", HooksRaw, true},
	} {
		b.Run(tc.name, func(b *testing.B) { benchHooks(b, tc.hooks, tc.stats) })
	}
}

func benchHooks(b *testing.B, hooks SyscallHooks, stats bool) {
	var tr *Tracer
	if hooks != 0 {
		tracertest.LockBPF(b)
		var err error
		if tr, err = Open(Config{Hooks: hooks}); err != nil {
			var fe *FeatureError
			if errors.As(err, &fe) {
				tracertest.Unavailable(b, err)
			}
			b.Fatal(err)
		}
		defer tr.Close()
		if tr.Hooks() != hooks {
			b.Fatalf("attached %v, want %v", tr.Hooks(), hooks)
		}
	}
	if stats {
		// Only while the returned fd is open: no sysctl is changed.
		fd, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
		if err != nil {
			b.Fatal(err)
		}
		defer fd.Close()
	}
	before := progTime(b, tr)
	b.ResetTimer()
	for range b.N {
		unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0)
	}
	b.StopTimer()
	if stats {
		b.ReportMetric(float64(progTime(b, tr)-before)/float64(b.N), "prog-ns/op")
	}
}

// progTime is the run time of the bind/connect/listen programs so far.
func progTime(b *testing.B, tr *Tracer) time.Duration {
	if tr == nil {
		return 0
	}
	s, err := tr.Stats()
	if err != nil {
		b.Fatal(err)
	}
	var d time.Duration
	for name, p := range s.Programs {
		if name != "inet_sock_set_state" && name != nestedProgram {
			d += p.RunTime
		}
	}
	return d
}

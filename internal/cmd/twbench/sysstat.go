package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// busyClock reads the machine's busy CPU time: elapsed time times CPUs,
// minus what cpuidle says they idled. /proc/stat samples at scheduler ticks
// and, with NO_HZ, misses most of a periodic load (it showed a 5 000/s churn
// as 1% busy when it used a third of a CPU); cpuidle records each idle
// period's exact length.
type busyClock struct {
	at   time.Time
	idle time.Duration
	ncpu int
}

func readBusy() busyClock {
	b := busyClock{at: time.Now()}
	cpus, _ := filepath.Glob("/sys/devices/system/cpu/cpu[0-9]*/cpuidle")
	for _, dir := range cpus {
		states, _ := filepath.Glob(dir + "/state[0-9]*/time")
		for _, f := range states {
			raw, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			us, _ := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
			b.idle += time.Duration(us) * time.Microsecond
		}
	}
	b.ncpu = len(cpus)
	return b
}

// busySince returns the busy CPU time since an earlier reading.
func (b busyClock) busySince(from busyClock) time.Duration {
	return time.Duration(b.ncpu)*b.at.Sub(from.at) - (b.idle - from.idle)
}

const bpfStatsSysctl = "/proc/sys/kernel/bpf_stats_enabled"

// enableBPFStats turns the kernel's per-program statistics on and returns
// the function that puts the previous value back.
func enableBPFStats() (restore func(), err error) {
	old, err := os.ReadFile(bpfStatsSysctl)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(bpfStatsSysctl, []byte("1"), 0o644); err != nil {
		return nil, err
	}
	return func() { _ = os.WriteFile(bpfStatsSysctl, old, 0o644) }, nil
}

// hostLine describes the machine the numbers come from.
func hostLine() string {
	rel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	cs, _ := os.ReadFile("/sys/devices/system/clocksource/clocksource0/current_clocksource")
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("Linux %s, %d CPUs (%s), clocksource %s", strings.TrimSpace(string(rel)),
		runtime.NumCPU(), model, strings.TrimSpace(string(cs)))
}

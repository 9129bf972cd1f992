package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// busyCPU returns the CPU time all CPUs spent not idle so far (user, nice,
// system, irq, softirq), from /proc/stat.
func busyCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var total int64
	for _, i := range []int{1, 2, 3, 6, 7} {
		var v int64
		fmt.Sscan(f[i], &v)
		total += v
	}
	return time.Duration(total) * time.Second / clockTicks
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

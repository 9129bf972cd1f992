package tracer

import (
	"errors"
	"testing"

	"github.com/twtrace/twtrace/tracer/event"
)

func TestParseKernelRelease(t *testing.T) {
	for in, want := range map[string]KernelVersion{
		"6.18.44-fc-v657":     {6, 18, 44},
		"5.15.0-91-generic":   {5, 15, 0},
		"5.8":                 {5, 8, 0},
		"4.19.0+":             {4, 19, 0},
		"6.1.0-rc3":           {6, 1, 0},
		"5.4.0-1103-aws":      {5, 4, 0},
		"6.12.1.el9.x86_64":   {6, 12, 1},
		"3.10.0-1160.el7.x86": {3, 10, 0},
	} {
		got, err := ParseKernelRelease(in)
		if err != nil || got != want {
			t.Errorf("ParseKernelRelease(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "linux", "6"} {
		if _, err := ParseKernelRelease(bad); err == nil {
			t.Errorf("ParseKernelRelease(%q) accepted", bad)
		}
	}
}

func TestCheckFeatures(t *testing.T) {
	ok := Host{Release: "6.1.0", EUID: 0, HasCap: func(int) bool { return false }, LoadBTF: func() error { return nil }}
	if err := CheckFeatures(ok); err != nil {
		t.Fatalf("root on 6.1 with BTF: %v", err)
	}
	caps := ok
	caps.EUID = 1000
	caps.HasCap = func(c int) bool { return c == capBPF || c == capPerfmon }
	if err := CheckFeatures(caps); err != nil {
		t.Fatalf("non-root with CAP_BPF+CAP_PERFMON: %v", err)
	}
	for _, tc := range []struct {
		name    string
		mutate  func(h *Host)
		missing string
	}{
		{"old kernel", func(h *Host) { h.Release = "5.4.0-150-generic" }, "kernel 5.4.0 is older than 5.8.0"},
		{"no privilege", func(h *Host) { h.EUID = 1000 }, "CAP_BPF and CAP_PERFMON"},
		{"only CAP_BPF", func(h *Host) { h.EUID = 1000; h.HasCap = func(c int) bool { return c == capBPF } }, "CAP_BPF and CAP_PERFMON"},
		{"no BTF", func(h *Host) { h.LoadBTF = func() error { return errors.New("no such file") } }, "kernel BTF (/sys/kernel/btf/vmlinux)"},
	} {
		h := ok
		tc.mutate(&h)
		err := CheckFeatures(h)
		var fe *FeatureError
		if !errors.As(err, &fe) {
			t.Errorf("%s: error %v is not a FeatureError", tc.name, err)
			continue
		}
		if fe.Missing != tc.missing || fe.Fix == "" {
			t.Errorf("%s: missing %q fix %q; want missing %q and a fix", tc.name, fe.Missing, fe.Fix, tc.missing)
		}
	}
}

// The kernel-side part of a filter: at most TW_MAX_PORTS ports, and the
// values land in the configuration the programs read.
func TestKernelConfig(t *testing.T) {
	if _, err := kernelConfig(&event.Filter{Ports: make([]uint16, MaxPorts+1)}); err == nil {
		t.Error("accepted more ports than the kernel filter holds")
	}
	c, err := kernelConfig(&event.Filter{Ports: []uint16{1, 2}, PID: 3, Family: event.FamilyIPv4})
	if err != nil {
		t.Fatal(err)
	}
	if c.Nports != 2 || c.Ports[0] != 1 || c.Ports[1] != 2 || c.Pid != 3 || c.Family != 2 {
		t.Errorf("kernel config %+v", c)
	}
}

package session

import (
	"testing"

	"github.com/twtrace/twtrace/internal/tracertest"
	"github.com/twtrace/twtrace/tracer/kstat"
)

// Each namespace's own port range counts, less its reserved ports.
func TestEphemeralPortsPerNamespace(t *testing.T) {
	ns := tracertest.NewNetNS(t)
	if err := ns.Sysctl("net/ipv4/ip_local_port_range", "40000 40999"); err != nil {
		t.Fatal(err)
	}
	if err := ns.Sysctl("net/ipv4/ip_local_reserved_ports", "40010,40100-40109"); err != nil {
		t.Fatal(err)
	}
	r := start(t, Config{Namespaces: []int{ns.FD()}})
	if n, ok := r.s.EphemeralPorts(ns.Inode()); !ok || n != 1000-11 {
		t.Errorf("the namespace's: %d, %v; want 989", n, ok)
	}
	kr, err := kstat.NewReader("/proc")
	if err != nil {
		t.Fatal(err)
	}
	host, err := kr.Sysctls()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := host.EphemeralPorts()
	if n, ok := r.s.EphemeralPorts(r.s.HostNetNS()); !ok || n != want {
		t.Errorf("the host's: %d, %v; want %d", n, ok, want)
	}
	if n, ok := r.s.EphemeralPorts(1); ok {
		t.Errorf("a namespace nothing reaches: %d, ok", n)
	}
}
